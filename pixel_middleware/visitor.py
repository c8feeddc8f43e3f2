"""The per-request visitor object that applications use (``request.state.pixel``).

Pure: built by the middleware from the request, read back by it when the response starts, so that
what the application did during the request (``identify``, ``anonymize``) decides the cookies.
"""

from __future__ import annotations

import time
from typing import Any

from . import wire
from .cookies import PixelCookies
from .decision import Decision
from .identity import IdentityState, plan_for
from .request_info import RequestInfo
from .settings import PixelSettings


class Visitor:
    """What the middleware knows about this request's visitor, and the page data to track.

    ``anonymous`` follows the Smart Pixel's rule (see the README's truth table). Parameter values
    are plain text; encoding for the wire happens when a request is built.
    """

    __slots__ = (
        "_cookies",
        "_customer",
        "_gpc",
        "_identity",
        "_page",
        "_page_name",
        "_page_url",
        "_referrer",
        "_time_ms",
        "decision",
        "receipt_id",
        "settings",
    )

    def __init__(
        self,
        settings: PixelSettings,
        decision: Decision,
        cookies: PixelCookies,
        *,
        page_name: str,
        page_url: str | None,
        referrer: str = "0",
        time_ms: int = 0,
        gpc: bool = False,
    ) -> None:
        self.settings = settings
        self.decision = decision
        self._cookies = cookies
        self._identity = plan_for(settings, cookies, anonymous=decision.anonymous)
        self._page_name = page_name
        self._page_url = page_url
        self._referrer = referrer
        self._time_ms = time_ms
        self._gpc = gpc
        self._page: dict[str, str] = {}
        self._customer: dict[str, str] = {}
        # The id of the visitor's last consent receipt (the ``pixel_receipt`` cookie, or the
        # receipt this request writes), to show on a privacy page; None without one. Not an
        # identifier: it names a choice, and no stored hit holds it.
        self.receipt_id: str | None = None

    def __repr__(self) -> str:
        # Never the everID: reprs end up in logs and error pages.
        return f"<Visitor anonymous={self.anonymous} reason={self.decision.reason!r}>"

    @property
    def anonymous(self) -> bool:
        return self.decision.anonymous

    @property
    def ever_id(self) -> str | None:
        """The everID, or None for an anonymous visitor. Never render it into a page."""
        return self._identity.ever_id

    @property
    def session_id(self) -> str | None:
        return self._identity.session_id

    @property
    def identity(self) -> IdentityState:
        return self._identity

    @property
    def page_name(self) -> str:
        return self._page_name

    def page(self, name: str | None = None, **params: Any) -> None:
        """Set the page name and page parameters (``cp1=…``, ``cg1=…``, ``is=…``)."""
        if name is not None:
            self._page_name = str(name)
        self._page.update(_checked(params))

    def customer(self, id: str | None = None, **params: Any) -> None:
        """Set customer data: ``id`` becomes ``cd``, keywords like ``uc5`` are sent as given."""
        if id is not None:
            self._customer["cd"] = str(id)
        self._customer.update(_checked(params))

    def identify(self, customer_id: str) -> None:
        """Mark the logged-in customer (``cd``). Consent is unchanged: anonymous stays anonymous."""
        self.customer(id=customer_id)

    def anonymize(self) -> None:
        """Forget who this is (logout): a new everID and session (or, for an anonymous visitor
        with anonymous_session on, a new temporary session), and no customer data.

        Requests built before the call keep the old identity; everything after uses the new one.
        """
        self._customer.clear()
        self._identity = plan_for(
            self.settings, self._cookies, anonymous=self.anonymous, rotate=True
        )

    def data(self) -> list[tuple[str, str]]:
        """The page and customer parameters this visitor's requests may carry (plain text)."""
        pairs = [*self._page.items(), *self._customer.items()]
        if not self.anonymous:
            return pairs
        suppressed = self.settings.suppress_parameter
        return [(k, v) for k, v in pairs if k not in suppressed and not wire.is_identifier(k)]

    def hit_endpoint(self) -> str:
        """Where pixel requests for this site go: first-party unless configured otherwise."""
        return hit_endpoint(self.settings)

    def page_params(self, *, with_identity: bool = False) -> wire.Params:
        """This page's request as raw wire pairs, the visitor's rules applied."""
        return self._page_params(self._time_ms, with_identity=with_identity)

    def _page_params(self, time_ms: int, *, with_identity: bool) -> wire.Params:
        params = wire.page_request(
            page_name=self._page_name,
            data=self.data(),
            time_ms=time_ms,
            referrer=self._referrer,
            page_url=self._page_url,
        )
        ever_id = self.ever_id if with_identity else None
        return wire.enforce(params, self.settings, anonymous=self.anonymous, ever_id=ever_id)

    def pixel_url(self, *, with_identity: bool = False) -> str:
        """The page request for this page, as the visitor's state allows it.

        Without ``with_identity`` it holds no everID (the first-party endpoint adds it from the
        cookie), so it is safe to put into HTML. ``with_identity=True`` adds ``eid`` for an
        identified visitor, for server-to-server sending only.
        """
        query = wire.encode(self.page_params(with_identity=with_identity))
        return f"{self.hit_endpoint()}?{query}"

    def pixel_url_parts(self) -> tuple[str, str]:
        """``pixel_url()`` cut where the time goes: ``before + str(time_ms) + after``."""
        query = wire.encode(self._page_params(_TIME_MARK, with_identity=False))
        before, _, after = f"{self.hit_endpoint()}?{query}".partition(f",{_TIME_MARK},")
        return before + ",", "," + after

    @property
    def time_ms(self) -> int:
        """When the page was requested, in milliseconds since the epoch (the ``p`` time field)."""
        return self._time_ms

    def page_key(self) -> tuple[object, ...] | None:
        """Everything the page's snippet depends on but the time, or None when it holds
        something of this visitor alone (customer data, a referrer from another site), which no
        cache should keep."""
        if self._customer or self._referrer not in ("0", "1"):
            return None
        return (
            self._page_name,
            tuple(self._page.items()),
            self.decision,
            self._gpc,
            self._referrer,
            self._page_url,
        )

    def config(self) -> dict[str, Any]:
        """The browser script's configuration: settings and page data, and no identifier."""
        return {
            **static_config(self.settings),
            # Per-request values last: the compiled snippet encodes only these (snippet.py).
            "anonymous": self.anonymous,
            # Set when a consent manager decided: the browser script then follows the server.
            "source": self.decision.source,
            "tracked": self.tracked,
            "gpc": self._gpc,
            "page": {"name": self._page_name, "params": [list(p) for p in self.data()]},
        }

    @property
    def tracked(self) -> bool:
        """False for a visitor who opted out of tracking altogether (``webtrekkOptOut``)."""
        return self.decision.tracked

    @property
    def gpc(self) -> bool:
        """Whether the browser sent ``Sec-GPC: 1``."""
        return self._gpc


