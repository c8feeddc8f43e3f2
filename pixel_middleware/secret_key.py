"""Where the signing key comes from, and whether it is long enough to sign anything. Pure but
for one look at Django's settings when a Django project is configured."""

from __future__ import annotations

import os

# An HMAC key shorter than this is guessable offline from one signed link; 16 characters of a
# random string (a password generator's default) is about 96 bits.
MIN_SECRET_KEY_LENGTH = 16

WHERE = (
    "pass secret_key=… to PixelSettings, set PIXEL_SECRET_KEY (PixelSettings.from_env), "
    "or, with Django, set SECRET_KEY (used when PIXEL_MIDDLEWARE has no secret_key)"
)


def django_secret_key() -> str | None:
    """Django's ``SECRET_KEY`` when this process runs a configured Django project, else None."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        try:
            from django.conf import settings
        except ImportError:
            return None
        # settings.configure() was called without a settings module.
        if not settings.configured:
            return None
    try:
        from django.conf import settings

        key = getattr(settings, "SECRET_KEY", None)
    except Exception:
        # Django missing or its settings broken: Django reports that itself; here the key is
        # simply not there, and the message below says where it is read from.
        return None
    return key if isinstance(key, str) and key else None


def resolve_secret_key(given: str) -> str:
    """``given``, else Django's ``SECRET_KEY``; a ``ValueError`` says where the key is read from
    when there is none, and the minimum length when it is too short."""
    key = given or django_secret_key() or ""
    if not key:
        raise ValueError(f"secret_key is missing (it signs the consent links): {WHERE}")
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ValueError(
            f"secret_key must be at least {MIN_SECRET_KEY_LENGTH} characters long (got "
            f"{len(key)}): a random string, kept secret, that signs the consent links"
        )
    return key
