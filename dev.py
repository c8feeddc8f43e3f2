#!/usr/bin/env python3
"""One entry point that sets up everything it needs, using only the standard library.

    python3 dev.py example   # run the demo site on http://127.0.0.1:8000
    python3 dev.py test      # run every test (installs Chromium and PostgreSQL when missing)
    python3 dev.py bench     # run the benchmarks
    python3 dev.py check     # mypy --strict and ruff

It creates ``.venv`` beside this file and installs the project with its dev group; it reinstalls
when ``pyproject.toml`` changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
# Debian's packages: Playwright's own browser download cannot work without the wider internet.
APT_PACKAGES = {"chromium": "/usr/bin/chromium", "postgresql": "/usr/lib/postgresql"}


def say(text: str) -> None:
    print(f"[dev] {text}", flush=True)


def run(*args: str | os.PathLike[str], **kwargs: object) -> None:
    subprocess.run([str(a) for a in args], check=True, **kwargs)  # type: ignore[call-overload]


def ensure_venv() -> None:
    if sys.version_info < (3, 11):
        raise SystemExit("pixel_middleware needs Python 3.11 or newer")
    stamp = VENV / ".installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted and PY.exists():
        return
    if not PY.exists():
        say(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    say("installing the project and its dev group")
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip>=25.1")
    run(
        PY,
        "-m",
        "pip",
        "install",
        "--quiet",
        "-e",
        ROOT,
        "--group",
        f"{ROOT / 'pyproject.toml'}:dev",
    )
    stamp.write_text(wanted)


def ensure_apt(*names: str) -> None:
    missing = [n for n in names if not Path(APT_PACKAGES[n]).exists()]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise SystemExit(f"please install {', '.join(missing)} (Debian/Ubuntu packages)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    say(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(*sudo, "apt-get", "update", "-qq", env=env)
    run(*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, env=env)


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "example":
        ensure_venv()
        port = os.environ.get("PORT", "8000")
        say(f"demo site on http://127.0.0.1:{port}/ (PIXEL_DEMO_MODE=opt-in for opt-in mode)")
        os.chdir(ROOT)
        os.execv(PY, [str(PY), "-m", "uvicorn", "example_site.app:app", "--port", port, *rest])
    if command == "test":
        ensure_venv()
        ensure_apt("chromium", "postgresql")
        os.chdir(ROOT)
        return subprocess.call([str(PY), "-m", "pytest", *rest])
    if command == "bench":
        ensure_venv()
        os.chdir(ROOT)
        return subprocess.call([str(PY), "-m", "bench", *rest])
    if command == "check":
        ensure_venv()
        os.chdir(ROOT)
        return subprocess.call([str(PY), "-m", "mypy"]) or subprocess.call(
            [str(PY), "-m", "ruff", "check", "."]
        )
    print(__doc__)
    return 0 if command == "help" else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
