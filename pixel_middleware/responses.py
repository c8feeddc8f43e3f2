"""Small answers shared by the endpoints: plain-text refusals, the GIF, the request body."""

from __future__ import annotations

from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope

# The 43-byte transparent GIF Mapp's track servers answer with.
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_STORE = {"cache-control": "no-store"}


class TooLarge(Exception):
    """A request body over its limit."""


def text(status: int, reason: str, **headers: str) -> Response:
    """A short plain-text answer that no cache keeps."""
    return PlainTextResponse(reason + "\n", status_code=status, headers={**NO_STORE, **headers})


def refused_hit(status: int, reason: str) -> Response:
    """A single hit refused for good: the status says so, but the body is still the GIF.

    The Smart Pixel's request queue looks only at whether the answer is an image: any other body
    makes it resend the hit every five seconds, for ever, and hold every later hit behind it.
    """
    headers = {**NO_STORE, "x-pixel-refused": reason.encode("ascii", "replace").decode("ascii")}
    return Response(GIF, status_code=status, media_type="image/gif", headers=headers)


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body, refusing it as soon as it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def query(scope: Scope) -> str:
    raw: bytes = scope.get("query_string", b"")
    return raw.decode("latin-1")
