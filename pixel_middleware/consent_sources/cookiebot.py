"""Cookiebot: the ``CookieConsent`` cookie.

Cookiebot writes a URL-encoded JavaScript object literal (not JSON: bare keys, single quotes)::

    {stamp:'…',necessary:true,preferences:false,statistics:true,marketing:false,
     method:'explicit',ver:1,utc:1732540920000,region:'de'}

``statistics`` is the category analytics belongs to. Cookiebot's developer documentation gives
two more values for its server-side readers: ``0``, "the user has not accepted cookies", and
``-1``, "the user is not within a region that requires consent". ``-1`` records no choice of the
visitor's, so it gives no answer and the site's own rule (the Smart Pixel's cookie) decides.

The value is percent-decoded once, then only the top-level ``statistics`` entries are read, so
keys Cookiebot adds later do not break the reader.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from ._base import Answer, Malformed

_STATISTICS = re.compile(r"[{,]\s*statistics\s*:\s*([^,}]*)")
_BOOLEANS = {"true": True, "false": False}


def cookiebot_statistics(value: str) -> bool | None:
    """Whether the visitor accepted statistics cookies; None for ``-1``. Raises ``Malformed``."""
    text = unquote(value).strip()
    if text == "-1":
        return None
    if text == "0":
        return False
    if not (text.startswith("{") and text.endswith("}")):
        raise Malformed("not a Cookiebot consent object")
    states = [_BOOLEANS.get(match.strip()) for match in _STATISTICS.findall(text)]
    if not states or None in states:
        raise Malformed("no readable statistics entry")
    return all(states)


def cookiebot_answer(value: str) -> Answer:
    """Identified if ``statistics:true``, anonymous if ``statistics:false``, ``0`` or unreadable;
    no answer for ``-1`` (outside a consent region: the visitor was not asked)."""
    try:
        statistics = cookiebot_statistics(value)
    except Malformed:
        return "anonymous"
    if statistics is None:
        return None
    return "identified" if statistics else "anonymous"
