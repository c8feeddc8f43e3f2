"""Consent sources: a consent manager's cookie in, identified / anonymous / no answer out.

A site can name where its visitors' consent lives (issue #12): the IAB TCF v2.2 TC string, an IAB
GPP string, or the cookie of OneTrust, Cookiebot or Klaro. ``consent_answer`` asks the configured
sources in order of precedence; the first that answers wins. No answer from any source leaves the
decision to the Smart Pixel rule with the site's own cookie.

Pure: no I/O, no clock. Every parser fails closed: a source whose cookie is present but malformed,
truncated or longer than ``max_cookie_chars`` answers ``"anonymous"``, never raises. A source
gives no answer only when its cookie is absent or empty, or when a well-formed value says nothing
about us: OneTrust lists no ``onetrust_group``, Klaro names no ``klaro_service``, Cookiebot
writes ``-1`` (outside a consent region), or no applicable GPP section decides (``__gpp_sid`` is
``-1``, a US section without opt-outs, a section not read). ``Sec-GPC`` is not a source here: the
decision applies it as before, whatever the sources say.

Cookie values are passed raw, as they arrive in the Cookie header; each source decodes its own:

=========== ===================================== =================================================
source      cookies                               encoding
=========== ===================================== =================================================
tcf         ``euconsent-v2``                      TC string, base64url; percent-decoded once
gpp         ``__gpp``, ``__gpp_sid``              GPP string; sid ids split on ``,`` or ``_``;
                                                  both percent-decoded once
onetrust    ``OptanonConsent``                    URL-encoded query string, ``groups=C0002:1,…``
cookiebot   ``CookieConsent``                     URL-encoded JS object literal, ``statistics:true``
klaro       ``klaro`` (``SourceSettings``'s        URL-encoded JSON object, ``{"<service>": true}``
            ``klaro_cookie``)
=========== ===================================== =================================================
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ._base import Answer
from .cookiebot import cookiebot_answer
from .gpp import gpp_answer
from .klaro import klaro_answer
from .onetrust import GROUP_ID, onetrust_answer
from .tcf import tcf_answer

__all__ = [
    "SOURCE_COOKIES",
    "SOURCE_NAMES",
    "Answer",
    "SourceSettings",
    "consent_answer",
    "cookie_names",
    "cookiebot_answer",
    "gpp_answer",
    "klaro_answer",
    "onetrust_answer",
    "tcf_answer",
    "validate_sources",
]

SOURCE_NAMES = ("tcf", "gpp", "onetrust", "cookiebot", "klaro")

# The cookies each source reads. Klaro's cookie name is a Klaro setting (``cookieName``), so the
# name read is ``SourceSettings.klaro_cookie``; "klaro" here is Klaro's default. ``cookie_names``
# gives the names actually read for a configuration.
SOURCE_COOKIES: dict[str, tuple[str, ...]] = {
    "tcf": ("euconsent-v2",),
    "gpp": ("__gpp", "__gpp_sid"),
    "onetrust": ("OptanonConsent",),
    "cookiebot": ("CookieConsent",),
    "klaro": ("klaro",),
}

_TCF_PURPOSES = range(1, 25)  # PurposesConsent is a 24-bit field
_VENDOR_IDS = range(1, 1 << 16)  # vendor ids are 16-bit, from 1
_COOKIE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def validate_sources(names: Iterable[str]) -> None:
    """Raise ``ValueError`` unless every name is a known source, listed once.

    The message names the closest valid source, for the settings loader to pass on.
    """
    if isinstance(names, str):  # "tcf" would otherwise be read as "t", "c", "f"
        raise ValueError(f"consent sources must be a list of names, not the string {names!r}")
    seen: set[str] = set()
    for name in names:
        if name not in SOURCE_NAMES:
            close = difflib.get_close_matches(str(name).lower(), SOURCE_NAMES, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else "valid: " + ", ".join(SOURCE_NAMES)
            raise ValueError(f"unknown consent source {name!r} ({hint})")
        if name in seen:
            raise ValueError(f"consent source {name!r} is listed twice")
        seen.add(name)


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSettings:
    """Which consent sources to read, in order of precedence, and what each looks for.

    - ``tcf_purposes``: TCF purposes that all need consent (in the TC string or GPP's tcfeuv2
      section); must include purpose 1, "store and/or access information on a device", since
      identifiers are stored on the device.
    - ``tcf_vendor_id``: when set, that vendor needs consent too (and no publisher restriction
      may take a required purpose away from it).
    - ``onetrust_group``: the OneTrust category analytics belongs to.
    - ``klaro_service`` / ``klaro_cookie``: the Klaro service name and Klaro's cookie name.
    - ``max_cookie_chars``: a longer value is refused, and its source answers anonymous.
    """

    sources: tuple[str, ...]
    tcf_purposes: tuple[int, ...] = (1,)
    tcf_vendor_id: int | None = None
    onetrust_group: str = "C0002"
    klaro_service: str = "pixel_middleware"
    klaro_cookie: str = "klaro"
    max_cookie_chars: int = 8192

    def __post_init__(self) -> None:
        validate_sources(self.sources)
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "tcf_purposes", tuple(self.tcf_purposes))
        if not all(_is_int(p) and p in _TCF_PURPOSES for p in self.tcf_purposes):
            raise ValueError(f"tcf_purposes must be TCF purpose ids 1-24: {self.tcf_purposes!r}")
        if 1 not in self.tcf_purposes:
            raise ValueError(
                "tcf_purposes must include purpose 1 (store and/or access information on a "
                "device): the identifiers are stored on the visitor's device"
            )
        vendor = self.tcf_vendor_id
        if vendor is not None and not (_is_int(vendor) and vendor in _VENDOR_IDS):
            raise ValueError(f"tcf_vendor_id must be a TCF vendor id 1-65535: {vendor!r}")
        if not GROUP_ID.fullmatch(self.onetrust_group):
            raise ValueError(f"onetrust_group is not a OneTrust group id: {self.onetrust_group!r}")
        if not self.klaro_service:
            raise ValueError("klaro_service must name the service in the site's Klaro config")
        if not _COOKIE_NAME.fullmatch(self.klaro_cookie):
            raise ValueError(f"klaro_cookie is not a cookie name: {self.klaro_cookie!r}")
        if not (_is_int(self.max_cookie_chars) and self.max_cookie_chars > 0):
            raise ValueError(f"max_cookie_chars must be positive: {self.max_cookie_chars!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def cookie_names(settings: SourceSettings) -> tuple[str, ...]:
    """The cookie names the configured sources read, in order of precedence."""
    names: list[str] = []
    for source in settings.sources:
        names.extend((settings.klaro_cookie,) if source == "klaro" else SOURCE_COOKIES[source])
    return tuple(names)


def consent_answer(
    settings: SourceSettings, cookies: Mapping[str, str]
) -> tuple[Answer, str | None]:
    """The first source (in order) that answers, and its name; (None, None) if none does.

    ``cookies`` maps cookie names to their raw values. A source whose cookie is absent or empty
    gives no answer; one whose value is longer than ``max_cookie_chars`` answers anonymous.
    """
    for source in settings.sources:
        try:
            answer = _answer(source, settings, cookies)
        except Exception:
            # The parsers raise nothing by design (the tests feed them garbage); should one ever
            # fail, a visitor's request must neither error nor count as consent.
            answer = "anonymous"
        if answer is not None:
            return answer, source
    return None, None


def _answer(source: str, settings: SourceSettings, cookies: Mapping[str, str]) -> Answer:
    names = (settings.klaro_cookie,) if source == "klaro" else SOURCE_COOKIES[source]
    values = [cookies.get(name) or None for name in names]
    value = values[0]
    if value is None:  # __gpp_sid without __gpp says nothing either
        return None
    if any(v is not None and len(v) > settings.max_cookie_chars for v in values):
        return "anonymous"
    purposes, vendor_id = settings.tcf_purposes, settings.tcf_vendor_id
    if source == "tcf":
        return tcf_answer(value, purposes=purposes, vendor_id=vendor_id)
    if source == "gpp":
        return gpp_answer(value, values[1], purposes=purposes, vendor_id=vendor_id)
    if source == "onetrust":
        return onetrust_answer(value, group=settings.onetrust_group)
    if source == "cookiebot":
        return cookiebot_answer(value)
    return klaro_answer(value, service=settings.klaro_service)
