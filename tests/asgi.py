"""A direct ASGI driver: what the middleware sends, message by message, with nothing in between."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message

Raw = list[tuple[bytes, bytes]]


@dataclass
class Result:
    messages: list[Message]

    @property
    def start(self) -> Message:
        return next(m for m in self.messages if m["type"] == "http.response.start")

    @property
    def status(self) -> int:
        return int(self.start["status"])

    @property
    def headers(self) -> Raw:
        return list(self.start["headers"])

    def header_values(self, name: str) -> list[str]:
        key = name.lower().encode()
        return [v.decode("latin-1") for k, v in self.headers if k.lower() == key]

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None

    @property
    def bodies(self) -> list[Message]:
        return [m for m in self.messages if m["type"] == "http.response.body"]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.bodies)


def request(
    app: ASGIApp,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Sequence[tuple[bytes, bytes]] = (),
    query: bytes = b"",
    body: bytes = b"",
    scheme: str = "http",
) -> Result:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"shop.example"), *headers],
        "client": ("203.0.113.9", 50000),
        "server": ("shop.example", 80),
    }
    sent: list[Message] = []
    received = False

    async def receive() -> Message:
        nonlocal received
        if received:
            await asyncio.sleep(3600)
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    return Result(sent)


def html_app(
    body: bytes | Sequence[bytes],
    *,
    status: int = 200,
    headers: Sequence[tuple[bytes, bytes]] = ((b"content-type", b"text/html; charset=utf-8"),),
    content_length: bool = True,
    extra: Sequence[Message] = (),
) -> ASGIApp:
    """An app that answers with ``body`` (one message, or one per chunk) and exactly ``headers``."""
    chunks = [body] if isinstance(body, bytes) else list(body)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        hdrs = list(headers)
        if content_length:
            hdrs.append((b"content-length", str(sum(map(len, chunks))).encode()))
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        for i, chunk in enumerate(chunks):
            await send(
                {"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1}
            )
        for message in extra:
            await send(message)

    return app
