"""The README's recipes, as a newcomer meets them.

Each recipe is a file in ``example_site/recipes/``; the README shows it verbatim (checked here,
byte for byte). Then each one runs under a real uvicorn, from a fresh virtual environment that
installed this checkout the way the README's Install section says, from a copy of the recipe's
files in an empty folder: the page is injected, the cookies are set, the opt-out link works, the
paths the recipe excludes are left alone, and hits land in the store next to the app, where the
command-line report finds them.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import venv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import injected_config, set_cookies

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "example_site" / "recipes"
README = ROOT / "README.md"
TRACK_ID = "123451234512345"
SECRET = "recipe-test-secret-0123456789abcdef"
# The files the README shows, each right after a "<!-- recipe: path -->" line.
SHOWN = (
    "example_site/recipes/starlette_app.py",
    "example_site/recipes/templates/product.html",
    "example_site/recipes/fastapi_app.py",
    "example_site/recipes/django_project/shop/settings.py",
    "example_site/recipes/django_project/shop/urls.py",
    "example_site/recipes/django_project/shop/asgi.py",
    "example_site/recipes/django_project/templates/product.html",
)
_BLOCK = re.compile(r"<!-- recipe: (\S+) -->\n```[a-z]*\n(.*?)```\n", re.S)


def readme_blocks() -> dict[str, str]:
    return dict(_BLOCK.findall(README.read_text(encoding="utf-8")))


def test_readme_shows_every_recipe_verbatim() -> None:
    blocks = readme_blocks()
    assert sorted(blocks) == sorted(SHOWN)
    for path in SHOWN:
        assert blocks[path] == (ROOT / path).read_text(encoding="utf-8"), path


def test_readme_install_section_names_each_recipes_extras() -> None:
    text = README.read_text(encoding="utf-8")
    install = text.split("## Install", 1)[1].split("\n## ", 1)[0]
    for extras in ("example", "example,fastapi", "example,django"):
        assert f'pip install "pixel-middleware[{extras}]"' in install
        assert f'pip install ".[{extras}]"' in install  # from a checkout
    # Each recipe's own docstring names the same extras and says how to run it.
    for name, extras in (
        ("starlette_app.py", "example"),
        ("fastapi_app.py", "example,fastapi"),
        ("django_project/shop/asgi.py", "example,django"),
    ):
        source = (RECIPES / name).read_text()
        assert f'pip install "pixel-middleware[{extras}]"' in source and "uvicorn " in source


# --------------------------------------------------------------- a fresh virtual environment


@dataclass
class FreshEnv:
    """A virtual environment outside the checkout, with this checkout installed by pip."""

    root: Path
    installed: set[str]

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def install(self, extras: str) -> None:
        """``pip install ".[extras]"`` from the checkout, as the README says."""
        if extras in self.installed:
            return
        subprocess.run(
            [str(self.python), "-m", "pip", "install", "--quiet", f"{ROOT}[{extras}]"],
            check=True,
            cwd=self.root,
            env=clean_env(),
            timeout=900,
        )
        self.installed.add(extras)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a shell that never saw this checkout or its test run."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "PIP_CACHE_DIR", "PIP_INDEX_URL", "SSL_CERT_FILE")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    return {**env, **extra}


@pytest.fixture(scope="session")
def fresh_env(tmp_path_factory: pytest.TempPathFactory) -> FreshEnv:
    root = tmp_path_factory.mktemp("fresh-venv")
    venv.EnvBuilder(with_pip=True).create(root)
    return FreshEnv(root, set())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    port: int
    folder: Path

    def get(self, path: str, **headers: str) -> tuple[int, dict[str, list[str]], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            body = r.read().decode("utf-8", "replace")
            found: dict[str, list[str]] = {}
            for name, value in r.getheaders():
                found.setdefault(name.lower(), []).append(value)
            return r.status, found, body
        finally:
            conn.close()


@contextmanager
def uvicorn(env: FreshEnv, folder: Path, app: str, **variables: str) -> Iterator[Served]:
    """``uvicorn <app>`` in ``folder`` with the fresh environment's Python, until the block ends.

    It is stopped the way a terminal stops it (SIGINT), so the lifespan shutdown flushes hits.
    """
    port = free_port()
    log = folder / "uvicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(env.python), "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)],
            cwd=folder,
            env=clean_env(**variables),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{app} did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield Served(port, folder)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    assert process.returncode == 0, log.read_text()


def copy_recipe(folder: Path, *names: str) -> Path:
    """The recipe's files, copied into an empty folder as a newcomer would copy them."""
    for name in names:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(RECIPES / name, target)
    return folder


