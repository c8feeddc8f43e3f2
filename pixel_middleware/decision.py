"""The anonymous rule: cookie state, mode and Global Privacy Control in, one small verdict out.

Pure: no I/O, no clock. Everything else in the package asks this module, so the truth table in
the README is exactly the code below.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from .consent_sources import SourceSettings
from .settings import PixelSettings, per_settings

Reason = Literal[
    "disabled",
    "cookie",
    "no-cookie",
    "gpc",
    "unreadable-cookie",
    "tracking-opt-out",
    "cross-site",
    "consent-source",
]
Action = Literal["optout", "optin"]


class Decision(NamedTuple):
    """Whether this request's visitor is anonymous, and why.

    ``choice_made`` is true when the visitor's cookie records an explicit choice; the cookie cannot
    tell "withdrew" from "never chose", and neither can the Smart Pixel.
    """

    anonymous: bool
    choice_made: bool
    reason: Reason
    tracked: bool = True
    # The consent manager that decided ("tcf", "onetrust", …), or None: the choice cookie did.
    source: str | None = None


def cookie_present(value: str | None) -> bool:
    """The Smart Pixel's "present": the cookie exists and is not empty (never compared to 1)."""
    return bool(value)


def decide(
    settings: PixelSettings,
    cookie_value: str | None,
    *,
    gpc: bool = False,
    cookies_readable: bool = True,
    tracking_opt_out: bool = False,
    source_answer: tuple[str | None, str | None] = (None, None),
) -> Decision:
    """Apply ``enableAnonymousFunction and (present if not anonymousOptIn else not present)``.

    Beyond the Smart Pixel: ``Sec-GPC: 1`` makes the visitor anonymous unless they explicitly opted
    in (possible only in opt-in mode, where the cookie records agreement), and a Cookie header too
    large or broken to read fails closed, to anonymous. The Smart Pixel's full tracking opt-out
    (``webtrekkOptOut``) is stronger than either mode: such a visitor is not tracked at all.
    ``source_answer`` is a consent manager's ``(answer, source name)`` (``consent_source``): an
    answer decides; no answer leaves the rule above to the choice cookie.
    """
    if tracking_opt_out:
        return _NOT_TRACKED
    if not cookies_readable:
        if not settings.enable_anonymous_function:
            return _DISABLED
        return Decision(anonymous=True, choice_made=False, reason="unreadable-cookie")
    answer, source = source_answer
    if answer is not None and settings.enable_anonymous_function:
        # A consent manager's answer is an explicit choice: it decides, before the choice cookie
        # and before GPC (as an explicit opt-in does in opt-in mode).
        anonymous = answer == "anonymous"
        return Decision(
            anonymous=anonymous, choice_made=True, reason="consent-source", source=source
        )
    return decide_present(settings, bool(cookie_value), gpc=gpc)  # cookie_present, inlined


def decide_present(settings: PixelSettings, present: bool, *, gpc: bool = False) -> Decision:
    """The rule for a known cookie state: what a request carried, or what a toggle just wrote."""
    if not settings.enable_anonymous_function:
        return _DISABLED
    if settings.anonymous_opt_in:
        return _OPTED_IN if present else _NOT_OPTED_IN
    if present:
        return _OPTED_OUT
    if gpc and settings.honor_global_privacy_control:
        return _GPC
    return _NOT_OPTED_OUT


_NOT_TRACKED = Decision(anonymous=True, choice_made=True, reason="tracking-opt-out", tracked=False)
_DISABLED = Decision(anonymous=False, choice_made=False, reason="disabled")
_OPTED_IN = Decision(anonymous=False, choice_made=True, reason="cookie")
_NOT_OPTED_IN = Decision(anonymous=True, choice_made=False, reason="no-cookie")
_OPTED_OUT = Decision(anonymous=True, choice_made=True, reason="cookie")
_GPC = Decision(anonymous=True, choice_made=False, reason="gpc")
_NOT_OPTED_OUT = Decision(anonymous=False, choice_made=False, reason="no-cookie")


def cookie_write_for(settings: PixelSettings, action: Action) -> bool:
    """Whether ``action`` writes the cookie (True) or deletes it (False) in the configured mode.

    The value written is always "1"; only its meaning flips between the modes.
    """
    make_anonymous = action == "optout"
    return make_anonymous != settings.anonymous_opt_in


@per_settings  # asked on every request with a consent source: never hash the settings for it
def source_settings(settings: PixelSettings) -> SourceSettings:
    """The consent managers' part of the settings, made once per settings."""
    return SourceSettings(
        sources=settings.consent_source,
        tcf_purposes=settings.tcf_purposes,
        tcf_vendor_id=settings.tcf_vendor_id,
        onetrust_group=settings.onetrust_group,
        klaro_service=settings.klaro_service,
        klaro_cookie=settings.klaro_cookie,
        max_cookie_chars=settings.max_cookie_header_bytes,
    )
