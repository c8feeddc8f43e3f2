"""uvicorn in a child process, for tests that kill the server or watch it refuse to start."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from .helpers import SECRET, TRACK_ID
from .servers import free_port

ROOT = Path(__file__).resolve().parent.parent
WT = f"/_pixel/{TRACK_ID}/wt"


class ServerProcess:
    """``uvicorn tests.fault_app:app`` with ``settings`` as ``PIXEL_*`` variables.

    Its stderr (uvicorn's log and the app's, with levels) goes to ``log_path``.
    """

    def __init__(
        self,
        settings: Mapping[str, str],
        log_path: Path,
        *,
        port: int | None = None,
        app: str = "tests.fault_app:app",
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.app = app
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIXEL_")}
        env.update({"PIXEL_TRACK_ID": TRACK_ID, "PIXEL_SECRET_KEY": SECRET})
        env.update({f"PIXEL_{k.upper()}": v for k, v in settings.items()})
        env.update(extra_env or {})
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "uvicorn", self.app, "--lifespan", "on"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self.process

    def start(self, timeout: float = 60) -> ServerProcess:
        """Launch and wait until the server answers."""
        process = self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{self.log()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/")
                conn.getresponse().read()
                conn.close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not answer:\n{self.log()}")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self, timeout: float = 120) -> int:
        """A graceful stop (SIGTERM, as a service manager sends); the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    @property
    def stopped_cleanly(self) -> bool:
        """Whether the server ended after a complete graceful shutdown.

        uvicorn raises the signal it caught again once it has shut down, so a clean stop by
        SIGTERM ends with that signal's status rather than 0.
        """
        return self.stopped_with in (0, -signal.SIGTERM)

    @property
    def stopped_with(self) -> int | None:
        """The exit status, once the process has ended."""
        return None if self.process is None else self.process.poll()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def records(self, level: str) -> list[str]:
        """Log lines of the app at ``level`` (``ERROR``, ``WARNING``, …)."""
        return [line for line in self.log().splitlines() if line.startswith(level + " ")]


def hit_query(number: int, padding: int = 0) -> str:
    """A hit numbered with ``cp1`` (every query differs, so none is a resend of another)."""
    pad = f"&cp2={'x' * padding}" if padding else ""
    return f"p=600,fault%2Fpage,,,,,1700000000000,0,,&cp1={number}{pad}"


def send_hits(url: str, numbers: Iterable[int], *, padding: int = 0) -> dict[int, int]:
    """GET one hit per number over one keep-alive connection; the status of each."""
    host, port = url.removeprefix("http://").split(":")
    statuses: dict[int, int] = {}
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        for number in numbers:
            conn.request("GET", f"{WT}?{hit_query(number, padding)}")
            response = conn.getresponse()
            response.read()
            statuses[number] = response.status
    finally:
        conn.close()
    return statuses


def acknowledged(statuses: Mapping[int, int]) -> list[int]:
    return sorted(n for n, status in statuses.items() if status == 200)
