"""Driving an ASGI app in-process: one GET request, no network, nothing kept but the status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .apps import App


def scope_for(path: str, query: bytes = b"", cookie: bytes = b"") -> dict[str, Any]:
    headers = [(b"host", b"bench.example"), (b"accept", b"text/html,application/json")]
    if cookie:
        headers.append((b"cookie", cookie))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("bench.example", 80),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def call(app: App, path: str, query: bytes = b"", cookie: bytes = b"") -> int:
    """The response's status; the body is dropped as it comes, as a server would send it."""
    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope_for(path, query, cookie), _receive, send)
    return status


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    headers: list[tuple[bytes, bytes]]
    chunks: list[bytes]  # one per http.response.body message: a server sends each on its own

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


async def fetch(app: App, path: str, cookie: bytes = b"") -> Fetched:
    """Status, headers and body: for checking that a setup does what it should."""
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope_for(path, b"", cookie), _receive, send)
    return Fetched(start.get("status", 0), list(start.get("headers", ())), chunks)
