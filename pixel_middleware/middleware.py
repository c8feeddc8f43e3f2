"""The ASGI middleware: hands the app a visitor, rewrites HTML responses, passes the rest.

Everything it decides comes from the pure modules; this file only moves messages. State for one
request lives in objects made per call, never on the middleware. Nothing about the visitor is
worked out until something needs it: a JSON, file or redirect response the app made without
asking for the visitor passes through with no cookie parsed and no header added.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from .cookies import set_cookie_lines
from .endpoints import Endpoints
from .headers import ResponsePlan, after_injection, with_cookies
from .hits import make_hit
from .identity import identity_writes, marker_write
from .inject import body_close_position, csp_nonce, gunzip, gzip_bytes, splice
from .lifespan import SinkLifespan
from .receipts import (
    Receipt,
    read_receipt_cookie,
    receipt_cookie,
    source_answer_code,
    source_receipt,
)
from .request_info import RequestInfo
from .settings import PixelSettings
from .sinks import Sink, build_sink, keeps_receipts, write_receipts
from .snippet import compiled
from .visitor import Visitor, visitor_for

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
    reaches ``app`` with ``scope["state"]["pixel"]`` holding a
    :class:`~pixel_middleware.visitor.Visitor`, made the first time it is read.
    """

    def __init__(
        self, app: AnyASGIApp, settings: PixelSettings | None = None, sink: Sink | None = None
    ) -> None:
        self.app = app
        self.settings = settings if settings is not None else default_settings()
        self.sink: Sink = sink if sink is not None else build_sink(self.settings)
        self.endpoints = Endpoints(self.settings, self.sink)
        self._prefix = self.settings.prefix
        self._prefix_slash = self._prefix + "/"
        self._excluded = self.settings.exclude_paths
        self._snippet = compiled(self.settings)
        self._inject = self.settings.inject
        self._page_views = self.settings.server_side_page_views
        self._max_inject = self.settings.max_inject_bytes
        # Receipts of a consent manager's changed answer are made only where they can be kept.
        self._source_receipts = bool(self.settings.consent_source) and keeps_receipts(self.sink)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(self._prefix_slash) or path == self._prefix:
            await self.endpoints(scope, receive, send)
            return
        if self._excluded and path.startswith(self._excluded):
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(self, scope, send)
        scope["state"] = exchange
        try:
            await self.app(scope, receive, exchange.send)
        finally:
            # The scope holds the exchange, and the exchange holds the scope and the server's
            # send (whose owner holds the scope too): left as they are, these cycles (and the
            # request and response they hold) would wait for the garbage collector after every
            # request. Measured under uvicorn: a cycle collection every few requests.
            exchange._scope = None
            exchange._send = _finished

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        await SinkLifespan(self.sink).wrap(self.app, scope, receive, send)


