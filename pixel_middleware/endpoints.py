"""The route table under the prefix: consent, assets, hits. It answers 404 and 405 once.

Each handler checks its input first and answers a 4xx with a short plain-text reason; nothing a
client sends can reach a 500. Rules come from the pure modules; the handlers do the I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .assets import Assets
from .collector import Collector
from .consent import Consent
from .request_info import RequestInfo
from .responses import refused_hit, text
from .settings import PixelSettings
from .sinks import Sink

Handler = Callable[[RequestInfo, Scope, Receive], Awaitable[Response]]
_GET = frozenset({"GET", "HEAD"})
_GET_POST = frozenset({"GET", "POST"})
_POST = frozenset({"POST"})
_COLLECTOR_METHODS = {"wt": _GET_POST, "batch": _POST, "optout": _GET}


class Endpoints:
    """The ASGI app mounted at ``settings.prefix`` by the middleware."""

    def __init__(self, settings: PixelSettings, sink: Sink, *, base: str | None = None) -> None:
        """``base`` is the path the endpoints live under: ``settings.prefix`` unless given
        (``""`` serves them at the root of a host, as :mod:`.standalone` does)."""
        self.settings = settings
        self.base = settings.prefix if base is None else base
        self.consent = Consent(settings, sink)
        self.assets = Assets(settings)
        self.collector = Collector(settings, sink)
        self._fixed: dict[str, tuple[frozenset[str], Handler]] = {
            "/optout": (_GET_POST, self.consent.optout),
            "/optin": (_GET_POST, self.consent.optin),
            "/status": (_GET, self.consent.status),
            "/anonymize": (_POST, self.consent.anonymize),
            "/receipt": (_POST, self.consent.receipt),
            "/pixel.js": (_GET, self.assets.script),
            "/report": (_GET, self.assets.report),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handle(scope, receive)
        await response(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive) -> Response:
        request = RequestInfo(scope, self.settings)
        sub = request.path[len(self.base) :]
        route = self._route(sub)
        if route is None:
            return text(404, "not found")
        methods, handler = route
        if request.method not in methods:
            allowed = ", ".join(sorted(methods))
            return text(405, f"use {allowed}", allow=allowed)
        return await handler(request, scope, receive)

    def _route(self, sub: str) -> tuple[frozenset[str], Handler] | None:
        """The methods a path allows and its handler, or None."""
        fixed = self._fixed.get(sub)
        if fixed is not None:
            return fixed
        found = self.collector.route(sub)
        if found is None:
            return None
        track_id, kind = found
        collector = self.collector

        async def hit(request: RequestInfo, scope: Scope, receive: Receive) -> Response:
            if not collector.known(track_id):
                if kind == "wt":  # an image the Smart Pixel's queue takes as done
                    return refused_hit(404, "unknown track id")
                return text(404, "unknown track id")
            if kind == "batch":
                return await collector.batch(request, scope, receive, track_id)
            if kind == "optout":
                return await collector.optout(request, scope, receive, track_id)
            return await collector.single_hit(request, scope, receive, track_id)

        return _COLLECTOR_METHODS[kind], hit
