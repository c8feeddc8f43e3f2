"""Settings that contradict the README's privacy model, or weaken it. Pure.

Failures are settings under which stored or sent data breaks a promise; warnings are settings
the README documents as valid but that an operator should know change what is promised. A
warning never fails the audit.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .config import AuditSettings
from .model import CheckResult, Status

# Chromium caps every cookie at 400 days, as the cookie standard's draft (RFC 6265bis) says to.
BROWSER_CAP_DAYS = 400
MINUTES_PER_DAY = 24 * 60


def _result(
    name: str, description: str, broken: bool, note: str, *, severity: Status
) -> CheckResult:
    return CheckResult(
        name=name,
        source="settings",
        status=severity if broken else "pass",
        count=1 if broken else 0,
        description=description,
        note=note if broken else "",
    )


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_settings(s: AuditSettings) -> list[CheckResult]:
    """Every settings check, in report order."""
    cookie_days = s.anonymous_cookie_minutes / MINUTES_PER_DAY
    relay_target = s.relay_url or (f"https://{s.track_domain}" if s.track_domain else "")
    return [
        _result(
            "settings_not_found",
            "no --settings and no PIXEL_* variables: the checks used the defaults",
            s.defaults,
            "pass --settings module:attribute (or set PIXEL_* as the app does)",
            severity="warn",
        ),
        _result(
            "anonymous_function_off",
            "enable_anonymous_function is off: visitors cannot choose to be anonymous",
            not s.enable_anonymous_function,
            "enable_anonymous_function=False; only hits sent with nc=1 or SP-Anonymous, and "
            "cross-site ones, are anonymous",
            severity="warn",
        ),
        # The choice cookie only shortens in the browser: a visitor's choice is kept 400 days
        # instead of the setting, which the README documents. Not a violation: nothing more is
        # stored or sent, and a shorter identifier-free cookie weakens no promise.
        _result(
            "anonymous_cookie_over_browser_cap",
            f"anonymous_cookie_minutes over Chromium's {BROWSER_CAP_DAYS}-day cookie cap: the "
            f"choice is kept {BROWSER_CAP_DAYS} days there",
            cookie_days > BROWSER_CAP_DAYS,
            f"anonymous_cookie_minutes={s.anonymous_cookie_minutes} ({cookie_days:,.0f} days)",
            severity="warn",
        ),
        # The everID is an identifier: a lifetime over the cap means it lives that long wherever
        # a browser does not cap it, far past the README's 180 days. A failure: it tracks longer.
        _result(
            "ever_id_over_browser_cap",
            f"ever_id_days over the {BROWSER_CAP_DAYS}-day cookie cap of Chromium and RFC 6265bis: "
            "where a browser does not cap it, the everID lives that long",
            s.ever_id_days > BROWSER_CAP_DAYS,
            f"ever_id_days={s.ever_id_days}",
            severity="fail",
        ),
        _result(
            "identifier_cookies_readable_by_scripts",
            "identifier_cookies_httponly is off: page scripts can read the everID and session",
            not s.identifier_cookies_httponly,
            "identifier_cookies_httponly=False",
            severity="warn",
        ),
        _result(
            "browser_sends_straight_to_mapp",
            "send_to_track_domain is on: browser hits bypass the collector, so neither its "
            "rules nor this audit see them",
            s.send_to_track_domain,
            "send_to_track_domain=True",
            severity="warn",
        ),
        # Identified hits are relayed with X-WT-IP and X-WT-UA: over plain http to another
        # machine they cross the network readable by anyone on the path.
        _result(
            "relay_over_plain_http",
            "the relay sends identified visitors' IP and user agent over plain http",
            s.relay and relay_target.startswith("http://") and not _loopback(relay_target),
            f"relay_url={urlsplit(relay_target).scheme}://{urlsplit(relay_target).hostname}",
            severity="warn",
        ),
        _result(
            "global_privacy_control_ignored",
            "honor_global_privacy_control is off: Sec-GPC: 1 does not make a visitor anonymous",
            s.enable_anonymous_function and not s.honor_global_privacy_control,
            "honor_global_privacy_control=False",
            severity="warn",
        ),
    ]