class _Exchange(dict[str, Any]):
    """One request on its way through: ``scope["state"]`` for the app, and the responder.

    As ``scope["state"]`` its ``"pixel"`` entry is the visitor, made when first read:
    Starlette's ``request.state.pixel``, Django's ``request.scope["state"]["pixel"]``,
    ``get_visitor`` and the template helpers all read it the same way. As the responder, its
    ``send`` passes the response on, or holds an HTML page, injects and releases it. One object,
    not two: every request pays for each object made for it.
    """

    __slots__ = (
        "_scope",
        "_send",
        "chunks",
        "middleware",
        "page_view_stored",
        "passthrough",
        "plan",
        "receipt",
        "request",
        "size",
        "start",
    )

    plan: ResponsePlan | None
    chunks: list[bytes]
    size: int

    def __init__(self, middleware: PixelMiddleware, scope: Scope, send: Send) -> None:
        existing = scope.get("state")
        if existing:  # a server's lifespan state stays visible to the app
            self.update(existing)
        self.middleware = middleware
        self._scope: Scope | None = scope
        self._send = send
        self.request: RequestInfo | None = None
        # A consent manager's changed answer, to be written when the response starts.
        self.receipt: Receipt | None = None
        self.start: Message | None = None  # held while the body may still be rewritten
        # plan, chunks and size are set when a page is held: most responses never are.
        self.passthrough = False
        self.page_view_stored = False

    # ------------------------------------------------------------ scope["state"]

    def __missing__(self, key: str) -> Any:
        if key != "pixel":
            raise KeyError(key)
        if self._scope is None:
            raise LookupError("the request is over: the visitor was never read while it ran")
        mw = self.middleware
        settings = mw.settings
        request = self.request = RequestInfo(self._scope, settings)
        visitor = visitor_for(request)
        cookie = read_receipt_cookie(request.cookies.receipt)
        if mw._source_receipts:
            # Decided here, with the visitor, so that the page can already show the new id.
            self.receipt = source_receipt(settings, request.decision, cookie, gpc=request.gpc)
        visitor.receipt_id = self.receipt.receipt_id if self.receipt else cookie.receipt_id
        self["pixel"] = visitor
        return visitor

    def get(self, key: str, default: Any = None) -> Any:
        if key == "pixel":
            return self["pixel"]
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key == "pixel" or super().__contains__(key)

    @property
    def visitor(self) -> Visitor:
        visitor: Visitor = self["pixel"]
        return visitor

    # ------------------------------------------------------------ the response

    async def send(self, message: Message) -> None:
        # A response start is handled here, not in a nested coroutine: most responses are
        # decided at their start, and each ``await`` costs a coroutine and a frame.
        if self.passthrough:
            await self._send(message)
            return
        kind = message["type"]
        if kind == "http.response.start":
            headers = message.get("headers", ())
            if self.request is None and not _html(headers):
                # The common case of an API: nothing to add, nothing to read. Pass it on.
                self.passthrough = True
                await self._send(message)
                return
            mw = self.middleware
            plan = ResponsePlan(message.get("status", 200), headers)
            if self.receipt is not None or mw._page_views:
                await self._before_start(plan)
            scope = self._scope
            assert scope is not None  # a response starts while the app runs
            if mw._inject and plan.injectable(scope.get("method", "GET")):
                self.start, self.plan, self.chunks, self.size = message, plan, [], 0
                return
            self.passthrough = True
            if self.request is not None:
                message = self._with_cookies(message, plan)
            await self._send(message)
        elif kind == "http.response.body" and self.start is not None:
            await self._on_body(message)
        else:
            # pathsend, trailers, debug, anything newer: not ours to rewrite. Only a message that
            # arrives while a page is held ends the rewriting; one before the start changes nothing.
            if self.start is not None:
                await self._release()
            await self._send(message)

    async def _before_start(self, plan: ResponsePlan) -> None:
        """What a response start may need first: keeping a consent receipt, and counting the
        page on the server (``server_side_page_views``)."""
        if self.receipt is not None:
            await self._keep_receipt(plan)
        scope = self._scope
        assert scope is not None
        if (
            self.middleware._page_views
            and plan.page
            and scope.get("method", "GET") == "GET"
            and self.visitor.tracked
        ):
            await self._record_page_view()

    async def _keep_receipt(self, plan: ResponsePlan) -> None:
        """Write the receipt of a consent manager's changed answer, before the response starts
        (its cookie goes with this response)."""
        receipt = self.receipt
        assert receipt is not None
        if plan.publicly_cacheable:
            # A shared cache would hand this receipt cookie to everyone: a later page records it.
            self.receipt = None
            return
        try:
            await write_receipts(self.middleware.sink, [receipt])
        except Exception:
            # The page must not fail for its receipt; without the cookie, the next page retries.
            logger.exception("consent receipt %s could not be kept", receipt.receipt_id)
            self.receipt = None

    def _with_cookies(self, message: Message, plan: ResponsePlan) -> Message:
        """``message`` with the identifier cookies of the visitor, if one was made, and the
        receipt cookie of a receipt written for it."""
        if self.request is None:
            return message  # no visitor was made: nothing to write
        identity = self.visitor.identity
        receipt = self.receipt
        if not (
            identity.changes_cookies or identity.new_visitor or identity.new_session or receipt
        ):
            return message  # the common case: a returning visitor keeps its cookies as they are
        settings = self.middleware.settings
        writes = identity_writes(settings, identity)
        marker = marker_write(settings, identity, hit_stored=self.page_view_stored)
        if marker is not None:
            writes.append(marker)
        if receipt is not None:
            code = source_answer_code(self.visitor.decision)
            writes.append(receipt_cookie(settings, receipt.receipt_id, code))
        if writes and plan.publicly_cacheable:
            # A shared cache would hand this visitor's new everID to everyone: write it later.
            writes = [w for w in writes if w.expires]
        if not writes:
            return message
        request = self.request
        assert request is not None
        lines = set_cookie_lines(writes, secure=request.secure, domain=settings.cookie_domain)
        return {**message, "headers": with_cookies(message.get("headers", ()), lines)}

    async def _record_page_view(self) -> None:
        """Count this page on the server (no browser script needed), as the visitor allows."""
        visitor = self.visitor
        request = self.request
        assert request is not None
        mw = self.middleware
        hit = make_hit(
            mw.settings,
            request,
            mw.settings.track_id,
            visitor.page_params(with_identity=True),
            anonymous=visitor.anonymous,
            identity=visitor.identity,
        )
        try:
            await mw.sink.write([hit])
            self.page_view_stored = True
        except Exception:
            # The page itself must not fail because its page view could not be stored.
            logger.exception("pixel sink failed to write a server-side page view")

    async def _on_body(self, message: Message) -> None:
        assert self.start is not None and self.plan is not None
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if self.plan.content_length is None and more and not self.chunks:
            # A stream: forward it as it comes; such a page places the snippet itself.
            await self._release()
            await self._send(message)
            return
        if body:
            self.chunks.append(body)
            self.size += len(body)
        if self.size > self.middleware._max_inject:
            await self._release(more_body=more)
            return
        if more:
            return
        start, plan, chunks = self.start, self.plan, self.chunks
        self.start, self.chunks, self.passthrough = None, [], True
        rewritten = self._inject(chunks, plan)
        if rewritten is None:
            await self._send(self._with_cookies(start, plan))
            await self._send_chunks(chunks)
            return
        headers = after_injection(plan, sum(map(len, rewritten)))
        await self._send(self._with_cookies({**start, "headers": headers}, plan))
        await self._send_chunks(rewritten)

    async def _send_chunks(self, chunks: list[bytes]) -> None:
        """The page as the app's own chunks: no copy of the whole page is made to send it."""
        if len(chunks) == 1:
            await self._send({"type": "http.response.body", "body": chunks[0]})
            return
        last = len(chunks) - 1
        if last < 0:
            await self._send({"type": "http.response.body", "body": b""})
        for number, chunk in enumerate(chunks):
            await self._send(
                {"type": "http.response.body", "body": chunk, "more_body": number < last}
            )

    def _inject(self, chunks: list[bytes], plan: ResponsePlan) -> list[bytes] | None:
        settings = self.middleware.settings
        if plan.gzipped:
            html = gunzip(b"".join(chunks), limit=settings.max_inject_bytes)
            if html is None:
                return None
            chunks = [html]
        # The insertion point is found before the visitor is made: a page with nowhere to put the
        # snippet needs no visitor and gets no cookie.
        position = body_close_position(chunks)
        if position is None:
            return None
        nonce = csp_nonce(plan.csp) if plan.csp else None
        snippet = self.middleware._snippet.render(self.visitor, nonce=nonce)
        injected = splice(chunks, position, snippet)
        return [gzip_bytes(b"".join(injected))] if plan.gzipped else injected

    async def _release(self, *, more_body: bool = True) -> None:
        """Send what was held, unchanged, and stop rewriting.

        ``more_body`` says whether the app will still send body messages after the held ones.
        """
        self.passthrough = True
        if self.start is not None and self.plan is not None:
            start, self.start = self.start, None
            await self._send(self._with_cookies(start, self.plan))
            last = len(self.chunks) - 1
            for number, chunk in enumerate(self.chunks):
                await self._send(
                    {
                        "type": "http.response.body",
                        "body": chunk,
                        "more_body": more_body or number < last,
                    }
                )
        self.chunks = []


async def _finished(message: Message) -> None:
    raise RuntimeError("the response is over: nothing more can be sent for this request")


def _html(headers: Any) -> bool:
    for key, value in headers:
        if key.lower() == b"content-type":
            return bool(value[:21].lower().startswith((b"text/html", b"application/xhtml+xml")))
    return False


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
