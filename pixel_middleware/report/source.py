"""Which store the command line reads: the same one the app writes.

In order: ``--store``; the settings named by ``--settings module:attribute``; the ``PIXEL_STORE``
and ``PIXEL_REPORT_TIME_ZONE`` variables that ``PixelSettings.from_env`` reads; the default.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..settings import DEFAULT_CONSENT_RECEIPT_DAYS, PixelSettings

DEFAULT_STORE = str(PixelSettings.__dataclass_fields__["store"].default)
DEFAULT_RECEIPT_DAYS = DEFAULT_CONSENT_RECEIPT_DAYS


class SourceError(Exception):
    """The settings the command line was pointed at cannot be read."""


@dataclass(frozen=True)
class StoreChoice:
    """The store to read (``None``: the settings keep no store), its time zone, and why; and
    how long consent receipts are kept (``consent_receipt_days``)."""

    store: str | None
    time_zone: str
    source: str
    receipt_days: int = DEFAULT_RECEIPT_DAYS


def choose_store(
    store: str | None, settings_ref: str | None, environ: Mapping[str, str]
) -> StoreChoice:
    """Apply the order above; ``store`` and ``settings_ref`` are the command-line options."""
    zone = environ.get("PIXEL_REPORT_TIME_ZONE", "").strip() or "UTC"
    days = _receipt_days(environ.get("PIXEL_CONSENT_RECEIPT_DAYS", ""))
    if settings_ref:
        found = load_settings(settings_ref)
        zone = found.get("report_time_zone", "UTC")
        days = int(found.get("consent_receipt_days", DEFAULT_RECEIPT_DAYS))
        if store is None:
            return StoreChoice(
                found.get("store", DEFAULT_STORE), zone, f"--settings {settings_ref}", days
            )
    if store is not None:
        return StoreChoice(store, zone, "--store", days)
    if "PIXEL_STORE" in environ:
        raw = environ["PIXEL_STORE"].strip()
        # As from_env reads it: empty or "none" means no store.
        value = None if raw.lower() in ("", "none") else raw
        return StoreChoice(value, zone, "PIXEL_STORE", days)
    return StoreChoice(
        DEFAULT_STORE, zone, "the default store (no --store, --settings or PIXEL_STORE)", days
    )


def _receipt_days(raw: str) -> int:
    """``PIXEL_CONSENT_RECEIPT_DAYS`` as ``from_env`` reads it; the default when unset."""
    if not raw.strip():
        return DEFAULT_RECEIPT_DAYS
    try:
        days = int(raw)
    except ValueError:
        raise SourceError(f"PIXEL_CONSENT_RECEIPT_DAYS is not a whole number: {raw!r}") from None
    if days < 1:
        raise SourceError(f"PIXEL_CONSENT_RECEIPT_DAYS must be at least 1, got {days}")
    return days


def load_settings(ref: str) -> dict[str, Any]:
    """``store`` and ``report_time_zone`` from ``module:attribute``.

    The attribute may be a ``PixelSettings``, anything with a ``settings`` attribute holding one
    (a ``PixelMiddleware``), a mapping of setting names (Django's ``PIXEL_MIDDLEWARE``), or a
    function without arguments returning one of these.
    """
    return _settings_values(load_object(ref), ref)


def load_object(ref: str) -> Any:
    """The object ``module:attribute`` names; ``SourceError`` with the reason if there is none."""
    module_name, _, attribute = ref.partition(":")
    if not module_name or not attribute:
        raise SourceError(
            f"--settings takes module:attribute (such as myshop.app:settings), got {ref!r}"
        )
    # python -m puts the working directory first on the path; a console script would not.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise SourceError(f"cannot import {module_name}: {type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise SourceError(f"{module_name} has no attribute {attribute!r}") from None


_REPORT_FIELDS = ("store", "report_time_zone", "consent_receipt_days")


def _settings_values(value: Any, ref: str) -> dict[str, Any]:
    return settings_values(value, ref, _REPORT_FIELDS)


def settings_values(value: Any, ref: str, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields ``names`` of what a ``--settings module:attribute`` named: ``PixelSettings``,
    an object with ``.settings`` (``PixelMiddleware``), a mapping (Django's
    ``PIXEL_MIDDLEWARE``), or a function returning one of these."""
    if isinstance(value, PixelSettings):
        return {name: getattr(value, name) for name in names if hasattr(value, name)}
    inner = getattr(value, "settings", None)
    if isinstance(inner, PixelSettings):
        return settings_values(inner, ref, names)
    if isinstance(value, Mapping):
        return {k: value[k] for k in names if k in value}
    if inspect.isfunction(value) or inspect.ismethod(value):
        made = _call(value, ref)
        if isinstance(made, PixelSettings | Mapping) or hasattr(made, "settings"):
            return settings_values(made, ref, names)
    raise SourceError(
        f"{ref} is neither PixelSettings, an object with .settings, a mapping of settings, "
        "nor a function returning one"
    )


def _call(function: Callable[[], Any], ref: str) -> Any:
    try:
        return function()
    except Exception as exc:
        raise SourceError(f"calling {ref}() failed: {type(exc).__name__}: {exc}") from exc
