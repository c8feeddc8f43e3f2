"""The settings an audit checks against, found the way the command line finds the store.

In order: ``--settings module:attribute`` (a ``PixelSettings``, a ``PixelMiddleware``, Django's
``PIXEL_MIDDLEWARE`` dict, or a function returning one); else the ``PIXEL_*`` variables that
``PixelSettings.from_env`` reads; else the defaults of ``PixelSettings``. ``--store`` replaces
only the store. Without settings the checks use the defaults: no suppressed parameter (that
check is skipped), no temporary session ids, no IP at all on anonymous rows (level 0, the
strictest), no retention (skipped unless ``--retention-days``); the report says so.

Values are read field by field, without building a ``PixelSettings``: a cron job or Django's
dict may lack the secret key, which the audit has no use for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..report.source import DEFAULT_STORE, SourceError, load_object, settings_values
from ..settings import PixelSettings, _as_names, _from_text

_DEFAULTS = PixelSettings.__dataclass_fields__
DEFAULT_STORE_SOURCE = "the default store (no --store, --settings or PIXEL_STORE)"


def _default(name: str) -> Any:
    """The default of a ``PixelSettings`` field, so that both never disagree."""
    return _DEFAULTS[name].default


# retention_days is not a PixelSettings field (yet); read it wherever the others are.
RETENTION_FIELD = "retention_days"


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """The settings the checks need, and where they came from (``source``, for the report)."""

    source: str
    store: str | None = DEFAULT_STORE
    store_source: str = DEFAULT_STORE_SOURCE
    spool_dir: str = "pixel_spool"
    enable_anonymous_function: bool = False
    suppress_parameter: tuple[str, ...] = ()
    anonymous_session: bool = False
    anonymous_ip_truncation: int = 0
    anonymous_query_allowlist: tuple[str, ...] = ()
    anonymous_cookie_minutes: int = _default("anonymous_cookie_minutes")
    ever_id_days: int = _default("ever_id_days")
    identifier_cookies_httponly: bool = True
    send_to_track_domain: bool = False
    honor_global_privacy_control: bool = True
    relay: bool = False
    relay_url: str | None = None
    track_domain: str | None = None
    retention_days: float | None = None
    defaults: bool = False  # no settings were found at all


# The AuditSettings fields read from the app's settings (all but the bookkeeping ones).
FIELDS = tuple(
    name
    for name in AuditSettings.__dataclass_fields__
    if name not in ("source", "store_source", "defaults")
)


_AUDIT_DEFAULTS: dict[str, Any] = {
    name: f.default for name, f in AuditSettings.__dataclass_fields__.items()
}


def resolve(
    *,
    store: str | None,
    settings_ref: str | None,
    environ: Mapping[str, str],
    retention_days: float | None = None,
) -> AuditSettings:
    """The settings for an audit; ``store``, ``settings_ref`` and ``retention_days`` are the
    command-line options (``None`` when not given). ``SourceError`` if they cannot be read."""
    if settings_ref:
        values = _values(_load(settings_ref), settings_ref)
        source, store_source = f"--settings {settings_ref}", f"--settings {settings_ref}"
        defaults = False
    else:
        values = _from_environ(environ)
        defaults = not values
        source = (
            "defaults (no --settings and no PIXEL_* variables)"
            if defaults
            else "PIXEL_* environment variables"
        )
        store_source = "PIXEL_STORE" if "store" in values else DEFAULT_STORE_SOURCE
    if store is not None:
        values["store"], store_source = store, "--store"
    if retention_days is not None:
        values[RETENTION_FIELD] = retention_days
    return AuditSettings(source=source, store_source=store_source, defaults=defaults, **values)


def _load(ref: str) -> Any:
    """The object ``module:attribute`` names, imported as the report imports it."""
    return load_object(ref)


def _values(value: Any, ref: str) -> dict[str, Any]:
    """The audit's fields from what ``ref`` names (see :func:`resolve`)."""
    return _checked(settings_values(value, ref, FIELDS), ref)


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """The fields ``PIXEL_<FIELD>`` variables set, read exactly as ``from_env`` reads them.

    ``PIXEL_RETENTION_DAYS`` is read too, for when ``retention_days`` becomes a setting; today
    ``from_env`` would refuse it as unknown, so the README does not offer it yet.
    """
    values: dict[str, Any] = {}
    for name in FIELDS:
        raw = environ.get("PIXEL_" + name.upper())
        if raw is None:
            continue
        try:
            if name == RETENTION_FIELD:
                values[name] = _retention(raw)
            else:
                values[name] = _from_text(name, str(_DEFAULTS[name].type), raw)
        except ValueError as exc:
            raise SourceError(f"PIXEL_{name.upper()}: {exc}") from None
    return _checked(values, "the PIXEL_* variables")


def _retention(raw: Any) -> float | None:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none")):
        return None
    try:
        days = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"retention_days must be a number of days, got {raw!r}") from None
    if not days > 0:
        raise ValueError(f"retention_days must be more than 0, got {raw!r}")
    return days


def _checked(values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` in the types the checks expect; a wrong type is a ``SourceError``."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        try:
            out[name] = _coerce(name, value)
        except ValueError as exc:
            raise SourceError(f"{where}: {exc}") from None
    return out


def _coerce(name: str, value: Any) -> Any:
    if name == RETENTION_FIELD:
        return _retention(value)
    default = _AUDIT_DEFAULTS[name]
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        if name == "anonymous_ip_truncation" and not 0 <= value <= 3:
            raise ValueError(f"{name} must be 0 (no IP) or 1-3, got {value!r}")
        return value
    if isinstance(default, tuple):
        return _names(name, value)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {value!r}")
    return value


def _names(name: str, value: Any) -> tuple[str, ...]:
    # As PixelSettings.from_mapping reads lists: a comma-separated string or strings.
    return _as_names(name, value)
