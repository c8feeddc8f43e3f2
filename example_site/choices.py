"""What the demo's privacy page tells a visitor: where they stand, in plain words, and only the
choices that would change it, each saying how long it lasts. Pure: the visitor and today's date
in, text out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from pixel_middleware import PixelSettings, Visitor
from pixel_middleware.decision import cookie_write_for

# Chromium-based browsers keep no cookie longer than this, whatever the site asks for.
BROWSER_CAP_DAYS = 400
# (id, words, minutes); None: the longest the settings allow.
DURATIONS: tuple[tuple[str, str, int | None], ...] = (
    ("longest", "until I change it", None),
    ("30-days", "for 30 days", 43_200),
    ("1-day", "for 1 day", 1_440),
)

RECOGNISED = (
    "A cookie in your browser holds a random number, so we can tell that two visits came from "
    "the same browser. When you are logged in, your customer number and profile are sent with "
    "each page too."
)
ANONYMOUS = (
    "We count your visits anonymously: no cookie recognises your browser, and nothing we send "
    "links one visit to another, or to your customer account when you are logged in."
)


@dataclass(frozen=True)
class Choice:
    """One button: the toggle it follows, its words, and how long the browser remembers it."""

    key: str  # stable id, for the page and its tests
    action: Literal["optout", "optin"]
    label: str
    lasts: str
    duration: int | None  # minutes; None: the longest the settings allow


@dataclass(frozen=True)
class PrivacyView:
    """The privacy page's content for one visitor."""

    state: Literal["anonymous", "identified"]
    headline: str
    explanation: str
    choices: tuple[Choice, ...]
    note: str = ""

    @property
    def offer(self) -> str:
        """The heading over the choices."""
        if self.state == "identified":
            return "Would you rather be counted anonymously?"
        return "Would you rather we recognised your browser?"


def long_date(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def lasts(settings: PixelSettings, minutes: int | None, today: date) -> str:
    """How long a written choice is kept, with the date it ends."""
    minutes = settings.anonymous_cookie_minutes if minutes is None else minutes
    days = minutes // 1440
    if days > BROWSER_CAP_DAYS:
        capped = today + timedelta(days=BROWSER_CAP_DAYS)
        return (
            f"Kept for up to {days:,} days (about {round(days / 365)} years), until "
            f"{long_date(today + timedelta(days=days))}; "
            f"Chrome, Edge and other Chromium browsers keep it {BROWSER_CAP_DAYS} days, "
            f"until {long_date(capped)}."
        )
    if days >= 1:
        unit = "day" if days == 1 else "days"
        return f"Kept for {days} {unit}, until {long_date(today + timedelta(days=days))}."
    return f"Kept for {minutes} minutes."


def _choices(
    settings: PixelSettings, action: Literal["optout", "optin"], verb: str, today: date
) -> tuple[Choice, ...]:
    if not cookie_write_for(settings, action):
        # This action deletes the choice cookie: there is no lifetime to pick.
        forget = "Your browser forgets the earlier choice; this applies from the next page."
        return (Choice(f"{action}-now", action, verb, forget, None),)
    return tuple(
        Choice(
            f"{action}-{key}", action, f"{verb} {words}", lasts(settings, minutes, today), minutes
        )
        for key, words, minutes in DURATIONS
    )


def privacy_view(settings: PixelSettings, visitor: Visitor, today: date) -> PrivacyView:
    """The page for ``visitor``: where they stand and what they can change."""
    if not visitor.anonymous:
        return PrivacyView(
            "identified",
            "We recognise your browser",
            RECOGNISED,
            _choices(settings, "optout", "Count me anonymously", today),
        )
    if visitor.gpc and not settings.anonymous_opt_in:
        # In opt-out mode GPC outweighs anything clicked here: offer no button that does nothing.
        return PrivacyView(
            "anonymous",
            "Your visits are counted anonymously",
            ANONYMOUS,
            (),
            note=(
                "Your browser sends Global Privacy Control, which asks sites not to track you, so "
                "we count you anonymously and there is nothing to change here. To be recognised "
                "again, turn Global Privacy Control off in your browser's settings."
            ),
        )
    note = (
        "Your browser sends Global Privacy Control, so we count you anonymously unless you "
        "allow otherwise here."
        if visitor.gpc
        else ""
    )
    verb = "Recognise my browser" if settings.anonymous_opt_in else "Recognise my browser again"
    return PrivacyView(
        "anonymous",
        "Your visits are counted anonymously",
        ANONYMOUS,
        _choices(settings, "optin", verb, today),
        note,
    )