def check_the_newcomers_story(site: Served, excluded: str) -> None:
    """The page is injected and sets cookies; the opt-out link works; excluded paths are left
    alone; a hit is recorded."""
    status, headers, page = site.get("/")
    assert status == 200, page
    assert injected_config(page) is not None and "/_pixel/pixel.js" in page
    cookies = set_cookies(headers.get("set-cookie", []))
    assert {"wtstp_eid", "wtstp_sid"} <= set(cookies)
    jar = "; ".join(f"{c.name}={c.value}" for c in cookies.values())
    links = re.findall(r'href="(/_pixel/optout\?[^"]+)"', page)
    assert len(links) == 1 and "/_pixel/optin" not in page  # only the choice that changes things

    # Following the link as a browser on this site does (it says the request is same-origin).
    href = links[0].replace("&amp;", "&")
    status, headers, _ = site.get(href, cookie=jar, **{"sec-fetch-site": "same-origin"})
    assert status == 303 and headers["location"] == ["/"]
    written = set_cookies(headers["set-cookie"])
    assert written["miCookieOptOut"].value == "1"
    assert written["miCookieOptOut"].attrs["max-age"] == str(43_200 * 60)  # duration=43200
    assert written["wtstp_eid"].expired and written["wtstp_sid"].expired

    status, headers, page = site.get("/", cookie="miCookieOptOut=1")
    config = injected_config(page)
    assert config is not None and config["anonymous"] is True
    assert "/_pixel/optin" in page and "/_pixel/optout" not in page
    assert "wtstp_eid" not in " ".join(headers.get("set-cookie", []))

    status, headers, body = site.get(excluded)
    assert status == 200 and "set-cookie" not in headers and "pixel" not in body

    hit = f"/_pixel/{TRACK_ID}/wt?p=600,shop%2Fteapot,,,,,1,0,,&cd=C-1&cp1=teapot"
    status, _, _ = site.get(hit, cookie="miCookieOptOut=1")
    assert status == 200


def stored_rows(folder: Path) -> list[tuple[str, int, str]]:
    """The rows of the store the recipe's settings name: pixel_hits.sqlite3 next to the app."""
    path = folder / "pixel_hits.sqlite3"
    assert path.exists(), f"no store at {path}: {sorted(p.name for p in folder.iterdir())}"
    with sqlite3.connect(path) as conn:
        return list(conn.execute("SELECT page_name, anonymous, query FROM pixel_hits"))


@pytest.mark.server
def test_starlette_recipe(fresh_env: FreshEnv, tmp_path: Path) -> None:
    fresh_env.install("example")
    folder = copy_recipe(tmp_path, "starlette_app.py", "templates/product.html")
    with uvicorn(fresh_env, folder, "starlette_app:app", PIXEL_SECRET_KEY=SECRET) as site:
        check_the_newcomers_story(site, "/health")
    rows = stored_rows(folder)
    assert rows == [("shop/teapot", 1, "p=600,shop%2Fteapot,,,,,1,0,,&nc=1&cp1=teapot")]
    # The command line, in the same folder, finds the same store with no option at all.
    report = subprocess.run(
        [str(fresh_env.python), "-m", "pixel_middleware", "report", "--days", "1"],
        cwd=folder,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert report.returncode == 0, report.stderr
    assert f"store: {folder}/pixel_hits.sqlite3" in report.stdout
    assert "page views: 1 (100.0% anonymous)" in report.stdout


@pytest.mark.server
def test_fastapi_recipe(fresh_env: FreshEnv, tmp_path: Path) -> None:
    fresh_env.install("example,fastapi")
    folder = copy_recipe(tmp_path, "fastapi_app.py", "templates/product.html")
    with uvicorn(fresh_env, folder, "fastapi_app:app", PIXEL_SECRET_KEY=SECRET) as site:
        check_the_newcomers_story(site, "/health")
        # FastAPI's own pages are excluded: no cookie, no snippet in the API docs.
        status, headers, docs = site.get("/docs")
        assert status == 200 and "swagger" in docs.lower()
        assert "set-cookie" not in headers and "pixel-middleware-config" not in docs
    assert [row[0] for row in stored_rows(folder)] == ["shop/teapot"]


@pytest.mark.server
def test_django_recipe(fresh_env: FreshEnv, tmp_path: Path) -> None:
    fresh_env.install("example,django")
    folder = copy_recipe(
        tmp_path,
        "django_project/shop/__init__.py",
        "django_project/shop/settings.py",
        "django_project/shop/urls.py",
        "django_project/shop/asgi.py",
        "django_project/templates/product.html",
    )
    project = folder / "django_project"
    # No DJANGO_SETTINGS_MODULE and no PIXEL_SECRET_KEY: asgi.py names the settings, and the
    # consent links are signed with Django's SECRET_KEY.
    with uvicorn(fresh_env, project, "shop.asgi:application", DJANGO_SECRET_KEY=SECRET) as site:
        check_the_newcomers_story(site, "/health")
    assert [row[0] for row in stored_rows(project)] == ["shop/teapot"]
