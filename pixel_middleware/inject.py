"""Finding where the snippet goes in an HTML page. Bytes in, bytes out.

The page is never decoded: its encoding is the application's business, and the markers searched
for are ASCII in every encoding a browser would accept for HTML. A page held in several chunks is
searched chunk by chunk, so it is never joined or copied just to find ``</body>``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Sequence

_NONCE_RE = re.compile(r"'nonce-([A-Za-z0-9+/_=-]+)'")
_MARKER = b"</body"
# ``</body>`` is almost always among the last few closing tags: look at this many ``</`` from the
# end before falling back to a full case-insensitive scan.
_CANDIDATES = 64
# What may follow a tag name: ``</body>``, ``</body >``, not ``</bodyguard>``.
_TAG_END = frozenset(b" \t\n\r\f/>")
# Elements whose content is text, not markup: a ``</body>`` in them is not the page's.
_RAW_TEXT = (b"script", b"style", b"textarea", b"title", b"xmp", b"iframe", b"noembed", b"noframes")
_RAW_CLOSE = re.compile(rb"</(" + b"|".join(_RAW_TEXT) + rb")(?![^\s/>])")
# Where the evidence of a context is looked for before a candidate: this much first, then
# eight times more, up to the whole page.
_FIRST_WINDOW = 1024


def _last_in(chunk: bytes, end: int) -> int:
    """Index of the last ``</body`` (any case) wholly in ``chunk[:end]``, or -1."""
    for _ in range(_CANDIDATES):
        index = chunk.rfind(b"</", 0, end)
        if index < 0:
            return -1
        if chunk[index + 2 : index + 6].lower() == b"body":
            return index
        end = index
    return chunk[:end].lower().rfind(_MARKER)


def body_close_position(chunks: Sequence[bytes]) -> tuple[int, int] | None:
    """``(chunk, offset)`` of the page's last ``</body>`` tag across ``chunks``, or None.

    Only a tag counts: a ``</body>`` inside a script, a style or another raw-text element, a
    comment or a CDATA section is text, and inserting a ``<script>`` there would end the app's
    script or show up as text. A marker cut between two chunks is found too. Tiny chunks (shorter
    than the marker) are joined first: they are rare and small, so that costs nothing that
    matters.
    """
    if len(chunks) > 1 and any(0 < len(c) < len(_MARKER) for c in chunks):
        joined = b"".join(chunks)
        found = body_close_position([joined])
        return None if found is None else _locate(chunks, found[1])
    last = len(chunks) - 1
    if last >= 0 and chunks[last]:
        # The usual page: its last ``</body>`` is a tag in its last chunk. Checked without the
        # generator below, which then only runs for the odd page.
        index = _last_in(chunks[last], len(chunks[last]))
        if index >= 0 and _is_markup(chunks, (last, index)):
            return last, index
    for position in _candidates(chunks):
        if _is_markup(chunks, position):
            return position
    return None


def _candidates(chunks: Sequence[bytes]) -> Iterator[tuple[int, int]]:
    """Every ``</body`` (any case) in ``chunks``, as ``(chunk, offset)``, the last first."""
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
                yield number, len(chunk) - width + index
        end = len(chunk)
        while (index := _last_in(chunk, end)) >= 0:
            yield number, index
            end = index
        following = chunk


def _is_markup(chunks: Sequence[bytes], position: tuple[int, int]) -> bool:
    """Whether the ``</body`` at ``position`` is a tag, not text inside a script or comment.

    Cheap for the usual page, where ``</body>`` is followed by ``</html>`` and nothing else: a
    ``</body>`` inside a script, comment or CDATA section is followed somewhere by what ends
    that context (``</script``, ``-->``, ``]]>``), so only when the bytes after the candidate
    hold one is the page before it searched, backwards, for the context's start.
    """
    number, offset = position
    start = offset + len(_MARKER)
    if number == len(chunks) - 1:
        after = chunks[number][start:]  # the usual case: no join
    else:
        after = b"".join([chunks[number][offset:], *chunks[number + 1 :]])[len(_MARKER) :]
    if after and after[0] not in _TAG_END:
        return False  # </bodyguard>: another tag
    after = after.lower()
    comment = b"-->" in after or b"--!>" in after
    cdata = b"]]>" in after
    if not (comment or cdata) and after.count(b"</") == after.count(b"</html"):
        # The usual page: nothing but ``</html>`` after it, which ends no script or comment.
        return True
    raw = set()
    if _RAW_CLOSE.search(after) is not None:
        raw = {match.group(1) for match in _RAW_CLOSE.finditer(after)}
    elif not (comment or cdata):
        return True
    before = _Before(chunks, number, offset)
    if comment and before.opened((b"<!--",), (b"-->", b"--!>"), fold=False):
        return False
    if cdata and before.opened((b"<![CDATA[",), (b"]]>",), fold=False):
        return False
    return not any(before.opened((b"<" + name,), (b"</" + name,), fold=True) for name in raw)


class _Before:
    """The page before a position, read backwards in growing windows, never copied whole
    unless a search has to go back that far."""

    __slots__ = ("chunk", "chunks", "number", "offset")

    def __init__(self, chunks: Sequence[bytes], number: int, offset: int) -> None:
        self.chunks, self.number, self.offset = chunks, number, offset
        self.chunk = chunks[number]

    def window(self, size: int) -> tuple[bytes, bool]:
        """The last ``size`` bytes before the position, and whether that is all of them."""
        if size < self.offset:
            return self.chunk[self.offset - size : self.offset], False
        before = b"".join([*self.chunks[: self.number], self.chunk[: self.offset]])
        return before[-size:], size >= len(before)

    def opened(self, openers: tuple[bytes, ...], closers: tuple[bytes, ...], *, fold: bool) -> bool:
        """Whether the last of ``openers`` before the position comes after the last of
        ``closers``: whether the position is inside the context they open.

        ``fold``: tag names, in any case, and only where the name ends.
        """
        size = _FIRST_WINDOW
        while True:
            window, whole = self.window(size)
            if fold:
                window = window.lower()
            opened = max(_rfind(window, marker, fold) for marker in openers)
            closed = max(_rfind(window, marker, fold) for marker in closers)
            if opened != closed or whole:  # equal only when neither was found
                return opened > closed
            size *= 8


def _rfind(window: bytes, marker: bytes, tag: bool) -> int:
    """Last index of ``marker`` in ``window``; for a tag name, only where the name ends."""
    end = len(window)
    while (index := window.rfind(marker, 0, end)) >= 0:
        after = index + len(marker)
        if not tag or (after < len(window) and window[after] in _TAG_END):
            return index
        end = index
    return -1


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
