"""``{% load pixel %}``: the same links, forms and snippet as the Jinja2 helpers.

Settings come from the visitor the middleware attached to the request, or from Django's
``PIXEL_MIDDLEWARE`` when the template is rendered outside a request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe
from markupsafe import Markup

from pixel_middleware import templating
from pixel_middleware.decision import Action
from pixel_middleware.settings import PixelSettings
from pixel_middleware.toggles import ACTIONS
from pixel_middleware.visitor import Visitor

register = template.Library()


def _visitor(context: Any) -> Visitor | None:
    request = context.get("request")
    scope = getattr(request, "scope", None) or {}
    visitor = scope.get("state", {}).get("pixel")
    return visitor if isinstance(visitor, Visitor) else None


def _settings(context: Any) -> PixelSettings:
    visitor = _visitor(context)
    return visitor.settings if visitor is not None else PixelSettings.from_django()


def _next(context: Any, next_url: str | None) -> str | None:
    if next_url is not None:
        return next_url
    request = context.get("request")
    return getattr(request, "path", None)


def _toggle_tag(action: Action, builder: Callable[..., Markup]) -> Callable[..., SafeString]:
    def tag(
        context: Any, text: str, next: str | None = None, duration: int | None = None
    ) -> SafeString:
        html = builder(
            _settings(context), action, text, next_url=_next(context, next), duration=duration
        )
        return mark_safe(html)  # noqa: S308 - autoescaped by the package's Jinja2 templates

    return tag


for _action in ACTIONS:
    register.simple_tag(
        _toggle_tag(_action, templating.toggle_link),
        takes_context=True,
        name=f"pixel_{_action}_link",
    )
    register.simple_tag(
        _toggle_tag(_action, templating.toggle_form),
        takes_context=True,
        name=f"pixel_{_action}_form",
    )


@register.simple_tag(takes_context=True)
def pixel_snippet(context: Any) -> SafeString:
    visitor = _visitor(context)
    if visitor is None:
        raise template.TemplateSyntaxError(
            "pixel_snippet needs a request passed through PixelMiddleware"
        )
    html: SafeString = mark_safe(templating.snippet(visitor))  # noqa: S308
    return html
