"""Identifiers: everID and session id values, and which identifier cookies a response writes.

Pure apart from the random numbers. The plan for a response is worked out here from the decision
and what the browser sent, so the ASGI layer only copies header lines.
"""

from __future__ import annotations

import re
import secrets
from typing import NamedTuple

from .cookies import CookieWrite, PixelCookies
from .settings import PixelSettings

EVER_ID_RE = re.compile(r"^\d{19}$")
SESSION_ID_RE = EVER_ID_RE
# 128 random bits reduced modulo 10**k: the bias is below 10**-19, and no draw is rejected.
_DRAW_BYTES = 16


def new_ever_id() -> str:
    """A fresh everID: "8" and 18 random digits, as Mapp's server-side libraries make them."""
    return f"8{int.from_bytes(secrets.token_bytes(_DRAW_BYTES), 'big') % 10**18:018d}"


def new_session_id() -> str:
    return f"{int.from_bytes(secrets.token_bytes(_DRAW_BYTES), 'big') % 10**19:019d}"


def valid_ever_id(value: str | None) -> bool:
    """19 ASCII digits (``EVER_ID_RE``), checked without a regex: this runs on every page."""
    return value is not None and len(value) == 19 and value.isascii() and value.isdigit()


valid_session_id = valid_ever_id


class IdentityState(NamedTuple):
    """The identifiers a visitor has after this request, and whether each must be (re)written."""

    ever_id: str | None
    session_id: str | None
    write_ever_id: bool = False
    write_session: bool = False
    expire_ever_id: bool = False
    expire_session: bool = False


def plan_identity(cookies: PixelCookies, *, anonymous: bool, rotate: bool = False) -> IdentityState:
    """Decide which identifier cookies this response writes or expires.

    Anonymous: no identifiers; any the browser still holds are expired. Identified: keep a valid
    everID and session, make the missing ones; ``rotate`` (logout, or a changed choice) makes new
    ones regardless.
    """
    if anonymous:
        return IdentityState(
            ever_id=None,
            session_id=None,
            expire_ever_id=cookies.ever_id is not None,
            expire_session=cookies.session_id is not None,
        )
    keep_eid = not rotate and valid_ever_id(cookies.ever_id)
    keep_sid = not rotate and valid_session_id(cookies.session_id)
    return IdentityState(
        ever_id=cookies.ever_id if keep_eid else new_ever_id(),
        session_id=cookies.session_id if keep_sid else new_session_id(),
        write_ever_id=not keep_eid,
        write_session=not keep_sid,
    )


def identity_writes(settings: PixelSettings, state: IdentityState) -> list[CookieWrite]:
    """The identifier cookies to write or expire to carry out ``state``."""
    httponly = settings.identifier_cookies_httponly
    writes: list[CookieWrite] = []
    if state.write_ever_id and state.ever_id is not None:
        writes.append(
            CookieWrite(
                settings.ever_id_cookie_name,
                state.ever_id,
                settings.ever_id_days * 86_400,
                httponly,
            )
        )
    elif state.expire_ever_id:
        writes.append(CookieWrite.expire(settings.ever_id_cookie_name, httponly=httponly))
    if state.write_session and state.session_id is not None:
        # No Max-Age: a session cookie, gone when the browser session ends.
        writes.append(CookieWrite(settings.session_cookie_name, state.session_id, None, httponly))
    elif state.expire_session:
        writes.append(CookieWrite.expire(settings.session_cookie_name, httponly=httponly))
    return writes


def anonymous_cookie_write(settings: PixelSettings, *, write: bool, minutes: int) -> CookieWrite:
    """The choice cookie as the Smart Pixel writes it: "1", not HttpOnly, lifetime in minutes."""
    name = settings.anonymous_cookie_name
    if write:
        return CookieWrite(name, "1", minutes * 60, httponly=False)
    return CookieWrite.expire(name, httponly=False)
