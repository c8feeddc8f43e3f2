"""The hit collector: Mapp's track endpoints, so that Mapp's own clients send here unchanged.

Served paths (under the prefix, or at the root with :mod:`pixel_middleware.standalone`):

- ``/<trackId>/wt`` (GET, or POST with the query as body), ``/<trackId>/wt.pl`` and the Smart
  Pixel's obfuscated ``/<trackId>/wt<letters>``: one hit, answered with the 43-byte GIF.
- ``/<trackId>/batch`` (POST): one request per line, as Mapp's server libraries send it, or the
  Smart Pixel's beacon (``?p=…``). Answered ``200``, the only status every Mapp client counts as
  success (the PHP consumers resend on anything else).
- ``/<trackId>/optout``: the Smart Pixel's full tracking opt-out; answered with the GIF.

What is refused, and why (everything else is stored, sanitised): a request with no ``p``
parameter (not a hit), an unknown track id (not this site's), and requests over the size limits
(30,720 characters a hit, ``max_body_bytes`` and 10,000 lines a batch). A batch line that is not a
hit is skipped and logged; the rest of its batch is stored. A hit sent again (same content, same
visitor) is stored once. Every hit is made to obey its visitor's state (``wire.enforce``,
``hits.make_hit``) before it reaches a sink.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from urllib.parse import parse_qsl, unquote

from starlette.responses import Response
from starlette.types import Receive, Scope

from . import wire
from .addresses import in_networks
from .consent import add_cookies
from .cookies import CookieWrite
from .hits import dedup_id, make_hit
from .identity import (
    IdentityState,
    identity_writes,
    marker_write,
    plan_for,
    plan_identity,
    valid_ever_id,
)
from .request_info import RequestInfo
from .responses import GIF, NO_STORE, TooLarge, query, read_body, refused_hit, text
from .settings import PixelSettings
from .sinks import Hit, Sink, write_durably

logger = logging.getLogger("pixel_middleware")

# <ids>/<endpoint>: "wt", the Smart Pixel's obfuscated "wt<letters>", classic "wt.pl", "batch",
# "optout". The ids may be a comma list, as the Smart Pixel sends several track ids.
TRACK_PATH_RE = re.compile(
    r"^/([0-9]{15}(?:,[0-9]{15})*)/(wt(?:\.pl|[A-Za-z0-9_-]{1,32})?|batch|optout)$"
)


class Collector:
    """The track endpoints; ``handle`` takes the part of the path after the prefix."""

    def __init__(self, settings: PixelSettings, sink: Sink) -> None:
        self.settings = settings
        self.sink = sink
        self._track_ids = frozenset((settings.track_id, *settings.track_ids))

    def route(self, sub: str) -> tuple[str, str] | None:
        """``(track ids, endpoint kind)`` for a collector path, or None."""
        match = TRACK_PATH_RE.match(sub)
        if match is None:
            return None
        track_id, endpoint = match.groups()
        kind = endpoint if endpoint in ("batch", "optout") else "wt"
        return track_id, kind

    def known(self, track_id: str) -> bool:
        return track_id in self._track_ids

    # ------------------------------------------------------------------ one hit

    async def single_hit(
        self, request: RequestInfo, scope: Scope, receive: Receive, track_id: str
    ) -> Response:
        """One hit; an identified visitor without an everID gets one in the answer."""
        raw = query(scope)
        if request.method == "POST" and not raw:
            try:
                body = await read_body(receive, wire.MAX_REQUEST_CHARS * 4)
            except TooLarge:
                return refused_hit(413, f"request longer than {wire.MAX_REQUEST_CHARS} characters")
            raw = body.decode("latin-1")
        if len(raw) > wire.MAX_REQUEST_CHARS:
            return refused_hit(414, f"request longer than {wire.MAX_REQUEST_CHARS} characters")
        try:
            params = wire.parse_query(raw)
        except wire.WireError as exc:
            return refused_hit(400, f"not a pixel request: {exc}")
        hit, identity = self._browser_hit(request, track_id, params, raw)
        if hit is not None and not await self._store([hit]):
            return text(503, "could not store the hit; try again")
        response = Response(GIF, media_type="image/gif", headers=NO_STORE)
        if identity is not None:
            add_cookies(response, request, self._writes(identity, hit is not None), self.settings)
        return response

    def _browser_hit(
        self, request: RequestInfo, track_id: str, params: wire.Params, raw: str
    ) -> tuple[Hit | None, IdentityState | None]:
        """The hit a browser sent, under the visitor's cookies; and the identifier cookies.

        A hit from another site arrives without the SameSite=Lax choice cookie, so the visitor's
        choice cannot be known: it is stored as anonymous and no cookie is touched. A visitor who
        opted out of tracking altogether is not stored at all.
        """
        decision = request.decision
        cross_site = (request.header("sec-fetch-site") or "").strip().lower() == "cross-site"
        if not decision.tracked:
            return None, plan_identity(request.cookies, anonymous=True)
        if request.header("sp-anonymous") is not None:
            # Snowplow's server-side anonymisation: whatever the cookies say, this request is
            # stored with no address, no browser, no identifier, and changes no cookie.
            return self._sp_anonymous_hit(request, track_id, params, raw), None
        anonymous = decision.anonymous or cross_site or wire.sender_marked_anonymous(params)
        identity = plan_for(self.settings, request.cookies, anonymous=anonymous)
        if not anonymous and _pixel_made_the_ever_id(params, identity.ever_id):
            identity = identity._replace(new_visitor=True)
        hit = make_hit(
            self.settings,
            request,
            track_id,
            params,
            anonymous=anonymous,
            identity=identity,
            hit_id=dedup_id(
                self.settings,
                track_id,
                raw,
                request.client_ip or "",
                request.header("user-agent") or "",
                request.cookies.ever_id or "",
            ),
        )
        return hit, None if cross_site else identity

    def _sp_anonymous_hit(
        self, request: RequestInfo, track_id: str, params: wire.Params, raw: str
    ) -> Hit:
        return make_hit(
            self.settings,
            request,
            track_id,
            params,
            anonymous=True,
            identity=IdentityState(ever_id=None, session_id=None),
            no_address=True,
            hit_id=dedup_id(self.settings, track_id, raw, request.client_ip or ""),
        )

    # ------------------------------------------------------------------ batches

    async def batch(
        self, request: RequestInfo, scope: Scope, receive: Receive, track_id: str
    ) -> Response:
        """One request per line, from a server library, a cron job or the Smart Pixel's beacon."""
        try:
            body = await read_body(receive, self.settings.max_body_bytes)
        except TooLarge:
            return text(413, f"batch larger than {self.settings.max_body_bytes} bytes")
        # Latin-1: every byte stays itself, and sanitising escapes it as that byte.
        lines = wire.batch_lines(body.decode("latin-1"))
        if len(lines) > wire.MAX_BATCH_LINES:
            return text(413, f"more than {wire.MAX_BATCH_LINES} lines")
        parsed: list[tuple[str, wire.Params]] = []
        skipped: list[str] = []
        for number, line in enumerate(lines, 1):
            try:
                parsed.append((line, wire.parse_batch_line(line)))
            except wire.WireError as exc:
                skipped.append(f"line {number}: {exc}")
        if skipped:
            logger.warning(
                "batch for %s: %d of %d line(s) are not pixel requests and were skipped (%s)",
                track_id,
                len(skipped),
                len(lines),
                "; ".join(skipped[:3]),
            )
        if lines and not parsed:
            return text(400, "no pixel request in the batch")
        identity: IdentityState | None = None
        if _from_browser(request):
            # The Smart Pixel's beacon: a browser's own hit, with the visitor's cookies.
            hits = []
            for line, params in parsed:
                hit, identity = self._browser_hit(request, track_id, params, line)
                if hit is not None:
                    hits.append(hit)
        elif request.header("sp-anonymous") is not None:
            hits = [self._sp_anonymous_hit(request, track_id, p, line) for line, p in parsed]
        else:
            hits = [self._server_hit(request, track_id, params, line) for line, params in parsed]
        # A server (a relay, Mapp's libraries) deletes its copy once answered: its batch is
        # answered only when stored or on disk. A browser's beacon is not resent: no wait.
        durable = not _from_browser(request)
        if hits and not await self._store(hits, durable=durable):
            return text(503, "could not store the batch; try again")
        response = Response(b"", status_code=200, media_type="text/plain", headers=NO_STORE)
        if identity is not None:
            add_cookies(response, request, self._writes(identity, bool(hits)), self.settings)
        return response

    def _server_hit(
        self, request: RequestInfo, track_id: str, params: wire.Params, line: str
    ) -> Hit:
        """A hit a server sent on behalf of one of its visitors.

        From a trusted sender (``trusted_senders``) the line says who the visitor is: its
        ``X-WT-IP`` and ``X-WT-UA`` become the row's address and browser, and it is identified
        unless marked ``nc=1``. From anyone else those parameters are not believed, and the
        request's own cookies decide, as for a browser.
        """
        trusted = in_networks(request.client_ip, self.settings.trusted_senders)
        if trusted:
            anonymous = wire.sender_marked_anonymous(params)
            visitor_ip = _address(wire.first_value(params, "x-wt-ip"))
            ua = wire.first_value(params, "x-wt-ua")
            visitor_ua = None if ua is None else unquote(ua, errors="replace")
        else:
            anonymous = request.decision.anonymous or wire.sender_marked_anonymous(params)
            visitor_ip = visitor_ua = None
            params = [(k, v) for k, v in params if not wire.param_key(k).startswith("x-wt-")]
        eid = wire.first_value(params, "eid")
        identity = IdentityState(
            ever_id=eid if valid_ever_id(eid) and not anonymous else None, session_id=None
        )
        return make_hit(
            self.settings,
            request,
            track_id,
            params,
            anonymous=anonymous,
            identity=identity,
            visitor_ip=visitor_ip,
            visitor_ua=visitor_ua,
            sender_speaks_for_visitor=trusted,
            hit_id=dedup_id(self.settings, track_id, line.split("?", 1)[-1]),
        )

    # ------------------------------------------------------------------ opt-out

    async def optout(
        self, request: RequestInfo, scope: Scope, receive: Receive, track_id: str
    ) -> Response:
        """The Smart Pixel's ``setTrackingOptOut()`` / ``deleteTrackingOptOut()`` request.

        The pixel keeps the choice in its own cookie; the server drops the identifier cookies of
        a visitor who opts out (``duration`` ≥ 0), and answers with the GIF the pixel waits for.
        """
        params = dict(parse_qsl(query(scope)))
        try:
            duration = int(params.get("duration", "0"))
        except ValueError:
            duration = 0
        response = Response(GIF, media_type="image/gif", headers=NO_STORE)
        if duration >= 0:
            writes = identity_writes(self.settings, plan_identity(request.cookies, anonymous=True))
            add_cookies(response, request, writes, self.settings)
        return response

    def _writes(self, identity: IdentityState, hit_stored: bool) -> list[CookieWrite]:
        """The identifier cookies, and the new-visit marker a stored hit has used up."""
        writes = identity_writes(self.settings, identity)
        marker = marker_write(self.settings, identity, hit_stored=hit_stored)
        return writes if marker is None else [*writes, marker]

    async def _store(self, hits: list[Hit], *, durable: bool = False) -> bool:
        try:
            if durable:
                await write_durably(self.sink, hits)
            else:
                await self.sink.write(hits)
        except Exception:
            # The client is told to retry; the hit is not silently dropped.
            logger.exception("pixel sink failed to write %d hit(s)", len(hits))
            return False
        return True


def _pixel_made_the_ever_id(params: wire.Params, ever_id: str | None) -> bool:
    """Whether the Smart Pixel made this everID itself on this hit: it says ``one=1`` and sends
    the very everID its cookie carries. (Behind HttpOnly identifiers it says ``one=1`` on every
    hit but cannot send the everID: that ``one`` is not believed.)"""
    return (
        ever_id is not None
        and wire.first_value(params, "one") == "1"
        and wire.first_value(params, "eid") == ever_id
    )


def _from_browser(request: RequestInfo) -> bool:
    """Whether a batch was sent by a browser (the Smart Pixel's beacon) rather than a server.

    Browsers say where a request comes from; Mapp's server libraries send neither header.
    """
    return bool((request.header("sec-fetch-site") or "").strip() or request.header("origin"))


def _address(raw: str | None) -> str | None:
    """A visitor address from ``X-WT-IP``, or None if it is not one."""
    if not raw:
        return None
    try:
        return str(ipaddress.ip_address(unquote(raw).strip()))
    except ValueError:
        return None
