"""Consent toggles: signed links, the ``next`` check, and what a toggle does to the cookies.

A toggle link carries an itsdangerous token that binds its action, ``next`` and ``duration``, so a
link cannot be edited into another one, and only pages of this site (which know the secret) can
produce one.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from itsdangerous import BadData, URLSafeTimedSerializer

from .decision import Action, cookie_write_for
from .settings import PixelSettings

ACTIONS: tuple[Action, ...] = ("optout", "optin")
_SALT = "pixel_middleware.toggle"
_SAFE_PATH_CHARS = frozenset(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/?%#")


class ToggleError(ValueError):
    """A toggle request that must not change anything."""


@dataclass(frozen=True, slots=True)
class Toggle:
    """A verified toggle: what to do and where to go afterwards."""

    action: Action
    next: str
    write_cookie: bool
    minutes: int


def _serializer(settings: PixelSettings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=_SALT)


def safe_next(value: str | None) -> str:
    """``value`` if it is a path on this site, else ``/``.

    Refuses scheme-relative ``//host``, absolute URLs, ``javascript:``, backslashes (browsers
    read ``/\\host`` as ``//host``) and anything outside printable ASCII.
    """
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    if any(ch not in _SAFE_PATH_CHARS for ch in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def clamp_minutes(settings: PixelSettings, duration: int | None) -> int:
    if duration is None:
        return settings.anonymous_cookie_minutes
    return max(1, min(duration, settings.anonymous_cookie_minutes))


def make_token(settings: PixelSettings, action: Action, next_url: str, duration: int | None) -> str:
    return str(_serializer(settings).dumps([action, next_url, duration]))


def toggle_query(
    settings: PixelSettings, action: Action, next_url: str | None, duration: int | None
) -> dict[str, str]:
    """A toggle link's or form's parameters: ``next``, ``duration`` and the token binding them."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
    if duration is not None and (isinstance(duration, bool) or duration <= 0):
        raise ValueError(f"duration must be a positive number of minutes, got {duration!r}")
    nxt = safe_next(next_url)
    query = {"next": nxt}
    if duration is not None:
        query["duration"] = str(int(duration))
    query["token"] = make_token(settings, action, nxt, None if duration is None else int(duration))
    return query


def toggle_url(
    settings: PixelSettings,
    action: Action,
    next_url: str | None = None,
    duration: int | None = None,
) -> str:
    return f"{settings.prefix}/{action}?" + urlencode(
        toggle_query(settings, action, next_url, duration)
    )


def verify(
    settings: PixelSettings,
    action: Action,
    *,
    token: str | None,
    next_url: str | None,
    duration: str | None,
) -> Toggle:
    """Check a toggle's token against its parameters; ``ToggleError`` if anything is off."""
    if not token:
        raise ToggleError("missing token")
    try:
        payload = _serializer(settings).loads(token, max_age=settings.toggle_token_max_age)
    except BadData:
        raise ToggleError("invalid or expired token") from None
    if not (isinstance(payload, list) and len(payload) == 3):
        raise ToggleError("invalid token")
    signed_action, signed_next, signed_duration = payload
    try:
        given_duration = None if duration in (None, "") else int(duration)
    except ValueError:
        raise ToggleError("duration must be a whole number of minutes") from None
    if (
        signed_action != action
        or signed_next != (next_url or "/")
        or signed_duration != given_duration
    ):
        raise ToggleError("token does not match this request")
    return Toggle(
        action=action,
        next=safe_next(signed_next),
        write_cookie=cookie_write_for(settings, action),
        minutes=clamp_minutes(settings, given_duration),
    )
