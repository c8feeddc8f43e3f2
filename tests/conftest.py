from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from pixel_middleware import JsonLinesSink, PixelMiddleware, PixelSettings, get_visitor

from .helpers import settings
from .postgres import PostgresServer

PAGE = "<!doctype html><html><head><title>t</title></head><body><h1>{}</h1></body></html>"


class Site:
    """A small Starlette site behind the middleware, with its hits file."""

    def __init__(self, s: PixelSettings, hits: Path, *, https: bool = False) -> None:
        self.settings = s
        self.hits_path = hits
        self.urls: dict[str, str] = {}

        async def page(request: Request) -> Response:
            visitor = get_visitor(request)
            visitor.page("shop/page", cp1="x")
            if request.query_params.get("login"):
                visitor.identify("C-42")
                visitor.customer(uc5="f", uc7="1815")
            return HTMLResponse(PAGE.format("page"))

        async def logout(request: Request) -> Response:
            visitor = get_visitor(request)
            visitor.customer(id="C-42")
            self.urls["before"] = visitor.pixel_url(with_identity=True)
            visitor.anonymize()
            self.urls["after"] = visitor.pixel_url(with_identity=True)
            return RedirectResponse("/", status_code=303)

        async def cached(request: Request) -> Response:
            return HTMLResponse(
                PAGE.format("cached"), headers={"cache-control": "public, max-age=60"}
            )

        app = Starlette(
            routes=[
                Route("/", page),
                Route("/logout", logout, methods=["POST"]),
                Route("/cached", cached),
            ]
        )
        self.app = PixelMiddleware(app, settings=s, sink=JsonLinesSink(hits))
        base = "https://shop.example" if https else "http://shop.example"
        # A browser on this site: its toggle requests say they are same-origin.
        self.client = TestClient(self.app, base_url=base, headers={"sec-fetch-site": "same-origin"})

    def hits(self) -> list[dict[str, Any]]:
        if not self.hits_path.exists():
            return []
        return [json.loads(line) for line in self.hits_path.read_text().splitlines()]


@pytest.fixture
def make_site(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    made: list[Site] = []

    def make(*, https: bool = False, **overrides: Any) -> Site:
        site = Site(settings(**overrides), tmp_path / f"hits{len(made)}.jsonl", https=https)
        made.append(site)
        return site

    yield make
    for site in made:
        site.client.close()


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole run, started on first use."""
    server = PostgresServer()
    server.start()
    yield server
    server.destroy()


def fresh_database(pg: PostgresServer) -> str:
    """A new, empty database on ``pg``; returns its DSN."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg.dsn.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each kind: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/hits.sqlite3"
    return fresh_database(request.getfixturevalue("pg"))


# What makes a test slow or dependent on the machine, read from what it uses, so that no test
# file has to remember it: `-m "not browser and not postgres and not server"` is the fast set.
_SERVER_NAMES = frozenset({"serve", "ServerProcess", "uvicorn", "run_client", "Popen"})


def _uses(function: Any) -> frozenset[str]:
    code = getattr(function, "__code__", None)
    return frozenset(code.co_names + code.co_varnames) if code is not None else frozenset()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        names = set(item.fixturenames)
        # A parametrized store shows in the test's id: test_x[postgresql].
        if "pg" in names or "postgres" in item.name:
            item.add_marker(pytest.mark.postgres)
        if "browser" in names:
            item.add_marker(pytest.mark.browser)
        # The test and its fixtures, by the names their code uses: serve(...), ServerProcess(...).
        functions = [item.function]
        for defs in item._fixtureinfo.name2fixturedefs.values():
            functions.extend(d.func for d in defs)
        if any(_uses(f) & _SERVER_NAMES for f in functions):
            item.add_marker(pytest.mark.server)
