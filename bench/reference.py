"""The minimal injector: the least any middleware that puts a script into HTML pages costs.

It is the benchmarks' reference, not a product: no cookies, no visitor, no configuration, no
gzip, no streaming. An HTML response is buffered whole, one ``<script src=…></script>`` tag goes
before its last ``</body>`` (found case-insensitively), and Content-Length is set to the new
length. Every other response passes through untouched.

It is written as anyone would write it in twenty lines (the whole page is lower-cased to find
``</body>``), and deliberately not tuned further.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SCRIPT_SRC = "/_pixel/pixel.js"


def _is_html(headers: Any) -> bool:
    for key, value in headers:
        if key.lower() == b"content-type":
            return bool(value.lower().startswith(b"text/html"))
    return False


class ReferenceInjector:
    """Pure ASGI: wraps ``app`` and adds ``<script src="script_src"></script>`` to HTML pages."""

    def __init__(self, app: ASGIApp, script_src: str = SCRIPT_SRC) -> None:
        self.app = app
        self.tag = f'<script src="{script_src}"></script>'.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def send_wrapper(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and _is_html(message.get("headers", ())):
                held = message
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            chunks.clear()
            index = body.lower().rfind(b"</body>")
            if index >= 0:
                view = memoryview(body)
                body = b"".join((view[:index], self.tag, view[index:]))
            headers = [(k, v) for k, v in held.get("headers", ()) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**held, "headers": headers})
            held = None
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, send_wrapper)
