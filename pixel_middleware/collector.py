"""The hit collector: Mapp's track endpoints, so that Mapp's own clients can send here unchanged.

Every hit is made to obey its visitor's state (``wire.enforce``, ``hits.make_hit``) before it
reaches a sink.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from starlette.responses import Response
from starlette.types import Receive, Scope

from . import wire
from .consent import add_cookies
from .hits import make_hit
from .identity import IdentityState, identity_writes, plan_identity, valid_ever_id, valid_session_id
from .request_info import RequestInfo
from .responses import GIF, NO_STORE, TooLarge, query, read_body, text
from .settings import PixelSettings
from .sinks import Hit, Sink

logger = logging.getLogger("pixel_middleware")

TRACK_PATH_RE = re.compile(r"^/([0-9,]+)/(wt|batch)$")


class Collector:
    """``/<trackId>/wt`` and ``/<trackId>/batch`` under the prefix."""

    def __init__(self, settings: PixelSettings, sink: Sink) -> None:
        self.settings = settings
        self.sink = sink

    async def single_hit(
        self, request: RequestInfo, scope: Scope, receive: Receive, track_id: str
    ) -> Response:
        """``/<trackId>/wt``: one request; identified visitors without an everID get one here."""
        raw = query(scope)
        if len(raw) > wire.MAX_REQUEST_CHARS:
            return text(414, f"request longer than {wire.MAX_REQUEST_CHARS} characters")
        try:
            params = wire.parse_query(raw)
        except wire.WireError as exc:
            return text(400, f"not a pixel request: {exc}")
        decision = request.decision
        identity = plan_identity(request.cookies, anonymous=decision.anonymous)
        anonymous = _anonymous(decision.anonymous, params)
        hit = make_hit(
            self.settings, request, track_id, params, anonymous=anonymous, identity=identity
        )
        if not await self._store([hit]):
            return text(503, "could not store the hit; try again")
        response = Response(GIF, media_type="image/gif", headers=NO_STORE)
        add_cookies(response, request, identity_writes(self.settings, identity), self.settings)
        return response

    async def batch(
        self, request: RequestInfo, scope: Scope, receive: Receive, track_id: str
    ) -> Response:
        """``/<trackId>/batch``: text/plain, one request per line; all lines stored or none."""
        media = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
        if media != "text/plain":
            return text(415, "a batch is text/plain, one request per line")
        try:
            body = await read_body(receive, self.settings.max_body_bytes)
        except TooLarge:
            return text(413, f"batch larger than {self.settings.max_body_bytes} bytes")
        try:
            decoded = body.decode("utf-8")
        except UnicodeDecodeError:
            return text(400, "batch is not UTF-8 text")
        lines = [line for line in decoded.splitlines() if line.strip()]
        if len(lines) > wire.MAX_BATCH_LINES:
            return text(413, f"more than {wire.MAX_BATCH_LINES} lines")
        parsed: list[wire.Params] = []
        for number, line in enumerate(lines, 1):
            try:
                parsed.append(wire.parse_batch_line(line))
            except wire.WireError as exc:
                return text(400, f"line {number}: {exc}; nothing was stored")
        decision = request.decision
        # No new identifiers here: a batch may come from a server for many visitors.
        cookie_eid = request.cookies.ever_id
        cookie_sid = request.cookies.session_id
        hits = []
        for params in parsed:
            anonymous = _anonymous(decision.anonymous, params)
            line_eid = next((v for k, v in params if k == "eid"), None)
            eid = cookie_eid if valid_ever_id(cookie_eid) else line_eid
            identity = IdentityState(
                ever_id=eid if valid_ever_id(eid) and not anonymous else None,
                session_id=cookie_sid if valid_session_id(cookie_sid) and not anonymous else None,
            )
            hits.append(
                make_hit(
                    self.settings, request, track_id, params, anonymous=anonymous, identity=identity
                )
            )
        if not await self._store(hits):
            return text(503, "could not store the batch; try again")
        return Response(status_code=204, headers=NO_STORE)

    async def _store(self, hits: list[Hit]) -> bool:
        try:
            await self.sink.write(hits)
        except Exception:
            # The client is told to retry; the hit is not silently dropped.
            logger.exception("pixel sink failed to write %d hit(s)", len(hits))
            return False
        return True


def _anonymous(visitor_anonymous: bool, params: Sequence[tuple[str, str]]) -> bool:
    """A request can only become more private here: one its sender marked ``nc=1`` stays
    anonymous even from an identified visitor (a page script honouring GPC, or a relay)."""
    return visitor_anonymous or ("nc", "1") in params
