"""A Starlette shop page tracked by pixel_middleware, with the consent link.

Run it (pip install "pixel-middleware[example]"):
    PIXEL_SECRET_KEY=change-me-to-32-random-characters uvicorn starlette_app:app
"""

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from pixel_middleware import PixelMiddleware, PixelSettings, get_visitor
from pixel_middleware.templating import register

settings = PixelSettings.from_smart_pixel(
    {  # your Smart Pixel config, pasted as it is
        "trackId": "123451234512345",
        "trackDomain": "q3.webtrekk.net",
        "userIdentification": {
            "enableAnonymousFunction": True,
            "anonymousCookieName": "miCookieOptOut",
            "anonymousOptIn": False,
            "suppressParameter": ["cd", "uc5", "uc7"],
        },
    },
    secret_key=os.environ["PIXEL_SECRET_KEY"],  # signs the consent links
    store="sqlite:///pixel_hits.sqlite3",  # in the working directory (the default)
    # Health checks and static files need no visitor, no cookies and no snippet.
    exclude_paths=("/health", "/static/"),
)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
register(templates.env, settings)


def current_user(request: Request) -> dict[str, str] | None:
    """Your login goes here: the logged-in customer, or None."""
    return None


async def product(request: Request) -> Response:
    visitor = get_visitor(request)  # or request.state.pixel
    visitor.page("shop/teapot", cg1="shop", cp1="teapot")
    if user := current_user(request):
        visitor.customer(id=user["id"], uc5=user["gender"])
    return templates.TemplateResponse(request, "product.html", {"visitor": visitor})


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/", product), Route("/health", health)])
app.add_middleware(PixelMiddleware, settings=settings)
