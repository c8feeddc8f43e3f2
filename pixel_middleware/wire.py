"""Mapp's wire format: parsing pixel requests, making them obey the visitor, building new ones.

Parameter values stay exactly as they came (still percent-encoded): decoding and re-encoding would
turn an escaped comma inside a page name into a field separator of ``p``. Only names are
inspected, and names are restricted to ``[A-Za-z0-9_-]`` so they never need decoding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from urllib.parse import quote

from .settings import PARAMETER_NAME_RE, PixelSettings

MAX_REQUEST_CHARS = 30_720  # Mapp cuts URLs here; we refuse longer ones instead of cutting.
MAX_BATCH_LINES = 10_000
PIXEL_VERSION = "600"

Params = list[tuple[str, str]]

# Never sent for an anonymous visitor, whatever suppressParameter says.
IDENTIFIER_PARAMS = frozenset({"eid", "one", "X-WT-UA", "X-WT-IP", "uc701", "ui5", "fpv", "fpt"})
_IDENTIFIER_PREFIXES = ("X-WT-SEC-CH-UA",)
_IDENTITY_PARAMS = frozenset({"eid", "nc"})
# RFC 3986 query characters; browsers escape everything else (spaces, quotes, <, >, non-ASCII).
_RAW_VALUE_RE = re.compile(r"^(?:[A-Za-z0-9\-._~!$'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*$")
_P_RE = re.compile(r"^\d+,")


class WireError(ValueError):
    """An incoming pixel request that is not in Mapp's format."""


def parse_query(raw: str) -> Params:
    """Split a pixel request's query into (name, raw value) pairs, checking the format.

    Raises ``WireError`` for anything a Smart Pixel or Mapp's libraries would never send.
    """
    if len(raw) > MAX_REQUEST_CHARS:
        raise WireError(f"request longer than {MAX_REQUEST_CHARS} characters")
    params: Params = []
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if not PARAMETER_NAME_RE.match(name):
            raise WireError(f"invalid parameter name {name[:40]!r}")
        if not _RAW_VALUE_RE.match(value):
            raise WireError(f"parameter {name!r} has characters that must be percent-encoded")
        params.append((name, value))
    p_values = [value for name, value in params if name == "p"]
    if len(p_values) != 1 or not _P_RE.match(p_values[0]):
        raise WireError("a pixel request needs exactly one p parameter of the form p=600,<page>,…")
    return params


def parse_batch_line(line: str) -> Params:
    """One line of a batch body: ``wt?<query>`` (as Mapp's libraries send it) or the bare query."""
    line = line.strip()
    if "?" in line:
        path, _, line = line.partition("?")
        if path.rsplit("/", 1)[-1] != "wt":
            raise WireError("a batch line must be a wt request")
    return parse_query(line)


def is_identifier(name: str) -> bool:
    return name in IDENTIFIER_PARAMS or name.startswith(_IDENTIFIER_PREFIXES)


def enforce(
    params: Iterable[tuple[str, str]],
    settings: PixelSettings,
    *,
    anonymous: bool,
    ever_id: str | None,
) -> Params:
    """Make a request obey the visitor's state, whatever the sender put in it.

    Anonymous: identifiers and suppressed parameters go, ``nc=1`` follows ``p``. Identified: the
    given everID (if any) follows ``p`` as ``eid``, and no ``nc`` is sent. Order is otherwise kept.
    """
    if anonymous:
        suppressed = settings.suppress_parameter
        kept = [
            (name, value)
            for name, value in params
            if name not in _IDENTITY_PARAMS and not is_identifier(name) and name not in suppressed
        ]
        identity: tuple[str, str] | None = ("nc", "1")
    else:
        kept = [(name, value) for name, value in params if name not in _IDENTITY_PARAMS]
        identity = None if ever_id is None else ("eid", ever_id)
    if identity is not None:
        at = next((i + 1 for i, (name, _) in enumerate(kept) if name == "p"), 0)
        kept.insert(at, identity)
    return kept


def encode(params: Sequence[tuple[str, str]]) -> str:
    """Join raw (already encoded) pairs back into a query string."""
    return "&".join(f"{name}={value}" for name, value in params)


def _q(value: str) -> str:
    # Page names, URLs and most data values repeat from request to request: quote each once.
    return _quote_short(value) if len(value) <= _CACHED_LENGTH else quote(value, safe="")


_CACHED_LENGTH = 256


@lru_cache(maxsize=4096)
def _quote_short(value: str) -> str:
    return quote(value, safe="")


def referrer_field(referrer: str | None, own_host: str | None) -> str:
    """The referrer field of ``p``: 0 none, 1 own domain, otherwise the encoded URL."""
    if not referrer:
        return "0"
    if own_host:
        rest = referrer.split("://", 1)[-1]
        host = rest.split("/", 1)[0].split("?", 1)[0]
        if host.lower() == own_host.lower():
            return "1"
    return _q(referrer)


def page_request(
    *,
    page_name: str,
    data: Sequence[tuple[str, str]],
    time_ms: int,
    referrer: str = "0",
    page_url: str | None = None,
    language: str | None = None,
) -> Params:
    """A page request as Mapp's server-side libraries build it: what a server cannot know is empty.

    ``data`` values are plain text and get encoded here; the result is in raw (encoded) form, ready
    for ``enforce`` and ``encode``.
    """
    p = ",".join([PIXEL_VERSION, _q(page_name), "", "", "", "", str(time_ms), referrer, "", ""])
    params: Params = [("p", p)]
    params += [(name, _q(value)) for name, value in data]
    if page_url is not None:
        params.append(("pu", _q(page_url)))
    if language:
        params.append(("la", _q(language)))
    return params


def check_data_name(name: str) -> str:
    """Validate a data parameter name given by application code."""
    if not PARAMETER_NAME_RE.match(name):
        raise ValueError(f"parameter names must match ^[A-Za-z0-9_-]+$, got {name!r}")
    if name in _IDENTITY_PARAMS or name in {"p", "pu", "la"}:
        raise ValueError(f"{name!r} is set by the middleware, not by application code")
    return name
