"""What every consent source shares: the answer type and the error that means "fail closed"."""

from __future__ import annotations

from typing import Literal, TypeAlias

# None: no answer (the cookie is absent, or says nothing about us); the Smart Pixel rule decides.
Answer: TypeAlias = Literal["identified", "anonymous"] | None


class Malformed(ValueError):
    """A value that is present but cannot be read.

    Raised deep inside the decoders and caught by each source's public function, which then
    answers ``"anonymous"``: a consent record we cannot read never grants consent.
    """
