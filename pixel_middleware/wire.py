"""Mapp's wire format: parsing pixel requests, making them obey the visitor, building new ones.

Parameter values stay exactly as they came (still percent-encoded): decoding and re-encoding would
turn an escaped comma inside a page name into a field separator of ``p``. Only names are
inspected, and names are restricted to ``[A-Za-z0-9_-]`` so they never need decoding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from urllib.parse import quote, unquote

from .settings import PARAMETER_NAME_RE, PixelSettings

MAX_REQUEST_CHARS = 30_720  # Mapp's limit; the Smart Pixel cuts whole URLs at 30,719 characters.
MAX_BATCH_LINES = 10_000
PIXEL_VERSION = "600"

Params = list[tuple[str, str]]

# Parameters that identify a person or a browser, as Mapp's clients send them: the Smart Pixel
# 1.10 (eid, one, fns, uc701, ui5, fpv/fpt, X-WT-EID, X-WT-UA) and the Node, PHP and Java server
# libraries (ceid, X-WT-IP, X-WT-UA, X-WT-SEC-CH-UA*). Never stored or sent for an anonymous
# visitor, whatever suppressParameter says. Matched on the decoded name in any case, with a PHP
# "[…]" suffix ignored: "EID", "%65id" and "eid[0]" are all eid. static/pixel.js is served with
# these same lists filled in (assets.py), so the browser and the server cannot drift apart.
IDENTIFIER_PARAMS = ("eid", "ceid", "one", "fns", "uc701", "ui5", "fpv", "fpt")
IDENTIFIER_PREFIXES = ("x-wt-",)
# Decided by the server for every hit, whatever the sender put in: the visitor's state (nc, eid)
# and whether this visit made a new visitor (one) or a new session (fns).
_SERVER_SET = frozenset({"eid", "nc", "one", "fns"})
_TEMPORARY = frozenset({"fpv", "fpt"})
TEMPORARY_SESSION_VERSION = "2.1.0"  # what the Smart Pixel sends as fpt
# RFC 3986 query characters; browsers escape everything else (spaces, quotes, <, >, non-ASCII).
_RAW_VALUE_RE = re.compile(r"^(?:[A-Za-z0-9\-._~!$'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*\Z")
_RAW_CHAR_RE = re.compile(r"%[0-9A-Fa-f]{2}|[A-Za-z0-9\-._~!$'()*+,;=:@/?]")
_LINE_SPACE = " \t\r\n"
_P_RE = re.compile(r"^\d+(?:,|$)")


class WireError(ValueError):
    """An incoming request that is not a pixel request at all."""


@lru_cache(maxsize=4096)
def param_key(name: str) -> str:
    """The name rules compare: percent-decoded, lower case, without a PHP ``[…]`` suffix."""
    decoded = unquote(name, errors="replace") if "%" in name else name
    return decoded.split("[", 1)[0].strip().lower()


def is_identifier(name: str) -> bool:
    key = param_key(name)
    return key in IDENTIFIER_PARAMS or key.startswith(IDENTIFIER_PREFIXES)


def sanitize(raw: str) -> str:
    """``raw`` as a valid query component: stray ``%`` and characters a browser would have
    escaped are percent-encoded, valid escapes are kept as they came.

    Requests are read as Latin-1, one character per byte, so each such character is encoded as
    the byte it came as: a raw UTF-8 sequence becomes the escapes of the same bytes.
    """
    if _RAW_VALUE_RE.match(raw):
        return raw
    out: list[str] = []
    index = 0
    while index < len(raw):
        match = _RAW_CHAR_RE.match(raw, index)
        if match:
            out.append(match.group())
            index = match.end()
        else:
            char = raw[index]
            out.append(quote(char, safe="", encoding="latin-1" if char <= "\xff" else "utf-8"))
            index += 1
    return "".join(out)


def parse_query(raw: str) -> Params:
    """Split a pixel request's query into (name, raw value) pairs, sanitised.

    Mapp's clients send more than the textbook form (bracketed names from PHP, values the Smart
    Pixel cut mid-escape at its length limit, parameters in random order), and a refused hit
    holds up every later hit in the Smart Pixel's queue. So only what is not a pixel request at
    all is refused: no ``p`` parameter, or a request longer than Mapp's limit. Everything else is
    kept, made valid: names and values are percent-encoded where they were not.
    """
    if len(raw) > MAX_REQUEST_CHARS:
        raise WireError(f"request longer than {MAX_REQUEST_CHARS} characters")
    if raw.startswith("?"):
        raw = raw[1:]  # the Smart Pixel's beacon body
    params: Params = []
    seen_p = False
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name, value = sanitize(name.strip()), sanitize(value)
        if not name:
            continue
        if name == "p":
            if seen_p:
                continue  # one page per request: the first p is the page
            seen_p = True
        params.append((name, value))
    p_value = next((value for name, value in params if name == "p"), None)
    if p_value is None or not _P_RE.match(p_value):
        raise WireError("a pixel request needs a p parameter of the form p=600,<page>,...")
    return params


def batch_lines(body: str) -> list[str]:
    """The requests of a batch body: one per line (LF or CRLF), and PHP's fork-curl consumer
    joins them with a literal backslash-n, which cannot occur inside an encoded request."""
    # Only LF (and the CR of CRLF) end a line: the body is read as Latin-1, where splitlines()
    # and strip() would also cut at bytes of raw UTF-8 text (0x85, 0xA0, 0x1C...).
    return [
        part.strip(_LINE_SPACE)
        for line in body.split("\n")
        for part in line.split("\\n")
        if part.strip(_LINE_SPACE)
    ]


def parse_batch_line(line: str) -> Params:
    """One line of a batch body: ``wt?<query>`` (Mapp's libraries), ``?<query>`` (the Smart
    Pixel's beacon), a full URL, or the bare query."""
    line = line.strip(_LINE_SPACE)
    head, mark, tail = line.partition("?")
    if mark and "=" not in head and "&" not in head:
        line = tail  # "wt?…", "?…", "https://host/123/wt?…"; a bare query keeps its own "?"
    return parse_query(line)


def enforce(
    params: Iterable[tuple[str, str]],
    settings: PixelSettings,
    *,
    anonymous: bool,
    ever_id: str | None,
    new_visitor: bool = False,
    new_session: bool = False,
    temporary_id: str | None = None,
    keep_temporary: bool = False,
) -> Params:
    """Make a request obey the visitor's state, whatever the sender put in it.

    Anonymous: identifiers and suppressed parameters go, ``nc=1`` follows ``p``. Identified: the
    given everID (if any) follows ``p`` as ``eid``, then ``one=1`` / ``fns=1`` when this visit
    made the everID / the session. No sender's own ``eid``, ``nc``, ``one`` or ``fns`` survives.
    ``keep_temporary`` (anonymous_session on) keeps a sender's temporary session id (``fpv``,
    ``fpt``) on an anonymous request, or adds ``temporary_id`` as one. Order is otherwise kept.
    """
    if anonymous:
        suppressed = _suppressed(settings.suppress_parameter)
        allow = settings.anonymous_query_allowlist
        has_temporary = False
        kept = []
        for name, value in params:
            key = param_key(name)
            if key in _TEMPORARY and keep_temporary:
                has_temporary = True
            elif (
                key in _SERVER_SET
                or key in IDENTIFIER_PARAMS
                or key.startswith(IDENTIFIER_PREFIXES)
                or key in suppressed
            ):
                continue
            if key == "p":
                value = _p_without_referrer_query(value, allow)
            elif key == "pu":
                value = _url_without_query(value, allow)
            kept.append((name, value))
        identity: Params = [("nc", "1")]
        if keep_temporary and temporary_id is not None and not has_temporary:
            identity += [("fpv", temporary_id), ("fpt", TEMPORARY_SESSION_VERSION)]
    else:
        kept = [(name, value) for name, value in params if param_key(name) not in _SERVER_SET]
        identity = [] if ever_id is None else [("eid", ever_id)]
        if new_visitor:
            identity.append(("one", "1"))
        if new_session:
            identity.append(("fns", "1"))
    if identity:
        at = next((i + 1 for i, (name, _) in enumerate(kept) if name == "p"), 0)
        kept[at:at] = identity
    return kept


def _url_without_query(raw: str, allow: tuple[str, ...]) -> str:
    """An encoded URL without its fragment and with only the allowed query parameters.

    Query strings carry whatever the app put there (emails, reset tokens, session ids): an
    anonymous visitor's page URL and referrer keep only what ``anonymous_query_allowlist`` names.
    """
    url = unquote(raw, errors="replace")
    base, _, rest = url.partition("?")
    base = base.partition("#")[0]
    query = rest.partition("#")[0]
    kept = (
        [part for part in query.split("&") if part and part.partition("=")[0] in allow]
        if allow and query
        else []
    )
    if kept:
        base += "?" + "&".join(kept)
    if base == url:
        return raw
    return quote(base, safe="")


def _p_without_referrer_query(value: str, allow: tuple[str, ...]) -> str:
    """``p`` with its referrer field (the 8th) cut like a page URL; 0, 1 and 2 are codes."""
    fields = value.split(",")
    if len(fields) > 7 and fields[7] not in ("", "0", "1", "2"):
        fields[7] = _url_without_query(fields[7], allow)
        return ",".join(fields)
    return value


@lru_cache(maxsize=64)
def _suppressed(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(name.lower() for name in names)


def sender_marked_anonymous(params: Iterable[tuple[str, str]]) -> bool:
    """Whether the sender sent ``nc=1`` (the Smart Pixel adds it when a visitor turns anonymous)."""
    return any(value == "1" and param_key(name) == "nc" for name, value in params)


def first_value(params: Iterable[tuple[str, str]], key: str) -> str | None:
    """The raw value of the first parameter whose ``param_key`` is ``key``."""
    return next((value for name, value in params if param_key(name) == key), None)


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
    if name in _CHECKED_NAMES:
        return name  # a page's names repeat on every request: each is checked once
    if not PARAMETER_NAME_RE.match(name):
        raise ValueError(f"parameter names must match ^[A-Za-z0-9_-]+$, got {name!r}")
    if name in _SERVER_SET or name in {"p", "pu", "la"}:
        raise ValueError(f"{name!r} is set by the middleware, not by application code")
    if len(_CHECKED_NAMES) < 4096:  # names come from code, not requests; bounded all the same
        _CHECKED_NAMES.add(name)
    return name


_CHECKED_NAMES: set[str] = set()
