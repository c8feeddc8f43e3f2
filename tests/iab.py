"""IAB Tech Lab's reference encoders from npm, for the consent-source tests.

``tests/iab/package.json`` pins ``@iabtechlabtcf/core`` (TC strings) and ``@iabgpp/cmpapi`` (GPP
strings); ``tests/iab/encode.js`` turns JSON specs into encoded strings with them (its header
describes the spec format). The packages are installed with ``npm install`` once into
``.cache/npm-iab/iab-<hash of package.json>`` (``PIXEL_NPM_CACHE`` overrides the parent folder, as
for the Smart Pixel), so changing a pin installs afresh and the tests never see a half install.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "iab"
ROOT = HERE.parent.parent
CACHE = Path(os.environ.get("PIXEL_NPM_CACHE", ROOT / ".cache" / "npm-iab"))
MANIFEST = HERE / "package.json"
SCRIPT = HERE / "encode.js"


def missing_tools() -> str | None:
    """Why the reference encoders cannot run here, or None when node and npm are installed."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed: the IAB reference encoders run in node"
    return None


def _pins() -> dict[str, str]:
    pins: dict[str, str] = json.loads(MANIFEST.read_text())["dependencies"]
    return pins


def _installed(target: Path) -> bool:
    for package, version in _pins().items():
        meta = target / "node_modules" / package / "package.json"
        if not meta.is_file() or json.loads(meta.read_text()).get("version") != version:
            return False
    return True


def install(cache: Path = CACHE) -> Path:
    """Install the pinned packages unless the cache holds them; returns their node_modules.

    The install goes to a temporary folder that is renamed into place, so two test processes
    never see half an install.
    """
    manifest = MANIFEST.read_bytes()
    target = cache / f"iab-{hashlib.sha256(manifest).hexdigest()[:16]}"
    if _installed(target):
        return target / "node_modules"
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "npm is missing: the consent-source tests install IAB's encoders with it"
        )
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".iab-", dir=cache))
    try:
        (staging / "package.json").write_bytes(manifest)
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--ignore-scripts"],
            cwd=staging,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"npm install of {_pins()} failed:\n{result.stderr}")
        if not _installed(staging):
            raise RuntimeError(f"npm did not install {_pins()} into {staging}")
        staging.chmod(0o755)  # mkdtemp makes it private
        try:
            staging.rename(target)
        except OSError:
            if not _installed(target):  # not another process that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "node_modules"


@functools.cache
def node_modules() -> Path:
    """The installed packages, installed at most once per test process."""
    return install()


def encode(specs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Encode each spec with the reference libraries, in one node process for the whole batch."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is missing: the IAB reference encoders run in node")
    result = subprocess.run(
        [node, str(SCRIPT)],
        input=json.dumps({"cases": list(specs)}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "NODE_PATH": str(node_modules())},
    )
    if result.returncode != 0:
        raise RuntimeError(f"encode.js failed:\n{result.stderr}")
    encoded = json.loads(result.stdout)
    if not (isinstance(encoded, list) and len(encoded) == len(specs)):
        raise RuntimeError(f"encode.js answered {result.stdout[:200]!r}")
    return [str(value) for value in encoded]
