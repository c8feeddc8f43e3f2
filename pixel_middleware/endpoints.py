"""The endpoints under the prefix: consent toggles, status, browser script, hit collector.

Each handler checks its input first and answers a 4xx with a short plain-text reason; nothing a
client sends can reach a 500. Rules come from the pure modules; this file does the I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio.to_thread
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from . import wire
from .cookies import CookieWrite, set_cookie_lines
from .decision import Action, decide_present
from .hits import make_hit
from .identity import (
    IdentityState,
    anonymous_cookie_write,
    identity_writes,
    plan_identity,
    valid_ever_id,
    valid_session_id,
)
from .request_info import RequestInfo, read_request
from .resources import static_dir
from .settings import PixelSettings
from .sinks import Hit, Sink
from .toggles import ToggleError, verify

logger = logging.getLogger("pixel_middleware")

# The 43-byte transparent GIF Mapp's track servers answer with.
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
_TRACK_PATH_RE = re.compile(r"^/([0-9,]+)/(wt|batch)$")
_MAX_FORM_BYTES = 8_192
_NO_STORE = {"cache-control": "no-store"}


class _TooLarge(Exception):
    pass


def _text(status: int, reason: str, **headers: str) -> Response:
    return PlainTextResponse(reason + "\n", status_code=status, headers={**_NO_STORE, **headers})


async def _read_body(receive: Receive, limit: int) -> bytes:
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
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _origin_host(url: str) -> str | None:
    try:
        return urlsplit(url).netloc.lower() or None
    except ValueError:
        return None


def cross_site(request: RequestInfo) -> bool:
    """Whether the browser tells us this request was started by another site."""
    if (request.header("sec-fetch-site") or "").strip().lower() == "cross-site":
        return True
    host = (request.host or "").lower()
    origin = request.header("origin")
    if origin is not None and (origin.strip() == "null" or _origin_host(origin) != host):
        return True
    referer = request.header("referer")
    return referer is not None and _origin_host(referer) != host


class Endpoints:
    """The ASGI app mounted at ``settings.prefix`` by the middleware."""

    def __init__(self, settings: PixelSettings, sink: Sink) -> None:
        self.settings = settings
        self.sink = sink
        self._script = (static_dir() / "pixel.js").read_bytes()
        self._script_etag = '"' + hashlib.sha256(self._script).hexdigest()[:16] + '"'

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handle(scope, receive)
        await response(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive) -> Response:
        request = read_request(scope, self.settings)
        sub = request.path[len(self.settings.prefix) :]
        if sub in ("/optout", "/optin"):
            action: Action = "optout" if sub == "/optout" else "optin"
            return await self.toggle(action, request, scope, receive)
        if sub == "/status":
            return self.status(request)
        if sub == "/pixel.js":
            return self.script(request)
        if sub == "/report":
            return await self.report(request, scope)
        match = _TRACK_PATH_RE.match(sub)
        if match:
            track_id, kind = match.groups()
            if track_id not in (self.settings.track_id, *self.settings.track_ids):
                return _text(404, "unknown track id")
            if kind == "wt":
                return await self.single_hit(request, scope, track_id)
            return await self.batch(request, scope, receive, track_id)
        return _text(404, "not found")

    # ------------------------------------------------------------------ consent

    async def toggle(
        self, action: Action, request: RequestInfo, scope: Scope, receive: Receive
    ) -> Response:
        s = self.settings
        if not s.enable_anonymous_function:
            return _text(404, "the anonymous function is not enabled on this site")
        if request.method not in ("GET", "POST"):
            return _text(405, "use GET or POST", allow="GET, POST")
        if cross_site(request):
            return _text(403, "consent can only be changed from this site")
        params = dict(parse_qsl(_query(scope), keep_blank_values=True))
        if request.method == "POST":
            try:
                body = await _read_body(receive, _MAX_FORM_BYTES)
            except _TooLarge:
                return _text(413, "form too large")
            params.update(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
        try:
            toggle = verify(
                s,
                action,
                token=params.get("token"),
                next_url=params.get("next"),
                duration=params.get("duration"),
            )
        except ToggleError as exc:
            return _text(400, f"toggle refused: {exc}")
        before = request.decision
        after = decide_present(s, toggle.write_cookie, gpc=request.gpc)
        # A changed choice starts a new visit: new everID and session, as Snowplow does.
        identity = plan_identity(
            request.cookies,
            anonymous=after.anonymous,
            rotate=before.anonymous != after.anonymous,
        )
        response = Response(status_code=303, headers={"location": toggle.next, **_NO_STORE})
        choice = anonymous_cookie_write(s, write=toggle.write_cookie, minutes=toggle.minutes)
        self._add_cookies(response, request, [choice, *identity_writes(s, identity)])
        return response

    def status(self, request: RequestInfo) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _text(405, "use GET", allow="GET, HEAD")
        decision = request.decision
        body: dict[str, Any] = {
            "enabled": self.settings.enable_anonymous_function,
            "mode": self.settings.mode,
            "anonymous": decision.anonymous,
            "choiceMade": decision.choice_made,
            "reason": decision.reason,
            "gpc": request.gpc,
        }
        return JSONResponse(body, headers={**_NO_STORE, "vary": "Cookie"})

    # ------------------------------------------------------------------ script

    def script(self, request: RequestInfo) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _text(405, "use GET", allow="GET, HEAD")
        headers = {"cache-control": "public, max-age=3600", "etag": self._script_etag}
        if request.header("if-none-match") == self._script_etag:
            return Response(status_code=304, headers=headers)
        return Response(self._script, media_type="text/javascript; charset=utf-8", headers=headers)

    # ------------------------------------------------------------------ report

    async def report(self, request: RequestInfo, scope: Scope) -> Response:
        """The HTML report; exists only when ``report_token`` and a store are configured."""
        token, store = self.settings.report_token, self.settings.store
        if token is None or store is None:
            return _text(404, "not found")
        if request.method not in ("GET", "HEAD"):
            return _text(405, "use GET", allow="GET, HEAD")
        params = dict(parse_qsl(_query(scope)))
        given = params.get("token") or ""
        auth = request.header("authorization") or ""
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode("latin-1", "replace"), token.encode()):
            return _text(401, "report token missing or wrong", **{"www-authenticate": "Bearer"})
        days_text = params.get("days", "30")
        if not days_text.isdigit() or not 1 <= int(days_text) <= 366:
            return _text(400, "days must be a whole number from 1 to 366")
        days = int(days_text)
        page = await anyio.to_thread.run_sync(_render_report, store, days)
        return HTMLResponse(
            page,
            headers={
                **_NO_STORE,
                # The page has no script and loads nothing: say so to the browser.
                "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
                "referrer-policy": "no-referrer",
            },
        )

    # ------------------------------------------------------------------ hits

    async def single_hit(self, request: RequestInfo, scope: Scope, track_id: str) -> Response:
        """``/<trackId>/wt``: one request; identified visitors without an everID get one here."""
        if request.method not in ("GET", "POST"):
            return _text(405, "use GET or POST", allow="GET, POST")
        raw = _query(scope)
        if len(raw) > wire.MAX_REQUEST_CHARS:
            return _text(414, f"request longer than {wire.MAX_REQUEST_CHARS} characters")
        try:
            params = wire.parse_query(raw)
        except wire.WireError as exc:
            return _text(400, f"not a pixel request: {exc}")
        decision = request.decision
        identity = plan_identity(request.cookies, anonymous=decision.anonymous)
        anonymous = _anonymous(decision.anonymous, params)
        hit = make_hit(
            self.settings, request, track_id, params, anonymous=anonymous, identity=identity
        )
        if not await self._store([hit]):
            return _text(503, "could not store the hit; try again")
        response = Response(GIF, media_type="image/gif", headers=_NO_STORE)
        self._add_cookies(response, request, identity_writes(self.settings, identity))
        return response

    async def batch(
        self, request: RequestInfo, scope: Scope, receive: Receive, track_id: str
    ) -> Response:
        """``/<trackId>/batch``: text/plain, one request per line; all lines stored or none."""
        if request.method != "POST":
            return _text(405, "use POST", allow="POST")
        media = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
        if media != "text/plain":
            return _text(415, "a batch is text/plain, one request per line")
        try:
            body = await _read_body(receive, self.settings.max_body_bytes)
        except _TooLarge:
            return _text(413, f"batch larger than {self.settings.max_body_bytes} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return _text(400, "batch is not UTF-8 text")
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) > wire.MAX_BATCH_LINES:
            return _text(413, f"more than {wire.MAX_BATCH_LINES} lines")
        parsed: list[wire.Params] = []
        for number, line in enumerate(lines, 1):
            try:
                parsed.append(wire.parse_batch_line(line))
            except wire.WireError as exc:
                return _text(400, f"line {number}: {exc}; nothing was stored")
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
            return _text(503, "could not store the batch; try again")
        return Response(status_code=204, headers=_NO_STORE)

    def _add_cookies(
        self, response: Response, request: RequestInfo, writes: Sequence[CookieWrite]
    ) -> None:
        lines = set_cookie_lines(writes, secure=request.secure, domain=self.settings.cookie_domain)
        response.raw_headers.extend((b"set-cookie", line) for line in lines)

    async def _store(self, hits: list[Hit]) -> bool:
        try:
            await self.sink.write(hits)
        except Exception:
            # The client is told to retry; the hit is not silently dropped.
            logger.exception("pixel sink failed to write %d hit(s)", len(hits))
            return False
        return True


def _render_report(store: str, days: int) -> str:
    from .report import html
    from .report.store import days_ago, open_store
    from .report.summary import summarize

    reader = open_store(store)
    try:
        return html.render(summarize(reader.rows(days_ago(days - 1))), days=days)
    finally:
        reader.close()


def _anonymous(visitor_anonymous: bool, params: Sequence[tuple[str, str]]) -> bool:
    """A request can only become more private here: one its sender marked ``nc=1`` stays
    anonymous even from an identified visitor (a page script honouring GPC, or a relay)."""
    return visitor_anonymous or ("nc", "1") in params


def _query(scope: Scope) -> str:
    raw: bytes = scope.get("query_string", b"")
    return raw.decode("latin-1")
