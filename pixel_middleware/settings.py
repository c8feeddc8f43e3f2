"""Settings: one frozen, validated object, loadable from code, a Smart Pixel config, env or Django.

Every loader funnels into the ``PixelSettings`` constructor, so validation lives in one place and a
setting that is wrong fails at start-up with a message naming the field, never at request time.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .secret_key import resolve_secret_key
from .store_url import parse_store

TRACK_ID_RE = re.compile(r"^\d{15}(?:,\d{15})*\Z")
PARAMETER_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+\Z")
# RFC 6265 cookie-name = token; kept narrower on purpose so names survive every browser and proxy.
COOKIE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+\Z")
HOST_RE = re.compile(r"^[A-Za-z0-9.-]+\Z")
TRACK_DOMAIN_RE = re.compile(r"^[A-Za-z0-9.-]+(?::\d{1,5})?\Z")
PREFIX_RE = re.compile(r"^(?:/[A-Za-z0-9._~-]+)+\Z")

DEFAULT_ANONYMOUS_COOKIE_MINUTES = 2_592_000  # the Smart Pixel's default: 1,800 days


def _suggest(name: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(kind: str, name: str, valid: Iterable[str]) -> ValueError:
    return ValueError(f"unknown {kind} {name!r}{_suggest(name, valid)}")


def _check_names(values: Mapping[str, Any]) -> None:
    """The constructor's keywords: a misspelt name gets the loaders' suggestion, a missing
    track_id says where it comes from."""
    valid = PixelSettings.__dataclass_fields__
    for key in values:
        if key not in valid:
            raise TypeError(str(_unknown("setting", key, valid)))
    if "track_id" not in values:
        raise TypeError(
            "track_id is missing: your Mapp account's 15-digit track id (trackId in the Smart "
            "Pixel config, PIXEL_TRACK_ID for PixelSettings.from_env)"
        )


# Consent receipts are kept three years, the usual limitation period for proving consent.
DEFAULT_CONSENT_RECEIPT_DAYS = 3 * 365


@dataclass(frozen=True, slots=True, kw_only=True)
class PixelSettings:
    """Configuration of the middleware, validated on construction.

    The first group mirrors the Smart Pixel's own names (``trackId``, ``trackDomain`` and the
    ``userIdentification`` block); the rest are this package's server-side additions.
    """

    track_id: str
    # Empty means "not given": Django's SECRET_KEY when Django is configured, else an error.
    secret_key: str = field(default="", repr=False)
    track_domain: str | None = None
    enable_anonymous_function: bool = False
    anonymous_cookie_name: str = "miCookieOptOut"
    anonymous_opt_in: bool = False
    suppress_parameter: tuple[str, ...] = ()
    anonymous_cookie_minutes: int = DEFAULT_ANONYMOUS_COOKIE_MINUTES
    # The Smart Pixel's full tracking opt-out (advanced.optOutName): a visitor with this cookie
    # is not tracked at all.
    opt_out_name: str = "webtrekkOptOut"

    honor_global_privacy_control: bool = True
    # Level 2 of anonymity: anonymous visitors get a temporary session id (sent as fpv), in an
    # HttpOnly session cookie that also ends after this many minutes without a page view.
    anonymous_session: bool = False
    anonymous_session_cookie_name: str = "wtstp_asid"
    anonymous_session_timeout_minutes: int = 30
    ever_id_cookie_name: str = "wtstp_eid"
    session_cookie_name: str = "wtstp_sid"
    ever_id_days: int = 180
    identifier_cookies_httponly: bool = True
    cookie_domain: str | None = None
    # None: Secure exactly when the request came over https.
    secure_cookies: bool | None = None
    prefix: str = "/_pixel"
    # Path prefixes the middleware leaves alone: no visitor, no cookies, no injection.
    exclude_paths: tuple[str, ...] = ()
    send_to_track_domain: bool = False
    inject: bool = True
    toggle_token_max_age: int = 30 * 24 * 3600
    # Mapp's own batch limit: a PHP cron job sends 1,000 hits a request, over 2 MiB.
    max_body_bytes: int = 24 * 1_048_576
    max_inject_bytes: int = 8 * 1_048_576
    max_cookie_header_bytes: int = 16_384

    # Where hits go (see pixel_middleware.sinks.build_sink).
    store: str | None = "sqlite:///pixel_hits.sqlite3"
    relay: bool = False
    relay_url: str | None = None
    log_hits: bool = False
    spool_dir: str = "pixel_spool"
    anonymous_ip_truncation: int = 0
    # Query parameters an anonymous visitor's page URL and referrer may keep (all others go).
    anonymous_query_allowlist: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    # Servers whose batches may say who the visitor is (X-WT-IP, X-WT-UA) and whose hits are
    # identified unless marked nc=1: the machines running Mapp's server-side libraries.
    trusted_senders: tuple[str, ...] = ()
    server_side_page_views: bool = False
    report_token: str | None = field(default=None, repr=False)
    # The report's days are days in this time zone (an IANA name such as "Europe/Berlin").
    report_time_zone: str = "UTC"

    # Where consent lives besides the choice cookie, in order of precedence: "tcf" (IAB TCF v2.2
    # euconsent-v2), "gpp" (IAB GPP __gpp/__gpp_sid), "onetrust", "cookiebot", "klaro".
    consent_source: tuple[str, ...] = ()
    tcf_purposes: tuple[int, ...] = (1,)
    tcf_vendor_id: int | None = None
    onetrust_group: str = "C0002"
    klaro_service: str = "pixel_middleware"
    klaro_cookie: str = "klaro"
    # Consent receipts (pixel_middleware.receipts): the version of the privacy policy a choice
    # was made under, and how long a receipt (and the visitor's receipt cookie) is kept.
    consent_policy_version: str = "1"
    consent_receipt_days: int = DEFAULT_CONSENT_RECEIPT_DAYS

    def __new__(cls, *args: Any, **kwargs: Any) -> PixelSettings:
        # The generated __init__ answers a misspelt or missing name with a bare TypeError; the
        # loaders name the closest valid setting, so the constructor does too. (copy and pickle
        # call __new__ without keywords: nothing to check then.)
        if kwargs:
            _check_names(kwargs)
        return object.__new__(cls)

    def __post_init__(self) -> None:
        for name in _NAME_LISTS:
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.track_id, str):
            # "id1, id2" as people write lists: the spaces are not part of any id.
            object.__setattr__(
                self, "track_id", ",".join(p.strip() for p in self.track_id.split(","))
            )
        if isinstance(self.tcf_purposes, list):
            object.__setattr__(self, "tcf_purposes", tuple(self.tcf_purposes))
        _check_type(self)
        self._check_tracking()
        self._check_cookies()
        self._check_limits()
        self._check_delivery()
        self._check_report()
        self._check_consent_sources()

    def _check_consent_sources(self) -> None:
        from .consent_sources import validate_sources

        validate_sources(self.consent_source)
        if self.consent_source and not self.enable_anonymous_function:
            raise ValueError(
                "consent_source needs enable_anonymous_function=True: without it every visitor "
                "is identified and a consent manager's answer would change nothing"
            )
        if not self.tcf_purposes or not all(1 <= p <= 24 for p in self.tcf_purposes):
            raise ValueError(
                f"tcf_purposes must be TCF purpose numbers from 1 to 24, got {self.tcf_purposes}"
            )
        if self.tcf_vendor_id is not None and not 1 <= self.tcf_vendor_id < 1 << 16:
            raise ValueError(f"tcf_vendor_id must be a TCF vendor id, got {self.tcf_vendor_id}")
        if not COOKIE_NAME_RE.match(self.klaro_cookie):
            raise ValueError(f"klaro_cookie is not a valid cookie name: {self.klaro_cookie!r}")
        from .decision import source_settings

        source_settings(self)  # the parsers' own checks, now rather than on a request

    def _check_tracking(self) -> None:
        if not TRACK_ID_RE.match(self.track_id):
            raise ValueError(
                f"track_id must be 15 digits or a comma list of them, got {self.track_id!r}"
            )
        object.__setattr__(self, "secret_key", resolve_secret_key(self.secret_key))
        if self.track_domain is not None and not TRACK_DOMAIN_RE.match(self.track_domain):
            raise ValueError(f"track_domain must be a bare host name, got {self.track_domain!r}")
        if self.send_to_track_domain and self.track_domain is None:
            raise ValueError("send_to_track_domain needs track_domain to be set")
        if self.send_to_track_domain and self.identifier_cookies_httponly:
            raise ValueError(
                "send_to_track_domain needs identifier_cookies_httponly=False: requests then go "
                "straight to Mapp, so the browser script must read the everID to send it"
            )
        for name in self.suppress_parameter:
            if not PARAMETER_NAME_RE.match(name):
                raise ValueError(
                    f"suppress_parameter entries must match ^[A-Za-z0-9_-]+$, got {name!r}"
                )

    def _check_cookies(self) -> None:
        cookie_fields = (
            "anonymous_cookie_name",
            "ever_id_cookie_name",
            "session_cookie_name",
            "opt_out_name",
            "anonymous_session_cookie_name",
        )
        for cookie_field in cookie_fields:
            value = getattr(self, cookie_field)
            if not COOKIE_NAME_RE.match(value):
                raise ValueError(f"{cookie_field} is not a valid cookie name: {value!r}")
        if len({getattr(self, f) for f in cookie_fields}) != len(cookie_fields):
            raise ValueError(f"{', '.join(cookie_fields)} must all differ")
        if self.cookie_domain is not None and not HOST_RE.match(self.cookie_domain.lstrip(".")):
            raise ValueError(f"cookie_domain is not a host name: {self.cookie_domain!r}")

    def _check_limits(self) -> None:
        # Every number is checked here, at construction: a value that would break a response
        # (a cookie date past year 9999, a body too large to hold) must never reach a request.
        for name, (low, high, unit) in _LIMITS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(
                    f"{name} must be between {low:,} and {high:,} {unit}, got {value:,}"
                )
        if not PREFIX_RE.match(self.prefix):
            raise ValueError(
                f"prefix must look like '/_pixel' (no trailing slash), got {self.prefix!r}"
            )
        for path in self.exclude_paths:
            if not path.startswith("/"):
                raise ValueError(f"exclude_paths entries must start with '/', got {path!r}")

    def _check_delivery(self) -> None:
        if self.store is not None:
            parse_store(self.store)
        if self.relay and self.track_domain is None and self.relay_url is None:
            raise ValueError("relay needs track_domain (or relay_url) to know where to send")
        if self.relay_url is not None and not self.relay_url.startswith(("https://", "http://")):
            raise ValueError(f"relay_url must be an http(s) URL, got {self.relay_url!r}")
        if not 0 <= self.anonymous_ip_truncation <= 3:
            raise ValueError(
                "anonymous_ip_truncation must be 0 (no IP) or 1-3 (bytes zeroed), "
                f"got {self.anonymous_ip_truncation}"
            )
        for list_name in ("trusted_proxies", "trusted_senders"):
            for network in getattr(self, list_name):
                try:
                    ipaddress.ip_network(network, strict=False)
                except ValueError:
                    raise ValueError(
                        f"{list_name} entry is not an IP or network: {network!r}"
                    ) from None

    def _check_report(self) -> None:
        version = self.consent_policy_version
        # Stored in every receipt and shown to visitors: a short label such as "2024-05".
        if not version or len(version) > 64 or not version.isprintable():
            raise ValueError(
                f"consent_policy_version must be 1 to 64 printable characters, got {version!r}"
            )
        if self.report_token is not None and len(self.report_token) < 8:
            raise ValueError("report_token must be at least 8 characters")
        try:
            # UTC needs no time zone database (slim containers have none).
            if self.report_time_zone != "UTC":
                zoneinfo.ZoneInfo(self.report_time_zone)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            raise ValueError(
                "report_time_zone must be an IANA time zone name such as 'UTC' or "
                f"'Europe/Berlin', got {self.report_time_zone!r}"
            ) from None

    @property
    def track_ids(self) -> tuple[str, ...]:
        return tuple(self.track_id.split(","))

    @property
    def mode(self) -> str:
        """``"disabled"``, ``"opt-in"`` or ``"opt-out"``: how the visitor's cookie is read."""
        if not self.enable_anonymous_function:
            return "disabled"
        return "opt-in" if self.anonymous_opt_in else "opt-out"

    def replace(self, **changes: Any) -> PixelSettings:
        """A copy with some fields changed, validated like a new object."""
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------- loaders

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PixelSettings:
        """Build from snake_case field names; unknown names are an error naming the closest one."""
        valid = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in valid:
                raise _unknown("setting", key, valid)
        kwargs = dict(values)
        for name in _NAME_LISTS:
            if name in kwargs:
                kwargs[name] = _as_names(name, kwargs[name])
        return cls(**kwargs)

    @classmethod
    def from_smart_pixel(cls, config: Mapping[str, Any], **extra: Any) -> PixelSettings:
        """Build from the Smart Pixel's JavaScript config (``wtSmart.init.set`` / ``advanced.add``).

        ``extra`` takes this package's own snake_case settings (``secret_key`` at least).
        """
        kwargs: dict[str, Any] = {}
        for key, value in config.items():
            if key in _SMART_PIXEL_TOP:
                kwargs[_SMART_PIXEL_TOP[key]] = _smart_pixel_value(key, value)
            elif key == "userIdentification":
                if not isinstance(value, Mapping):
                    raise ValueError("userIdentification must be an object")
                kwargs.update(_user_identification(value))
            elif key == "secureCookie":
                kwargs["secure_cookies"] = True if value else None
            elif key not in _SMART_PIXEL_IGNORED:
                raise _unknown(
                    "Smart Pixel key",
                    key,
                    [
                        *_SMART_PIXEL_TOP,
                        "userIdentification",
                        "secureCookie",
                        *_SMART_PIXEL_IGNORED,
                    ],
                )
        overlap = kwargs.keys() & extra.keys()
        if overlap:
            raise ValueError(
                f"given both in the Smart Pixel config and as keyword: {sorted(overlap)}"
            )
        return cls.from_mapping({**kwargs, **extra})

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, prefix: str = "PIXEL_"
    ) -> PixelSettings:
        """Build from ``PIXEL_<FIELD>`` environment variables (``PIXEL_TRACK_ID``, …).

        Booleans take true/false/1/0/yes/no/on/off; ``PIXEL_SUPPRESS_PARAMETER`` is comma-separated.
        A ``PIXEL_`` variable that names no setting is an error, so a typo cannot silently keep a
        visitor identified.
        """
        environ = os.environ if environ is None else environ
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in environ.items():
            if not key.startswith(prefix):
                continue
            name = key[len(prefix) :].lower()
            if name not in fields:
                raise _unknown("environment variable", key, [prefix + f.upper() for f in fields])
            values[name] = _from_text(name, str(fields[name].type), raw)
        return cls.from_mapping(values)

    @classmethod
    def from_django(cls, django_settings: Any = None) -> PixelSettings:
        """Build from the ``PIXEL_MIDDLEWARE`` dict in Django's settings (snake_case names)."""
        if django_settings is None:
            from django.conf import settings as django_settings
        values = getattr(django_settings, "PIXEL_MIDDLEWARE", None)
        if not isinstance(values, Mapping):
            raise ValueError("Django setting PIXEL_MIDDLEWARE must be a dict of pixel settings")
        values = dict(values)
        values.setdefault("secret_key", getattr(django_settings, "SECRET_KEY", ""))
        return cls.from_mapping(values)


