"""The README's promises about stored hits, one pure check each, over a row as a dict.

A row is what the store holds (``pixel_hits`` columns; ``received_at`` as an aware datetime or
None) or a line of a spool file (``Hit.to_dict``: no ``params`` or ``customer_id`` column). Each
check answers None when the row keeps its rule, else the column or parameter names that break
it, never the values. Identified rows break no anonymity rule; every row may be too old.

Names are compared as the collector compares them (:func:`pixel_middleware.wire.param_key`):
percent-decoded, in any case, without a PHP ``[…]`` suffix.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from ..addresses import IPV4_PREFIX, IPV6_PREFIX
from ..sinks.base import is_temporary_id
from ..wire import is_identifier, param_key, sender_marked_anonymous
from .config import AuditSettings
from .model import Finding

Row = Mapping[str, Any]
# Kept for an anonymous visitor only with anonymous_session on (level 2 of anonymity).
TEMPORARY_PARAMS = frozenset({"fpv", "fpt"})
# The referrer field of p (the 8th) holds a URL unless it is one of these codes.
_REFERRER_CODES = ("", "0", "1", "2")


@dataclass(frozen=True, slots=True)
class RowRules:
    """What the checks compare rows with: the settings, and the retention cutoff."""

    suppressed: frozenset[str]
    anonymous_session: bool
    ip_level: int
    allowlist: tuple[str, ...]
    cutoff: datetime | None

    @classmethod
    def from_settings(cls, settings: AuditSettings, now: datetime) -> RowRules:
        days = settings.retention_days
        return cls(
            suppressed=frozenset(name.lower() for name in settings.suppress_parameter),
            anonymous_session=settings.anonymous_session,
            ip_level=settings.anonymous_ip_truncation,
            allowlist=settings.anonymous_query_allowlist,
            cutoff=None if days is None else now - timedelta(days=days),
        )


def query_pairs(query: Any) -> list[tuple[str, str]]:
    """A stored query's (name, raw value) pairs."""
    if not isinstance(query, str):
        return []
    return [(p.partition("=")[0], p.partition("=")[2]) for p in query.split("&") if p]


def params_pairs(params: Any) -> list[tuple[str, str]] | None:
    """The ``params`` column's (name, decoded value) pairs; None when it is not such JSON."""
    if params is None:
        return []
    try:
        decoded = json.loads(params) if isinstance(params, str | bytes) else params
    except ValueError:
        return None
    if not isinstance(decoded, list):
        return None
    pairs = []
    for item in decoded:
        if not (isinstance(item, list | tuple) and len(item) == 2):
            return None
        name, value = item
        pairs.append((str(name), str(value)))
    return pairs


UNREADABLE_PARAMS = "params (not a JSON list of pairs)"


def _named(row: Row, wanted: Callable[[str], bool]) -> Finding:
    """The names in the query and in ``params`` that ``wanted`` picks, each once."""
    names = [name for name, _ in query_pairs(row.get("query")) if wanted(name)]
    pairs = params_pairs(row.get("params"))
    if pairs is None:
        names.append(UNREADABLE_PARAMS)  # cannot be checked: fail closed
    else:
        names += [name for name, _ in pairs if wanted(name)]
    return tuple(dict.fromkeys(names)) or None


def is_truncated_to(value: str, level: int) -> bool:
    """Whether ``value`` keeps no more than ``anonymous_ip_truncation`` level ``level`` (1-3) of
    an address: what :func:`pixel_middleware.addresses.truncate_ip` leaves, or less.

    An IPv6 address carrying an IPv4 one (``::ffff:a.b.c.d``, 6to4 ``2002:…``) must have that
    one truncated at the IPv4 prefix, and a 6to4 one nothing past its /48; at level 1 this is
    :func:`pixel_middleware.sinks.base.is_truncated_ip`, what a ``Hit`` itself accepts.
    """
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False  # not an address: nothing says it is a truncated one
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _zero_after(address.ipv4_mapped, IPV4_PREFIX[level])
        if address.sixtofour is not None:
            return _zero_after(address, 48) and _zero_after(address.sixtofour, IPV4_PREFIX[level])
        return _zero_after(address, IPV6_PREFIX[level])
    return _zero_after(address, IPV4_PREFIX[level])


def _zero_after(address: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int) -> bool:
    host_bits = address.max_prefixlen - prefix
    return int(address) & ((1 << host_bits) - 1) == 0


def url_keeps_only(url: str, allowlist: Iterable[str]) -> bool:
    """Whether a decoded URL has no fragment and only ``allowlist`` query parameters, as the
    collector leaves an anonymous visitor's page URL and referrer."""
    if "#" in url:
        return False
    allowed = set(allowlist)
    query = url.partition("?")[2]
    return all(part.partition("=")[0] in allowed for part in query.split("&") if part)


# ------------------------------------------------------------------------- the checks


def anonymous_with_ever_id(row: Row, rules: RowRules) -> Finding:
    return ("ever_id",) if row.get("anonymous") and row.get("ever_id") else None


