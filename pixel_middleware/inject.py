"""Finding where the snippet goes in an HTML page, and rendering it. Bytes in, bytes out.

The page is never decoded: its encoding is the application's business, and the markers searched
for are ASCII in every encoding a browser would accept for HTML.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

from markupsafe import Markup

from .resources import environment
from .visitor import Visitor

_NONCE_RE = re.compile(r"'nonce-([A-Za-z0-9+/_=-]+)'")
# Inside <script type="application/json"> only "</script" could end the block early; escaping
# every <, > and & also keeps the JSON inert if someone moves it into an attribute or HTML.
_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


_TAIL = 65_536


def body_close_index(page: bytes) -> int | None:
    """Index of the last ``</body`` (any case), or None when the page has none.

    ``</body>`` is almost always near the end: lower-casing only the tail first spares a copy of
    a large page. The head is searched (overlapping the tail by the marker's length) only when
    the tail has no match.
    """
    tail_start = max(0, len(page) - _TAIL)
    index = page[tail_start:].lower().rfind(b"</body")
    if index >= 0:
        return tail_start + index
    if tail_start == 0:
        return None
    index = page[: tail_start + 5].lower().rfind(b"</body")
    return None if index < 0 else index


def insert_before_body_close(page: bytes, snippet: bytes) -> bytes | None:
    """The page with ``snippet`` before its last ``</body>``, or None to leave the page alone."""
    index = body_close_index(page)
    if index is None:
        return None
    view = memoryview(page)  # join the two halves without copying them first
    return b"".join((view[:index], snippet, view[index:]))


def csp_nonce(csp_header: str | None) -> str | None:
    """The nonce a page's Content-Security-Policy already allows for scripts, if any."""
    if not csp_header:
        return None
    for directive in csp_header.split(";"):
        parts = directive.strip().split()
        if parts and parts[0].lower() in ("script-src", "script-src-elem", "default-src"):
            for token in parts[1:]:
                match = _NONCE_RE.fullmatch(token)
                if match:
                    return match.group(1)
    return None


def config_json(config: dict[str, Any]) -> Markup:
    text = json.dumps(config, separators=(",", ":"), ensure_ascii=True).translate(_JSON_ESCAPES)
    return Markup(text)  # noqa: S704 - escaped above for a JSON script block


def render_snippet(visitor: Visitor, *, nonce: str | None = None) -> str:
    """The config block, the external script and the <noscript> pixel for this visitor."""
    template = environment().get_template("pixel/snippet.html")
    return template.render(
        config_json=config_json(visitor.config()),
        script_url=f"{visitor.settings.prefix}/pixel.js",
        nonce=nonce,
        # A page counted on the server gets no <noscript> pixel: it would count it twice.
        pixel_url=None if visitor.settings.server_side_page_views else visitor.pixel_url(),
    )


def gunzip(data: bytes, *, limit: int) -> bytes | None:
    """Inflate a gzip body, or None if it is broken or inflates past ``limit`` (a zip bomb)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        return None
    if len(out) > limit or inflater.unconsumed_tail or not inflater.eof:
        return None
    return out


def gzip_bytes(data: bytes) -> bytes:
    deflater = zlib.compressobj(6, zlib.DEFLATED, 31)
    return deflater.compress(data) + deflater.flush()
