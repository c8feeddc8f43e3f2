"""The tracking snippet: the Jinja2 template is the source of its markup, compiled once.

Rendering the template per page cost more than everything else the middleware does. The template
is rendered once per settings with marker values, split at the markers, and each page only fills
in its own data: the visitor's state and page parameters, a CSP nonce, the ``<noscript>`` URL.
``tests/test_snippet.py`` proves the result byte-identical to rendering the template.
"""

from __future__ import annotations

import json
from functools import lru_cache
from json.encoder import encode_basestring_ascii
from typing import Any

from markupsafe import Markup, escape

from .resources import environment
from .settings import PixelSettings
from .visitor import Visitor, static_config

TEMPLATE = "pixel/snippet.html"
# Inside <script type="application/json"> only "</script" could end the block early; escaping
# every <, > and & also keeps the JSON inert if someone moves it into an attribute or HTML.
_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}
# Markers survive HTML escaping unchanged (letters and digits only) and occur nowhere else.
_CONFIG, _NONCE, _URL = "PIXELMARKERCONFIG0", "PIXELMARKERNONCE0", "PIXELMARKERURL0"


def config_json(config: dict[str, Any]) -> Markup:
    """A config as JSON safe inside a ``<script type="application/json">`` block."""
    text = json.dumps(config, separators=(",", ":"), ensure_ascii=True).translate(_JSON_ESCAPES)
    return Markup(text)  # noqa: S704 - escaped above for a JSON script block


def render_template(visitor: Visitor, *, nonce: str | None = None) -> str:
    """The snippet rendered by Jinja2 from the template: the reference the fast path must match."""
    return (
        environment()
        .get_template(TEMPLATE)
        .render(
            config_json=config_json(visitor.config()),
            script_url=f"{visitor.settings.prefix}/pixel.js",
            nonce=nonce,
            pixel_url=_noscript_url(visitor),
        )
    )


def _has_noscript(visitor: Visitor) -> bool:
    # A page counted on the server gets no <noscript> pixel: it would count it twice. A visitor
    # who opted out of tracking gets none either.
    return not visitor.settings.server_side_page_views and visitor.tracked


def _noscript_url(visitor: Visitor) -> str | None:
    return visitor.pixel_url() if _has_noscript(visitor) else None


def _noscript_url_parts(visitor: Visitor) -> tuple[str, str] | None:
    return visitor.pixel_url_parts() if _has_noscript(visitor) else None


class CompiledSnippet:
    """The snippet template of one settings object, split into constant parts.

    Pages repeat: the snippet of a page (its name and parameters, the visitor's state) is kept,
    cut where the ``<noscript>`` URL's time goes, so a page seen before costs one lookup and one
    join. A snippet holding something of one visitor alone (customer data, another site's
    referrer) or a per-response CSP nonce is made afresh and not kept.
    """

    def __init__(self, settings: PixelSettings) -> None:
        self.settings = settings
        self._variants: dict[tuple[bool, bool], list[str]] = {}
        static = config_json(static_config(settings))
        # '{…static…}' becomes '{…static…,' so that the per-page keys can follow.
        self._config_head = str(static)[:-1] + ","
        self._pages: dict[tuple[object, ...], tuple[bytes, bytes | None]] = {}

    def _parts(self, with_nonce: bool, with_url: bool) -> list[str]:
        key = (with_nonce, with_url)
        parts = self._variants.get(key)
        if parts is None:
            html = (
                environment()
                .get_template(TEMPLATE)
                .render(
                    config_json=Markup(_CONFIG),  # noqa: S704 - a constant marker
                    script_url=f"{self.settings.prefix}/pixel.js",
                    nonce=_NONCE if with_nonce else None,
                    pixel_url=_URL if with_url else None,
                )
            )
            parts = _split(html, (_CONFIG, _NONCE, _URL))
            self._variants[key] = parts
        return parts

    def render(self, visitor: Visitor, *, nonce: str | None = None) -> bytes:
        """This visitor's snippet as ASCII bytes, the same as :func:`render_template`'s."""
        key = None if nonce else visitor.page_key()
        cut = None if key is None else self._pages.get(key)
        if cut is None:
            cut = self._cut(visitor, nonce)
            if key is not None:
                if len(self._pages) >= _PAGES_KEPT:
                    self._pages.clear()  # crude, but bounded whatever hosts and paths arrive
                self._pages[key] = cut
        head, tail = cut
        return head if tail is None else b"%s%d%s" % (head, visitor.time_ms, tail)

    def _cut(self, visitor: Visitor, nonce: str | None) -> tuple[bytes, bytes | None]:
        """The snippet before and after the time field (after: None when it has none)."""
        url = _noscript_url_parts(visitor)
        parts = self._parts(bool(nonce), url is not None)
        out: list[str] = []
        cut_at = -1
        # Markers sit at odd positions of the split list, constant text at even ones.
        for i, part in enumerate(parts):
            if i % 2 == 0:
                out.append(part)
            elif part == _CONFIG:
                out.append(self._config_head + _dynamic_config(visitor))
            elif part == _NONCE:
                out.append(escape(nonce))
            else:
                assert url is not None
                # HTML escaping maps single characters, so escaping the halves escapes the URL.
                out.append(escape(url[0]))
                cut_at = len(out)
                out.append(escape(url[1]))
        # Every value is ASCII already (JSON with \u escapes, percent-encoded URL, nonce token).
        if cut_at < 0:
            return _ascii("".join(out)), None
        return _ascii("".join(out[:cut_at])), _ascii("".join(out[cut_at:]))


# Distinct pages (name, parameters, visitor state) whose snippet is kept per settings.
_PAGES_KEPT = 1024


def _ascii(text: str) -> bytes:
    return text.encode("ascii", "xmlcharrefreplace")


def _dynamic_config(visitor: Visitor) -> str:
    """The per-page keys of ``Visitor.config()`` and the closing brace, as ``config_json`` would."""
    params = ",".join(
        f"[{encode_basestring_ascii(k)},{encode_basestring_ascii(v)}]" for k, v in visitor.data()
    )
    text = (
        f'"anonymous":{"true" if visitor.anonymous else "false"},'
        f'"source":{_source_json(visitor.decision.source)},'
        f'"tracked":{"true" if visitor.tracked else "false"},'
        f'"gpc":{"true" if visitor.gpc else "false"},'
        f'"page":{{"name":{encode_basestring_ascii(visitor.page_name)},"params":[{params}]}}}}'
    )
    if "<" in text or ">" in text or "&" in text:
        text = text.translate(_JSON_ESCAPES)
    return text


def _source_json(source: str | None) -> str:
    return "null" if source is None else str(encode_basestring_ascii(source))


def _split(html: str, markers: tuple[str, ...]) -> list[str]:
    """``html`` cut at each marker: [text, marker, text, marker, …, text]."""
    parts: list[str] = []
    rest = html
    while True:
        found = [(rest.find(m), m) for m in markers if m in rest]
        if not found:
            parts.append(rest)
            return parts
        index, marker = min(found)
        parts += [rest[:index], marker]
        rest = rest[index + len(marker) :]


@lru_cache(maxsize=32)
def compiled(settings: PixelSettings) -> CompiledSnippet:
    """The compiled snippet of ``settings`` (settings are immutable, so it is made once)."""
    return CompiledSnippet(settings)
