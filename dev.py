#!/usr/bin/env python3
"""One entry point that sets up everything it needs, using only the standard library.

    python3 dev.py example   # run the demo site on http://127.0.0.1:8000
    python3 dev.py test      # run every test (installs Chromium and PostgreSQL when missing)
    python3 dev.py bench     # run the benchmarks
    python3 dev.py check     # mypy --strict and ruff

It creates ``.venv`` beside this file. The demo installs only what it needs (the project and its
``example`` extra: uvicorn); the other commands install the project with its dev group (test
tools, Playwright, Django, psycopg, mypy, ruff). Either reinstalls when ``pyproject.toml`` changes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
# Debian's packages: Playwright's own browser download cannot work without the wider internet.
# Each package with a file it installs, to tell whether it is there (a Node.js from elsewhere
# counts: installing Debian's over it would fight it).
APT_PACKAGES = {
    "chromium": "/usr/bin/chromium",
    "postgresql": "/usr/lib/postgresql",
    # Mapp's real clients, run by the tests where ../shared/mapp-clients is present.
    "nodejs": "/usr/bin/node",
    "npm": "/usr/bin/npm",
    "curl": "/usr/bin/curl",
    "php-cli": "/usr/bin/php",
    "php-curl": "/usr/share/doc/php-curl",
    "php-mbstring": "/usr/share/doc/php-mbstring",
    "openjdk-17-jdk-headless": "/usr/bin/javac",
    # The end-to-end benchmark.
    "wrk": "/usr/bin/wrk",
}
TEST_PACKAGES = (
    "chromium",
    "postgresql",
    "nodejs",
    "npm",
    "curl",
    "php-cli",
    "php-curl",
    "php-mbstring",
    "openjdk-17-jdk-headless",
)


def say(text: str) -> None:
    print(f"[dev] {text}", flush=True)


def run(*args: str | os.PathLike[str], **kwargs: object) -> None:
    subprocess.run([str(a) for a in args], check=True, **kwargs)  # type: ignore[call-overload]


def _installed(kind: str, wanted: str) -> bool:
    stamp = VENV / f".installed-{kind}"
    return PY.exists() and stamp.exists() and stamp.read_text() == wanted


def ensure_venv(kind: str = "dev") -> None:
    """``.venv`` with the project and either its ``example`` extra or its dev group.

    The dev group holds everything the demo needs, so a venv set up for the tests serves the demo
    as it is; the demo alone never pulls in the test tools.
    """
    if sys.version_info < (3, 11):
        raise SystemExit("pixel_middleware needs Python 3.11 or newer")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if _installed(kind, wanted) or (kind == "example" and _installed("dev", wanted)):
        return
    if not PY.exists():
        say(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    if kind == "example":
        say("installing the project and uvicorn (what the demo needs)")
        run(PY, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[example]")
    else:
        say("installing the project and its dev group")
        # pip learnt --group (PEP 735 dependency groups) in 25.1.
        run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip>=25.1")
        run(
            PY,
            "-m",
            "pip",
            "install",
            "--quiet",
            "-e",
            f"{ROOT}[example]",
            "--group",
            f"{ROOT / 'pyproject.toml'}:dev",
        )
    (VENV / f".installed-{kind}").write_text(wanted)


def ensure_port_free(port: str) -> None:
    """Stop with a hint before uvicorn fails on a port another program holds."""
    try:
        number = int(port)
    except ValueError:
        raise SystemExit(f"PORT must be a number, got {port!r}") from None
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", number))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            free = number + 1
            raise SystemExit(
                f"[dev] port {number} is in use (another demo, or another program). Choose "
                f"another with PORT, e.g. PORT={free} python3 dev.py example"
            ) from None


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
        ensure_venv("example")
        port = os.environ.get("PORT", "8000")
        ensure_port_free(port)
        say(f"demo site on http://127.0.0.1:{port}/ (PIXEL_DEMO_MODE=opt-in for opt-in mode)")
        os.chdir(ROOT)
        os.execv(PY, [str(PY), "-m", "uvicorn", "example_site.app:app", "--port", port, *rest])
    if command == "test":
        ensure_venv()
        ensure_apt(*TEST_PACKAGES)
        os.chdir(ROOT)
        return subprocess.call([str(PY), "-m", "pytest", *rest])
    if command == "bench":
        ensure_venv()
        ensure_apt("wrk", "postgresql")
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
