"""Lifespan for hits: check the sink at start-up, flush it at shutdown, and say so when it fails.

A server logs a failed lifespan only at INFO ("ASGI 'lifespan' protocol appears unsupported"), so
every failure here is logged at ERROR as well.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from .sinks import Sink

logger = logging.getLogger("pixel_middleware")


class SinkLifespan:
    """The sink's part of an ASGI lifespan, around an app's own or on its own."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def wrap(self, app: Any, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass lifespan to the app, checking the sink at start-up and closing it at shutdown.

        Django's ASGI handler refuses lifespan outright (it raises before reading a message);
        the middleware then answers lifespan itself, so the sink is still checked and flushed.
        """
        received = False

        async def app_receive() -> Message:
            nonlocal received
            received = True
            return await receive()

        async def app_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                failure = await self.start_sink()
                if failure:
                    message = {"type": "lifespan.startup.failed", "message": failure}
            elif message["type"] == "lifespan.shutdown.complete":
                await self.close_sink()
            await send(message)

        try:
            await app(scope, app_receive, app_send)
        except Exception:
            if received:
                raise
            logger.debug("app does not speak lifespan; PixelMiddleware answers it")
            await self.serve(receive, send)

    async def serve(self, receive: Receive, send: Send) -> None:
        """Answer lifespan alone: for an app that has none, or the standalone collector."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                failure = await self.start_sink()
                if failure:
                    await send({"type": "lifespan.startup.failed", "message": failure})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close_sink()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start_sink(self) -> str | None:
        """Check that hits can be kept (the store, the spool); the reason if they cannot."""
        start = getattr(self.sink, "start", None)
        if start is None:
            return None
        try:
            await start()
        except Exception as exc:
            logger.error("pixel_middleware cannot keep hits: %s", exc)
            return f"pixel_middleware cannot keep hits: {exc}"
        return None

    async def close_sink(self) -> None:
        try:
            await self.sink.close()
        except Exception:
            # Said loudly: a server only logs a failed lifespan at INFO.
            logger.exception("pixel_middleware could not close its sink; hits may be lost")
