"""The pixel's cookies: read from the raw ``Cookie`` header, written from one value object.

Reading follows the Smart Pixel, not a cookie library: the value is taken as the browser sent it
(``miCookieOptOut=""`` is the two-character value ``""``, which the pixel treats as present), so
the server and the page script can never disagree about a visitor's choice. Pure.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from email.utils import formatdate
from functools import lru_cache
from typing import NamedTuple

_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
# RFC 6265 cookie-octet: what may stand unquoted in a Set-Cookie value.
_COOKIE_OCTETS = frozenset(chr(c) for c in range(0x21, 0x7F) if chr(c) not in {'"', ",", ";", "\\"})


def read_cookies(
    raw: str | None, names: Iterable[str], *, max_length: int
) -> dict[str, str] | None:
    """The values of the cookies in ``names`` found in a Cookie header, or None if unreadable.

    Only the named cookies are looked at, so a page with many cookies costs little. The first
    occurrence of a name wins (browsers send the most specific path first); a value is kept as
    sent, whitespace around it aside. A header longer than ``max_length`` is not trusted at all:
    the caller must fail closed.
    """
    if raw is None:
        return {}
    if len(raw) > max_length:
        return None
    wanted = set(names)
    found: dict[str, str] = {}
    for chunk in raw.split(";"):
        name, sep, value = chunk.partition("=")
        if not sep:
            continue
        name = name.strip()
        if name in wanted and name not in found:
            found[name] = value.strip()
            if len(found) == len(wanted):
                break
    return found


@lru_cache(maxsize=8)
def _http_date(epoch_seconds: int) -> str:
    return formatdate(epoch_seconds, usegmt=True)


class CookieWrite(NamedTuple):
    """One cookie to set or expire on a response.

    ``max_age`` is in seconds: ``None`` makes a session cookie, ``0`` expires the cookie.
    """

    name: str
    value: str
    max_age: int | None
    httponly: bool
    samesite: str = "Lax"

    @classmethod
    def expire(cls, name: str, *, httponly: bool) -> CookieWrite:
        return cls(name, "", 0, httponly)

    @property
    def expires(self) -> bool:
        """Whether this write removes the cookie from the browser."""
        return self.max_age == 0

    def line(self, *, secure: bool, domain: str | None) -> bytes:
        """The ``Set-Cookie`` value, with ``Path=/`` and ``SameSite=Lax`` like the Smart Pixel's.

        Deleting uses the same Path and Domain as writing, or the browser would keep the cookie.
        """
        if not all(ch in _COOKIE_OCTETS for ch in self.value):
            raise ValueError(f"not a valid cookie value: {self.value!r}")
        parts = [f"{self.name}={self.value}", "Path=/"]
        if domain:
            parts.append(f"Domain={domain}")
        if self.max_age == 0:
            parts += ["Max-Age=0", f"Expires={_EPOCH}"]
        elif self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
            parts.append("Expires=" + _http_date(int(time.time()) + self.max_age))
        parts.append(f"SameSite={self.samesite}")
        if secure:
            parts.append("Secure")
        if self.httponly:
            parts.append("HttpOnly")
        return "; ".join(parts).encode("latin-1")


def set_cookie_lines(
    writes: Iterable[CookieWrite], *, secure: bool, domain: str | None
) -> list[bytes]:
    return [write.line(secure=secure, domain=domain) for write in writes]


class PixelCookies(NamedTuple):
    """The cookies of the pixel a request carried (None: not sent).

    ``readable`` is false when the Cookie header was too large to trust: nothing in it counts,
    and the visitor is treated as anonymous.
    """

    anonymous: str | None = None
    ever_id: str | None = None
    session_id: str | None = None
    readable: bool = True
    opt_out: str | None = None
    temporary: str | None = None
    new: str | None = None
    receipt: str | None = None


class CookieNames(NamedTuple):
    """The names of the pixel's cookies under one settings object."""

    anonymous: str
    ever_id: str
    session_id: str
    opt_out: str
    temporary: str
    new: str
    receipt: str

    @property
    def slots(self) -> dict[str, int]:
        """Each name's field in ``PixelCookies`` (later names win where two are the same)."""
        fields = PixelCookies._fields
        return {name: fields.index(field) for field, name in zip(self._fields, self, strict=True)}


# The choice cookies are read as the Smart Pixel reads them: raw value, last occurrence wins.
_AS_PIXEL = frozenset(PixelCookies._fields.index(name) for name in ("anonymous", "opt_out"))


def pixel_cookies(raw: str | None, slots: dict[str, int], *, max_length: int) -> PixelCookies:
    """Read the pixel's cookies in one pass over the header (``slots``: ``CookieNames.slots``).

    The two choice cookies (``anonymous``, ``opt_out``) are read as the Smart Pixel reads
    ``document.cookie`` (see :func:`read_cookies_as_pixel`): raw value, last occurrence wins. The
    identifier cookies are the server's own: first occurrence (the most specific path), trimmed.
    """
    if raw is None:
        return _NONE
    if len(raw) > max_length:
        return PixelCookies(readable=False)
    values: list[str | bool | None] | None = None
    for chunk in raw.split(";"):
        name, sep, value = chunk.partition("=")
        slot = slots.get(name.strip()) if sep else None
        if slot is None:
            continue
        if values is None:
            values = [None, None, None, True, None, None, None, None]
        if slot in _AS_PIXEL:
            values[slot] = value
        elif values[slot] is None:
            values[slot] = value.strip()
    # tuple.__new__ is what PixelCookies._make does, less its length check: the list above is
    # PixelCookies' length, written out so this runs without a function call per request.
    return _NONE if values is None else tuple.__new__(PixelCookies, values)


def read_cookies_as_pixel(raw: str, names: Iterable[str]) -> dict[str, str]:
    """Cookie values exactly as the Smart Pixel reads ``document.cookie``.

    Split at ``;``, the name trimmed, the value taken as it is (not trimmed, quotes kept), the
    last occurrence winning. Present means a non-empty value: ``""`` (two quote characters) and
    ``0`` are present, ``name=`` is not.
    """
    wanted = set(names)
    found: dict[str, str] = {}
    for chunk in raw.split(";"):
        name, sep, value = chunk.partition("=")
        if sep and name.strip() in wanted:
            found[name.strip()] = value
    return found


_NONE = PixelCookies()
assert len(_NONE) == 8 and _NONE.readable  # the literal list in pixel_cookies
