"""Text that is safe to print on an operator's terminal.

Page and event names come from visitors' browsers. Printed raw, an ESC or BEL sequence in one
would move the cursor, rewrite earlier lines, change the window title or ring the bell; a
right-to-left override would make a line read differently from what it holds. Every string the
command line prints from a store or from its own arguments goes through :func:`safe`.
"""

from __future__ import annotations

import re

# Bidirectional embeddings, overrides and isolates (category Cf, so listed by hand).
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_UNSAFE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_BIDI}]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: str) -> str:
    """``text`` with control characters (line breaks and tabs included) and bidirectional
    controls shown as ``\\xNN`` / ``\\uNNNN`` escapes; backslashes stay as they are."""
    if text.isprintable() and not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(_escape, text)
