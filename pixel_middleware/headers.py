"""Pure edits of ASGI response header lists.

Each returns a new list: the app's own list is never changed in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .request_info import first_header, header_values

Headers = list[tuple[bytes, bytes]]

_HTML_TYPES = (b"text/html", b"application/xhtml+xml")


def with_cookies(headers: Sequence[tuple[bytes, bytes]], lines: Sequence[bytes]) -> Headers:
    return [*headers, *((b"set-cookie", line) for line in lines)]


def media_type(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    value = first_header(headers, b"content-type") or ""
    return value.split(";", 1)[0].strip().lower().encode("latin-1")


def is_html(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    return media_type(headers) in _HTML_TYPES


def content_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    value = first_header(headers, b"content-length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def content_encoding(headers: Sequence[tuple[bytes, bytes]]) -> str:
    return (first_header(headers, b"content-encoding") or "").strip().lower()


def injectable(status: int, method: str, headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether a response may get the snippet (DESIGN §6), before its body is seen.

    gzip is allowed: the body is inflated, injected and compressed again. Any other encoding, and
    every response that is not a plain 200 HTML page, passes through untouched.
    """
    if status != 200 or method == "HEAD" or not is_html(headers):
        return False
    if content_encoding(headers) not in ("", "identity", "gzip"):
        return False
    return not is_attachment(headers)


def is_attachment(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """A download, not a page: ``Content-Disposition: attachment``."""
    disposition = (first_header(headers, b"content-disposition") or "").strip().lower()
    return disposition.startswith("attachment")


def publicly_cacheable(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """A response a shared cache may keep: it must not carry a new identifier cookie."""
    value = (first_header(headers, b"cache-control") or "").lower()
    directives = {part.strip().split("=", 1)[0] for part in value.split(",")}
    return bool(directives & {"public", "s-maxage"}) and "private" not in directives


def after_injection(headers: Sequence[tuple[bytes, bytes]], body_length: int) -> Headers:
    """Headers for the rewritten page: length, a weak ETag, and ``Vary: Cookie, Sec-GPC``.

    The snippet depends on both request headers, so a cache must not hand one visitor's page to
    another whose choice differs.
    """
    out: Headers = []
    had_length = False
    vary: list[str] = []
    for key, value in headers:
        lower = key.lower()
        if lower == b"content-length":
            had_length = True
            continue
        if lower == b"etag":
            if not value.startswith(b"W/"):
                value = b"W/" + value
        elif lower == b"vary":
            vary += [v.strip() for v in value.decode("latin-1").split(",") if v.strip()]
            continue
        out.append((key, value))
    if had_length:
        out.append((b"content-length", str(body_length).encode("ascii")))
    present = {v.lower() for v in vary}
    if "*" not in present:
        vary += [name for name in ("Cookie", "Sec-GPC") if name.lower() not in present]
    out.append((b"vary", ", ".join(vary).encode("latin-1")))
    return out


def header_values_text(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[str]:
    return [value.decode("latin-1") for value in header_values(headers, name)]
