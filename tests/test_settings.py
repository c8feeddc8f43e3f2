from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from pixel_middleware import PixelSettings

from .helpers import SECRET, TRACK_ID, settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_match_the_smart_pixel() -> None:
    s = settings()
    assert s.enable_anonymous_function is False
    assert s.anonymous_cookie_name == "miCookieOptOut"
    assert s.anonymous_opt_in is False
    assert s.suppress_parameter == ()
    assert s.anonymous_cookie_minutes == 2_592_000
    assert s.ever_id_cookie_name == "wtstp_eid"
    assert s.session_cookie_name == "wtstp_sid"
    assert s.ever_id_days == 180
    assert s.identifier_cookies_httponly is True
    assert s.mode == "disabled"


def test_settings_are_frozen() -> None:
    s = settings()
    with pytest.raises(AttributeError):
        s.track_id = "1"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("track_id", "12345"),
        ("track_id", "123451234512345,"),
        ("track_id", "12345123451234a"),
        ("suppress_parameter", ("cd", "bad name")),
        ("suppress_parameter", ("c.d",)),
        ("anonymous_cookie_minutes", -1),
        ("anonymous_cookie_minutes", 0),
        ("ever_id_days", -5),
        ("anonymous_cookie_name", "bad;name"),
        ("prefix", "/_pixel/"),
        ("prefix", "_pixel"),
        ("track_domain", "https://track.example"),
        ("anonymous_opt_in", "yes"),
        ("anonymous_cookie_minutes", 1.5),
        ("secret_key", "too-short"),
    ],
)
def test_invalid_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        settings(**{field: value})


def test_list_of_parameter_names_is_accepted() -> None:
    assert settings(suppress_parameter=["cd", "uc5"]).suppress_parameter == ("cd", "uc5")


def test_multiple_track_ids() -> None:
    s = settings(track_id=f"{TRACK_ID},999999999999999")
    assert s.track_ids == (TRACK_ID, "999999999999999")


def test_from_smart_pixel_reads_the_js_config() -> None:
    s = PixelSettings.from_smart_pixel(
        {
            "trackId": TRACK_ID,
            "trackDomain": "q3.webtrekk.net",
            "domain": "example.com",
            "cookie": "1",
            "userIdentification": {
                "enableAnonymousFunction": True,
                "anonymousCookieName": "myOptOut",
                "anonymousOptIn": True,
                "suppressParameter": ["cd", "uc5", "uc7"],
            },
        },
        secret_key=SECRET,
    )
    assert s.track_domain == "q3.webtrekk.net"
    assert s.enable_anonymous_function is True
    assert s.anonymous_cookie_name == "myOptOut"
    assert s.anonymous_opt_in is True
    assert s.suppress_parameter == ("cd", "uc5", "uc7")
    assert s.mode == "opt-in"


def test_from_smart_pixel_accepts_the_old_names() -> None:
    s = PixelSettings.from_smart_pixel(
        {
            "trackId": [TRACK_ID],
            "userIdentification": {"enableOptOut": True, "optOutCookieName": "oldOptOut"},
        },
        secret_key=SECRET,
    )
    assert s.enable_anonymous_function is True
    assert s.anonymous_cookie_name == "oldOptOut"


def test_mapps_misspelled_example_fails_loudly() -> None:
    # Mapp's documentation example writes "anononymousOptIn"; the Smart Pixel ignores it silently.
    with pytest.raises(ValueError, match=r"anononymousOptIn.*did you mean 'anonymousOptIn'"):
        PixelSettings.from_smart_pixel(
            {
                "trackId": TRACK_ID,
                "userIdentification": {"enableAnonymousFunction": True, "anononymousOptIn": True},
            },
            secret_key=SECRET,
        )


def test_unknown_top_level_key_suggests_the_closest() -> None:
    with pytest.raises(ValueError, match="did you mean 'trackDomain'"):
        PixelSettings.from_smart_pixel({"trackId": TRACK_ID, "trackDomian": "x"}, secret_key=SECRET)


def test_old_and_new_name_together_is_an_error() -> None:
    with pytest.raises(ValueError, match="twice"):
        PixelSettings.from_smart_pixel(
            {
                "trackId": TRACK_ID,
                "userIdentification": {"enableOptOut": True, "enableAnonymousFunction": False},
            },
            secret_key=SECRET,
        )


def test_from_env() -> None:
    s = PixelSettings.from_env(
        {
            "PIXEL_TRACK_ID": TRACK_ID,
            "PIXEL_SECRET_KEY": SECRET,
            "PIXEL_ENABLE_ANONYMOUS_FUNCTION": "true",
            "PIXEL_ANONYMOUS_OPT_IN": "1",
            "PIXEL_SUPPRESS_PARAMETER": "cd, uc5",
            "PIXEL_ANONYMOUS_COOKIE_MINUTES": "60",
            "PIXEL_SECURE_COOKIES": "auto",
            "HOME": "/root",
        }
    )
    assert s.enable_anonymous_function and s.anonymous_opt_in
    assert s.suppress_parameter == ("cd", "uc5")
    assert s.anonymous_cookie_minutes == 60
    assert s.secure_cookies is None


