"""The ASGI middleware: reads the request, hands the app a visitor, rewrites the response.

Everything it decides comes from the pure modules; this file only moves messages. State for one
request lives in a ``_Response`` object made per call, never on the middleware.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from . import headers as h
from .endpoints import Endpoints
from .hits import make_hit
from .identity import identity_cookie_lines
from .inject import csp_nonce, gunzip, gzip_bytes, insert_before_body_close, render_snippet
from .request_info import RequestInfo, make_visitor, read_request, secure_cookies
from .settings import PixelSettings
from .sinks import Sink, build_sink
from .visitor import Visitor

logger = logging.getLogger("pixel_middleware")

# Wider than Starlette's ASGIApp so that Django's ASGIHandler, typed with its own aliases, fits.
AnyASGIApp = Callable[..., Awaitable[None]]


def default_settings() -> PixelSettings:
    """Django's ``PIXEL_MIDDLEWARE`` when Django is configured, else ``PIXEL_*`` variables."""
    try:
        from django.conf import settings as django_settings

        if django_settings.configured and hasattr(django_settings, "PIXEL_MIDDLEWARE"):
            return PixelSettings.from_django(django_settings)
    except ImportError:
        pass
    return PixelSettings.from_env()


class PixelMiddleware:
    """Smart-Pixel-style analytics with the anonymous switch, for any ASGI app.

    ``settings`` defaults to Django's ``PIXEL_MIDDLEWARE`` or the ``PIXEL_*`` environment
    variables; ``sink`` (where hits go) defaults to what the settings ask for
    (:func:`~pixel_middleware.sinks.build_sink`: the SQLite store unless configured
    otherwise). Requests under ``settings.prefix`` are answered here; every other request
    reaches ``app`` with ``scope["state"]["pixel"]`` set to a
    :class:`~pixel_middleware.visitor.Visitor`.
    """

    def __init__(
        self, app: AnyASGIApp, settings: PixelSettings | None = None, sink: Sink | None = None
    ) -> None:
        self.app = app
        self.settings = settings if settings is not None else default_settings()
        self.sink: Sink = sink if sink is not None else build_sink(self.settings)
        self.endpoints = Endpoints(self.settings, self.sink)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        prefix = self.settings.prefix
        if path == prefix or path.startswith(prefix + "/"):
            await self.endpoints(scope, receive, send)
            return
        request = read_request(scope, self.settings)
        visitor = make_visitor(self.settings, request)
        scope.setdefault("state", {})["pixel"] = visitor
        response = _Response(self.settings, request, visitor, send, self.sink)
        await self.app(scope, receive, response.send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass lifespan to the app, closing the sink before shutdown completes.

        Django's ASGI handler refuses lifespan outright (it raises before reading a message);
        the middleware then answers lifespan itself, so the sink is still flushed on shutdown.
        """
        received = False

        async def app_receive() -> Message:
            nonlocal received
            received = True
            return await receive()

        async def app_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.sink.close()
            await send(message)

        try:
            await self.app(scope, app_receive, app_send)
        except Exception:
            if received:
                raise
            logger.debug("app does not speak lifespan; PixelMiddleware answers it")
            await self._own_lifespan(receive, send)

    async def _own_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.sink.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


class _Response:
    """One response on its way out: passes through, or is held, injected and released."""

    def __init__(
        self,
        settings: PixelSettings,
        request: RequestInfo,
        visitor: Visitor,
        send: Send,
        sink: Sink,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.request = request
        self.visitor = visitor
        self._send = send
        self.start: Message | None = None  # held while the body may still be rewritten
        self.chunks: list[bytes] = []
        self.size = 0
        self.passthrough = False

    async def send(self, message: Message) -> None:
        if self.passthrough:
            await self._send(message)
        elif message["type"] == "http.response.start":
            await self._on_start(message)
        elif message["type"] == "http.response.body" and self.start is not None:
            await self._on_body(message)
        else:
            # pathsend, trailers, debug, anything newer: not ours to rewrite. Only a message that
            # arrives while a page is held ends the rewriting; one before the start changes nothing.
            if self.start is not None:
                await self._release()
            await self._send(message)

    async def _record_page_view(self) -> None:
        """Count this page on the server (no browser script needed), as the visitor allows."""
        visitor = self.visitor
        hit = make_hit(
            self.settings,
            self.request,
            self.settings.track_id,
            visitor.page_params(with_identity=True),
            anonymous=visitor.anonymous,
            identity=visitor.identity,
        )
        try:
            await self.sink.write([hit])
        except Exception:
            # The page itself must not fail because its page view could not be stored.
            logger.exception("pixel sink failed to write a server-side page view")

    def _start_headers(self, message: Message) -> h.Headers:
        headers = list(message.get("headers", ()))
        lines = identity_cookie_lines(
            self.settings,
            self.visitor.identity,
            secure=secure_cookies(self.settings, self.request),
        )
        if lines and h.publicly_cacheable(headers):
            # A shared cache would hand this visitor's new everID to everyone: write it later.
            lines = [line for line in lines if b"Max-Age=0" in line]
        return h.with_cookies(headers, lines)

    async def _on_start(self, message: Message) -> None:
        headers = self._start_headers(message)
        message = {**message, "headers": headers}
        status = message.get("status", 200)
        if (
            self.settings.server_side_page_views
            and status == 200
            and self.request.method == "GET"
            and h.is_html(headers)
            and not h.is_attachment(headers)
        ):
            await self._record_page_view()
        if self.settings.inject and h.injectable(status, self.request.method, headers):
            self.start = message
            return
        self.passthrough = True
        await self._send(message)

    async def _on_body(self, message: Message) -> None:
        assert self.start is not None
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        declared = h.content_length(self.start["headers"])
        if declared is None and more and not self.chunks:
            # A stream: forward it as it comes; such a page places the snippet itself.
            await self._release()
            await self._send(message)
            return
        self.chunks.append(body)
        self.size += len(body)
        if self.size > self.settings.max_inject_bytes:
            await self._release(more_body=more)
            return
        if more:
            return
        page = b"".join(self.chunks)
        start = self.start
        self.start = None
        self.passthrough = True
        rewritten = self._inject(page, start["headers"])
        if rewritten is None:
            await self._send(start)
            await self._send({"type": "http.response.body", "body": page})
            return
        await self._send({**start, "headers": h.after_injection(start["headers"], len(rewritten))})
        await self._send({"type": "http.response.body", "body": rewritten})

    def _inject(self, page: bytes, headers: h.Headers) -> bytes | None:
        gzipped = h.content_encoding(headers) == "gzip"
        html = gunzip(page, limit=self.settings.max_inject_bytes) if gzipped else page
        if html is None:
            return None
        nonce = csp_nonce(self._response_csp(headers))
        # The snippet is ASCII (JSON with \u escapes, percent-encoded URLs), so it fits a page in
        # any ASCII-compatible charset without the page being decoded.
        snippet = render_snippet(self.visitor, nonce=nonce).encode("ascii", "xmlcharrefreplace")
        injected = insert_before_body_close(html, snippet)
        if injected is None:
            return None
        return gzip_bytes(injected) if gzipped else injected

    @staticmethod
    def _response_csp(headers: h.Headers) -> str | None:
        values = h.header_values_text(headers, b"content-security-policy")
        return "; ".join(values) if values else None

    async def _release(self, *, more_body: bool = True) -> None:
        """Send what was held, unchanged, and stop rewriting.

        ``more_body`` says whether the app will still send body messages after the held ones.
        """
        self.passthrough = True
        if self.start is not None:
            start, self.start = self.start, None
            await self._send(start)
            if self.chunks:
                body = b"".join(self.chunks)
                await self._send(
                    {"type": "http.response.body", "body": body, "more_body": more_body}
                )
        self.chunks = []


def get_visitor(request_or_scope: Any) -> Visitor:
    """The visitor of a Starlette/Django request (or a raw ASGI scope)."""
    scope = getattr(request_or_scope, "scope", request_or_scope)
    try:
        visitor = scope["state"]["pixel"]
    except (KeyError, TypeError):
        raise LookupError(
            "no pixel visitor on this request: is PixelMiddleware installed?"
        ) from None
    if not isinstance(visitor, Visitor):
        raise LookupError("scope['state']['pixel'] is not a pixel_middleware Visitor")
    return visitor