# A cookie may live 100 years at most: its Expires date must stay a date (year 9999 is the last
# one HTTP dates and Python can write), and browsers keep a cookie 400 days at most anyway. The
# bounds also catch a value given in the wrong unit (seconds for minutes, minutes for days).
_COOKIE_YEARS = 100
_LIMITS: dict[str, tuple[int, int, str]] = {
    "anonymous_cookie_minutes": (1, _COOKIE_YEARS * 365 * 24 * 60, "(minutes, 100 years)"),
    "anonymous_session_timeout_minutes": (1, _COOKIE_YEARS * 365 * 24 * 60, "(minutes)"),
    "ever_id_days": (
        1,
        _COOKIE_YEARS * 365,
        "(days, 100 years; browsers keep a cookie at most 400 days)",
    ),
    "toggle_token_max_age": (1, 10 * 365 * 24 * 3600, "(seconds, 10 years)"),
    # A batch must hold one full-length request (30,720 characters); a body is held in memory.
    "max_body_bytes": (32 * 1024, 256 * 1024 * 1024, "(bytes, 32 KiB to 256 MiB)"),
    # A page is held in memory (twice, when gzip-compressed) to be injected.
    "max_inject_bytes": (1, 256 * 1024 * 1024, "(bytes, up to 256 MiB)"),
    "max_cookie_header_bytes": (1, 1024 * 1024, "(bytes, up to 1 MiB)"),
    # The receipt cookie lives as long as the receipt: the same 100-year bound as every cookie.
    "consent_receipt_days": (1, _COOKIE_YEARS * 365, "(days, 100 years)"),
}

