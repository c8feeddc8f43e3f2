"""Finding where the snippet goes in an HTML page. Bytes in, bytes out.

The page is never decoded: its encoding is the application's business, and the markers searched
for are ASCII in every encoding a browser would accept for HTML. A page held in several chunks is
searched chunk by chunk, so it is never joined or copied just to find ``</body>``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

_NONCE_RE = re.compile(r"'nonce-([A-Za-z0-9+/_=-]+)'")
_MARKER = b"</body"
# ``</body>`` is almost always among the last few closing tags: look at this many ``</`` from the
# end before falling back to a full case-insensitive scan.
_CANDIDATES = 64


def _last_in(chunk: bytes) -> int:
    """Index of the last ``</body`` (any case) in one chunk, or -1."""
    end = len(chunk)
    for _ in range(_CANDIDATES):
        index = chunk.rfind(b"</", 0, end)
        if index < 0:
            return -1
        if chunk[index + 2 : index + 6].lower() == b"body":
            return index
        end = index
    return chunk[:end].lower().rfind(_MARKER)


def body_close_position(chunks: Sequence[bytes]) -> tuple[int, int] | None:
    """``(chunk, offset)`` of the last ``</body`` (any case) across ``chunks``, or None.

    A marker cut between two chunks is found too. Tiny chunks (shorter than the marker) are
    joined first: they are rare and small, so that costs nothing that matters.
    """
    if any(0 < len(c) < len(_MARKER) for c in chunks):
        joined = b"".join(chunks)
        index = _last_in(joined)
        return None if index < 0 else _locate(chunks, index)
    width = len(_MARKER) - 1
    following = b""
    for number in range(len(chunks) - 1, -1, -1):
        chunk = chunks[number]
        if not chunk:
            continue
        if following:
            # A marker that starts in this chunk's last bytes and ends in the next one.
            seam = chunk[-width:] + following[:width]
            index = seam.lower().rfind(_MARKER)
            if index >= 0:
                return number, len(chunk) - width + index
        index = _last_in(chunk)
        if index >= 0:
            return number, index
        following = chunk
    return None


def _locate(chunks: Sequence[bytes], index: int) -> tuple[int, int]:
    """Turn an index into the joined chunks into ``(chunk, offset)``."""
    for number, chunk in enumerate(chunks):
        if index < len(chunk):
            return number, index
        index -= len(chunk)
    raise IndexError("index past the end of the chunks")


def splice(chunks: Sequence[bytes], position: tuple[int, int], snippet: bytes) -> list[bytes]:
    """``chunks`` with ``snippet`` inserted at ``position`` (from :func:`body_close_position`).

    Only the chunk that holds the insertion point is rebuilt; the others are the app's own bytes.
    """
    number, offset = position
    view = memoryview(chunks[number])  # one copy of this chunk, not three
    rebuilt = b"".join((view[:offset], snippet, view[offset:]))
    return [*chunks[:number], rebuilt, *chunks[number + 1 :]]


def insert_before_body_close(chunks: Sequence[bytes], snippet: bytes) -> list[bytes] | None:
    """The page's chunks with ``snippet`` before the last ``</body>``, or None to leave it alone."""
    position = body_close_position(chunks)
    return None if position is None else splice(chunks, position, snippet)


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
