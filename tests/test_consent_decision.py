"""A consent manager's cookie decides on the server, before any HTML is sent."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pytest

from .conftest import Site
from .helpers import TRACK_ID, injected_config, set_cookies

EID = "8123456789012345678"
SID = "1234567890123456789"
Q = "p=600,shop%2Fhome,1,1920x1080,24,1,1700000000000,0,1280x720,0"
ONETRUST_YES = "isGpcEnabled=0&datestamp=x&version=6.10.0&groups=" + quote("C0001:1,C0002:1")
ONETRUST_NO = "isGpcEnabled=0&datestamp=x&version=6.10.0&groups=" + quote("C0001:1,C0002:0")
COOKIEBOT_YES = quote(
    "{stamp:'x',necessary:true,preferences:false,statistics:true,marketing:false}"
)
COOKIEBOT_NO = quote(
    "{stamp:'x',necessary:true,preferences:false,statistics:false,marketing:false}"
)


def page(site: Site, cookie: str, **headers: str) -> tuple[dict[str, object], dict[str, object]]:
    r = site.client.get("/", headers={"cookie": cookie, **headers})
    config = injected_config(r.text)
    assert config is not None
    return config, set_cookies(r.headers.get_list("set-cookie"))  # type: ignore[return-value]


@pytest.mark.parametrize("opt_in", [False, True])
def test_onetrust_decides_before_the_choice_cookie(
    make_site: Callable[..., Site], opt_in: bool
) -> None:
    site = make_site(
        enable_anonymous_function=True, anonymous_opt_in=opt_in, consent_source=("onetrust",)
    )
    ids = f"wtstp_eid={EID}; wtstp_sid={SID}"
    # The manager says no: anonymous, identifiers expired, whatever miCookieOptOut says.
    config, cookies = page(site, f"OptanonConsent={ONETRUST_NO}; miCookieOptOut=1; {ids}")
    assert config["anonymous"] is True and config["source"] == "onetrust"
    assert cookies["wtstp_eid"].expired  # type: ignore[attr-defined]
    # The manager says yes: identified, even with GPC (an explicit choice).
    config, cookies = page(site, f"OptanonConsent={ONETRUST_YES}; {ids}", **{"sec-gpc": "1"})
    assert config["anonymous"] is False and config["source"] == "onetrust"
    # No manager cookie: the Smart Pixel rule with the choice cookie.
    config, _ = page(site, ids)
    assert config["anonymous"] is opt_in and config["source"] is None


def test_hits_follow_the_consent_manager(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True, consent_source=("cookiebot",))
    no = f"CookieConsent={COOKIEBOT_NO}; wtstp_eid={EID}; wtstp_sid={SID}"
    yes = f"CookieConsent={COOKIEBOT_YES}; wtstp_eid={EID}; wtstp_sid={SID}"
    site.client.get(f"/_pixel/{TRACK_ID}/wt?{Q}&cp1=no&eid={EID}", headers={"cookie": no})
    site.client.get(f"/_pixel/{TRACK_ID}/wt?{Q}&cp1=yes", headers={"cookie": yes})
    rows = {r["query"].rsplit("cp1=", 1)[1]: r for r in site.hits()}
    assert rows["no"]["anonymous"] and rows["no"]["ever_id"] is None and EID not in str(rows["no"])
    assert not rows["yes"]["anonymous"] and rows["yes"]["ever_id"] == EID


@pytest.mark.parametrize(
    "value", ["%%%", "x" * 20_000, quote("{not json"), "groups=C0002", "%FF%FE" * 10, "[]"]
)
def test_a_broken_manager_cookie_fails_closed(make_site: Callable[..., Site], value: str) -> None:
    site = make_site(
        enable_anonymous_function=True,
        consent_source=("klaro", "onetrust"),
        max_cookie_header_bytes=64_000,
    )
    r = site.client.get("/_pixel/status", headers={"cookie": f"klaro={value}"})
    assert r.status_code == 200 and r.json()["anonymous"] is True


def test_consent_sources_need_the_anonymous_function() -> None:
    from pixel_middleware import PixelSettings

    with pytest.raises(ValueError, match="enable_anonymous_function"):
        PixelSettings(track_id=TRACK_ID, secret_key="x" * 20, consent_source=("tcf",))
    with pytest.raises(ValueError, match="did you mean 'onetrust'"):
        PixelSettings(
            track_id=TRACK_ID,
            secret_key="x" * 20,
            enable_anonymous_function=True,
            consent_source=("onetrsut",),
        )