_NAME_LISTS = (
    "consent_source",
    "suppress_parameter",
    "trusted_proxies",
    "trusted_senders",
    "exclude_paths",
    "anonymous_query_allowlist",
)
_SMART_PIXEL_TOP = {
    "trackId": "track_id",
    "trackDomain": "track_domain",
    "optOutName": "opt_out_name",
}
_USER_IDENTIFICATION = {
    "enableAnonymousFunction": "enable_anonymous_function",
    "anonymousCookieName": "anonymous_cookie_name",
    "anonymousOptIn": "anonymous_opt_in",
    "suppressParameter": "suppress_parameter",
    # Older Smart Pixel releases used these names for the same two settings.
    "enableOptOut": "enable_anonymous_function",
    "optOutCookieName": "anonymous_cookie_name",
}
# Real Smart Pixel settings that concern only the browser pixel; accepted so a pasted config loads.
_SMART_PIXEL_IGNORED = frozenset(
    {
        # wtSmart.init and wtSmart.advanced keys (the package's types/types.d.ts, 1.10.0)
        "domain",
        "cookie",
        "mode",
        "requestLimit",
        "requestQueue",
        "requestObfuscation",
        "registerObfuscation",
        "parameterObfuscation",
        "requestType",
        "forceOldEverId",
        "execCDB",
        "useCDBCache",
        "useHashForDefaultPageName",
        "useParamsForDefaultPageName",
        "sendViaSDK",
        "sendViaServer",
        "forceSameSite",
        "productMerge",
        "tabBrowsing",
        "preRendering",
        "advancedPermission",
    }
)
# userIdentification keys that concern only the browser pixel.
_USER_IDENTIFICATION_IGNORED = frozenset({"temporarySessionId", "saveTemporarySessionId"})


