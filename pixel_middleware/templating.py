"""Template helpers: consent links and forms, and the snippet for pages that place it themselves.

The same functions back the Jinja2 globals and the Django template tags, so both render identical,
escaped HTML from the package's own templates.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup

from .decision import Action
from .resources import environment
from .settings import PixelSettings
from .snippet import compiled
from .toggles import toggle_query, toggle_url
from .visitor import Visitor


def toggle_link(
    settings: PixelSettings,
    action: Action,
    text: str,
    *,
    next_url: str | None = None,
    duration: int | None = None,
) -> Markup:
    """An ``<a>`` to the toggle endpoint, signed so that it cannot be edited or forged."""
    href = toggle_url(settings, action, next_url, duration)
    return _render("pixel/toggle_link.html", href=href, action=action, text=_plain(text))


def toggle_form(
    settings: PixelSettings,
    action: Action,
    text: str,
    *,
    next_url: str | None = None,
    duration: int | None = None,
) -> Markup:
    """A POST ``<form>`` with one button, for sites that keep state changes off GET."""
    query = toggle_query(settings, action, next_url, duration)
    token = query.pop("token")
    return _render(
        "pixel/toggle_form.html",
        action_url=f"{settings.prefix}/{action}?" + urlencode(query),
        action=action,
        token=token,
        text=_plain(text),
    )


def _render(template: str, **context: Any) -> Markup:
    html = environment().get_template(template).render(**context)
    return Markup(html)  # noqa: S704 - rendered by an autoescaping environment


def _plain(text: str) -> str:
    # Link text is always text: Django marks template literals safe and Jinja2 honours that
    # marker, so drop it here, or the same tag would escape in one engine and not the other.
    return "".join(text)


def snippet(visitor: Visitor) -> Markup:
    """The tracking snippet for this visitor, for a page the middleware does not inject into."""
    html = compiled(visitor.settings).render(visitor).decode("ascii")
    return Markup(html)  # noqa: S704 - rendered from an autoescaping template


def _request_visitor(context: Any) -> Visitor | None:
    request = context.get("request")
    scope = getattr(request, "scope", None)
    if scope is None:
        return None
    visitor = scope.get("state", {}).get("pixel")
    return visitor if isinstance(visitor, Visitor) else None


def _current_path(context: Any) -> str | None:
    request = context.get("request")
    scope = getattr(request, "scope", None)
    return None if scope is None else str(scope.get("path", "/"))


def register(env: jinja2.Environment, settings: PixelSettings) -> jinja2.Environment:
    """Add ``pixel_optout_link``, ``pixel_optin_link``, the ``…_form`` pair, ``pixel_snippet``.

    Works with a plain ``jinja2.Environment`` or ``Jinja2Templates(...).env``. ``next`` defaults to
    the current page when the template context has a ``request``.
    """

    def make(action: Action, builder: Any) -> Any:
        @jinja2.pass_context
        def helper(
            context: Any, text: str, next: str | None = None, duration: int | None = None
        ) -> Markup:
            nxt = next if next is not None else _current_path(context)
            return builder(settings, action, text, next_url=nxt, duration=duration)  # type: ignore[no-any-return]

        return helper

    @jinja2.pass_context
    def pixel_snippet(context: Any) -> Markup:
        visitor = _request_visitor(context)
        if visitor is None:
            raise RuntimeError("pixel_snippet() needs a 'request' passed through PixelMiddleware")
        return snippet(visitor)

    env.globals.update(
        pixel_optout_link=make("optout", toggle_link),
        pixel_optin_link=make("optin", toggle_link),
        pixel_optout_form=make("optout", toggle_form),
        pixel_optin_form=make("optin", toggle_form),
        pixel_snippet=pixel_snippet,
    )
    return env
