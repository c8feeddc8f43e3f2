"""Klaro: its JSON consent cookie (``klaro`` unless the site's Klaro config names another).

Klaro stores ``encodeURIComponent(JSON.stringify(consents))``: an object mapping each configured
service name to ``true`` or ``false``, e.g. ``klaro=%7B%22pixel_middleware%22%3Atrue%7D``. Klaro
versions before 0.7 stored the JSON unencoded; percent-decoding once reads both. A Klaro set up
with ``storageMethod: 'localStorage'`` writes no cookie, so the server gets no answer from it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from ._base import Answer, Malformed


def klaro_consents(value: str) -> dict[str, Any]:
    """The decoded consent object. Raises ``Malformed``."""
    try:
        consents = json.loads(unquote(value))
    except (ValueError, RecursionError) as error:  # RecursionError: "[[[[…" nested too deep
        raise Malformed("not JSON") from error
    if not isinstance(consents, dict):
        raise Malformed("not a JSON object")
    return consents


def klaro_answer(value: str, *, service: str) -> Answer:
    """Identified if ``service`` is ``true``, anonymous if ``false`` or the value is unreadable;
    no answer when the object does not name ``service`` (Klaro has no such service)."""
    try:
        consents = klaro_consents(value)
    except Malformed:
        return "anonymous"
    if service not in consents:
        return None
    state = consents[service]
    if state is True:
        return "identified"
    return "anonymous"  # false, or anything that is not a boolean: fail closed