def _smart_pixel_value(key: str, value: Any) -> Any:
    # The Smart Pixel accepts trackId as an array too.
    if key == "trackId" and isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return value


def _user_identification(block: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in block.items():
        if key in _USER_IDENTIFICATION_IGNORED:
            continue
        if key not in _USER_IDENTIFICATION:
            raise _unknown(
                "userIdentification key",
                key,
                [*_USER_IDENTIFICATION, *_USER_IDENTIFICATION_IGNORED],
            )
        name = _USER_IDENTIFICATION[key]
        if name in out:
            raise ValueError(f"userIdentification sets {name} twice (old and new name)")
        out[name] = value
    return out


def _as_names(field_name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Iterable):
        items = tuple(value)
        if all(isinstance(v, str) for v in items):
            return items
    raise ValueError(f"{field_name} must be a list of strings, got {value!r}")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _from_text(name: str, type_name: str, raw: str) -> Any:
    text = raw.strip()
    if "bool" in type_name:
        lowered = text.lower()
        if "None" in type_name and lowered in {"", "none", "auto"}:
            return None
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{name} must be true or false, got {raw!r}")
    if type_name.startswith("int"):
        if "None" in type_name and text.lower() in ("", "none"):
            return None
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if type_name == "tuple[int, ...]":
        try:
            return tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise ValueError(
                f"{name} must be whole numbers, comma-separated, got {raw!r}"
            ) from None
    if type_name.startswith("tuple"):
        return _as_names(name, text)
    if "None" in type_name and text.lower() in ("", "none"):
        return None
    return text


def _check_type(settings: PixelSettings) -> None:
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        type_name = str(f.type)
        if value is None and "None" in type_name:
            continue
        if type_name.startswith("bool"):
            ok = isinstance(value, bool)
        elif type_name.startswith("int"):  # int, int | None (None was let through above)
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif type_name.startswith("str"):
            ok = isinstance(value, str)
        elif type_name == "tuple[int, ...]":
            ok = isinstance(value, tuple) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            )
        else:  # tuple[str, ...]
            ok = isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        if not ok:
            raise ValueError(f"{f.name} has the wrong type: {value!r} ({type(value).__name__})")


_T = TypeVar("_T")


def per_settings(make: Callable[[PixelSettings], _T]) -> Callable[[PixelSettings], _T]:
    """``make(settings)``, worked out once per settings object and kept.

    Keyed by the object's identity rather than its value: hashing sixty fields on every request
    would cost more than most of what is kept. The entry holds the settings object, so its id
    cannot pass to another object while the entry lives.
    """
    kept: dict[int, tuple[PixelSettings, _T]] = {}

    def cached(settings: PixelSettings) -> _T:
        entry = kept.get(id(settings))
        if entry is None:
            if len(kept) >= 64:
                kept.clear()  # only a test suite makes this many settings
            entry = kept[id(settings)] = (settings, make(settings))
        return entry[1]

    cached.__doc__ = make.__doc__
    return cached
