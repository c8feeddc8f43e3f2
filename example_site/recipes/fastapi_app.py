"""A FastAPI shop page tracked by pixel_middleware, with the consent link.

Run it (pip install "pixel-middleware[example,fastapi]"):
    PIXEL_SECRET_KEY=change-me-to-32-random-characters uvicorn fastapi_app:app
"""

import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from pixel_middleware import PixelMiddleware, PixelSettings, get_visitor
from pixel_middleware.templating import register

settings = PixelSettings(
    track_id="123451234512345",
    secret_key=os.environ["PIXEL_SECRET_KEY"],  # signs the consent links
    enable_anonymous_function=True,
    suppress_parameter=("cd", "uc5", "uc7"),
    # FastAPI's API docs and schema, and health checks: no visitor, cookies or snippet.
    exclude_paths=("/docs", "/redoc", "/openapi.json", "/health"),
)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
register(templates.env, settings)

app = FastAPI()
app.add_middleware(PixelMiddleware, settings=settings)


@app.get("/", response_class=HTMLResponse)
async def product(request: Request) -> HTMLResponse:
    visitor = get_visitor(request)  # or request.state.pixel
    visitor.page("shop/teapot", cg1="shop", cp1="teapot")
    return templates.TemplateResponse(request, "product.html", {"visitor": visitor})


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
