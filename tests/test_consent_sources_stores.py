"""Every consent source decides what reaches a real store (SQLite and PostgreSQL).

TC and GPP strings come from IAB's own reference encoders (tests/iab.py); the CMP cookies are the
values OneTrust, Cookiebot and Klaro document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from pixel_middleware import PixelMiddleware, PixelSettings

from . import iab
from .asgi import html_app, request
from .helpers import SECRET, TRACK_ID
from .stores import read_rows

pytestmark = pytest.mark.server  # runs node for the reference encoders

EID = "8123456789012345678"
SID = "1234567890123456789"
Q = "p=600,shop%2Fhome,1,1920x1080,24,1,1700000000000,0,1280x720,0"
NOTICE = {"SaleOptOutNotice": 1}


@pytest.fixture(scope="module")
def cookies() -> dict[str, dict[str, str]]:
    """For each source: the cookie that says yes and the one that says no."""
    reason = iab.missing_tools()
    if reason:
        pytest.skip(reason)
    tc_yes, tc_no, gpp_yes, gpp_no = iab.encode(
        [
            {"kind": "tcf", "purposes": [1, 7], "vendors": [], "serviceSpecific": True},
            {"kind": "tcf", "purposes": [7], "vendors": [], "serviceSpecific": True},
            {"kind": "gpp", "sections": [["usnat", {**NOTICE, "SaleOptOut": 2}]]},
            {"kind": "gpp", "sections": [["usnat", {**NOTICE, "SaleOptOut": 1}]]},
        ]
    )
    yes_groups = quote("C0001:1,C0002:1")
    no_groups = quote("C0001:1,C0002:0")
    return {
        "tcf": {"yes": f"euconsent-v2={tc_yes}", "no": f"euconsent-v2={tc_no}"},
        "gpp": {"yes": f"__gpp={gpp_yes}; __gpp_sid=7", "no": f"__gpp={gpp_no}; __gpp_sid=7"},
        "onetrust": {
            "yes": f"OptanonConsent=isGpcEnabled=0&groups={yes_groups}",
            "no": f"OptanonConsent=isGpcEnabled=0&groups={no_groups}",
        },
        "cookiebot": {
            "yes": "CookieConsent=" + quote("{necessary:true,statistics:true,marketing:false}"),
            "no": "CookieConsent=" + quote("{necessary:true,statistics:false,marketing:false}"),
        },
        "klaro": {
            "yes": "klaro=" + quote('{"pixel_middleware":true}'),
            "no": "klaro=" + quote('{"pixel_middleware":false}'),
        },
    }


@pytest.mark.parametrize("source", ["tcf", "gpp", "onetrust", "cookiebot", "klaro"])
def test_a_source_decides_the_stored_rows(
    store: str, tmp_path: Path, cookies: dict[str, dict[str, str]], source: str
) -> None:
    settings = PixelSettings(
        track_id=TRACK_ID,
        secret_key=SECRET,
        enable_anonymous_function=True,
        consent_source=(source,),
        store=store,
        spool_dir=str(tmp_path / "spool"),
    )
    app: Any = PixelMiddleware(html_app(b""), settings=settings)
    ids = f"wtstp_eid={EID}; wtstp_sid={SID}"
    for answer in ("yes", "no"):
        r = request(
            app,
            f"/_pixel/{TRACK_ID}/wt",
            query=f"{Q}&cp1={answer}&eid={EID}".encode(),
            headers=[(b"cookie", f"{cookies[source][answer]}; {ids}".encode())],
        )
        assert r.status == 200
    assert app.sink.flush(20)
    rows = {r["query"].rsplit("cp1=", 1)[1]: r for r in read_rows(store)}
    assert rows["yes"]["anonymous"] is False and rows["yes"]["ever_id"] == EID
    assert rows["no"]["anonymous"] is True and rows["no"]["ever_id"] is None
    assert EID not in str(rows["no"]) and SID not in str(rows["no"])
    assert "nc=1" in rows["no"]["query"]
