"""The record of one pixel request, and the protocol every destination of records follows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote


@dataclass(frozen=True, slots=True)
class Hit:
    """One pixel request after the visitor's rules were applied.

    The invariant a privacy officer relies on is checked here, at the last place before storage:
    an anonymous hit can hold no everID, session id, IP address or user agent.
    """

    received_at: float
    track_id: str
    anonymous: bool
    query: str
    ever_id: str | None = None
    session_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None

    def __post_init__(self) -> None:
        if self.anonymous and (self.ever_id or self.session_id or self.ip or self.user_agent):
            raise ValueError("an anonymous hit must not carry an identifier, IP or user agent")

    def params(self) -> list[tuple[str, str]]:
        """The parameters, percent-decoded, in wire order."""
        out = []
        for part in self.query.split("&"):
            name, _, value = part.partition("=")
            out.append((name, unquote(value)))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "received_at": self.received_at,
            "track_id": self.track_id,
            "anonymous": self.anonymous,
            "ever_id": self.ever_id,
            "session_id": self.session_id,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "query": self.query,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)


@runtime_checkable
class Sink(Protocol):
    """Where hits go. ``write`` is awaited on the request path, so slow sinks must buffer."""

    async def write(self, hits: Sequence[Hit]) -> None: ...

    async def close(self) -> None: ...
