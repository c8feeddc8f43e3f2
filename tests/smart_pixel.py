"""Mapp's real Smart Pixel (npm ``@webtrekk-smart-pixel/core``) for browser tests.

The package is installed from npm once per session into ``.cache/npm`` (``PIXEL_NPM_CACHE``
overrides the folder) and checked byte for byte. A page configures it through Mapp's documented
``window.wtSmart.push(...)`` queue and tracks a page (and optionally an action). A small Starlette
app serves that page and the pixel's file, with a collector mounted beside it when wanted.

What the pixel allows (tests/fixtures/smart_pixel/README.md has what it sends):

- Every request URL it builds starts with ``https://`` + ``trackDomain``. A first-party collector
  therefore has to be served over TLS: run it with ``serve(app, tls=True)`` and open the browser
  context with ``ignore_https_errors=True`` (``CONTEXT_OPTIONS``). Plain http is impossible.
- ``trackDomain`` is pasted in as text, so it may carry a port and a path: ``127.0.0.1:8443/_pixel``
  gives ``https://127.0.0.1:8443/_pixel/<trackId>/wt?...``. ``track_domain()`` builds it.
- ``trackId`` must be 15 digits (or a comma list of them); anything else is silently ignored and
  then nothing is sent.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

PACKAGE = "@webtrekk-smart-pixel/core"
VERSION = "1.10.0"
# The same file as /work/shared/mapp-clients/smart-pixel (SOURCES.txt gives both hashes).
DIST_FILE = "dist/smart-pixel.min.js"
DIST_SHA256 = "158f080561c305a93bb9c0c9cd9a5e4d192985afefa74a23a5161350c320d3ee"
ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("PIXEL_NPM_CACHE", ROOT / ".cache" / "npm"))
TRACK_ID = "123451234512345"
SCRIPT_ROUTE = "/smart-pixel/smart-pixel.min.js"
PAGE_ROUTE = "/smart-pixel/page"
# Pixel requests always go to https://; the test servers use a throwaway certificate.
CONTEXT_OPTIONS: dict[str, Any] = {"ignore_https_errors": True}
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


# --- installing the package -------------------------------------------------------------------


def package_dir(cache: Path = CACHE, version: str = VERSION) -> Path:
    return cache / f"smart-pixel-{version}" / "node_modules" / PACKAGE


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install(cache: Path = CACHE, version: str = VERSION) -> Path:
    """Install the package from npm unless the cache already holds it; returns the dist file.

    The install goes to a temporary folder that is renamed into place, so two test processes
    never see half a package.
    """
    target = cache / f"smart-pixel-{version}"
    dist = package_dir(cache, version) / DIST_FILE
    if dist.exists():
        return _checked(dist, version)
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is missing: the Smart Pixel tests install Mapp's package with it")
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".smart-pixel-{version}-", dir=cache))
    try:
        result = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(staging),
                "--no-save",
                "--no-package-lock",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                f"{PACKAGE}@{version}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"npm install {PACKAGE}@{version} failed:\n{result.stderr}")
        staging.chmod(0o755)  # mkdtemp makes it private
        try:
            staging.rename(target)
        except OSError:
            if not dist.exists():  # not another process that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _checked(dist, version)


def _checked(dist: Path, version: str) -> Path:
    if not dist.is_file():
        raise RuntimeError(f"{dist} is missing after installing {PACKAGE}@{version}")
    meta = json.loads((dist.parent.parent / "package.json").read_text())
    if meta.get("version") != version:
        raise RuntimeError(f"{dist.parent.parent} holds {meta.get('version')}, not {version}")
    if version == VERSION and _sha256(dist) != DIST_SHA256:
        raise RuntimeError(f"{dist} is not the published {PACKAGE}@{VERSION} ({DIST_SHA256})")
    return dist


@functools.cache
def smart_pixel_js() -> Path:
    """The installed ``smart-pixel.min.js``, installed at most once per test process."""
    return install()


# --- the page ---------------------------------------------------------------------------------


def track_domain(base_url: str, path: str = "") -> str:
    """``trackDomain`` for a collector at ``base_url`` + ``path`` (the pixel adds ``https://``).

    >>> track_domain("https://127.0.0.1:8443", "/_pixel")
    '127.0.0.1:8443/_pixel'
    """
    parts = urlsplit(base_url)
    if parts.scheme != "https":
        raise ValueError(f"the Smart Pixel sends to https:// only, not to {base_url}")
    return parts.netloc + (base_url[len(f"https://{parts.netloc}") :] + path).rstrip("/")


@dataclass(frozen=True)
class SmartPixelConfig:
    """What the page passes to ``wtSmart.init.set`` and ``wtSmart.advanced.set``.

    Mapping fields use the Smart Pixel's own key names and are passed on unchanged, e.g.
    ``user_identification={"enableAnonymousFunction": True, "suppressParameter": ["cd"]}``,
    ``request_queue={"activated": False}``,
    ``send_via_server={"activated": True, "serverDomain": "127.0.0.1:8443", "serverPath": "hit"}``.
    """

    track_domain: str
    track_id: str = TRACK_ID
    request_type: Literal["image", "beacon"] = "image"
    request_obfuscation: bool = False
    request_queue: Mapping[str, Any] | None = None
    request_limit: Mapping[str, Any] | None = None
    user_identification: Mapping[str, Any] | None = None
    send_via_server: Mapping[str, Any] | None = None
    secure_cookie: bool | None = None
    # Any other key of wtSmart.advanced / wtSmart.init (tabBrowsing, optOutName, cookie, domain...)
    advanced: Mapping[str, Any] = field(default_factory=dict)
    init: Mapping[str, Any] = field(default_factory=dict)

    def init_object(self) -> dict[str, Any]:
        return {"trackId": self.track_id, "trackDomain": self.track_domain, **self.init}

    def advanced_object(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requestType": self.request_type,
            "requestObfuscation": self.request_obfuscation,
        }
        optional = {
            "requestQueue": self.request_queue,
            "requestLimit": self.request_limit,
            "userIdentification": self.user_identification,
            "sendViaServer": self.send_via_server,
            "secureCookie": self.secure_cookie,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        out.update(self.advanced)
        return out


def _js(value: Any) -> str:
    """A JSON literal that is safe inside a <script> element."""
    return (
        json.dumps(value, ensure_ascii=True)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


def page_html(
    script_url: str,
    config: SmartPixelConfig,
    *,
    page_name: str | None = None,
    page: Mapping[str, Any] | None = None,
    customer: Mapping[str, Any] | None = None,
    action: Mapping[str, Any] | None = None,
    track_page: bool = True,
    before_track: str = "",
    after_track: str = "",
    title: str = "Smart Pixel",
) -> str:
    """A page that loads the real Smart Pixel from ``script_url``, configures it and tracks.

    ``page`` goes to ``wtSmart.page.data.set(page_name, page)`` (``{"parameter": {"1": "x"}}``),
    ``customer`` to ``wtSmart.customer.data.set`` (``{"id": "C-1", "category": {"5": "f"}}``),
    ``action`` to ``wtSmart.action.data.set`` and then ``trackAction()`` after the page request
    (``{"name": "buy", "parameter": {"1": "kettle"}}`` sends ``ct=buy&ck1=kettle``).
    ``before_track`` / ``after_track`` are JavaScript run inside the ``push`` callback, where
    ``wtSmart`` is the pixel. When it has run, ``window.smartPixelDone`` is ``true`` (the
    requests themselves leave asynchronously) and ``window.smartPixelError`` holds any error.
    """
    steps = [
        f"wtSmart.init.set({_js(config.init_object())});",
        f"wtSmart.advanced.set({_js(config.advanced_object())});",
    ]
    if page is not None or page_name is not None:
        steps.append(f"wtSmart.page.data.set({_js(page_name or '')}, {_js(dict(page or {}))});")
    if customer is not None:
        steps.append(f"wtSmart.customer.data.set({_js(dict(customer))});")
    steps.append(before_track)
    if track_page:
        steps.append("wtSmart.trackPage();")
    if action is not None:
        steps.append(f"wtSmart.action.data.set({_js(dict(action))});")
        steps.append("wtSmart.trackAction();")
    steps.append(after_track)
    body = "\n      ".join(s for s in steps if s)
    return f"""<!doctype html>
<html>
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <script>
    window.wtSmart = window.wtSmart || [];
    window.wtSmart.push(function (wtSmart) {{
      try {{
      {body}
      }} catch (error) {{
        window.smartPixelError = String(error && error.stack || error);
      }}
      window.smartPixelDone = true;
    }});
  </script>
  <script async src="{script_url}"></script>
</head>
<body><h1>{title}</h1></body>
</html>
"""


# --- serving it -------------------------------------------------------------------------------


def smart_pixel_app(
    pages: Mapping[str, str] | None = None,
    *,
    script: Path | None = None,
    script_route: str = SCRIPT_ROUTE,
    collector: ASGIApp | None = None,
    collector_path: str = "/_pixel",
) -> Any:
    """A Starlette app: the pixel's file at ``script_route``, each of ``pages`` (path -> HTML),
    and, when given, ``collector`` mounted at ``collector_path`` ("" mounts it at the root, after
    the pages and the script). Run it with ``tests.servers.serve(app, tls=True)``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import BaseRoute, Mount, Route

    js = (script or smart_pixel_js()).read_bytes()

    async def script_file(request: Request) -> Response:
        return Response(js, media_type="application/javascript")

    def page_endpoint(html: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return HTMLResponse(html, headers={"cache-control": "no-store"})

        return endpoint

    routes: list[BaseRoute] = [Route(script_route, script_file)]
    routes += [Route(path, page_endpoint(html)) for path, html in (pages or {}).items()]
    if collector is not None:
        routes.append(Mount(collector_path, app=collector))
    return Starlette(routes=routes)


# --- a collector that only records ------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # raw: %-escapes kept
    query: str  # raw: %-escapes kept
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def as_json(self, header_names: Sequence[str] = ()) -> dict[str, Any]:
        wanted = {n.lower() for n in header_names}
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": {k: v for k, v in self.headers if not wanted or k in wanted},
            "body": self.body.decode("utf-8", "backslashreplace"),
        }


Responder = Callable[[RecordedRequest], tuple[int, str, bytes]]


def answer_gif(request: RecordedRequest) -> tuple[int, str, bytes]:
    return 200, "image/gif", GIF


class RecordingCollector:
    """A raw ASGI app that stores every request it gets and answers with a 1x1 GIF (or with what
    ``respond`` returns: status, content type, body). Mount it where the collector would be."""

    def __init__(self, respond: Responder = answer_gif) -> None:
        self.requests: list[RecordedRequest] = []
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw_path = scope.get("raw_path")  # the full path as sent, %-escapes kept
        if raw_path is None:
            root = scope.get("root_path", "")
            path = scope["path"] if scope["path"].startswith(root) else root + scope["path"]
        else:
            path = raw_path.decode("latin-1")
        request = RecordedRequest(
            method=scope["method"],
            path=path,
            query=scope["query_string"].decode("latin-1"),
            headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]),
            body=b"".join(chunks),
        )
        self.requests.append(request)
        status, content_type, body = self.respond(request)
        headers = [(b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
        if content_type:
            headers.append((b"content-type", content_type.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
