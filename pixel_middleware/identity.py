"""Identifiers: everID and session id values, and which identifier cookies a response writes.

Pure apart from the random numbers. The plan for a response is worked out here from the decision
and what the browser sent, so the ASGI layer only copies header lines.
"""

from __future__ import annotations

import secrets
import time
from typing import NamedTuple

from .cookies import CookieWrite, PixelCookies
from .settings import PixelSettings
from .sinks.base import is_temporary_id

# 128 random bits reduced modulo 10**k: the bias is below 10**-19, and no draw is rejected.
_DRAW_BYTES = 16


def new_ever_id() -> str:
    """A fresh everID: "8" and 18 random digits, as Mapp's server-side libraries make them."""
    return f"8{int.from_bytes(secrets.token_bytes(_DRAW_BYTES), 'big') % 10**18:018d}"


def new_session_id() -> str:
    return f"{int.from_bytes(secrets.token_bytes(_DRAW_BYTES), 'big') % 10**19:019d}"


def valid_ever_id(value: str | None) -> bool:
    """19 ASCII digits, checked without a regex: this runs on every page."""
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
    # Level 2 of anonymity: a temporary session id for an anonymous visitor (anonymous_session).
    temporary_id: str | None = None
    write_temporary: bool = False
    expire_temporary: bool = False
    # Whether the hits of this request are the first of a new visitor / a new session: made
    # here, or made by an earlier answer that stored no hit (the new-visit marker cookie).
    new_visitor: bool = False
    new_session: bool = False
    marker: str | None = None

    @property
    def changes_cookies(self) -> bool:
        return (
            self.write_ever_id
            or self.write_session
            or self.expire_ever_id
            or self.expire_session
            or self.write_temporary
            or self.expire_temporary
        )


def new_temporary_id() -> str:
    """A temporary session id: random, and unlike any everID or session id (a "t" and 32 hex)."""
    return "t" + secrets.token_hex(16)


def valid_temporary_id(value: str | None) -> bool:
    return value is not None and is_temporary_id(value)


def read_temporary(value: str | None, *, now: float, timeout: int) -> str | None:
    """The temporary id of a ``<id>.<last seen>`` cookie, or None if missing, broken or stale.

    Browsers restore session cookies with a restored session, so the timeout (the Smart Pixel's
    30 minutes without a page view) is enforced here, from the time the cookie carries.
    """
    if not value:
        return None
    temporary_id, _, seen = value.partition(".")
    if not valid_temporary_id(temporary_id) or not seen.isdigit() or len(seen) > 12:
        return None
    if not 0 <= now - int(seen) <= timeout:
        return None
    return temporary_id


def plan_identity(
    cookies: PixelCookies,
    *,
    anonymous: bool,
    rotate: bool = False,
    temporary_timeout: int | None = None,
    now: float | None = None,
) -> IdentityState:
    """Decide which identifier cookies this response writes or expires.

    Anonymous: no identifiers; any the browser still holds are expired. With
    ``temporary_timeout`` (anonymous_session on) an anonymous visitor keeps a temporary session
    id while it is fresh, or gets a new one; ``rotate`` always makes a new one. Identified: keep a
    valid everID and session, make the missing ones; ``rotate`` (logout, or a changed choice)
    makes new ones regardless; a temporary id is dropped. ``now`` (seconds since the epoch,
    the clock when None) only matters for a temporary id.
    """
    if anonymous:
        temporary = None
        if temporary_timeout is not None:
            kept = (
                None
                if rotate
                else read_temporary(
                    cookies.temporary,
                    now=time.time() if now is None else now,
                    timeout=temporary_timeout,
                )
            )
            temporary = kept or new_temporary_id()
        return IdentityState(
            ever_id=None,
            session_id=None,
            expire_ever_id=cookies.ever_id is not None,
            expire_session=cookies.session_id is not None,
            temporary_id=temporary,
            # Written on every answer: the cookie carries the time of the last page view.
            write_temporary=temporary is not None,
            expire_temporary=temporary is None and cookies.temporary is not None,
        )
    keep_eid = not rotate and valid_ever_id(cookies.ever_id)
    keep_sid = not rotate and valid_session_id(cookies.session_id)
    if keep_eid and keep_sid and cookies.temporary is None and cookies.new is None:
        # A returning visitor, the usual request: nothing to write, every flag at its default.
        return IdentityState(cookies.ever_id, cookies.session_id)
    marker = cookies.new or ""
    return IdentityState(
        ever_id=cookies.ever_id if keep_eid else new_ever_id(),
        session_id=cookies.session_id if keep_sid else new_session_id(),
        write_ever_id=not keep_eid,
        write_session=not keep_sid,
        expire_temporary=cookies.temporary is not None,
        new_visitor=not keep_eid or "v" in marker,
        new_session=not keep_sid or "s" in marker,
        marker=cookies.new,
    )


def plan_for(
    settings: PixelSettings,
    cookies: PixelCookies,
    *,
    anonymous: bool,
    rotate: bool = False,
    now: float | None = None,
) -> IdentityState:
    """``plan_identity`` with the settings' anonymous_session and its timeout."""
    timeout = settings.anonymous_session_timeout_minutes * 60
    return plan_identity(
        cookies,
        anonymous=anonymous,
        rotate=rotate,
        temporary_timeout=timeout if settings.anonymous_session else None,
        now=now,
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
    name = settings.anonymous_session_cookie_name
    if state.write_temporary and state.temporary_id is not None:
        # A session cookie, HttpOnly whatever the identifier setting: no script needs it.
        value = f"{state.temporary_id}.{int(time.time())}"
        writes.append(CookieWrite(name, value, None, httponly=True))
    elif state.expire_temporary:
        writes.append(CookieWrite.expire(name, httponly=True))
    return writes


def new_marker_name(settings: PixelSettings) -> str:
    """The cookie that says "this visit's first hit is still to come" (``<session cookie>_new``).

    The server makes the everID and the session on the page's answer, which stores no hit; the
    browser's first hit then arrives with both cookies. The marker carries "new visitor" (``v``)
    and "new session" (``s``) to that hit, so that ``one`` and ``fns`` say what happened.
    """
    return f"{settings.session_cookie_name}_new"


def marker_write(
    settings: PixelSettings, state: IdentityState, *, hit_stored: bool
) -> CookieWrite | None:
    """Carry the new-visit flags to the first hit, or drop them once a hit took them."""
    flags = ("v" if state.new_visitor else "") + ("s" if state.new_session else "")
    if hit_stored or not flags:
        if state.marker is not None:
            return CookieWrite.expire(new_marker_name(settings), httponly=True)
        return None
    if flags == state.marker:
        return None
    return CookieWrite(new_marker_name(settings), flags, None, httponly=True)


def anonymous_cookie_write(settings: PixelSettings, *, write: bool, minutes: int) -> CookieWrite:
    """The choice cookie as the Smart Pixel writes it: "1", not HttpOnly, lifetime in minutes."""
    name = settings.anonymous_cookie_name
    if write:
        return CookieWrite(name, "1", minutes * 60, httponly=False)
    return CookieWrite.expire(name, httponly=False)
