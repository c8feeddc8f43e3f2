"""The full truth table of DESIGN §2, plus Global Privacy Control."""

from __future__ import annotations

import pytest

from pixel_middleware.decision import cookie_write_for, decide

from .helpers import settings

COOKIES = [None, "", "1", "0", "false", "anything"]


@pytest.mark.parametrize("enabled", [False, True])
@pytest.mark.parametrize("opt_in", [False, True])
@pytest.mark.parametrize("cookie", COOKIES)
def test_truth_table(enabled: bool, opt_in: bool, cookie: str | None) -> None:
    s = settings(enable_anonymous_function=enabled, anonymous_opt_in=opt_in)
    present = cookie not in (None, "")
    expected = enabled and (present if not opt_in else not present)
    assert decide(s, cookie).anonymous is expected


@pytest.mark.parametrize("cookie", COOKIES)
def test_disabled_ignores_cookie_and_gpc(cookie: str | None) -> None:
    d = decide(settings(), cookie, gpc=True)
    assert d.anonymous is False
    assert d.reason == "disabled"


def test_gpc_makes_opt_out_mode_anonymous() -> None:
    s = settings(enable_anonymous_function=True)
    d = decide(s, None, gpc=True)
    assert d.anonymous and d.reason == "gpc" and not d.choice_made


def test_gpc_can_be_ignored_by_setting() -> None:
    s = settings(enable_anonymous_function=True, honor_global_privacy_control=False)
    assert decide(s, None, gpc=True).anonymous is False


def test_gpc_yields_to_an_explicit_opt_in() -> None:
    s = settings(enable_anonymous_function=True, anonymous_opt_in=True)
    assert decide(s, "1", gpc=True).anonymous is False
    assert decide(s, None, gpc=True).anonymous is True


def test_choice_made_follows_cookie_presence() -> None:
    out = settings(enable_anonymous_function=True)
    inn = settings(enable_anonymous_function=True, anonymous_opt_in=True)
    assert decide(out, "1").choice_made and not decide(out, None).choice_made
    assert decide(inn, "1").choice_made and not decide(inn, "").choice_made


def test_unreadable_cookie_header_fails_closed() -> None:
    s = settings(enable_anonymous_function=True)
    d = decide(s, None, cookies_readable=False)
    assert d.anonymous and d.reason == "unreadable-cookie"


@pytest.mark.parametrize(
    ("opt_in", "action", "writes"),
    [
        (False, "optout", True),
        (False, "optin", False),
        (True, "optout", False),
        (True, "optin", True),
    ],
)
def test_which_action_writes_the_cookie(opt_in: bool, action: str, writes: bool) -> None:
    s = settings(enable_anonymous_function=True, anonymous_opt_in=opt_in)
    assert cookie_write_for(s, action) is writes  # type: ignore[arg-type]
