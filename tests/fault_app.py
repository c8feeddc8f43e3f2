"""A small site for fault tests, served by uvicorn in its own process (so it can be killed).

Settings come from ``PIXEL_*`` environment variables (``PixelSettings.from_env``), the sinks are
the ones those settings build (``FAULT_DURABLE_WRITES=1``: every write waits until its hits are
saved), and log records go to stderr with their level, as an operator's server would write them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from pixel_middleware import PixelMiddleware, PixelSettings
from pixel_middleware.sinks import Hit, Sink, build_sink, write_durably

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


async def home(request: Request) -> Response:
    return HTMLResponse("<html><body>home</body></html>")


class DurableWrites:
    """Answers every write only once the hits are saved (``write_durably``), as a collector
    should answer a batch whose sender deletes its copy on success."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def write(self, hits: Sequence[Hit]) -> None:
        await write_durably(self.sink, hits)

    async def start(self) -> None:
        start = getattr(self.sink, "start", None)
        if start is not None:
            await start()

    async def close(self) -> None:
        await self.sink.close()


settings = PixelSettings.from_env()
sink: Sink = build_sink(settings)
if os.environ.get("FAULT_DURABLE_WRITES"):
    sink = DurableWrites(sink)
app = PixelMiddleware(Starlette(routes=[Route("/", home)]), settings=settings, sink=sink)
