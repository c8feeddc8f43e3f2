"""Consent receipts must prove a choice without naming the chooser. Pure.

A receipt (a row of ``pixel_consents``) may say what was chosen, when and how; it must hold no
everID or session id (19 digits), no temporary session id (``t`` and 32 hex digits), no IP
address and no user agent, in any column and in any form (text, JSON, a number). Columns named
like one of those identifiers must be empty.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

from .model import Finding

RECEIPTS_TABLE = "pixel_consents"
# Columns whose name says they hold an identifier: any value in one is personal data.
IDENTIFIER_COLUMNS = frozenset(
    {
        "ever_id",
        "everid",
        "eid",
        "session_id",
        "sid",
        "ip",
        "ip_address",
        "client_ip",
        "remote_addr",
        "user_agent",
        "useragent",
        "ua",
    }
)
# Columns a receipt is named by in the report, first found wins (else its position).
ID_COLUMNS = ("receipt_id", "consent_id", "id")

_NINETEEN_DIGITS = re.compile(r"(?<!\d)\d{19}(?!\d)")
_TEMPORARY_ID = re.compile(r"(?<![0-9a-z])t[0-9a-f]{32}(?![0-9a-f])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:.])(?=[0-9A-Fa-f:.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]{2,}")
# "Mozilla/5.0 (…", "Dalvik/2.1.0 (Linux…": a product token and a comment, as browsers send;
# and the bare tokens of common HTTP clients.
_USER_AGENT = re.compile(
    r"[A-Za-z][\w.-]*/\d[\w.]*\s*\(|\b(?:curl|Wget|python-requests|python-urllib|okhttp|"
    r"Java|Go-http-client|PostmanRuntime)/\d",
    re.IGNORECASE,
)


def as_text(value: Any) -> str | None:
    """A column value as text to search; None for what cannot hold an identifier."""
    if value is None or isinstance(value, bool | datetime | date | time):
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


def holds_personal_data(text: str) -> bool:
    """Whether ``text`` holds an everID or session id, a temporary id, an IP or a user agent."""
    if _NINETEEN_DIGITS.search(text) or _TEMPORARY_ID.search(text.lower()):
        return True
    if _USER_AGENT.search(text):
        return True
    candidates = _IPV4.findall(text) + _IPV6.findall(text)
    return any(_is_address(candidate) for candidate in candidates)


def _is_address(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate.strip("."))
    except ValueError:
        return False
    return True


def receipt_personal_data(row: Mapping[str, Any]) -> Finding:
    """The columns of a receipt that hold personal data, or None."""
    found = []
    for column, value in row.items():
        text = as_text(value)
        if text is None or text == "":
            continue
        if column.lower() in IDENTIFIER_COLUMNS or holds_personal_data(text):
            found.append(column)
    return tuple(found) or None


def receipt_id(row: Mapping[str, Any], position: int, finding: Finding) -> str:
    """How the report names a receipt: its id column, unless that column is itself one that
    holds personal data (then its position: the report must not print what it found)."""
    for column in ID_COLUMNS:
        if column in row and row[column] is not None and column not in (finding or ()):
            return f"{column}={row[column]}"
    return f"row {position}"