def anonymous_with_session_id(row: Row, rules: RowRules) -> Finding:
    session = row.get("session_id")
    if not row.get("anonymous") or not session:
        return None
    if rules.anonymous_session and isinstance(session, str) and is_temporary_id(session):
        return None
    return ("session_id",)


def anonymous_with_user_agent(row: Row, rules: RowRules) -> Finding:
    return ("user_agent",) if row.get("anonymous") and row.get("user_agent") else None


def anonymous_with_full_ip(row: Row, rules: RowRules) -> Finding:
    ip = row.get("ip")
    if not row.get("anonymous") or ip is None:
        return None
    if rules.ip_level == 0 or not is_truncated_to(str(ip), rules.ip_level):
        return ("ip",)
    return None


def anonymous_with_suppressed_parameter(row: Row, rules: RowRules) -> Finding:
    if not row.get("anonymous"):
        return None
    found = _named(row, lambda name: param_key(name) in rules.suppressed)
    # customer_id is cd taken out of the query: NULL on anonymous rows when cd is suppressed.
    if "cd" in rules.suppressed and row.get("customer_id") is not None:
        found = (*(found or ()), "customer_id")
    return found


def anonymous_with_identifier_parameter(row: Row, rules: RowRules) -> Finding:
    if not row.get("anonymous"):
        return None

    def banned(name: str) -> bool:
        if rules.anonymous_session and param_key(name) in TEMPORARY_PARAMS:
            return False
        return is_identifier(name)

    return _named(row, banned)


def anonymous_with_url_query(row: Row, rules: RowRules) -> Finding:
    if not row.get("anonymous"):
        return None
    found: list[str] = []
    for name, raw in query_pairs(row.get("query")):
        key = param_key(name)
        if key == "pu" and not url_keeps_only(unquote(raw, errors="replace"), rules.allowlist):
            found.append(name)
        elif key == "p":
            fields = raw.split(",")
            referrer = fields[7] if len(fields) > 7 else ""
            if referrer not in _REFERRER_CODES and not url_keeps_only(
                unquote(referrer, errors="replace"), rules.allowlist
            ):
                found.append(f"{name} (referrer)")
    # params holds values decoded once already.
    for name, value in params_pairs(row.get("params")) or []:
        if param_key(name) == "pu" and not url_keeps_only(value, rules.allowlist):
            found.append(name)
    return tuple(dict.fromkeys(found)) or None


def anonymous_without_nc(row: Row, rules: RowRules) -> Finding:
    if not row.get("anonymous"):
        return None
    return None if sender_marked_anonymous(query_pairs(row.get("query"))) else ("nc",)


def older_than_retention(row: Row, rules: RowRules) -> Finding:
    if rules.cutoff is None:
        return None
    received = row.get("received_at")
    if not isinstance(received, datetime):
        return ("received_at",)  # its age cannot be told: fail closed
    return () if received < rules.cutoff else None


@dataclass(frozen=True, slots=True)
class RowCheck:
    """A named rule over rows; ``skip`` says why it cannot apply under these rules, if so."""

    name: str
    description: str
    test: Callable[[Row, RowRules], Finding]
    skip: Callable[[RowRules], str | None] = lambda rules: None


ROW_CHECKS = (
    RowCheck(
        "anonymous_with_ever_id",
        "anonymous rows holding an everID (must be NULL)",
        anonymous_with_ever_id,
    ),
    RowCheck(
        "anonymous_with_session_id",
        "anonymous rows holding a session id (a temporary one only with anonymous_session)",
        anonymous_with_session_id,
    ),
    RowCheck(
        "anonymous_with_user_agent",
        "anonymous rows holding a user agent (must be NULL)",
        anonymous_with_user_agent,
    ),
    RowCheck(
        "anonymous_with_full_ip",
        "anonymous rows with an IP finer than anonymous_ip_truncation allows (NULL at 0)",
        anonymous_with_full_ip,
    ),
    RowCheck(
        "anonymous_with_suppressed_parameter",
        "anonymous rows holding a suppress_parameter (query, params, customer_id for cd)",
        anonymous_with_suppressed_parameter,
        lambda rules: None if rules.suppressed else "suppress_parameter is empty",
    ),
    RowCheck(
        "anonymous_with_identifier_parameter",
        "anonymous rows holding an identifier parameter (eid, one, X-WT-*, …; any case or "
        "encoding; fpv/fpt only with anonymous_session)",
        anonymous_with_identifier_parameter,
    ),
    RowCheck(
        "anonymous_with_url_query",
        "anonymous rows whose page URL or referrer keeps a fragment or a query parameter "
        "not in anonymous_query_allowlist",
        anonymous_with_url_query,
    ),
    RowCheck(
        "anonymous_without_nc",
        "anonymous rows whose query does not carry nc=1",
        anonymous_without_nc,
    ),
    RowCheck(
        "rows_older_than_retention",
        "rows received before now minus the retention",
        older_than_retention,
        lambda rules: (
            None
            if rules.cutoff is not None
            else "not configured (--retention-days N, or retention_days in the settings)"
        ),
    ),
)