def static_config(settings: PixelSettings) -> dict[str, Any]:
    """The part of the browser script's config that depends only on the settings."""
    s = settings
    return {
        "trackId": s.track_id,
        "endpoint": hit_endpoint(s),
        "statusUrl": f"{s.prefix}/status",
        "anonymizeUrl": f"{s.prefix}/anonymize",
        "receiptUrl": f"{s.prefix}/receipt",
        "userIdentification": {
            "enableAnonymousFunction": s.enable_anonymous_function,
            "anonymousCookieName": s.anonymous_cookie_name,
            "anonymousOptIn": s.anonymous_opt_in,
            "suppressParameter": list(s.suppress_parameter),
        },
        # Only for requests sent straight to Mapp: no first-party endpoint adds eid then.
        "everIdCookie": s.ever_id_cookie_name if s.send_to_track_domain else None,
        "anonymousCookieMinutes": s.anonymous_cookie_minutes,
        "honorGlobalPrivacyControl": s.honor_global_privacy_control,
        "cookieDomain": s.cookie_domain,
        "optOutName": s.opt_out_name,
        "anonymousQueryAllowlist": list(s.anonymous_query_allowlist),
        # With server-side page views the server counted this page already.
        "pageRequest": not s.server_side_page_views,
    }


_TIME_MARK = -999_999  # quoted values cannot hold ",-999999,": only the time field can


def hit_endpoint(settings: PixelSettings) -> str:
    """Where pixel requests for this site go: first-party unless configured otherwise."""
    if settings.send_to_track_domain:
        return f"https://{settings.track_domain}/{settings.track_id}/wt"
    return f"{settings.prefix}/{settings.track_id}/wt"


def _checked(params: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, value in params.items():
        wire.check_data_name(name)
        out[name] = "" if value is None else str(value)
    return out


def visitor_for(request: RequestInfo) -> Visitor:
    """A page request's visitor, with the Smart Pixel's default page name (host+path)."""
    host = request.host or ""
    path = request.path
    return Visitor(
        request.settings,
        request.decision,
        request.cookies,
        page_name=host + path,
        page_url=f"{request.scheme}://{host}{path}" if host else None,
        referrer=wire.referrer_field(request.referer, host or None),
        time_ms=time.time_ns() // 1_000_000,
        gpc=request.gpc,
    )
