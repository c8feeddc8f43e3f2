"""The demo site. ``PIXEL_DEMO_MODE=opt-in`` switches the consent mode (default ``opt-out``).

Run it with ``python3 dev.py example``; it records hits into ``example_site/data/hits.sqlite3``
(``PIXEL_DEMO_STORE`` may name another store, such as a ``postgresql://`` URL).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pixel_middleware import PixelMiddleware, PixelSettings, get_visitor
from pixel_middleware.report import open_store
from pixel_middleware.sinks import build_sink
from pixel_middleware.templating import register

from .choices import privacy_view

HERE = Path(__file__).resolve().parent
TRACK_ID = "123451234512345"
USERS = {
    "ada": {"id": "C-1001", "uc5": "f", "uc7": "1815"},
    "alan": {"id": "C-1002", "uc5": "m", "uc7": "1912"},
}
REPORT_TOKEN = os.environ.get("PIXEL_DEMO_REPORT_TOKEN", "demo-report-token")


def demo_settings(mode: str | None = None, **overrides: Any) -> PixelSettings:
    mode = mode or os.environ.get("PIXEL_DEMO_MODE", "opt-out")
    if mode not in ("opt-in", "opt-out"):
        raise SystemExit(f"PIXEL_DEMO_MODE must be opt-in or opt-out, got {mode!r}")
    config = {
        "trackId": TRACK_ID,
        "userIdentification": {
            "enableAnonymousFunction": True,
            "anonymousCookieName": "miCookieOptOut",
            "anonymousOptIn": mode == "opt-in",
            "suppressParameter": ["cd", "uc5", "uc7"],
        },
    }
    extra: dict[str, Any] = {
        "secret_key": os.environ.get("PIXEL_DEMO_SECRET", "demo-only-secret"),
        "store": os.environ.get("PIXEL_DEMO_STORE", f"sqlite:///{HERE / 'data' / 'hits.sqlite3'}"),
        "spool_dir": str(HERE / "data" / "spool"),
        "report_token": REPORT_TOKEN,
    }
    return PixelSettings.from_smart_pixel(config, **{**extra, **overrides})


def create_app(settings: PixelSettings | None = None) -> Starlette:
    settings = settings or demo_settings()
    sink = build_sink(settings)
    templates = Jinja2Templates(directory=HERE / "templates")
    register(templates.env, settings)

    def render(request: Request, name: str, **context: Any) -> Response:
        visitor = get_visitor(request)
        user = USERS.get(request.session.get("user", ""))
        if user:
            visitor.customer(id=user["id"], uc5=user["uc5"], uc7=user["uc7"])
        context.update(visitor=visitor, user=request.session.get("user"))
        response = templates.TemplateResponse(request, name, context)
        # Strict: no inline script anywhere, and the tracking still works.
        response.headers["content-security-policy"] = "script-src 'self'; object-src 'none'"
        return response

    async def home(request: Request) -> Response:
        get_visitor(request).page("home", cg1="shop")
        return render(request, "home.html")

    async def product(request: Request) -> Response:
        slug = request.path_params["slug"]
        get_visitor(request).page(f"product/{slug}", cg1="shop", cp1=slug)
        return render(request, "product.html", slug=slug)

    async def login(request: Request) -> Response:
        if request.method == "POST":
            form = await _form(request)
            name = form.get("user", "")
            if name in USERS:
                request.session["user"] = name
                get_visitor(request).identify(USERS[name]["id"])
                return RedirectResponse("/", status_code=303)
        get_visitor(request).page("login")
        return render(request, "login.html", users=sorted(USERS))

    async def logout(request: Request) -> Response:
        request.session.pop("user", None)
        get_visitor(request).anonymize()
        return RedirectResponse("/", status_code=303)

    async def privacy(request: Request) -> Response:
        visitor = get_visitor(request)
        visitor.page("privacy")
        view = privacy_view(settings, visitor, datetime.now(UTC).date())
        return render(
            request,
            "privacy.html",
            view=view,
            cookie_name=settings.anonymous_cookie_name,
            receipt_id=visitor.receipt_id,
        )

    async def sent(request: Request) -> Response:
        visitor = get_visitor(request)
        visitor.page("what-was-sent")
        return render(
            request,
            "sent.html",
            cookies=_cookie_view(request, settings),
            config=json.dumps(visitor.config(), indent=2),
            pixel_url=visitor.pixel_url(),
            pixel_params=_decoded(visitor.pixel_url().partition("?")[2]),
            hits=await anyio.to_thread.run_sync(_recent_hits, settings.store, visitor.ever_id),
            report_url=f"{settings.prefix}/report?token={REPORT_TOKEN}",
        )

    routes = [
        Route("/", home),
        Route("/product/{slug}", product),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/privacy", privacy),
        Route("/sent", sent),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(PixelMiddleware, settings=settings, sink=sink),
        Middleware(SessionMiddleware, secret_key=settings.secret_key, same_site="lax"),
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.pixel_sink = sink  # tests flush it before reading the store
    return app


async def _form(request: Request) -> dict[str, str]:
    from urllib.parse import parse_qsl

    body = await request.body()
    return dict(parse_qsl(body.decode("utf-8", "replace")))


def _cookie_view(request: Request, settings: PixelSettings) -> list[tuple[str, str]]:
    """The pixel cookies this browser sent, with identifier values hidden: no everID in HTML."""
    secret = {settings.ever_id_cookie_name, settings.session_cookie_name}
    rows = []
    for name in (settings.anonymous_cookie_name, *sorted(secret)):
        value = request.cookies.get(name)
        if value is None:
            rows.append((name, "not sent"))
        elif name in secret:
            rows.append((name, f"sent ({len(value)} characters, value not shown)"))
        else:
            rows.append((name, value))
    return rows


def _decoded(query: str) -> list[tuple[str, str]]:
    """A query's parameters with their values decoded, as the server reads them."""
    pairs = []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name:
            pairs.append((unquote(name), unquote(value, errors="replace")))
    return pairs


def _recent_hits(store: str | None, ever_id: str | None, limit: int = 8) -> list[dict[str, Any]]:
    """This visitor's last hits (or, for an anonymous one, the last anonymous hits), eid hidden."""
    if store is None:
        return []
    reader = open_store(store)
    try:
        rows = reader.recent(limit, ever_id=ever_id)
    finally:
        reader.close()
    shown = []
    for row in rows:
        received = row["received_at"]
        if isinstance(received, datetime):
            received = received.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        params = [
            (name, "(hidden)" if name == "eid" else value) for name, value in _decoded(row["query"])
        ]
        counted_as = "anonymous" if row["anonymous"] else "identified"
        shown.append({"received": str(received)[:19], "counted_as": counted_as, "params": params})
    return shown


app = create_app()
