"""The consent endpoints: the opt-out / opt-in toggles and the JSON status.

A toggle changes the choice cookie and, with it, the identifier cookies. It needs a valid signed
token (the link or form the site rendered) and proof that this visitor, on this site, sent it:
the browser's own word that the request is same-origin (``Sec-Fetch-Site``, ``Origin``,
``Referer``). A request that carries none, such as a harvested link followed from a page with
``Referrer-Policy: no-referrer`` over plain http, changes nothing: it gets a small confirmation
page whose button submits the same toggle as a POST. That page's own referrer policy makes the
POST carry this site's ``Origin``; over https a double-submit token in a ``__Host-`` cookie is
accepted as well, for browsers that still send nothing. (Over plain http a sibling subdomain can
plant any cookie for the parent domain, so there a cookie proves nothing.) The status endpoint
lets a cached page ask for the visitor's state.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope

from .cookies import CookieWrite, read_cookies, set_cookie_lines
from .decision import Action, decide_present
from .identity import anonymous_cookie_write, identity_writes, plan_for
from .receipts import Receipt, ReceiptAction, new_receipt, read_receipt_cookie, receipt_cookie
from .request_info import RequestInfo
from .resources import environment
from .responses import NO_STORE, TooLarge, query, read_body, text
from .settings import PixelSettings
from .sinks.base import Sink, write_receipts
from .toggles import Toggle, ToggleError, verify

logger = logging.getLogger("pixel_middleware")

_MAX_FORM_BYTES = 8_192
# The double-submit cookie: random, HttpOnly, SameSite=Strict, so no other site's request
# carries it and no script can copy it into a forged form; "__Host-" (https only: Secure, no
# Domain), so a sibling subdomain cannot plant one of its own.
CONFIRM_COOKIE = "__Host-pixel_confirm"
_CONFIRM_MINUTES = 10

Origin = Literal["same-origin", "cross-site", "unknown"]


def _origin_host(url: str) -> str | None:
    try:
        return urlsplit(url).netloc.lower() or None
    except ValueError:
        return None


def request_origin(request: RequestInfo) -> Origin:
    """What the browser says about where this request was started.

    ``same-origin`` needs positive evidence: ``Sec-Fetch-Site: same-origin``, or an ``Origin`` or
    ``Referer`` naming this host. ``cross-site`` is any evidence of another origin (a sibling
    subdomain included). ``unknown``: the browser said nothing either way.
    """
    host = (request.host or "").lower()
    fetch_site = (request.header("sec-fetch-site") or "").strip().lower()
    if fetch_site in ("cross-site", "same-site"):
        return "cross-site"
    origin = request.header("origin")
    if origin is not None and origin.strip() != "null":
        return "same-origin" if _origin_host(origin) == host else "cross-site"
    referer = request.header("referer")
    if referer is not None:
        return "same-origin" if _origin_host(referer) == host else "cross-site"
    # Origin: null (a no-referrer policy sends it on a POST) is no evidence either way.
    return "same-origin" if fetch_site == "same-origin" else "unknown"


class Consent:
    """``/optout``, ``/optin``, ``/status``, ``/anonymize`` and ``/receipt`` under the prefix.

    ``sink`` keeps the consent receipts of the choices made here (see
    :mod:`pixel_middleware.receipts`); without one, none are written.
    """

    def __init__(self, settings: PixelSettings, sink: Sink | None = None) -> None:
        self.settings = settings
        self.sink = sink

    async def optout(self, request: RequestInfo, scope: Scope, receive: Receive) -> Response:
        return await self.toggle("optout", request, scope, receive)

    async def optin(self, request: RequestInfo, scope: Scope, receive: Receive) -> Response:
        return await self.toggle("optin", request, scope, receive)

    async def toggle(
        self, action: Action, request: RequestInfo, scope: Scope, receive: Receive
    ) -> Response:
        s = self.settings
        if not s.enable_anonymous_function:
            return text(404, "the anonymous function is not enabled on this site")
        origin = request_origin(request)
        if origin == "cross-site":
            return text(403, "consent can only be changed from this site")
        params = dict(parse_qsl(query(scope), keep_blank_values=True))
        if request.method == "POST":
            try:
                body = await read_body(receive, _MAX_FORM_BYTES)
            except TooLarge:
                return text(413, "form too large")
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
            return text(400, f"toggle refused: {exc}")
        if origin != "same-origin" and not self._confirmed(request, params):
            return self._confirmation_page(action, request, params)
        return await self._apply(toggle, request)

    async def _apply(self, toggle: Toggle, request: RequestInfo) -> Response:
        s = self.settings
        before = request.decision
        after = decide_present(s, toggle.write_cookie, gpc=request.gpc)
        # A changed choice starts a new visit: new everID and session, as Snowplow does.
        identity = plan_for(
            s,
            request.cookies,
            anonymous=after.anonymous,
            rotate=before.anonymous != after.anonymous,
        )
        response = Response(status_code=303, headers={"location": toggle.next, **NO_STORE})
        choice = anonymous_cookie_write(s, write=toggle.write_cookie, minutes=toggle.minutes)
        writes = [choice, *identity_writes(s, identity)]
        writes += await self._receipt(request, toggle.action, "toggle")
        add_cookies(response, request, writes, s)
        return response

    async def _receipt(
        self, request: RequestInfo, action: ReceiptAction, source: str
    ) -> list[CookieWrite]:
        """Write a receipt of ``action``; the receipt cookie that hands its id to the visitor,
        or nothing when no receipt was kept (no store keeps them, or it failed).

        The cookie keeps the code of a consent manager's answer it already held, so that a
        toggle is not mistaken for a changed answer of that manager on the next page.
        """
        receipt = new_receipt(self.settings, action, source, gpc=request.gpc)
        if not await self.keep(receipt):
            return []
        previous = read_receipt_cookie(request.cookies.receipt)
        return [receipt_cookie(self.settings, receipt.receipt_id, previous.answer)]

    async def keep(self, receipt: Receipt) -> bool:
        """Hand ``receipt`` to the sink; whether it was kept. A store that cannot take it is
        logged at ERROR, and the choice still takes effect: a visitor's opt-out never waits on
        the store."""
        if self.sink is None:
            return False
        try:
            return await write_receipts(self.sink, [receipt])
        except Exception:
            logger.exception("consent receipt %s could not be kept", receipt.receipt_id)
            return False

    async def receipt(self, request: RequestInfo, scope: Scope, receive: Receive) -> Response:
        """``POST /receipt``: the browser API changed the choice cookie (``setAnonymousCookie``,
        ``deleteAnonymousCookie``) and says so. The receipt records the cookie this request
        carries, not anything the caller claims, so a forged call can only record the truth;
        only this site's own pages may ask."""
        s = self.settings
        if not s.enable_anonymous_function:
            return text(404, "the anonymous function is not enabled on this site")
        if request_origin(request) != "same-origin":
            return text(403, "only this site's pages can record a choice")
        cookies = request.cookies
        if not cookies.readable:
            return text(400, "the Cookie header is too large to read")
        present = bool(cookies.anonymous)
        # The cookie means "anonymous" in opt-out mode and "identified" in opt-in mode.
        action: ReceiptAction = "optout" if present != s.anonymous_opt_in else "optin"
        response = Response(status_code=204, headers=NO_STORE)
        add_cookies(response, request, await self._receipt(request, action, "browser"), s)
        return response

    def _confirmed(self, request: RequestInfo, params: dict[str, str]) -> bool:
        """An https POST whose form token equals this visitor's ``__Host-`` double-submit cookie."""
        if request.method != "POST" or not request.https:
            return False
        given = params.get("confirm", "")
        found = read_cookies(
            request.cookie_header,
            (CONFIRM_COOKIE,),
            max_length=self.settings.max_cookie_header_bytes,
        )
        kept = (found or {}).get(CONFIRM_COOKIE, "")
        return bool(given and kept) and hmac.compare_digest(given.encode(), kept.encode())

    def _confirmation_page(
        self, action: Action, request: RequestInfo, params: dict[str, str]
    ) -> Response:
        """Ask the visitor to confirm with a button; nothing changes until they do."""
        nonce = secrets.token_urlsafe(16)
        confirm = secrets.token_urlsafe(24)
        fields: dict[str, str] = {
            k: params[k] for k in ("next", "duration", "token") if k in params
        }
        html = (
            environment()
            .get_template("pixel/confirm.html")
            .render(
                action=action,
                url=f"{self.settings.prefix}/{action}?" + urlencode(fields),
                confirm=confirm,
                nonce=nonce,
            )
        )
        response = HTMLResponse(
            html,
            headers={
                **NO_STORE,
                # Nothing to load, nothing to frame: a click on this page is the visitor's own.
                "content-security-policy": (
                    f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; "
                    "frame-ancestors 'none'"
                ),
                "x-frame-options": "DENY",
                "referrer-policy": "same-origin",
            },
        )
        if request.https:
            cookie = CookieWrite(
                CONFIRM_COOKIE, confirm, _CONFIRM_MINUTES * 60, httponly=True, samesite="Strict"
            )
            response.raw_headers.append((b"set-cookie", cookie.line(secure=True, domain=None)))
        return response

    async def anonymize(self, request: RequestInfo, scope: Scope, receive: Receive) -> Response:
        """Logout from the browser (``pixelMiddleware.anonymize()``): what ``visitor.anonymize()``
        does on the server. A new everID and session for an identified visitor, a new temporary
        session for an anonymous one; the choice itself is unchanged. Only this site's own pages
        may ask: without same-origin evidence nothing changes.
        """
        if request_origin(request) != "same-origin":
            return text(403, "only this site's pages can reset the visitor")
        decision = request.decision
        response = Response(status_code=204, headers=NO_STORE)
        if decision.tracked:
            identity = plan_for(
                self.settings, request.cookies, anonymous=decision.anonymous, rotate=True
            )
            add_cookies(response, request, identity_writes(self.settings, identity), self.settings)
        return response

    async def status(self, request: RequestInfo, scope: Scope, receive: Receive) -> Response:
        decision = request.decision
        body: dict[str, Any] = {
            "enabled": self.settings.enable_anonymous_function,
            "mode": self.settings.mode,
            "anonymous": decision.anonymous,
            "choiceMade": decision.choice_made,
            "reason": decision.reason,
            "gpc": request.gpc,
        }
        return JSONResponse(body, headers={**NO_STORE, "vary": "Cookie"})


def add_cookies(
    response: Response,
    request: RequestInfo,
    writes: Sequence[CookieWrite],
    settings: PixelSettings,
) -> None:
    """Append the ``Set-Cookie`` lines of ``writes`` to ``response``."""
    lines = set_cookie_lines(writes, secure=request.secure, domain=settings.cookie_domain)
    response.raw_headers.extend((b"set-cookie", line) for line in lines)
