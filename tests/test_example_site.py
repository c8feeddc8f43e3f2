"""The demo site's story, driven over HTTP: browse, log in, opt out, log out, see what was sent."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.testclient import TestClient

from example_site.app import create_app, demo_settings

from .helpers import injected_config, set_cookies
from .stores import assert_private, read_rows

TID = "123451234512345"


def choice_link(page: str, key: str) -> str:
    """The href of the privacy page's choice ``key``, ready to request."""
    match = re.search(rf'<li id="{key}">\s*<a href="([^"]+)"', page)
    assert match is not None, key
    return match.group(1).replace("&amp;", "&")


def client(tmp_path: Path, mode: str = "opt-out") -> tuple[TestClient, str]:
    store = f"sqlite:///{tmp_path}/hits.sqlite3"
    app = create_app(demo_settings(mode, store=store, spool_dir=str(tmp_path / "spool")))
    client = TestClient(
        app, base_url="http://shop.example", headers={"sec-fetch-site": "same-origin"}
    )
    return client, store


def stored(c: TestClient, store: str) -> str:
    """Everything the store holds, as text, once the writer caught up."""
    assert c.app.state.pixel_sink.flush(10)  # type: ignore[attr-defined]
    return json.dumps(read_rows(store), default=str)


def test_opt_out_story(tmp_path: Path) -> None:
    c, store = client(tmp_path)
    home = c.get("/")
    eid = set_cookies(home.headers.get_list("set-cookie"))["wtstp_eid"].value
    assert "We recognise your browser <strong>with a cookie</strong>" in home.text

    c.post("/login", data={"user": "ada"})
    product = c.get("/product/teapot")
    config = injected_config(product.text)
    assert config is not None
    assert config["page"]["params"] == [
        ["cg1", "shop"],
        ["cp1", "teapot"],
        ["cd", "C-1001"],
        ["uc5", "f"],
        ["uc7", "1815"],
    ]

    c.get(f"/_pixel/{TID}/wt?p=600,x,,,,,1,0,,&cd=C-1001&uc5=f&cp1=ident")

    privacy = c.get("/privacy")
    assert len(re.findall(r'href="(/_pixel/optout\?[^"]+)"', privacy.text)) == 3  # durations
    assert "/_pixel/optin" not in privacy.text  # nothing that keeps things as they are
    r = c.get(choice_link(privacy.text, "optout-1-day"), follow_redirects=False)
    assert (
        set_cookies(r.headers.get_list("set-cookie"))["miCookieOptOut"].attrs["max-age"] == "86400"
    )
    c.cookies.set("miCookieOptOut", "1")
    c.cookies.delete("wtstp_eid")
    c.cookies.delete("wtstp_sid")

    anon = c.get("/product/teapot")
    config = injected_config(anon.text)
    assert config is not None and config["anonymous"] is True
    assert config["page"]["params"] == [["cg1", "shop"], ["cp1", "teapot"]]
    assert "counted <strong>anonymously" in anon.text

    c.get(f"/_pixel/{TID}/wt?p=600,x,,,,,1,0,,&cd=C-1001&uc5=f&cp1=anon")
    assert eid in stored(c, store)  # the identified hit holds the everID...
    rows = read_rows(store)
    assert [r["anonymous"] for r in rows] == [False, True]
    assert_private(rows, ("cd", "uc5", "uc7"), secrets=[eid])  # ...the anonymous one does not
    sent = c.get("/sent")
    assert "Recent anonymous hits" in sent.text
    hits_table = sent.text.split('id="hits"')[1]
    assert "<dt>nc</dt><dd>1</dd>" in hits_table and "<dt>cd</dt>" not in hits_table
    assert "True" not in hits_table and "False" not in hits_table
    assert "counted as <strong>anonymous</strong>" in hits_table
    assert eid not in sent.text
    assert 'id="report" href="/_pixel/report?token=' in sent.text


