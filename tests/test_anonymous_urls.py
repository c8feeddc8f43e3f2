"""Query strings of anonymous visitors: the page URL and the referrer keep only what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from .conftest import Site
from .helpers import TRACK_ID, query_pairs

WT = f"/_pixel/{TRACK_ID}/wt"
REF = "https%3A%2F%2Fsearch.example%2F%3Fq%3Dalice%40mail.example"
PU = "https%3A%2F%2Fshop.example%2Freset%3Ftoken%3Ds3cret%26page%3D2%23done"
HIT = f"{WT}?p=600,shop,,,,,1700000000000,{REF},,&pu={PU}&cp1=x"


def stored(site: Site, cookie: str) -> dict[str, str]:
    assert site.client.get(HIT, headers={"cookie": cookie}).status_code == 200
    return dict(query_pairs(site.hits()[-1]["query"]))


def test_anonymous_urls_lose_query_and_fragment(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True)
    pairs = stored(site, "miCookieOptOut=1")
    assert unquote(pairs["pu"]) == "https://shop.example/reset"
    assert unquote(pairs["p"].split(",")[7]) == "https://search.example/"
    everything = str(site.hits()[-1])
    assert "s3cret" not in everything and "alice" not in everything


def test_allowed_query_parameters_stay(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True, anonymous_query_allowlist=("page",))
    pairs = stored(site, "miCookieOptOut=1")
    assert unquote(pairs["pu"]) == "https://shop.example/reset?page=2"


def test_identified_urls_are_kept_whole(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True)
    pairs = stored(site, "")
    assert pairs["pu"] == PU and pairs["p"].split(",")[7] == REF


def test_server_side_page_views_follow_the_same_rule(make_site: Callable[..., Site]) -> None:
    site = make_site(enable_anonymous_function=True, server_side_page_views=True)
    site.client.get(
        "/?token=s3cret",
        headers={"cookie": "miCookieOptOut=1", "referer": "https://search.example/?q=alice"},
    )
    (row,) = site.hits()
    assert "s3cret" not in row["query"] and "alice" not in row["query"]
