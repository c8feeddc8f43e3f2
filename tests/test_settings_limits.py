"""Every numeric setting is range-checked when the settings are made, never per request."""

from __future__ import annotations

import dataclasses
import re

import pytest

from pixel_middleware import PixelMiddleware, PixelSettings

from .asgi import html_app, request
from .helpers import SECRET, TRACK_ID, set_cookies, settings

PAGE = b"<html><body>page</body></html>"
HTML = (b"content-type", b"text/html; charset=utf-8")
# (lowest, highest) accepted.
BOUNDS = {
    "anonymous_cookie_minutes": (1, 52_560_000),
    "anonymous_session_timeout_minutes": (1, 52_560_000),
    "ever_id_days": (1, 36_500),
    "toggle_token_max_age": (1, 315_360_000),
    "max_body_bytes": (32_768, 268_435_456),
    "max_inject_bytes": (1, 268_435_456),
    "max_cookie_header_bytes": (1, 1_048_576),
    "anonymous_ip_truncation": (0, 3),
    "consent_receipt_days": (1, 36_500),
}


def test_the_issues_value_fails_at_construction_with_a_clear_message() -> None:
    with pytest.raises(ValueError) as raised:
        settings(ever_id_days=10**7)
    message = str(raised.value)
    assert message.startswith("ever_id_days must be between 1 and 36,500")
    assert "10,000,000" in message
    with pytest.raises(ValueError, match="ever_id_days"):
        PixelSettings.from_env(
            {"PIXEL_TRACK_ID": TRACK_ID, "PIXEL_SECRET_KEY": SECRET, "PIXEL_EVER_ID_DAYS": "1e7"}
        )
    with pytest.raises(ValueError, match="ever_id_days must be between"):
        PixelSettings.from_env(
            {
                "PIXEL_TRACK_ID": TRACK_ID,
                "PIXEL_SECRET_KEY": SECRET,
                "PIXEL_EVER_ID_DAYS": "10000000",
            }
        )


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_each_bound_is_accepted_and_one_past_it_refused(name: str) -> None:
    low, high = BOUNDS[name]
    assert getattr(settings(**{name: low}), name) == low
    assert getattr(settings(**{name: high}), name) == high
    for wrong in (low - 1, high + 1, -(10**9), 10**18):
        with pytest.raises(ValueError, match=re.escape(name)):
            settings(**{name: wrong})


def test_every_numeric_setting_is_bounded() -> None:
    """A numeric setting added later gets a range too, or this test says so."""
    numeric = {f.name for f in dataclasses.fields(PixelSettings) if str(f.type) == "int"}
    assert numeric == set(BOUNDS)
    for name in numeric:
        with pytest.raises(ValueError, match=re.escape(name)):
            settings(**{name: 10**18})


def test_the_longest_lifetimes_still_make_valid_cookies() -> None:
    """At the upper bounds, pages are still answered, with dates a browser can read."""
    s = settings(
        enable_anonymous_function=True,
        ever_id_days=36_500,
        anonymous_cookie_minutes=52_560_000,
        toggle_token_max_age=315_360_000,
    )
    result = request(PixelMiddleware(html_app(PAGE, headers=[HTML]), settings=s))
    assert result.status == 200
    cookie = set_cookies(result.header_values("set-cookie"))["wtstp_eid"]
    assert cookie.attrs["max-age"] == str(36_500 * 86_400)
    year = int(cookie.attrs["expires"].split()[3])
    assert 2100 < year <= 9999
