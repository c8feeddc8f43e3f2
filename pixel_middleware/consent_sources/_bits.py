"""Reading the IAB bit fields: base64url text in, big-endian integers out, left to right.

Both the TCF TC string and the GPP string encode a bit sequence six bits per character with the
URL-safe alphabet of RFC 4648 §5 and no padding characters (any padding is zero bits at the end).
Every read past the end raises ``Malformed``, so a truncated value can never be read as consent.
"""

from __future__ import annotations

import re

from ._base import Malformed

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SIX_BITS = {ord(char): format(index, "06b") for index, char in enumerate(_ALPHABET)}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")

# Fibonacci coding (GPP): bit i of a code word weighs F(i + 2) = 1, 2, 3, 5, 8, ...; the word ends
# at the first "11". Section ids and offsets are small; 40 weights reach 165,580,141, far beyond
# any id, and bound the work a hostile value can cause.
_FIBONACCI = [1, 2]
while len(_FIBONACCI) < 40:
    _FIBONACCI.append(_FIBONACCI[-1] + _FIBONACCI[-2])


class BitReader:
    """A cursor over the bits of one base64url segment."""

    __slots__ = ("_bits", "position")

    def __init__(self, text: str) -> None:
        if not _BASE64URL.fullmatch(text):
            raise Malformed("not a base64url segment")
        self._bits = text.translate(_SIX_BITS)
        self.position = 0

    def __len__(self) -> int:
        return len(self._bits)

    def read_bits(self, width: int) -> str:
        """The next ``width`` bits as a string of "0" and "1" (a bit field)."""
        end = self.position + width
        if end > len(self._bits):
            raise Malformed("truncated")
        bits = self._bits[self.position : end]
        self.position = end
        return bits

    def read_int(self, width: int) -> int:
        """The next ``width`` bits as an unsigned big-endian integer."""
        return int(self.read_bits(width), 2) if width else 0

    def read_bool(self) -> bool:
        return self.read_bits(1) == "1"

    def read_fibonacci(self) -> int:
        """A Fibonacci-coded integer (at least 1), ending at the first "11"."""
        end = self._bits.find("11", self.position)
        if end < 0:
            raise Malformed("unterminated Fibonacci code")
        word = self._bits[self.position : end + 1]  # without the terminating 1
        if len(word) > len(_FIBONACCI):
            raise Malformed("Fibonacci code too long")
        self.position = end + 2
        return sum(weight for bit, weight in zip(word, _FIBONACCI, strict=False) if bit == "1")
