"""Relay to Mapp: batches to ``https://<trackDomain>/<trackId>/batch``, as Mapp's libraries do.

``text/plain``, one ``wt?…`` request per line, at most 10,000 lines a request and, by default,
1 MiB (Mapp takes up to 24 MiB, but a collector may be set to take less: another
pixel_middleware's ``max_body_bytes``). A ``413`` means "smaller": the request is split in halves
and each half sent again, later requests are kept under half the refused size, and only a single
line that is still too large is set aside. HTTP status below 400 is success. ``X-WT-IP`` and
``X-WT-UA`` are added for identified visitors only. Retries, backoff and the disk spool come from
:class:`BufferedSink`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .base import Hit, Record
from .buffered import BufferedSink, Spool

logger = logging.getLogger("pixel_middleware.sinks")

MAX_LINES = 10_000
MAX_BYTES = 24 * 1024 * 1024 - 1  # Mapp's own limit
DEFAULT_BYTES = 1024 * 1024


class RelayError(Exception):
    pass


def batch_line(hit: Hit) -> str:
    """The batch line for ``hit``: its request, plus the forwarding parameters if identified."""
    line = f"wt?{hit.query}"
    if not hit.anonymous:
        if hit.ip:
            line += "&X-WT-IP=" + quote(hit.ip, safe="")
        if hit.user_agent:
            line += "&X-WT-UA=" + quote(hit.user_agent, safe="")
    return line


def chunks(
    lines: Sequence[tuple[Hit, str]], max_bytes: int = MAX_BYTES
) -> Iterator[list[tuple[Hit, str]]]:
    """Split into requests within Mapp's limits (line count and body size)."""
    current: list[tuple[Hit, str]] = []
    size = 0
    for hit, line in lines:
        length = len(line.encode("utf-8")) + 1
        if current and (len(current) >= MAX_LINES or size + length > max_bytes):
            yield current
            current, size = [], 0
        current.append((hit, line))
        size += length
    if current:
        yield current


class RelayBackend:
    """POSTs batches to ``base_url`` (``https://<trackDomain>``), one request per track id."""

    def __init__(
        self,
        base_url: str,
        *,
        rejected_dir: str | os.PathLike[str],
        timeout: float = 10,
        max_bytes: int = DEFAULT_BYTES,
    ):
        self.base_url = base_url.rstrip("/")
        self.name = f"relay:{self.base_url}"
        self.timeout = timeout
        self.max_bytes = min(max_bytes, MAX_BYTES)
        self.rejected = Spool(rejected_dir)
        # Chunks already accepted, so that a retry after a partial failure resends nothing.
        self._accepted: set[str] = set()
        self._ssl = ssl.create_default_context()

    async def write_batch(self, hits: Sequence[Record]) -> None:
        # Mapp has no place for consent receipts: only hits are relayed.
        await asyncio.to_thread(self._send, [h for h in hits if isinstance(h, Hit)])

    def _send(self, hits: Sequence[Hit]) -> None:
        by_track: dict[str, list[tuple[Hit, str]]] = defaultdict(list)
        for hit in hits:
            if hit.hit_id not in self._accepted:
                by_track[hit.track_id].append((hit, batch_line(hit)))
        for track_id, lines in by_track.items():
            for chunk in chunks(lines, self.max_bytes):
                self._post_or_split(track_id, chunk)
        self._accepted.clear()

    def _post_or_split(self, track_id: str, chunk: list[tuple[Hit, str]]) -> None:
        status = self._post(track_id, chunk)
        if status < 400:
            self._accepted.update(h.hit_id for h, _ in chunk)
            return
        if status == 413 and len(chunk) > 1:
            size = sum(len(line.encode("utf-8")) + 1 for _, line in chunk)
            if size // 2 < self.max_bytes:
                # The target takes less than we thought (another collector's max_body_bytes):
                # later batches are cut to fit at once instead of being refused first.
                self.max_bytes = size // 2
                logger.warning(
                    "relay: %s refused %d bytes as too large (HTTP 413); sending at most %d "
                    "bytes per request from now on",
                    self.base_url,
                    size,
                    self.max_bytes,
                )
            middle = len(chunk) // 2
            self._post_or_split(track_id, chunk[:middle])
            self._post_or_split(track_id, chunk[middle:])
            return
        if 400 <= status < 500 and status not in (408, 429):
            # Refused for good: keep it on disk, don't block the queue on it.
            path = self.rejected.add([h for h, _ in chunk])
            self._accepted.update(h.hit_id for h, _ in chunk)
            logger.error(
                "relay: %s refused %d hit(s) (HTTP %d); kept in %s",
                self.base_url,
                len(chunk),
                status,
                path,
            )
            return
        raise RelayError(f"{self.base_url} answered HTTP {status}")

    def _post(self, track_id: str, chunk: list[tuple[Hit, str]]) -> int:
        body = ("\n".join(line for _, line in chunk) + "\n").encode("utf-8")
        request = urllib.request.Request(  # noqa: S310 - the URL comes from settings
            f"{self.base_url}/{track_id}/batch",
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self.timeout, context=self._ssl
            ) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError as exc:
            raise RelayError(f"{self.base_url} unreachable: {exc}") from exc

    async def reset(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RelaySink(BufferedSink):
    """Relay hits to Mapp's track servers (or any collector speaking the batch protocol).

    ``base_url`` is ``https://<trackDomain>`` for Mapp, or e.g. ``http://127.0.0.1:9000/_pixel``
    for another pixel_middleware collector. Unsent hits wait in ``spool_dir``; batches Mapp
    refuses for good (4xx) are kept in ``spool_dir/rejected``.
    """

    def __init__(self, base_url: str, *, spool_dir: str | os.PathLike[str], **options: Any) -> None:
        options.setdefault("batch_size", MAX_LINES)
        backend = RelayBackend(base_url, rejected_dir=Path(spool_dir) / "rejected")
        # Consent receipts stay with the site's own store: Mapp's batch protocol has none, and
        # RelayBackend does not say keeps_receipts, so none is ever queued here.
        super().__init__(backend, spool_dir=spool_dir, **options)
