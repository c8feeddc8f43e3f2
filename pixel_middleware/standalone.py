"""The collector on its own, at the root of a host.

Mapp's Node HTTP client and its cron job keep only the host of ``trackDomain`` and post to
``/<trackId>/batch`` at the root, so they cannot reach a collector under a path prefix. Run this
app where they can::

    PIXEL_TRACK_ID=123451234512345 PIXEL_SECRET_KEY=… \\
        uvicorn --factory pixel_middleware.standalone:create_app --host 0.0.0.0 --port 8080

It serves the same endpoints as the middleware's prefix (``/<trackId>/wt``, ``/<trackId>/batch``,
``/<trackId>/optout``, ``/status``, ``/pixel.js``, …) at the root, stores hits where the settings
say, and checks and flushes its store with the server's lifespan.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from .endpoints import Endpoints
from .lifespan import SinkLifespan
from .middleware import default_settings
from .settings import PixelSettings
from .sinks import Sink, build_sink


class CollectorApp:
    """An ASGI app that is only the collector, served at the root path."""

    def __init__(self, settings: PixelSettings | None = None, sink: Sink | None = None) -> None:
        self.settings = settings if settings is not None else default_settings()
        self.sink: Sink = sink if sink is not None else build_sink(self.settings)
        self.endpoints = Endpoints(self.settings, self.sink, base="")
        self._lifespan = SinkLifespan(self.sink)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan.serve(receive, send)
        elif scope["type"] == "http":
            await self.endpoints(scope, receive, send)


def create_app() -> CollectorApp:
    """The app for ``uvicorn --factory``: settings from the ``PIXEL_*`` environment variables."""
    return CollectorApp()
