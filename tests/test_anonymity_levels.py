"""Three levels of anonymity: no identity (1), a temporary session (2), SP-Anonymous (3).

And logout from the browser: ``POST /_pixel/anonymize``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx2
import pytest

from .conftest import Site
from .helpers import TRACK_ID, query_pairs, set_cookies

EID = "8123456789012345678"
SID = "1234567890123456789"
Q = "p=600,shop%2Fhome,1,1920x1080,24,1,1700000000000,0,1280x720,0"
WT = f"/_pixel/{TRACK_ID}/wt"
TEMP_RE = re.compile(r"^t[0-9a-f]{32}$")


def temporary(r: httpx2.Response) -> str:
    """The temporary session id a response wrote (the cookie value is ``<id>.<last seen>``)."""
    cookie = set_cookies(r.headers.get_list("set-cookie"))["wtstp_asid"]
    assert cookie.has("httponly") and "max-age" not in cookie.attrs  # a session cookie
    assert cookie.attrs["samesite"] == "Lax"
    temporary_id, _, seen = cookie.value.partition(".")
    assert TEMP_RE.match(temporary_id) and abs(int(seen) - time.time()) < 5
    return temporary_id


def test_level_1_anonymous_rows_hold_no_session_at_all(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True)
    r = site.client.get(f"{WT}?{Q}&fpv=own&fpt=2.1.0", headers={"cookie": "miCookieOptOut=1"})
    assert "wtstp_asid" not in set_cookies(r.headers.get_list("set-cookie"))
    (row,) = site.hits()
    assert row["session_id"] is None and "fpv" not in row["query"]


def test_level_2_pages_of_one_visit_share_a_temporary_id(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True, anonymous_session=True)
    first = site.client.get("/", headers={"cookie": "miCookieOptOut=1"})
    temp = temporary(first)
    assert temp not in first.text  # never written into HTML
    cookie = f"miCookieOptOut=1; wtstp_asid={temp}.{int(time.time())}"
    for page in range(3):
        r = site.client.get(f"{WT}?{Q}&cp1={page}", headers={"cookie": cookie})
        assert temporary(r) == temp  # kept, its last-seen time refreshed
    rows = site.hits()
    assert [row["session_id"] for row in rows] == [temp] * 3
    for row in rows:
        assert row["anonymous"] and row["ever_id"] is None and row["user_agent"] is None
        pairs = query_pairs(row["query"])
        assert pairs[1:4] == [("nc", "1"), ("fpv", temp), ("fpt", "2.1.0")]


def test_level_2_a_stale_or_forged_temporary_id_is_replaced(
    make_site: Callable[..., Site],
) -> None:
    site = make_site(enable_anonymous_function=True, anonymous_session=True)
    stale = f"t{'a' * 32}.{int(time.time()) - 31 * 60}"  # 31 minutes without a page view
    for value in (stale, f"{EID}.{int(time.time())}", "garbage"):
        r = site.client.get(
            f"{WT}?{Q}", headers={"cookie": f"miCookieOptOut=1; wtstp_asid={value}"}
        )
        assert temporary(r) != "t" + "a" * 32
    assert all(row["session_id"] != EID for row in site.hits())


def test_level_2_identified_visitors_drop_the_temporary_id(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True, anonymous_session=True)
    temp = f"t{'b' * 32}.{int(time.time())}"
    r = site.client.get(
        f"{WT}?{Q}", headers={"cookie": f"wtstp_eid={EID}; wtstp_sid={SID}; wtstp_asid={temp}"}
    )
    assert set_cookies(r.headers.get_list("set-cookie"))["wtstp_asid"].expired
    (row,) = site.hits()
    assert row["ever_id"] == EID and row["session_id"] == SID and "fpv" not in row["query"]


def test_level_2_a_changed_choice_starts_a_new_session_both_ways(
    make_site: Callable[..., Site],
) -> None:
    from pixel_middleware.toggles import toggle_url

    site = make_site(enable_anonymous_function=True, anonymous_session=True)
    optout = site.client.get(
        toggle_url(site.settings, "optout", "/"),
        headers={"cookie": f"wtstp_eid={EID}; wtstp_sid={SID}"},
        follow_redirects=False,
    )
    cookies = set_cookies(optout.headers.get_list("set-cookie"))
    assert cookies["wtstp_eid"].expired and cookies["wtstp_sid"].expired
    temp = temporary(optout)
    assert SID not in temp and EID not in temp
    optin = site.client.get(
        toggle_url(site.settings, "optin", "/"),
        headers={"cookie": f"miCookieOptOut=1; wtstp_asid={temp}.{int(time.time())}"},
        follow_redirects=False,
    )
    cookies = set_cookies(optin.headers.get_list("set-cookie"))
    assert cookies["wtstp_asid"].expired and re.match(r"^\d{19}$", cookies["wtstp_sid"].value)


@pytest.mark.parametrize("value", ["1", "", "no"])
def test_level_3_sp_anonymous_drops_everything_whatever_the_cookies(
    make_site: Callable[..., Site], value: str
) -> None:
    site = make_site(anonymous_ip_truncation=1, anonymous_session=True)
    r = site.client.get(
        f"{WT}?{Q}&eid={EID}&fpv=t{'c' * 32}&cp1=x",
        headers={
            "sp-anonymous": value,
            "cookie": f"wtstp_eid={EID}; wtstp_sid={SID}",
            "user-agent": "UA/secret",
        },
    )
    assert r.status_code == 200 and r.headers.get_list("set-cookie") == []
    (row,) = site.hits()
    assert row["anonymous"] and row["ip"] is None and row["user_agent"] is None
    assert row["ever_id"] is None and row["session_id"] is None
    assert EID not in row["query"] and "fpv" not in row["query"] and "UA/secret" not in str(row)


def test_level_3_applies_to_batches_too(make_site: Callable[..., Site]) -> None:
    site = make_site(trusted_senders=("0.0.0.0/0",))
    body = f"wt?{Q}&eid={EID}&X-WT-IP=203.0.113.7&X-WT-UA=UA\nwt?{Q}&cp1=2"
    r = site.client.post(
        f"/_pixel/{TRACK_ID}/batch",
        content=body,
        headers={"sp-anonymous": "*", "sec-fetch-site": ""},
    )
    assert r.status_code == 200
    rows = site.hits()
    assert len(rows) == 2 and all(row["anonymous"] and row["ip"] is None for row in rows)
    assert EID not in str(rows) and "203.0.113.7" not in str(rows)


def test_browser_logout_gives_a_new_identity(make_site: Callable[..., Site]) -> None:
    site = make_site()
    r = site.client.post(
        "/_pixel/anonymize",
        headers={"cookie": f"wtstp_eid={EID}; wtstp_sid={SID}"},
    )
    assert r.status_code == 204
    cookies = set_cookies(r.headers.get_list("set-cookie"))
    assert cookies["wtstp_eid"].value != EID and re.match(r"^\d{19}$", cookies["wtstp_eid"].value)
    assert cookies["wtstp_sid"].value != SID
    assert site.client.get("/_pixel/anonymize").status_code == 405


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "", "origin": "https://evil.example"},
        {"sec-fetch-site": ""},  # no evidence at all
    ],
)
def test_browser_logout_only_from_this_site(
    make_site: Callable[..., Site], headers: dict[str, str]
) -> None:
    site = make_site()
    r = site.client.post(
        "/_pixel/anonymize", headers={**headers, "cookie": f"wtstp_eid={EID}; wtstp_sid={SID}"}
    )
    assert r.status_code == 403 and r.headers.get_list("set-cookie") == []
