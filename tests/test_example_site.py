"""The demo site's story, driven over HTTP: browse, log in, opt out, log out, see what was sent."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.testclient import TestClient

from example_site.app import create_app, demo_settings

from .helpers import injected_config, set_cookies

TID = "123451234512345"


def client(tmp_path: Path, mode: str = "opt-out") -> tuple[TestClient, Path]:
    hits = tmp_path / "hits.jsonl"
    return TestClient(
        create_app(demo_settings(mode), hits_file=hits), base_url="http://shop.example"
    ), hits


def test_opt_out_story(tmp_path: Path) -> None:
    c, hits = client(tmp_path)
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

    c.get(f"/_pixel/{TID}/wt?p=600,x,,,,,1,0,,&cd=C-1001&cp1=teapot")
    sent = c.get("/sent")
    assert "Recent anonymous hits" in sent.text
    assert "nc=1" in sent.text and "cd=C-1001" not in sent.text.split('id="hits"')[1]
    assert eid not in sent.text and eid not in hits.read_text()


def test_logout_starts_a_new_identity(tmp_path: Path) -> None:
    c, _ = client(tmp_path)
    eid = set_cookies(c.get("/").headers.get_list("set-cookie"))["wtstp_eid"].value
    c.post("/login", data={"user": "alan"})
    r = c.post("/logout", follow_redirects=False)
    new = set_cookies(r.headers.get_list("set-cookie"))["wtstp_eid"].value
    assert new != eid and re.match(r"^\d{19}$", new)


def test_sent_page_hides_identifier_values(tmp_path: Path) -> None:
    c, _ = client(tmp_path)
    eid = set_cookies(c.get("/").headers.get_list("set-cookie"))["wtstp_eid"].value
    c.get(f"/_pixel/{TID}/wt?p=600,x,,,,,1,0,,&cp1=a")
    sent = c.get("/sent")
    assert "eid=(hidden)" in sent.text and eid not in sent.text
    assert "value not shown" in sent.text


def test_opt_in_mode_starts_anonymous(tmp_path: Path) -> None:
    c, _ = client(tmp_path, "opt-in")
    home = c.get("/")
    assert home.headers.get_list("set-cookie") == []
    privacy = c.get("/privacy")
    assert "Allow identified tracking" in privacy.text
