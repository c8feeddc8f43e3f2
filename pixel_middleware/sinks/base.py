"""The record of one pixel request, and the protocol every destination of records follows."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable
from urllib.parse import unquote

from ..receipts import Receipt

# Columns of their own in the stores; everything else goes into the JSON of "params".
COLUMN_PARAMS = frozenset({"p", "eid", "cd", "nc"})


def _new_id() -> str:
    return os.urandom(16).hex()


def is_temporary_id(value: str) -> bool:
    """A temporary session id of anonymous_session: "t" and 32 hex digits, never an everID."""
    return len(value) == 33 and value[0] == "t" and all(c in "0123456789abcdef" for c in value[1:])


def is_truncated_ip(value: str) -> bool:
    """Whether ``value`` is truncated at least to level 1 of ``anonymous_ip_truncation``.

    That is an IPv4 /24 (last octet zero) or an IPv6 /48 (last 80 bits zero); an IPv6 address
    carrying an IPv4 one (mapped, 6to4) must have that one truncated too. Kept in step with
    :func:`pixel_middleware.addresses.truncate_ip`.
    """
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return int(address) & 0xFF == 0
    if address.ipv4_mapped is not None:
        return int(address.ipv4_mapped) & 0xFF == 0
    if address.sixtofour is not None and int(address.sixtofour) & 0xFF:
        return False
    return int(address) & ((1 << 80) - 1) == 0


class _HitFields(NamedTuple):
    received_at: float
    track_id: str
    anonymous: bool
    query: str
    ever_id: str | None
    session_id: str | None
    ip: str | None
    user_agent: str | None
    hit_id: str


class Hit(_HitFields):
    """One pixel request after the visitor's rules were applied. Immutable.

    The invariant a privacy officer relies on is checked here, at the last place before storage:
    an anonymous hit holds no everID, session id or user agent, and at most a truncated IP.
    ``hit_id`` names the request, not the visitor: stores use it to write each hit exactly once
    when a batch is retried or a spool file replayed.
    """

    __slots__ = ()

    def __new__(
        cls,
        received_at: float,
        track_id: str,
        anonymous: bool,
        query: str,
        ever_id: str | None = None,
        session_id: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        hit_id: str | None = None,
    ) -> Hit:
        if anonymous:
            if ever_id or user_agent or (session_id and not is_temporary_id(session_id)):
                raise ValueError(
                    "an anonymous hit must not carry an identifier or user agent (a temporary "
                    "session id at most)"
                )
            if ip is not None and not is_truncated_ip(ip):
                raise ValueError("an anonymous hit may carry only a truncated IP address")
        return super().__new__(
            cls,
            received_at,
            track_id,
            anonymous,
            query,
            ever_id,
            session_id,
            ip,
            user_agent,
            hit_id or _new_id(),
        )

    def params(self) -> list[tuple[str, str]]:
        """The parameters, percent-decoded, in wire order."""
        out = []
        for part in self.query.split("&"):
            name, _, value = part.partition("=")
            out.append((name, unquote(value, errors="replace")))
        return out

    def param(self, name: str) -> str | None:
        return first_value(self.params(), name)

    @property
    def page_name(self) -> str:
        """The second field of ``p``: the page name."""
        raw = next((v for k, v in _raw_pairs(self.query) if k == "p"), "")
        fields = raw.split(",")
        return unquote(fields[1], errors="replace") if len(fields) > 1 else ""

    @property
    def customer_id(self) -> str | None:
        return self.param("cd")

    def other_params(self) -> list[tuple[str, str]]:
        """The parameters without their own store column (``p``, ``eid``, ``cd``, ``nc``)."""
        return without_columns(self.params())

    def to_dict(self) -> dict[str, Any]:
        return {
            "hit_id": self.hit_id,
            "received_at": self.received_at,
            "track_id": self.track_id,
            "anonymous": self.anonymous,
            "ever_id": self.ever_id,
            "session_id": self.session_id,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "query": self.query,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Hit:
        return cls(**{k: data[k] for k in cls._fields if k in data})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)


def first_value(params: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in params if k == name), None)


def without_columns(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in params if k not in COLUMN_PARAMS]


def _raw_pairs(query: str) -> list[tuple[str, str]]:
    return [(p.partition("=")[0], p.partition("=")[2]) for p in query.split("&")]


@runtime_checkable
class Sink(Protocol):
    """Where hits go. ``write`` is awaited on the request path, so slow sinks must buffer."""

    async def write(self, hits: Sequence[Hit]) -> None: ...

    async def close(self) -> None: ...


# What a buffered sink carries: hits, and the consent receipts of the stores that keep them.
Record = Hit | Receipt


def keeps_receipts(sink: Sink) -> bool:
    """Whether ``sink`` keeps consent receipts (a store: ``keeps_receipts`` is true)."""
    return bool(getattr(sink, "keeps_receipts", False))


async def write_receipts(sink: Sink, receipts: Sequence[Receipt]) -> bool:
    """Hand consent ``receipts`` to ``sink`` if it keeps them; whether it does.

    The stores keep them with the same durability as hits; the relay, the log and any sink
    without ``keeps_receipts`` have nowhere to put them and are skipped, so a plain ``Sink``
    never receives anything but hits. Raises what the sink raises (``SinkUnavailable``).
    """
    if not keeps_receipts(sink):
        return False
    if receipts:
        await sink.write_receipts(receipts)  # type: ignore[attr-defined]
    return True


async def write_durably(sink: Sink, hits: Sequence[Hit]) -> None:
    """Write ``hits`` and return once they are stored or on disk, where ``sink`` can tell.

    For a batch from a sender that deletes its copy once answered (a relay, Mapp's server
    libraries): answering before the hits are saved would let a crash in between lose them. A
    sink with a ``write_durably`` method waits for that; any other sink is simply written.
    """
    durable = getattr(sink, "write_durably", None)
    if durable is not None:
        await durable(hits)
    else:
        await sink.write(hits)
