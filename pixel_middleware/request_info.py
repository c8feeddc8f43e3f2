"""What the middleware reads from an ASGI scope, read once and defensively.

Header names are compared in lower case whatever the server sent; values are decoded as Latin-1 so
that no byte sequence can fail to decode.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from . import wire
from .addresses import client_ip
from .decision import Decision, decide
from .identity import CookieJar, parse_cookie_header
from .settings import PixelSettings
from .visitor import Visitor


def header_values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """All values of header ``name`` (lower-case bytes), in order, whatever case they came in."""
    return [value for key, value in headers if key.lower() == name]


def first_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """The parts of a request the rules depend on."""

    method: str
    path: str
    scheme: str
    host: str | None
    headers: tuple[tuple[bytes, bytes], ...]
    jar: CookieJar
    gpc: bool
    client_ip: str | None

    def header(self, name: str) -> str | None:
        return first_header(self.headers, name.lower().encode("latin-1"))

    @property
    def https(self) -> bool:
        return self.scheme in ("https", "wss")


def read_request(scope: MutableMapping[str, Any], settings: PixelSettings) -> RequestInfo:
    headers = tuple((bytes(k), bytes(v)) for k, v in scope.get("headers", ()))
    # Several Cookie headers are legal over HTTP/2; they join with "; ".
    cookie_values = header_values(headers, b"cookie")
    raw_cookie = b"; ".join(cookie_values) if cookie_values else None
    client = scope.get("client")
    peer = str(client[0]) if client else None
    return RequestInfo(
        method=str(scope.get("method", "GET")).upper(),
        path=str(scope.get("path", "/")),
        scheme=str(scope.get("scheme", "http")),
        host=first_header(headers, b"host"),
        headers=headers,
        jar=parse_cookie_header(raw_cookie, max_bytes=settings.max_cookie_header_bytes),
        gpc=(first_header(headers, b"sec-gpc") or "").strip() == "1",
        client_ip=client_ip(
            peer, first_header(headers, b"x-forwarded-for"), settings.trusted_proxies
        ),
    )


def decision_for(settings: PixelSettings, request: RequestInfo) -> Decision:
    return decide(
        settings,
        request.jar.get(settings.anonymous_cookie_name),
        gpc=request.gpc,
        cookies_readable=request.jar.readable,
    )


def secure_cookies(settings: PixelSettings, request: RequestInfo) -> bool:
    if settings.secure_cookies is not None:
        return settings.secure_cookies
    return request.https


def make_visitor(settings: PixelSettings, request: RequestInfo) -> Visitor:
    """A page request's visitor, with the Smart Pixel's default page name (host+path)."""
    host = request.host or ""
    page_url = f"{request.scheme}://{host}{request.path}" if host else None
    return Visitor(
        settings,
        decision_for(settings, request),
        request.jar,
        page_name=f"{host}{request.path}",
        page_url=page_url,
        referrer=wire.referrer_field(request.header("referer"), host or None),
        time_ms=int(time.time() * 1000),
        gpc=request.gpc,
    )
