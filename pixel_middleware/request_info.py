"""What the middleware reads from an ASGI scope: one pass over the headers, each fact once.

Header names are compared in lower case whatever the server sent; values are decoded as Latin-1 so
that no byte sequence can fail to decode. The cookies, the decision and the cookie security of a
request are worked out here once and shared by the visitor and the endpoints.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from .addresses import client_ip
from .consent_sources import consent_answer, cookie_names
from .cookies import CookieNames, PixelCookies, pixel_cookies, read_cookies
from .decision import Decision, decide, source_settings
from .identity import new_marker_name
from .receipts import RECEIPT_COOKIE
from .settings import PixelSettings, per_settings

# The request headers any part of the package reads; everything else is skipped in the one pass.
_READ = frozenset(
    {
        b"host",
        b"sec-gpc",
        b"referer",
        b"user-agent",
        b"x-forwarded-for",
        b"origin",
        b"sec-fetch-site",
        b"content-type",
        b"authorization",
        b"if-none-match",
        b"sp-anonymous",
    }
)


class RequestInfo:
    """The parts of one request the rules depend on, read in one pass over its headers.

    The cookies, the decision and the client address are worked out on first use, then kept.
    """

    __slots__ = (
        "_client_ip",
        "_decision",
        "_headers",
        "_peer",
        "cookie_header",
        "cookies",
        "gpc",
        "host",
        "method",
        "path",
        "referer",
        "scheme",
        "settings",
    )

    def __init__(self, scope: MutableMapping[str, Any], settings: PixelSettings) -> None:
        self.settings = settings
        self.method = scope.get("method", "GET").upper()
        self.path: str = scope.get("path", "/")
        self.scheme: str = scope.get("scheme", "http")
        headers: dict[bytes, str] = {}
        cookies: list[str] = []
        for key, value in scope.get("headers", ()):
            name = key.lower()
            if name == b"cookie":
                cookies.append(value.decode("latin-1"))
            elif name in _READ and name not in headers:
                headers[name] = value.decode("latin-1")
        self._headers = headers
        # Several Cookie headers are legal over HTTP/2; they join with "; ".
        self.cookie_header = "; ".join(cookies) if cookies else None
        # Every user of a request reads the pixel's cookies: read here, with the other facts.
        self.cookies: PixelCookies = pixel_cookies(
            self.cookie_header, _cookie_slots(settings), max_length=settings.max_cookie_header_bytes
        )
        self.host: str | None = headers.get(b"host")
        self.referer: str | None = headers.get(b"referer")
        # Sec-GPC: 1 (Global Privacy Control).
        self.gpc: bool = headers.get(b"sec-gpc", "").strip() == "1"
        client = scope.get("client")
        self._peer: str | None = str(client[0]) if client else None
        self._decision: Decision | None = None
        self._client_ip: tuple[str | None] | None = None

    def header(self, name: str) -> str | None:
        """The first value of a header the package reads (see ``_READ``)."""
        key = name.lower().encode("latin-1")
        if key not in _READ:
            raise KeyError(f"{name!r} is not read from requests; add it to _READ")
        return self._headers.get(key)

    @property
    def https(self) -> bool:
        return self.scheme in ("https", "wss")

    @property
    def decision(self) -> Decision:
        if self._decision is None:
            cookies = self.cookies
            self._decision = decide(
                self.settings,
                cookies.anonymous,
                gpc=self.gpc,
                cookies_readable=cookies.readable,
                tracking_opt_out=bool(cookies.opt_out),
                source_answer=self._source_answer()
                if self.settings.consent_source
                else (None, None),
            )
        return self._decision

    def _source_answer(self) -> tuple[str | None, str | None]:
        """What the configured consent managers' cookies say (see ``consent_sources``)."""
        s = self.settings
        config = source_settings(s)
        found = read_cookies(
            self.cookie_header, cookie_names(config), max_length=s.max_cookie_header_bytes
        )
        if found is None:
            return "anonymous", None  # a header too large to read: fail closed
        return consent_answer(config, found)

    @property
    def secure(self) -> bool:
        """Whether cookies written in answer to this request get ``Secure``."""
        if self.settings.secure_cookies is not None:
            return self.settings.secure_cookies
        return self.https

    @property
    def client_ip(self) -> str | None:
        if self._client_ip is None:
            address = client_ip(
                self._peer, self._headers.get(b"x-forwarded-for"), self.settings.trusted_proxies
            )
            self._client_ip = (address,)
        return self._client_ip[0]


@per_settings
def _cookie_slots(settings: PixelSettings) -> dict[str, int]:
    return CookieNames(
        anonymous=settings.anonymous_cookie_name,
        ever_id=settings.ever_id_cookie_name,
        session_id=settings.session_cookie_name,
        opt_out=settings.opt_out_name,
        temporary=settings.anonymous_session_cookie_name,
        new=new_marker_name(settings),
        receipt=RECEIPT_COOKIE,
    ).slots


def read_request(scope: MutableMapping[str, Any], settings: PixelSettings) -> RequestInfo:
    return RequestInfo(scope, settings)
