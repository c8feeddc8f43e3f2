"""Small readers for what a user sees: Set-Cookie lines, pixel queries, injected config."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixel_middleware import PixelSettings

ROOT = Path(__file__).resolve().parents[1]
TRACK_ID = "123451234512345"
SECRET = "test-secret-key-0123456789"


def settings(**overrides: Any) -> PixelSettings:
    # No store unless a test asks for one: hits then go to the log, not into the working folder.
    values: dict[str, Any] = {"track_id": TRACK_ID, "secret_key": SECRET, "store": None}
    values.update(overrides)
    return PixelSettings(**values)


@dataclass
class SetCookie:
    name: str
    value: str
    attrs: dict[str, str] = field(default_factory=dict)

    @property
    def expired(self) -> bool:
        return self.attrs.get("max-age") == "0"

    def has(self, flag: str) -> bool:
        return flag.lower() in self.attrs


def parse_set_cookie(line: str) -> SetCookie:
    first, *rest = [part.strip() for part in line.split(";")]
    name, _, value = first.partition("=")
    attrs = {}
    for part in rest:
        key, _, val = part.partition("=")
        attrs[key.lower()] = val
    return SetCookie(name, value, attrs)


def set_cookies(lines: Iterable[str]) -> dict[str, SetCookie]:
    out: dict[str, SetCookie] = {}
    for line in lines:
        cookie = parse_set_cookie(line)
        assert cookie.name not in out, f"{cookie.name} set twice in one response"
        out[cookie.name] = cookie
    return out


def query_pairs(query: str) -> list[tuple[str, str]]:
    return [(p.partition("=")[0], p.partition("=")[2]) for p in query.split("&") if p]


def names(query: str) -> list[str]:
    return [name for name, _ in query_pairs(query)]


_CONFIG_RE = re.compile(
    r'<script type="application/json" id="pixel-middleware-config">(.*?)</script>', re.S
)


def injected_config(html: str) -> dict[str, Any] | None:
    match = _CONFIG_RE.search(html)
    return None if match is None else dict(json.loads(match.group(1)))


def cli(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m pixel_middleware *args`` in a clean environment (no ``PIXEL_*`` of ours)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PIXEL_")}
    return subprocess.run(
        [sys.executable, "-m", "pixel_middleware", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
    )
