"""Identifiers and cookies: everID and session id values, the Cookie header, Set-Cookie lines.

Pure apart from the random numbers. The cookie plan for a response is computed here from the
decision and what the browser sent, so the ASGI layer only copies header lines.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate

from .settings import PixelSettings

EVER_ID_RE = re.compile(r"^\d{19}$")
SESSION_ID_RE = re.compile(r"^\d{19}$")
_COOKIE_VALUE_RE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$")
_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


def new_ever_id() -> str:
    """A fresh everID: "8" and 18 random digits, as Mapp's server-side libraries make them."""
    return f"8{secrets.randbelow(10**18):018d}"


def new_session_id() -> str:
    return f"{secrets.randbelow(10**19):019d}"


def valid_ever_id(value: str | None) -> bool:
    return value is not None and EVER_ID_RE.match(value) is not None


def valid_session_id(value: str | None) -> bool:
    return value is not None and SESSION_ID_RE.match(value) is not None


@dataclass(frozen=True, slots=True)
class CookieJar:
    """What the browser sent. ``readable`` is false when the header was too large to trust."""

    values: Mapping[str, str]
    readable: bool = True

    def get(self, name: str) -> str | None:
        return self.values.get(name)


def parse_cookie_header(raw: bytes | None, *, max_bytes: int) -> CookieJar:
    """Parse a Cookie header leniently; never raises.

    Pairs without ``=`` or with an empty name are skipped; the first occurrence of a name wins
    (browsers send the most specific path first). Bytes are read as Latin-1 so that no input can
    fail to decode.
    """
    if raw is None:
        return CookieJar({})
    if len(raw) > max_bytes:
        return CookieJar({}, readable=False)
    values: dict[str, str] = {}
    for chunk in raw.decode("latin-1").split(";"):
        name, sep, value = chunk.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values.setdefault(name, value)
    return CookieJar(values)


def set_cookie_line(
    name: str,
    value: str,
    *,
    max_age: int | None,
    secure: bool,
    httponly: bool,
    domain: str | None,
) -> bytes:
    """One ``Set-Cookie`` value. ``max_age=None`` makes a session cookie."""
    if not _COOKIE_VALUE_RE.match(value):
        raise ValueError(f"not a valid cookie value: {value!r}")
    parts = [f"{name}={value}", "Path=/"]
    if domain:
        parts.append(f"Domain={domain}")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
        parts.append("Expires=" + formatdate(time.time() + max_age, usegmt=True))
    parts.append("SameSite=Lax")
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    return "; ".join(parts).encode("latin-1")


def expire_cookie_line(name: str, *, secure: bool, httponly: bool, domain: str | None) -> bytes:
    """A ``Set-Cookie`` that makes the browser drop ``name`` (same Path and Domain as written)."""
    parts = [f"{name}=", "Path=/"]
    if domain:
        parts.append(f"Domain={domain}")
    parts += ["Max-Age=0", f"Expires={_EPOCH}", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    return "; ".join(parts).encode("latin-1")


@dataclass(frozen=True, slots=True)
class IdentityState:
    """The identifiers a visitor has after this request, and whether each must be (re)written."""

    ever_id: str | None
    session_id: str | None
    write_ever_id: bool = False
    write_session: bool = False
    expire_ever_id: bool = False
    expire_session: bool = False


def plan_identity(
    settings: PixelSettings, jar: CookieJar, *, anonymous: bool, rotate: bool = False
) -> IdentityState:
    """Decide which identifier cookies this response writes or expires.

    Anonymous: no identifiers; any the browser still holds are expired. Identified: keep a valid
    everID and session, make the missing ones; ``rotate`` (logout, or a changed choice) makes new
    ones regardless.
    """
    sent_eid = jar.get(settings.ever_id_cookie_name)
    sent_sid = jar.get(settings.session_cookie_name)
    if anonymous:
        return IdentityState(
            ever_id=None,
            session_id=None,
            expire_ever_id=sent_eid is not None,
            expire_session=sent_sid is not None,
        )
    keep_eid = valid_ever_id(sent_eid) and not rotate
    keep_sid = valid_session_id(sent_sid) and not rotate
    return IdentityState(
        ever_id=sent_eid if keep_eid else new_ever_id(),
        session_id=sent_sid if keep_sid else new_session_id(),
        write_ever_id=not keep_eid,
        write_session=not keep_sid,
    )


def identity_cookie_lines(
    settings: PixelSettings, state: IdentityState, *, secure: bool
) -> list[bytes]:
    """The Set-Cookie values that carry out ``state``."""
    httponly = settings.identifier_cookies_httponly
    domain = settings.cookie_domain
    cookies = (
        # name, value, write, expire, Max-Age (None: a session cookie)
        (
            settings.ever_id_cookie_name,
            state.ever_id,
            state.write_ever_id,
            state.expire_ever_id,
            settings.ever_id_days * 86_400,
        ),
        (
            settings.session_cookie_name,
            state.session_id,
            state.write_session,
            state.expire_session,
            None,
        ),
    )
    lines: list[bytes] = []
    for name, value, write, expire, max_age in cookies:
        if write and value is not None:
            lines.append(
                set_cookie_line(
                    name, value, max_age=max_age, secure=secure, httponly=httponly, domain=domain
                )
            )
        elif expire:
            lines.append(expire_cookie_line(name, secure=secure, httponly=httponly, domain=domain))
    return lines


def anonymous_cookie_line(
    settings: PixelSettings, *, write: bool, minutes: int, secure: bool
) -> bytes:
    """The choice cookie as the Smart Pixel writes it: "1", not HttpOnly, lifetime in minutes."""
    name = settings.anonymous_cookie_name
    domain = settings.cookie_domain
    if write:
        return set_cookie_line(
            name, "1", max_age=minutes * 60, secure=secure, httponly=False, domain=domain
        )
    return expire_cookie_line(name, secure=secure, httponly=False, domain=domain)
