"""The README's FastAPI recipe: add_middleware, request.state.pixel in a route."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.testclient import TestClient

from pixel_middleware import PixelMiddleware

from .helpers import injected_config, set_cookies, settings


def test_fastapi_recipe() -> None:
    app = FastAPI()
    app.add_middleware(PixelMiddleware, settings=settings(enable_anonymous_function=True))

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> str:
        request.state.pixel.page("fastapi/home", cp1="x")
        return "<html><body>hi</body></html>"

    client = TestClient(app)
    r = client.get("/")
    config = injected_config(r.text)
    assert config is not None and config["page"]["name"] == "fastapi/home"
    assert "wtstp_eid" in set_cookies(r.headers.get_list("set-cookie"))
    anon = client.get("/", headers={"cookie": "miCookieOptOut=1"})
    config = injected_config(anon.text)
    assert config is not None and config["anonymous"] is True
