"""End to end: uvicorn servers in subprocesses, driven over loopback by Debian's ``wrk``.

One uvicorn process per setup (bare, a second bare for the A/A comparison, the reference
injector, PixelMiddleware), all pinned to one core with ``taskset`` and ``wrk`` to another, so
server and client never take turns on one core (other work on the machine still may). Each run
is ``seconds`` long; one round runs every setup in the order A B C D D C B A (each pair of setups
sees A B B A), first for the HTML page and then for the JSON response, and a setup's rate in a
round is the mean of its two runs. Every round starts fresh server processes (and warms them
up). Reported: the median over rounds of requests/s with the middleware ÷ without, with the
rounds' range; the A/A line (bare ÷ bare) shows how much two identical servers differ on this
machine at this moment.

Beside wrk's rate, the server's own CPU time (user + system, from ``/proc``) per request is
recorded: bare's ÷ the setup's is the rate ratio a server with a core to itself would show, and
it holds steady when other work on the machine takes turns on the server's core (wrk's rate does
not). The server's CPU share (CPU time ÷ wall time, ~1.0 when it had its core) shows when it did.

Every request carries the returning, identified visitor's cookies (``wrk -H``). The servers are
stopped in ``finally``; should this process die without running it, the kernel sends them
SIGTERM (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import http.client
import importlib.metadata
import importlib.util
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from . import apps
from .stats import Spread

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "bench" / "results"  # the servers' output, kept for a look after a failure
SETUPS = (("bare", "bare"), ("bare A/A", "bare"), ("reference", "reference"), ("pixel", "pixel"))
KINDS = (("html", "/"), ("json", "/api"))
_RATE_RE = re.compile(r"Requests/sec:\s*([0-9.]+)")
_REQUESTS_RE = re.compile(r"(\d+) requests in")
_NON_2XX_RE = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")
_ERRORS_RE = re.compile(r"Socket errors:(.*)")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class E2EUnavailable(RuntimeError):
    """wrk (or something else this needs) is missing: the end-to-end part cannot run."""


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the bench process dies (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cores() -> tuple[list[str], list[str], str]:
    """``taskset`` prefixes for the server and for wrk, and a description of the pinning."""
    available = sorted(os.sched_getaffinity(0))
    if shutil.which("taskset") is None or len(available) < 2:
        return [], [], f"not pinned (taskset missing or only {len(available)} core available)"
    server, client = available[0], available[1]
    return (
        ["taskset", "-c", str(server)],
        ["taskset", "-c", str(client)],
        f"server on core {server}, wrk on core {client} (of {len(available)})",
    )


@dataclass
class Server:
    name: str
    factory: str
    pin: list[str]
    log: IO[bytes]
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self.port = free_port()
        command = [
            *self.pin,
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"bench.apps:{self.factory}_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            preexec_fn=_die_with_parent,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"uvicorn for {self.name} exited; see {self.log.name}")
            try:
                self.check()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"uvicorn for {self.name} did not answer within {timeout} s")

    def check(self) -> None:
        """Both paths answer 200; the snippet is in the page exactly when a middleware injects."""
        for kind, path in KINDS:
            request = urllib.request.Request(  # noqa: S310 - our own loopback server
                self.url(path), headers={"Cookie": apps.IDENTIFIED_COOKIE}
            )
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                body = response.read()
                if response.status != 200:
                    raise RuntimeError(f"{self.name} {path}: status {response.status}")
            injected = b"pixel.js" in body
            if injected != (kind == "html" and self.factory != "bare"):
                raise RuntimeError(f"{self.name} {path}: snippet {'in' if injected else 'not in'}")

    def warm_up(self, requests: int = 300) -> None:
        """Some requests on one kept-alive connection, so that lazy setup is not measured."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for _, path in KINDS:
                for _ in range(requests):
                    connection.request("GET", path, headers={"Cookie": apps.IDENTIFIED_COOKIE})
                    response = connection.getresponse()
                    response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{self.name} {path}: status {response.status}")
        finally:
            connection.close()

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (Linux ``/proc``)."""
        if self.process is None:
            return 0.0
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wrk(pin: list[str], url: str, seconds: int, connections: int) -> dict[str, Any]:
    command = [
        *pin,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "-H",
        f"Cookie: {apps.IDENTIFIED_COOKIE}",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    rate = _RATE_RE.search(done.stdout)
    total = _REQUESTS_RE.search(done.stdout)
    if rate is None or total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{done.stdout}")
    non_2xx = _NON_2XX_RE.search(done.stdout)
    errors = _ERRORS_RE.search(done.stdout)
    result: dict[str, Any] = {"rps": float(rate.group(1)), "requests": int(total.group(1))}
    if non_2xx is not None or errors is not None:
        raise RuntimeError(f"wrk saw failures against {url}:\n{done.stdout}")
    return result


@dataclass(frozen=True, slots=True)
class Run:
    rps: float  # wrk's requests/s
    cpu_us_per_request: float  # server CPU time (user + system) per request
    cpu_share: float  # server CPU time ÷ wall time: below ~1 means it was starved of its core


def measure(server: Server, pin: list[str], path: str, seconds: int, connections: int) -> Run:
    """One wrk run against ``server``, with the CPU time the server spent meanwhile."""
    cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
    result = wrk(pin, server.url(path), seconds, connections)
    cpu = server.cpu_seconds() - cpu_before
    wall = time.monotonic() - wall_before
    return Run(
        rps=result["rps"],
        cpu_us_per_request=cpu * 1e6 / max(result["requests"], 1),
        cpu_share=cpu / wall,
    )


def run(rounds: int, seconds: int, connections: int, log: Any = print) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise E2EUnavailable("wrk is not installed (Debian: apt-get install wrk)")
    server_pin, client_pin, pinning = cores()
    load_before = os.getloadavg()
    raw: dict[str, list[dict[str, Run]]] = {kind: [] for kind, _ in KINDS}
    LOGS.mkdir(parents=True, exist_ok=True)
    logs = {
        name: open(LOGS / f"e2e-{re.sub(r'[^a-z]+', '-', name.lower())}.log", "wb")  # noqa: SIM115
        for name, _ in SETUPS
    }
    try:
        for number in range(rounds):
            # Fresh processes every round: one process's luck (memory layout, hash seed) is then
            # one round's, and the A/A line shows it.
            servers = [Server(name, factory, server_pin, logs[name]) for name, factory in SETUPS]
            try:
                for server in servers:
                    server.start()
                for server in servers:
                    server.wait_ready()
                    server.warm_up()
                order = servers + servers[::-1]
                for kind, path in KINDS:
                    runs: dict[str, list[Run]] = {s.name: [] for s in servers}
                    for server in order:
                        runs[server.name].append(
                            measure(server, client_pin, path, seconds, connections)
                        )
                    raw[kind].append({name: _mean(v) for name, v in runs.items()})
                    log(
                        f"  e2e round {number + 1}/{rounds} {kind}: "
                        + ", ".join(f"{n} {_mean(v).rps:.0f}/s" for n, v in runs.items())
                    )
                for server in servers:
                    server.check()  # still serving what it should after the runs
            finally:
                for server in servers:
                    server.stop()
    finally:
        for handle in logs.values():
            handle.close()
    out: dict[str, Any] = {
        "rounds": rounds,
        "seconds_per_run": seconds,
        "connections": connections,
        "pinning": pinning,
        "server": _server_description(),
        "wrk": _wrk_version(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    names = [name for name, _ in SETUPS]
    for kind, _ in KINDS:
        rows = raw[kind]
        out[kind] = {
            "rps": {n: Spread.of([r[n].rps for r in rows]).as_dict() for n in names},
            "ratio_to_bare": {
                n: Spread.of([r[n].rps / r["bare"].rps for r in rows]).as_dict() for n in names[1:]
            },
            "cpu_us_per_request": {
                n: Spread.of([r[n].cpu_us_per_request for r in rows]).as_dict() for n in names
            },
            "cpu_added_us": {
                n: Spread.of(
                    [r[n].cpu_us_per_request - r["bare"].cpu_us_per_request for r in rows]
                ).as_dict()
                for n in names[1:]
            },
            # Bare's CPU time per request ÷ the setup's: the rate ratio a server that had its
            # core to itself would show. Much less sensitive to other work on the machine.
            "cpu_ratio_to_bare": {
                n: Spread.of(
                    [r["bare"].cpu_us_per_request / r[n].cpu_us_per_request for r in rows]
                ).as_dict()
                for n in names[1:]
            },
            "server_cpu_share": Spread.of([r[n].cpu_share for r in rows for n in names]).as_dict(),
            "raw": [{n: asdict(run) for n, run in r.items()} for r in rows],
        }
    return out


def _mean(runs: list[Run]) -> Run:
    return Run(
        rps=statistics.mean(r.rps for r in runs),
        cpu_us_per_request=statistics.mean(r.cpu_us_per_request for r in runs),
        cpu_share=statistics.mean(r.cpu_share for r in runs),
    )


def _server_description() -> str:
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    version = importlib.metadata.version("uvicorn")
    return f"uvicorn {version}, 1 worker, {http}, {loop} loop, access log off"


def _wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).splitlines()[0].split(" Copyright")[0].strip()