def test_logout_starts_a_new_identity(tmp_path: Path) -> None:
    c, _ = client(tmp_path)
    eid = set_cookies(c.get("/").headers.get_list("set-cookie"))["wtstp_eid"].value
    c.post("/login", data={"user": "alan"})
    r = c.post("/logout", follow_redirects=False)
    new = set_cookies(r.headers.get_list("set-cookie"))["wtstp_eid"].value
    assert new != eid and re.match(r"^\d{19}$", new)


def test_sent_page_hides_identifier_values(tmp_path: Path) -> None:
    c, store = client(tmp_path)
    eid = set_cookies(c.get("/").headers.get_list("set-cookie"))["wtstp_eid"].value
    c.get(f"/_pixel/{TID}/wt?p=600,x,,,,,1,0,,&cp1=a")
    assert eid in stored(c, store)
    sent = c.get("/sent")
    assert "<dt>eid</dt><dd>(hidden)</dd>" in sent.text and eid not in sent.text
    assert "value not shown" in sent.text


def test_opt_in_mode_starts_anonymous(tmp_path: Path) -> None:
    c, _ = client(tmp_path, "opt-in")
    home = c.get("/")
    assert home.headers.get_list("set-cookie") == []
    privacy = c.get("/privacy")
    assert "Your visits are counted anonymously" in privacy.text
    assert len(re.findall(r'href="/_pixel/optin\?', privacy.text)) == 3
    assert "Recognise my browser for 30 days" in privacy.text
    assert "/_pixel/optout" not in privacy.text


def test_report_page_of_the_demo(tmp_path: Path) -> None:
    c, store = client(tmp_path)
    c.get("/")
    c.get(f"/_pixel/{TID}/wt?p=600,home,,,,,1,0,,")
    c.get(f"/_pixel/{TID}/wt?p=600,home,,,,,1,0,,", headers={"cookie": "miCookieOptOut=1"})
    stored(c, store)
    sent = c.get("/sent")
    href = re.search(r'id="report" href="([^"]+)"', sent.text)
    assert href is not None
    report = c.get(href.group(1).replace("&amp;", "&"))
    assert report.status_code == 200
    assert '<strong id="views">2</strong>50.0% anonymous' in report.text


def test_privacy_page_speaks_to_visitors(tmp_path: Path) -> None:
    c, _ = client(tmp_path)
    page = c.get("/privacy").text
    assert "We recognise your browser" in page
    for word in ("everID", "nc=1", "mode:"):
        assert word not in page
    # Each choice says how long it lasts, with the date it ends.
    until = (datetime.now(UTC) + timedelta(days=30)).date()
    assert f"Kept for 30 days, until {until:%A} {until.day} {until:%B %Y}." in page
    assert "Kept for up to 1,800 days (about 5 years)" in page and "keep it 400 days" in page
    # After the choice: one way back, and it says what it does.
    c.cookies.set("miCookieOptOut", "1")
    page = c.get("/privacy").text
    assert "Your visits are counted anonymously" in page
    assert re.findall(r"/_pixel/(optin|optout)\?", page) == ["optin"]
    assert "Recognise my browser again" in page


def test_global_privacy_control_gets_no_useless_toggle(tmp_path: Path) -> None:
    c, _ = client(tmp_path)
    page = c.get("/privacy", headers={"sec-gpc": "1"}).text
    assert 'id="gpc"' in page and "Global Privacy Control" in page
    assert "/_pixel/optin" not in page and "/_pixel/optout" not in page
    # In opt-in mode the visitor can still agree, GPC or not: the button changes something.
    c, _ = client(tmp_path / "opt-in", "opt-in")
    page = c.get("/privacy", headers={"sec-gpc": "1"}).text
    assert "Global Privacy Control" in page and "/_pixel/optin" in page


def test_every_page_has_a_viewport_and_a_favicon(tmp_path: Path) -> None:
    c, _ = client(tmp_path)
    for path in ("/", "/product/teapot", "/login", "/privacy", "/sent"):
        page = c.get(path).text
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
        assert '<link rel="icon" href="/static/favicon.svg"' in page
    icon = c.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
