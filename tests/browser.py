"""Debian's Chromium driven by Playwright, and the demo site served by uvicorn for it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Request, sync_playwright

from example_site.app import TRACK_ID, create_app, demo_settings
from pixel_middleware.sinks import BufferedSink

from .servers import serve
from .stores import read_rows

CHROMIUM = os.environ.get("PIXEL_CHROMIUM", "/usr/bin/chromium")
# Without these Chromium keeps calling home, which this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"


def launch(playwright: Any, *, hosts: tuple[str, ...] = ()) -> Browser:
    """Chromium; each of ``hosts`` (``shop.test``…) resolves to 127.0.0.1 in it.

    A made-up host name over plain http is not a potentially trustworthy origin (localhost and
    127.0.0.1 are), so Chromium sends it no ``Sec-Fetch-*`` headers, as on a real http site.
    """
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium (dev.py test does)")
    args = list(CHROMIUM_ARGS)
    if hosts:
        args.append("--host-resolver-rules=" + ", ".join(f"MAP {h} 127.0.0.1" for h in hosts))
    browser: Browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
    return browser


@dataclass
class Site:
    url: str
    store: str
    sink: BufferedSink

    def hits(self) -> list[dict[str, Any]]:
        """Every stored row, once the writer has caught up."""
        assert self.sink.flush(20)
        return read_rows(self.store)


@contextmanager
def chromium(*, hosts: tuple[str, ...] = ()) -> Iterator[Browser]:
    """Debian's Chromium for one test module (``hosts`` as for :func:`launch`)."""
    with sync_playwright() as p:
        browser = launch(p, hosts=hosts)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def demo_site(
    tmp: Path,
    mode: str,
    *,
    tls: bool = False,
    host: str | None = None,
    headers: dict[str, str] | None = None,
    **overrides: Any,
) -> Iterator[Site]:
    """The demo under uvicorn. ``host`` names it in the URL instead of 127.0.0.1 (a name given
    to ``launch(hosts=…)``); ``headers`` go on every response that lacks them (see
    ``with_headers``)."""
    store = f"sqlite:///{tmp}/hits-{mode}.sqlite3"
    app = create_app(demo_settings(mode, store=store, spool_dir=str(tmp / "spool"), **overrides))
    served: Any = with_headers(app, headers) if headers else app
    with serve(served, tls=tls) as url:
        yield Site(url.replace("127.0.0.1", host) if host else url, store, app.state.pixel_sink)


def with_headers(app: Any, headers: dict[str, str]) -> Any:
    """``app`` with ``headers`` on every response that does not set them itself (as Django's
    SecurityMiddleware adds ``Referrer-Policy``)."""
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def send_with(message: Any) -> None:
            if message["type"] == "http.response.start":
                given = list(message.get("headers", ()))
                names = {bytes(k).lower() for k, _ in given}
                added = [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": given + added}
            await send(message)

        await app(scope, receive, send_with if scope["type"] == "http" else send)

    return wrapped


@dataclass
class Tab:
    """A page plus every pixel request the browser sent from it."""

    context: BrowserContext
    page: Page
    base: str
    sent: list[Request] = field(default_factory=list)

    def pixel_requests(self) -> list[list[tuple[str, str]]]:
        out = []
        for request in self.sent:
            out.append(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))
        return out

    def last_pixel(self) -> dict[str, str]:
        return dict(self.pixel_requests()[-1])

    def cookies(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: dict(c) for c in self.context.cookies(self.base)}

    def change_cookie(self, script: str, name: str, *, present: bool) -> None:
        """Evaluate ``script``, which writes or deletes cookie ``name``; wait for the cookie store.

        A cookie a page script writes reaches the browser's store a moment later.
        """
        self.page.evaluate(script)
        deadline = time.monotonic() + 10
        while (name in self.cookies()) != present:
            assert time.monotonic() < deadline, f"{name} never became present={present}"
            time.sleep(0.02)

    def visit(self, path: str) -> dict[str, str]:
        """Load ``path`` and wait for its page request; returns that request's parameters."""
        with self.page.expect_request(_is_pixel) as info:
            self.page.goto(self.base + path)
        info.value.response()
        return dict(parse_qsl(urlsplit(info.value.url).query, keep_blank_values=True))

    def click(self, selector: str) -> dict[str, str]:
        """Click a link that ends on a tracked page; returns that page's request parameters."""
        with self.page.expect_request(_is_pixel) as info:
            self.page.click(selector)
        info.value.response()
        return dict(parse_qsl(urlsplit(info.value.url).query, keep_blank_values=True))

    def run(self, script: str) -> dict[str, str]:
        """Evaluate ``script``, which sends one pixel request; returns its parameters."""
        with self.page.expect_request(_is_pixel) as info:
            self.page.evaluate(script)
        info.value.response()
        return dict(parse_qsl(urlsplit(info.value.url).query, keep_blank_values=True))


def _is_pixel(request: Request) -> bool:
    return f"/_pixel/{TRACK_ID}/wt?" in request.url


@contextmanager
def open_tab(browser: Browser, base: str, **context_options: Any) -> Iterator[Tab]:
    """A fresh browser context (its own cookies) with one page, closed when the block ends."""
    context = browser.new_context(**context_options)
    try:
        page = context.new_page()
        tab = Tab(context, page, base)
        page.on("request", lambda r: tab.sent.append(r) if _is_pixel(r) else None)
        yield tab
    finally:
        context.close()
