"""The demo site's story, driven over HTTP: browse, log in, opt out, log out, see what was sent."""

from __future__ import annotations

import json
import re
from pathlib import Path

from starlette.testclient import TestClient

from example_site.app import create_app, demo_settings

from .helpers import injected_config, set_cookies
from .stores import assert_private, read_rows

TID = "123451234512345"


def client(tmp_path: Path, mode: str = "opt-out") -> tuple[TestClient, str]:
    store = f"sqlite:{tmp_path}/hits.sqlite3"
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
    assert "with an identifier" in home.text

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
    links = re.findall(r'href="(/_pixel/optout\?[^"]+)"', privacy.text)
    assert len(links) == 4  # default lifetime and three durations
    r = c.get(links[1].replace("&amp;", "&"), follow_redirects=False)
    assert (
        set_cookies(r.headers.get_list("set-cookie"))["miCookieOptOut"].attrs["max-age"] == "3600"
    )
    c.cookies.set("miCookieOptOut", "1")
    c.cookies.delete("wtstp_eid")
    c.cookies.delete("wtstp_sid")

    anon = c.get("/product/teapot")
    config = injected_config(anon.text)
    assert config is not None and config["anonymous"] is True
    assert config["page"]["params"] == [["cg1", "shop"], ["cp1", "teapot"]]
    assert "tracked <strong>anonymously" in anon.text

    c.get(f"/_pixel/{TID}/wt?p=600,x,,,,,1,0,,&cd=C-1001&uc5=f&cp1=anon")
    assert eid in stored(c, store)  # the identified hit holds the everID...
    rows = read_rows(store)
    assert [r["anonymous"] for r in rows] == [False, True]
    assert_private(rows, ("cd", "uc5", "uc7"), secrets=[eid])  # ...the anonymous one does not
    sent = c.get("/sent")
    assert "Recent anonymous hits" in sent.text
    assert "nc=1" in sent.text and "cd=C-1001" not in sent.text.split('id="hits"')[1]
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
    assert "eid=(hidden)" in sent.text and eid not in sent.text
    assert "value not shown" in sent.text


def test_opt_in_mode_starts_anonymous(tmp_path: Path) -> None:
    c, _ = client(tmp_path, "opt-in")
    home = c.get("/")
    assert home.headers.get_list("set-cookie") == []
    privacy = c.get("/privacy")
    assert "Allow identified tracking" in privacy.text


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
    assert report.status_code == 200 and "2 page views, 50.0% anonymous" in report.text
