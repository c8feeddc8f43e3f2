"""Response headers: read once into a plan, and the edits the rewrite makes. Pure.

Every function returns a new list: the app's own header list is never changed in place.
"""

from __future__ import annotations

from collections.abc import Sequence

Headers = list[tuple[bytes, bytes]]

_HTML_TYPES = (b"text/html", b"application/xhtml+xml")


class ResponsePlan:
    """What the rewrite needs to know of a response, from one pass over its headers.

    Headers that may be repeated (``Cache-Control``, ``Content-Security-Policy``) are read as the
    one comma- or semicolon-joined list HTTP says they are.
    """

    __slots__ = (
        "_had_length",
        "_rest",
        "_vary",
        "attachment",
        "cache_control",
        "content_length",
        "csp",
        "encoding",
        "gzipped",
        "headers",
        "html",
        "page",
        "status",
    )

    def __init__(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.headers = headers
        self.html = False
        self.encoding = b""
        self.attachment = False
        self.content_length: int | None = None
        cache_control: list[bytes] = []
        csp: list[bytes] = []
        # What a rewritten page keeps: every header but its length and Vary, a strong ETag
        # weakened (the bytes change).
        self._rest: Headers = []
        self._vary: list[str] = []
        self._had_length = False
        for key, value in headers:
            name = key.lower()
            if name == b"content-length":
                text = value.strip()
                self.content_length = int(text) if text.isdigit() else None
                self._had_length = True
                continue
            if name == b"vary":
                self._vary += [v.strip() for v in value.decode("latin-1").split(",") if v.strip()]
                continue
            if name == b"etag" and not value.startswith(b"W/"):
                self._rest.append((key, b"W/" + value))
                continue
            self._rest.append((key, value))
            if name == b"content-type":
                self.html = value.split(b";", 1)[0].strip().lower() in _HTML_TYPES
            elif name == b"content-encoding":
                self.encoding = value.strip().lower()
            elif name == b"content-disposition":
                self.attachment = value.strip().lower().startswith(b"attachment")
            elif name == b"cache-control":
                cache_control.append(value)
            elif name == b"content-security-policy":
                csp.append(value)
        self.cache_control = (
            b",".join(cache_control).decode("latin-1").lower() if cache_control else ""
        )
        self.csp = b"; ".join(csp).decode("latin-1") if csp else None
        self.gzipped = self.encoding == b"gzip"
        # A 200 HTML page that is not a download: one a browser shows, and counts.
        self.page = status == 200 and self.html and not self.attachment

    def injectable(self, method: str) -> bool:
        """Whether the snippet may go in (DESIGN §6), before the body is seen.

        gzip is allowed: the body is inflated, injected and compressed again. Any other encoding,
        and every response that is not a plain 200 HTML page, passes through untouched.
        """
        return self.page and method != "HEAD" and self.encoding in (b"", b"identity", b"gzip")

    @property
    def publicly_cacheable(self) -> bool:
        """A response a shared cache may keep: it must not carry a new identifier cookie."""
        directives = {part.strip().split("=", 1)[0] for part in self.cache_control.split(",")}
        return bool(directives & {"public", "s-maxage"}) and "private" not in directives


def with_cookies(headers: Sequence[tuple[bytes, bytes]], lines: Sequence[bytes]) -> Headers:
    return [*headers, *((b"set-cookie", line) for line in lines)]


def after_injection(plan: ResponsePlan, body_length: int) -> Headers:
    """Headers for the rewritten page: length, a weak ETag, and ``Vary: Cookie, Sec-GPC``.

    The snippet depends on both request headers, so a cache must not hand one visitor's page to
    another whose choice differs. Built from what the plan read in its one pass.
    """
    out = list(plan._rest)
    if plan._had_length:
        out.append((b"content-length", b"%d" % body_length))
    if not plan._vary:
        out.append(_VARY)  # the usual page names no Vary of its own
        return out
    vary = list(plan._vary)
    present = {v.lower() for v in vary}
    if "*" not in present:
        vary += [name for name in ("Cookie", "Sec-GPC") if name.lower() not in present]
    out.append((b"vary", ", ".join(vary).encode("latin-1")))
    return out


_VARY = (b"vary", b"Cookie, Sec-GPC")
