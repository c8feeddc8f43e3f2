"""OneTrust: the ``OptanonConsent`` cookie.

OneTrust writes a URL-encoded query string, for example::

    isGpcEnabled=0&datestamp=Tue+Nov+25+2025+14%3A22%3A00+GMT%2B0100&version=202409.1.0
    &isIABGlobal=false&hosts=&consentId=…&interactionCount=1&landingPath=NotLandingPage
    &groups=C0001%3A1%2CC0002%3A0%2CC0003%3A1%2CC0004%3A0&AwaitingReconsent=false

Only ``groups`` matters: a comma-separated list of ``<group id>:<1|0>``, the visitor's choice per
cookie category (``C0002`` is OneTrust's default "Performance Cookies", where analytics belongs).
The value is split on ``&`` and ``=`` first, then each value is form-decoded (``+`` is a space),
as ``URLSearchParams`` does in the browser.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from ._base import Answer, Malformed

GROUP_ID = re.compile(r"[A-Za-z0-9_-]+")


def onetrust_groups(value: str) -> list[tuple[str, bool]]:
    """The ``groups`` entries of an ``OptanonConsent`` value, in order. Raises ``Malformed``.

    A value without ``groups`` is not a OneTrust consent record.
    """
    groups: list[tuple[str, bool]] = []
    found = False
    for pair in value.split("&"):
        key, sep, raw = pair.partition("=")
        if key != "groups" or not sep:
            continue
        found = True
        text = unquote_plus(raw)
        if not text:
            continue
        for entry in text.split(","):
            group, sep, state = entry.partition(":")
            if not sep or not GROUP_ID.fullmatch(group) or state not in ("0", "1"):
                raise Malformed("bad OneTrust groups entry")
            groups.append((group, state == "1"))
    if not found:
        raise Malformed("no groups in OptanonConsent")
    return groups


def onetrust_answer(value: str, *, group: str) -> Answer:
    """Identified if ``group`` is consented (``C0002:1``), anonymous if refused (``C0002:0``).

    No answer when the cookie lists no such group (the site's OneTrust has no such category);
    anonymous when the value is not a readable OneTrust record.
    """
    try:
        states = [granted for name, granted in onetrust_groups(value) if name == group]
    except Malformed:
        return "anonymous"
    if not states:
        return None
    return "identified" if all(states) else "anonymous"