def test_from_env_rejects_typos_and_bad_values() -> None:
    base = {"PIXEL_TRACK_ID": TRACK_ID, "PIXEL_SECRET_KEY": SECRET}
    with pytest.raises(ValueError, match="PIXEL_ANONYMOUS_OPT_IN"):
        PixelSettings.from_env({**base, "PIXEL_ANONYMOUS_OPTIN": "true"})
    with pytest.raises(ValueError, match="anonymous_opt_in must be true or false"):
        PixelSettings.from_env({**base, "PIXEL_ANONYMOUS_OPT_IN": "maybe"})
    with pytest.raises(ValueError, match="ever_id_days must be a whole number"):
        PixelSettings.from_env({**base, "PIXEL_EVER_ID_DAYS": "ten"})


def test_from_django_settings_object() -> None:
    class DjangoSettings:
        SECRET_KEY = "django-secret-key-0123"
        PIXEL_MIDDLEWARE: ClassVar = {"track_id": TRACK_ID, "enable_anonymous_function": True}

    s = PixelSettings.from_django(DjangoSettings())
    assert s.secret_key == "django-secret-key-0123"
    assert s.enable_anonymous_function is True


def test_from_django_rejects_unknown_names() -> None:
    class DjangoSettings:
        SECRET_KEY = "x"
        PIXEL_MIDDLEWARE: ClassVar = {"track_id": TRACK_ID, "anonymous_optin": True}

    with pytest.raises(ValueError, match="did you mean 'anonymous_opt_in'"):
        PixelSettings.from_django(DjangoSettings())


def test_secret_key_is_not_in_repr() -> None:
    assert SECRET not in repr(settings())


def test_direct_sending_needs_a_readable_everid_cookie() -> None:
    with pytest.raises(ValueError, match="track_domain"):
        settings(send_to_track_domain=True, identifier_cookies_httponly=False)
    with pytest.raises(ValueError, match="identifier_cookies_httponly=False"):
        settings(send_to_track_domain=True, track_domain="q3.webtrekk.net")
    s = settings(
        send_to_track_domain=True, track_domain="q3.webtrekk.net", identifier_cookies_httponly=False
    )
    assert s.send_to_track_domain


def test_cookie_domain_is_a_host_name() -> None:
    assert settings(cookie_domain=".shop.example").cookie_domain == ".shop.example"
    for bad in ("shop.example:8000", "https://shop.example", "shop example"):
        with pytest.raises(ValueError, match="cookie_domain"):
            settings(cookie_domain=bad)


def test_constructor_suggests_the_closest_name() -> None:
    with pytest.raises(TypeError, match=r"'anonymous_optin' \(did you mean 'anonymous_opt_in'\?\)"):
        PixelSettings(track_id=TRACK_ID, secret_key=SECRET, anonymous_optin=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"track_id is missing.*PIXEL_TRACK_ID"):
        PixelSettings(secret_key=SECRET)  # type: ignore[call-arg]


def _settings_in_a_fresh_process(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Django's settings are global to a process: each case gets its own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIXEL_", "DJANGO_"))}
    return subprocess.run(
        [sys.executable, "-c", f"from pixel_middleware import PixelSettings\n{code}"],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_secret_key_says_where_it_is_read_from() -> None:
    out = _settings_in_a_fresh_process(f"PixelSettings(track_id={TRACK_ID!r})")
    assert out.returncode == 1
    assert "secret_key is missing" in out.stderr
    assert "PIXEL_SECRET_KEY" in out.stderr and "SECRET_KEY" in out.stderr.replace("PIXEL_", "")


def test_django_secret_key_is_the_default_everywhere() -> None:
    # The constructor and the env loader, in a process running a Django project.
    code = (
        f"print(PixelSettings(track_id={TRACK_ID!r}).secret_key)\n"
        "print(PixelSettings.from_env().secret_key)"
    )
    out = _settings_in_a_fresh_process(
        code,
        DJANGO_SETTINGS_MODULE="tests.django_project.settings",
        PIXEL_TRACK_ID=TRACK_ID,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["django-test-secret"] * 2


def test_short_secret_key_is_refused_with_the_minimum() -> None:
    with pytest.raises(ValueError, match="at least 16 characters long"):
        settings(secret_key="x")
    assert settings(secret_key="s" * 16).secret_key == "s" * 16


def test_track_id_list_may_have_spaces() -> None:
    s = settings(track_id="123451234512345, 543215432154321")
    assert s.track_ids == ("123451234512345", "543215432154321")
    assert PixelSettings.from_env(
        {"PIXEL_TRACK_ID": " 123451234512345 ,543215432154321", "PIXEL_SECRET_KEY": SECRET}
    ).track_id == ("123451234512345,543215432154321")
    with pytest.raises(ValueError, match="track_id must be 15 digits"):
        settings(track_id="123451234512345 543215432154321")


def test_report_time_zone() -> None:
    assert settings().report_time_zone == "UTC"
    assert settings(report_time_zone="Europe/Berlin").report_time_zone == "Europe/Berlin"
    with pytest.raises(ValueError, match="report_time_zone must be an IANA"):
        settings(report_time_zone="CEST+2")


@pytest.mark.parametrize(
    "field, value",
    [
        ("anonymous_cookie_name", "miCookieOptOut\n"),
        ("prefix", "/_pixel\n"),
        ("cookie_domain", "shop.example\n"),
        ("suppress_parameter", ("cd\n",)),
    ],
)
def test_a_trailing_newline_is_refused(field: str, value: object) -> None:
    """``$`` in a regex matches before a final newline; a name ending in one would reach a
    Set-Cookie line or a pixel request."""
    with pytest.raises(ValueError):
        settings(**{field: value})
