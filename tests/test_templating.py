"""Jinja2 helpers, on a plain Environment and on Starlette's Jinja2Templates."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import jinja2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.templating import Jinja2Templates
from starlette.testclient import TestClient

from pixel_middleware import PixelMiddleware
from pixel_middleware.templating import register

from .helpers import injected_config, set_cookies, settings

S = settings(enable_anonymous_function=True)


def render(source: str) -> str:
    env = register(jinja2.Environment(autoescape=True), S)
    return env.from_string(source).render()


def test_links_are_signed_and_escaped() -> None:
    html = render('{{ pixel_optout_link("Be <anonymous>", next="/p?a=1&b=2", duration=60) }}')
    assert "Be &lt;anonymous&gt;" in html
    href = re.search(r'href="([^"]+)"', html)
    assert href is not None
    assert href.group(1).startswith(
        "/_pixel/optout?next=%2Fp%3Fa%3D1%26b%3D2&amp;duration=60&amp;token="
    )
    assert 'class="pixel-optout"' in html and 'rel="nofollow"' in html


def test_optin_link_and_forms() -> None:
    assert 'href="/_pixel/optin?next=%2F&amp;token=' in render('{{ pixel_optin_link("Yes") }}')
    form = render('{{ pixel_optin_form("Yes <b>", next="/x") }}')
    assert form.startswith(
        '<form method="post" action="/_pixel/optin?next=%2Fx" class="pixel-optin">'
    )
    assert 'name="token" value="' in form and "Yes &lt;b&gt;" in form


def test_bad_helper_arguments_raise_clearly() -> None:
    with pytest.raises(ValueError, match="duration"):
        render('{{ pixel_optout_link("x", duration=-5) }}')
    with pytest.raises(RuntimeError, match="request"):
        render("{{ pixel_snippet() }}")


def test_starlette_templates_and_a_streamed_page_placing_the_snippet(tmp_path: Path) -> None:
    (tmp_path / "privacy.html").write_text(
        "<html><body>{{ pixel_optout_link('Anonymous') }}</body></html>"
    )
    (tmp_path / "stream_tail.html").write_text("{{ pixel_snippet() }}</body></html>")
    templates = Jinja2Templates(directory=tmp_path)
    register(templates.env, S)

    async def privacy(request: Request) -> Response:
        return templates.TemplateResponse(request, "privacy.html")

    async def stream(request: Request) -> Response:
        tail = templates.get_template("stream_tail.html").render(request=request)

        async def body() -> AsyncIterator[str]:
            yield "<html><body><p>first</p>"
            yield tail

        return StreamingResponse(body(), media_type="text/html")

    app = PixelMiddleware(
        Starlette(routes=[Route("/privacy", privacy), Route("/stream", stream)]), settings=S
    )
    client = TestClient(
        app, base_url="http://shop.example", headers={"sec-fetch-site": "same-origin"}
    )
    page = client.get("/privacy")
    href = re.search(r'href="(/_pixel/optout[^"]+)"', page.text)
    assert href is not None
    # next defaults to the page the link is on.
    assert "next=%2Fprivacy" in href.group(1)
    toggle = client.get(href.group(1).replace("&amp;", "&"), follow_redirects=False)
    assert toggle.status_code == 303 and toggle.headers["location"] == "/privacy"
    assert set_cookies(toggle.headers.get_list("set-cookie"))["miCookieOptOut"].value == "1"

    streamed = client.get("/stream")
    assert streamed.text.count("pixel-middleware-config") == 1  # placed by hand, not injected
    config = injected_config(streamed.text)
    assert config is not None and config["anonymous"] is True
