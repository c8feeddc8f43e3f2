"""A consent manager in a real Chromium: a TC string a page script sets decides the next page.

The TC strings are encoded by IAB's own reference library (tests/iab.py), as a CMP would write
them into the ``euconsent-v2`` cookie.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from . import iab
from .browser import Site, Tab, chromium, demo_site, open_tab

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def strings() -> dict[str, str]:
    reason = iab.missing_tools()
    if reason:
        pytest.skip(reason)
    consent, refused = iab.encode(
        [
            {"kind": "tcf", "purposes": [1, 7, 8], "vendors": [], "serviceSpecific": True},
            {"kind": "tcf", "purposes": [], "vendors": [], "serviceSpecific": True},
        ]
    )
    return {"consent": consent, "refused": refused}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp: Path = tmp_path_factory.mktemp("tcf")
    with demo_site(tmp, "opt-out", consent_source=("tcf",)) as s:
        yield s


def set_tc_string(tab: Tab, value: str) -> None:
    """What a CMP's script does when the visitor answers its banner; returns once the browser's
    cookie store holds the new value (a script's cookie reaches it a moment later)."""
    tab.page.evaluate(f"document.cookie = 'euconsent-v2={value}; path=/; max-age=31536000'")
    deadline = time.monotonic() + 10
    while tab.cookies().get("euconsent-v2", {}).get("value") != value:
        assert time.monotonic() < deadline, "the TC string never reached the cookie store"
        time.sleep(0.02)


def test_a_tc_string_set_by_a_page_script_decides_the_next_page(
    browser: Browser, site: Site, strings: dict[str, str]
) -> None:
    with open_tab(browser, site.url) as tab:
        first = tab.visit("/")  # no CMP answer yet: the Smart Pixel rule, opt-out mode
        assert "nc" not in first

        set_tc_string(tab, strings["refused"])
        refused = tab.visit("/")
        assert refused["nc"] == "1" and "eid" not in refused
        assert "wtstp_eid" not in tab.cookies()  # expired by the server

        set_tc_string(tab, strings["consent"])
        agreed = tab.visit("/")
        assert "nc" not in agreed
        assert "wtstp_eid" in tab.cookies()  # a new identity, made by the server

        set_tc_string(tab, strings["refused"])  # the visitor withdraws in the CMP
        withdrawn = tab.visit("/")
        assert withdrawn["nc"] == "1"
        assert "wtstp_eid" not in tab.cookies()

    rows = site.hits()
    anonymous = [r for r in rows if r["anonymous"]]
    assert len(anonymous) >= 2 and all(r["ever_id"] is None for r in anonymous)
    assert any(not r["anonymous"] and r["ever_id"] for r in rows)
