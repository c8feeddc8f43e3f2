"""Sinks that write one JSON object per hit: to a file, or to a logger."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

import anyio.to_thread

from .base import Hit


class JsonLinesSink:
    """Appends one JSON object per line to ``path``; the file and its folder are created if missing.

    Writes run in a worker thread so the event loop never waits on the disk; a lock keeps lines
    of concurrent writes whole.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()

    async def write(self, hits: Sequence[Hit]) -> None:
        if hits:
            text = "".join(hit.to_json() + "\n" for hit in hits)
            await anyio.to_thread.run_sync(self._append, text)

    def _append(self, text: str) -> None:
        with self._lock:
            folder = os.path.dirname(self.path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text)

    async def close(self) -> None:
        return None


class LoggingSink:
    """Logs each hit as JSON at INFO on ``logger`` (default ``pixel_middleware.hits``)."""

    def __init__(self, logger: logging.Logger | str = "pixel_middleware.hits") -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger

    async def write(self, hits: Sequence[Hit]) -> None:
        for hit in hits:
            self.logger.info("%s", hit.to_json())

    async def close(self) -> None:
        return None
