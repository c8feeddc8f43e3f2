"""Every page of the demo and the HTML report, in Chromium at a desktop and a phone width.

The screenshots land in tests/artifacts/ for a person to look at; the assertions check what a
visitor would notice first: nothing wider than the screen, the text the page is about, the
chart's bars and labels on screen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from .browser import ARTIFACTS, Site, Tab, chromium, demo_site, open_tab

pytestmark = pytest.mark.browser

WIDTHS = {"desktop": {"width": 1280, "height": 800}, "mobile": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with demo_site(tmp_path_factory.mktemp("screens"), "opt-out") as s:
        yield s


def shoot(page: Page, name: str) -> Path:
    """Save a full-page screenshot and check nothing is wider than the screen."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 2_000
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name}: {overflow}px wider than the screen"
    return path


@dataclass
class Screen:
    """A fresh browser tab at one of ``WIDTHS``."""

    width: str
    tab: Tab

    @property
    def page(self) -> Page:
        return self.tab.page

    def shoot(self, name: str) -> Path:
        return shoot(self.page, f"{name}-{self.width}")


@pytest.fixture(params=list(WIDTHS))
def screen(request: pytest.FixtureRequest, browser: Browser, site: Site) -> Iterator[Screen]:
    with open_tab(browser, site.url, viewport=WIDTHS[request.param]) as tab:
        tab.page.set_default_timeout(15_000)
        yield Screen(request.param, tab)


def test_shop_pages(screen: Screen) -> None:
    tab = screen.tab
    tab.visit("/")
    assert tab.page.get_by_role("heading", name="Welcome to the Pixel shop").is_visible()
    assert tab.page.locator("#state").is_visible()
    screen.shoot("demo-home")
    tab.visit("/product/teapot")
    assert tab.page.locator("#buy").is_visible()
    screen.shoot("demo-product")
    tab.visit("/login")
    screen.shoot("demo-login")


def test_privacy_page_in_each_state(screen: Screen, browser: Browser, site: Site) -> None:
    tab = screen.tab
    tab.visit("/privacy")
    buttons = tab.page.locator("#choices a")
    assert buttons.count() == 3 and buttons.first.is_visible()
    assert "Count me anonymously" in buttons.first.inner_text()
    screen.shoot("privacy-recognised")
    tab.click("#optout-30-days a")
    assert tab.page.locator("#choices a").count() == 1
    assert tab.page.locator("#optin-now a").inner_text() == "Recognise my browser again"
    screen.shoot("privacy-anonymous")
    viewport = WIDTHS[screen.width]
    with open_tab(browser, site.url, viewport=viewport, extra_http_headers={"Sec-GPC": "1"}) as gpc:
        gpc.visit("/privacy")
        assert gpc.page.locator("#gpc").is_visible()
        assert gpc.page.locator("#choices a").count() == 0
        shoot(gpc.page, f"privacy-gpc-{screen.width}")


def test_what_was_sent_page(screen: Screen) -> None:
    tab = screen.tab
    tab.visit("/product/kettle")
    tab.click("#buy")
    tab.visit("/sent")
    assert tab.page.get_by_role("heading", name="Cookies your browser sent").is_visible()
    assert tab.page.locator("#pixel-params dt").first.is_visible()
    screen.shoot("demo-sent")


def test_report_page(screen: Screen) -> None:
    tab = screen.tab
    tab.visit("/")
    tab.visit("/product/teapot")
    tab.click("#buy")
    tab.page.goto(tab.base + "/sent")
    with tab.page.expect_navigation():
        tab.page.click("#report")
    page = tab.page
    assert page.locator("#views").inner_text().isdigit()
    chart = page.locator("#chart")
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300
    bars = page.locator("#chart rect.identified")
    assert bars.count() == 30  # one slot a day, days without hits too
    today = page.locator("#chart text.day").last
    assert today.is_visible()
    label_box = today.bounding_box()
    assert label_box is not None and label_box["x"] + label_box["width"] <= box["x"] + box["width"]
    # The y axis has numbers, the bars have their values, the period states its time zone.
    assert page.locator("#chart text.value").count() >= 1
    assert "Days are days in UTC" in page.locator(".period").inner_text()
    assert page.get_by_role("link", name="Back to the site").is_visible()
    screen.shoot("report")
