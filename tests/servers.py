"""Real servers for tests: uvicorn in a background thread on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any, *, port: int | None = None, tls: bool = False) -> Iterator[str]:
    """Run ``app`` under uvicorn until the block ends; yields its base URL.

    ``tls`` serves https with a throwaway certificate for 127.0.0.1 (clients must not verify it).
    """
    port = port or free_port()
    keyfile = certfile = None
    if tls:
        import tempfile

        import trustme

        folder = tempfile.mkdtemp(prefix="pixel-tls-")
        cert = trustme.CA().issue_cert("127.0.0.1")
        cert.private_key_pem.write_to_path(f"{folder}/key.pem")
        cert.cert_chain_pems[0].write_to_path(f"{folder}/cert.pem")
        keyfile, certfile = f"{folder}/key.pem", f"{folder}/cert.pem"
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        ssl_keyfile=keyfile,
        ssl_certfile=certfile,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


# A page that streams: the second part waits until /release is requested. Padding lets a
# browser start rendering the first part before the rest arrives.
STREAM_FIRST = b"<!doctype html><html><body><p id='first'>first</p>" + b" " * 2048
STREAM_SECOND = b"<p id='second'>second</p></body></html>"
EDGE_PAGE = "<!doctype html><html><body><h1>Real server</h1></body></html>"
UNCLOSED_PAGE = "<!doctype html><html><body><h1 id='title'>Unclosed</h1><p>text"


def edge_app() -> Any:
    """/page (plain HTML, GET and HEAD), /nobody (no </body>), /stream and /release."""
    import asyncio
    from collections.abc import AsyncIterator

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Route

    release_event: dict[str, asyncio.Event] = {}

    async def page(request: Request) -> Response:
        return HTMLResponse(EDGE_PAGE)

    async def nobody(request: Request) -> Response:
        return HTMLResponse(UNCLOSED_PAGE)

    async def stream(request: Request) -> Response:
        gate = release_event["gate"] = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            yield STREAM_FIRST
            await gate.wait()
            yield STREAM_SECOND

        return StreamingResponse(body(), media_type="text/html")

    async def release(request: Request) -> Response:
        release_event["gate"].set()
        return PlainTextResponse("released")

    return Starlette(
        routes=[
            Route("/page", page, methods=["GET", "HEAD"]),
            Route("/nobody", nobody),
            Route("/stream", stream),
            Route("/release", release),
        ]
    )
