"""Where the package's templates and browser script live, in a checkout and in a wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    # A wheel carries the folders inside the package; a checkout has them beside it.
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"pixel_middleware is installed without its {name}/ folder")


@cache
def templates_dir() -> Path:
    return _find("templates")


@cache
def static_dir() -> Path:
    return _find("static")


@cache
def environment() -> jinja2.Environment:
    """The package's own Jinja2 environment (autoescaping on) for the snippet and link templates."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        # The package's templates do not change while it runs: skip a stat() per render.
        auto_reload=False,
    )
