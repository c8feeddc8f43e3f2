"""Mapp's real server-side tracking libraries: recorded requests (fixtures) and runners.

Mapp's Node, PHP and Java tracking libraries live, unmodified, in ``shared/mapp-clients`` next to
the repository (see its SOURCES.txt). This module

* loads the requests they were recorded sending (``tests/fixtures/mapp/<client>.json``),
* replays such a request, byte for byte, against a base URL over real HTTP,
* runs a real library (through the small drivers in ``tests/mapp_drivers``) against a base URL and
  returns once it has sent, or tells why it cannot run (library copy, node, php, curl or a JDK
  missing).

A base URL ``http://127.0.0.1:8000/mapp`` becomes the libraries' ``trackDomain``
``127.0.0.1:8000/mapp`` with ``forceSSL`` off (``https://`` turns it on). Whether the ``/mapp``
part survives depends on the client: in the fixtures' paths ``{base_path}`` marks where it did.

``python -m tests.mapp_clients record`` runs every client against a recording server and rewrites
the fixtures.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

HERE: Final = Path(__file__).resolve().parent
MAPP_CLIENTS: Final = Path(__file__).resolve().parents[2] / "shared" / "mapp-clients"
FIXTURES: Final = HERE / "fixtures" / "mapp"
DRIVERS: Final = HERE / "mapp_drivers"

TRACK_ID: Final = "123451234512345"
BASE_PATH: Final = "{base_path}"
HOST: Final = "{host}"
#: identified: a Smart Pixel cookie (wtstp_eid) is present, two hits: page view with customer (cd,
#: uc70x, ceid where supported), order, two products, session, campaign; then an action (ct, ck).
#: generated-eid: no cookie; the app lets the library create the everID; one page view.
#: no-eid: no cookie, no everID call (an app that never asks for the cookie); one page view.
SCENARIOS: Final = ("identified", "generated-eid", "no-eid")
#: How many wt?... lines (hits) each scenario sends.
SCENARIO_HITS: Final = {"identified": 2, "generated-eid": 1, "no-eid": 1}
#: The visitor data every driver passes as "request information".
VISITOR_IP: Final = "203.0.113.7"
VISITOR_UA: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
SMART_PIXEL_EVER_ID: Final = "2171064588426634614"

LIBRARY_COMMITS: Final = {
    "node": "cfd877dfb12351f2748e0f6a504f14b18c59ec3c",
    "php": "ff875c0d179c84840fc96aea68058a1fa5e2da15",
    "java": "674104d59274a8fb9351c66d0787b8ed20bbe3c9",
}
_LIBRARY_DIRS: Final = {"node": "mapp-node", "php": "mapp-php", "java": "mapp-java"}
_LT400: Final = "status < 400"
_EQ200: Final = "status == 200"


@dataclass(frozen=True)
class MappClient:
    """One way a Mapp library delivers hits, as read from its code."""

    name: str
    client: str
    consumer: str
    source_file: str
    success_rule: str
    success_statuses: str
    on_failure: str
    tools: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def counts_as_success(self, status: int) -> bool:
        """Whether this client treats an answer with ``status`` as delivered."""
        return status < 400 if self.success_rule == _LT400 else status == 200


_NODE_RETRY = (
    "Queue.flush(): on a failed batch the batch goes back to the front of the queue and the whole "
    "queue is flushed again up to maxAttempt times (default 1, max 5) with attemptTimeout ms "
    "(default 100) between; after that the hits stay in the in-memory queue (resent by a later "
    "flush) and flush() resolves false. At process exit a hook ('exit', signals) flushes again: "
    "the HTTP client cannot send any more by then, but FORK_CURL still spawns curl, which "
    "delivers the batch after node has gone."
)
_PHP_RETRY = (
    "MappIntelligenceQueue::flush(): a failed batch is put back at the front of the queue and "
    "flushQueue() is retried up to maxAttempt times (default 1, max 5), usleep(attemptTimeout "
    "ms, default 100) between; flush() returns false. The queue's __destruct() calls flush() "
    "again at the end of the PHP request, so a refused batch is sent a second time (maxAttempt "
    "more tries) when the script ends; whatever is still queued then is lost."
)

CLIENTS: Final[dict[str, MappClient]] = {
    c.name: c
    for c in (
        MappClient(
            name="node-http",
            client="node",
            consumer="HTTP_CLIENT (ConsumerHttpClient, the default consumer)",
            source_file="dist/mapp-intelligence-node.umd.js (AConsumer.getHTTPOptions, "
            "ConsumerHttpClient.sendBatch)",
            success_rule=_LT400,
            success_statuses="any status < 400 is success (1xx/2xx/3xx, redirects are not "
            "followed); >= 400, a socket error or the 30 s timeout is a failure. The body of "
            "the answer is never read.",
            on_failure=_NODE_RETRY,
            tools=("node",),
            notes=(
                "POSTs to /<trackId>/batch on trackDomain's host and port only: a path in "
                "trackDomain is dropped (http.request options: hostname = trackDomain before ':', "
                "port = parseInt of the rest, path = '/' + trackId + '/batch').",
                "No Content-Length: the body is sent with Transfer-Encoding: chunked. "
                "Content-Type is 'text/plain; utf-8' (sic, no charset=). No User-Agent header.",
                "Lines joined with os.EOL (CRLF on Windows). Values encoded with "
                "encodeURIComponent: ( ) ! ' * ~ stay unescaped.",
                "Sends ceid (Customer.setCustomIdentifier). Product fields are joined with ';' "
                "for every product (ca2=Men%3B); an array value is String()-ed with ','.",
                "eid only when a cookie (wtstp_eid, wteid_<trackId>, wt3_eid) was passed in or "
                "getUserIdCookie() generated one: 8 + 10-digit epoch seconds + 8 random digits.",
            ),
        ),
        MappClient(
            name="node-fork-curl",
            client="node",
            consumer="FORK_CURL (ConsumerForkCurl: child_process.exec of the curl CLI)",
            source_file="dist/mapp-intelligence-node.umd.js (ConsumerForkCurl.sendBatch); "
            "src: src/Consumer/MappIntelligenceConsumerForkCurl.ts",
            success_rule=_EQ200,
            success_statuses="only 200 (curl -w '%{http_code}' parsed with parseInt); any other "
            "status, a curl error (000) or the 30 s curl timeout (-m 30) is a failure.",
            on_failure=_NODE_RETRY,
            tools=("node", "curl"),
            notes=(
                'child_process.exec(\'curl -X POST -H "Content-Type: text/plain" -d "<payload>" '
                '-m 30 -s -o /dev/null -w "%{http_code}" "<url>"\'): the full URL, so a path '
                "in trackDomain is kept. Headers are curl's (User-Agent curl/<version>, Accept "
                "*/*) plus Content-Type text/plain and Content-Length; curl adds Expect: "
                "100-continue above 1 MiB (older curl: above 1 KiB).",
                "Lines joined with a real newline (os.EOL) inside a double-quoted shell argument: "
                "one argument is limited to 128 KiB on Linux (MAX_ARG_STRLEN), bigger batches "
                "cannot be sent at all.",
                "Same line format as node-http (ceid, encodeURIComponent).",
            ),
        ),
        MappClient(
            name="node-cronjob-file",
            client="node",
            consumer="FILE consumer (request log files) sent by the exported "
            "MappIntelligenceCronjob (the CLI cron job) with the HTTP_CLIENT consumer",
            source_file="dist/mapp-intelligence-node.umd.js (ConsumerFile.sendBatch, "
            "CLICronjob, CLIFileRotationTransmitter.sendRequests, ConsumerHttpClient.sendBatch)",
            success_rule=_LT400,
            success_statuses="as node-http: any status < 400 is success (the cron job always "
            "sends with ConsumerHttpClient).",
            on_failure="One Queue per .log file (maxBatchSize 1000, maxAttempt from the config, "
            "default 1). If a file's flush fails the cron job stops and run() resolves 1; that "
            "file and all later files are kept and resent whole by the next run - including "
            "batches of it that were already accepted. A file whose flush succeeded is deleted. "
            ".tmp files are only renamed to .log (and so sent) 30 minutes after their creation "
            "time (taken from the file name) or when the writer rotates them (10,000 lines, 24 "
            "MiB or 30 minutes).",
            tools=("node",),
            notes=(
                "The FILE consumer appends each batch (maxBatchSize forced to 1) + os.EOL to "
                "<filePath>/<filePrefix>-<ms>.tmp; the cron job (CLICronjob -> "
                "CLIFileRotationTransmitter) sends every <filePrefix>*.log, one POST per file, "
                "through ConsumerHttpClient (path dropped, chunked, as node-http).",
                "Lines are sent as written (X-WT-* are added only when a line lacks them and the "
                "cron job's config has values, which it has not). pf is the writer's (128).",
                "package.json names a bin cronjob.js that is not in the copy; the driver runs "
                "new MappIntelligenceCronjob(['-i', id, '-d', domain, '-f', dir, '-p', prefix, "
                "'-c', config.json]).run() - forceSSL can only be switched off through the "
                "config file.",
            ),
        ),
        MappClient(
            name="php-curl",
            client="php",
            consumer="CURL (MappIntelligenceConsumerCurl, ext-curl, the default consumer)",
            source_file="lib/Consumer/MappIntelligenceConsumerCurl.php "
            "(+ lib/Consumer/MappIntelligenceAbstractConsumer.php)",
            success_rule=_EQ200,
            success_statuses="only 200 (curl_getinfo(CURLINFO_HTTP_CODE) !== 200 is a failure: "
            "201, 204, 3xx, 4xx, 5xx and transport errors all fail). Redirects are not followed.",
            on_failure=_PHP_RETRY,
            tools=("php",),
            notes=(
                "ext-curl POST to http(s)://<trackDomain>/<trackId>/batch (a path in trackDomain "
                "is kept). Headers: Host, Accept */*, Content-Type text/plain, Content-Length - no "
                "User-Agent; libcurl adds Expect: 100-continue above 1 MiB. No gzip ('ToDo' in "
                "the code).",
                "Lines joined with LF. http_build_query(PHP_QUERY_RFC3986): everything except "
                "A-Za-z0-9 - _ . ~ is percent-encoded (( ) become %28 %29).",
                "Bracketed names: a product field that the last product of the collection lacks "
                "is never imploded and goes out as name[i] (encoded: ca2%5B0%5D=Men&ca2%5B1%5D=, "
                "cb1%5B0%5D=L&cb1%5B1%5D=). An array value on one product is joined with ';', "
                "indistinguishable from the product separator.",
                "No ceid: the PHP Customer has no custom identifier.",
                "setUserId()/getUserIdCookie() for a new visitor store the generated everID "
                "(8 + 13-digit epoch ms + 5 random digits) and then call setcookie() with an "
                "expiry in milliseconds: a warning on PHP 7, an uncaught ValueError on PHP 8 (the "
                "driver catches it to send the hit as PHP 7 would).",
                "The library uses each own domain (default: the request URL's host) as a "
                "preg_match pattern, so a plain host name raises a PHP warning on every hit.",
            ),
        ),
        MappClient(
            name="php-fork-curl",
            client="php",
            consumer="FORK_CURL (MappIntelligenceConsumerForkCurl: exec() of the curl CLI; "
            "despite the name it waits for curl)",
            source_file="lib/Consumer/MappIntelligenceConsumerForkCurl.php "
            "(+ lib/Consumer/MappIntelligenceAbstractConsumer.php)",
            success_rule=_EQ200,
            success_statuses="only 200 (intval of curl's -w '%{http_code}' output).",
            on_failure=_PHP_RETRY,
            tools=("php", "curl"),
            notes=(
                'exec(\'curl -X POST -H "Content-Type: text/plain" -d "<payload>" -s -o '
                '/dev/null -w "%{http_code}" "<url>"\') - synchronous despite the name; no '
                "curl timeout. Full URL: a path in trackDomain is kept. curl's headers "
                "(User-Agent curl/<version>, Accept */*), Content-Type text/plain, Content-Length.",
                "Lines are joined with the two characters backslash + 'n' (PHP '\\n' in single "
                "quotes, passed through sh and curl unchanged), not with a newline: a batch of N "
                "hits arrives as one physical line. The collector must split on a literal \\n "
                "(it cannot occur inside a percent-encoded line).",
                "The payload is one double-quoted shell argument: at most 128 KiB on Linux.",
                "Same line format as php-curl (bracketed names, no ceid).",
            ),
        ),
        MappClient(
            name="php-cronjob-file",
            client="php",
            consumer="FILE consumer (one request log file) sent by cronjob.php with the CURL "
            "consumer",
            source_file="cronjob.php, lib/Cronjob/MappIntelligenceCLIFileTransmitter.php, "
            "lib/Consumer/MappIntelligenceConsumerFile.php, "
            "lib/Consumer/MappIntelligenceConsumerCurl.php",
            success_rule=_EQ200,
            success_statuses="as php-curl: only 200.",
            on_failure="The log file is first renamed to MappIntelligenceRequests-<rand>.log, "
            "its lines are sent in batches of 1000; if flush() fails the queue's remaining "
            "(unsent) lines are written back to the original file name (FILE consumer, mode "
            "'c'), the renamed file is deleted and cronjob.php exits 1. The failed queue's "
            "destructor then flushes it once more, so the same lines can be both resent at once "
            "and kept in the file for the next run (duplicates).",
            tools=("php",),
            notes=(
                "The FILE consumer (maxBatchSize forced to 1) appends each line + LF to one file "
                "(default sys_get_temp_dir()/MappIntelligenceRequests.log). cronjob.php "
                "--filename sends its lines with the CURL consumer (batches of 1000), so the "
                "request is shaped as php-curl's.",
                "cronjob.php has no forceSSL option: it posts to https:// unless a --config ini "
                "file says forceSSL = false (the runner writes one). getopt maps -f to both "
                "--filename and --filePath; use the long options.",
                "Lines are sent as written; X-WT-* are only added when missing from a line and "
                "the cron job has request data (it has none on the CLI).",
            ),
        ),
        MappClient(
            name="php-cronjob-file-rotation",
            client="php",
            consumer="FILE_ROTATION consumer (.tmp/.log request files) sent by cronjob.php "
            "--consumerType FILE_ROTATION with the CURL consumer",
            source_file="cronjob.php, lib/Cronjob/MappIntelligenceCLIFileRotationTransmitter.php, "
            "lib/Consumer/MappIntelligenceConsumerFileRotation.php, "
            "lib/Consumer/MappIntelligenceConsumerCurl.php",
            success_rule=_EQ200,
            success_statuses="as php-curl: only 200.",
            on_failure="One queue per .log file (batches of 1000). A failed file stops the run "
            "(exit 1) and is kept whole, so its accepted batches are resent next run; the "
            "queue's destructor also retries it once more before the script ends. Sent files "
            "are deleted. .tmp files become .log 30 minutes after creation or on rotation.",
            tools=("php",),
            notes=(
                "FILE_ROTATION writes <filePath><filePrefix>-<ms>.tmp (rotated to .log at 10,000 "
                "lines, 24 MiB or 30 minutes); cronjob.php --consumerType FILE_ROTATION sends each "
                ".log as one CURL request (batches of 1000) and deletes it; .tmp files are renamed "
                "to .log only once the time in their name is 30 minutes old (the runner renames "
                "them at once).",
                "Request shape as php-curl.",
            ),
        ),
        MappClient(
            name="java-http",
            client="java",
            consumer="HTTP_CLIENT (MappIntelligenceConsumerHttpClient, java.net.HttpURLConnection)",
            source_file="tracking/src/main/java/com/mapp/intelligence/tracking/consumer/"
            "MappIntelligenceConsumerHttpClient.java (+ AbstractMappIntelligenceConsumer.java, "
            "util/RequestScheduler.java)",
            success_rule=_LT400,
            success_statuses="any status < 400 (HttpURLConnection.HTTP_BAD_REQUEST); an "
            "IOException (connect timeout 30 s, read timeout 5 s) is a failure. "
            "HttpURLConnection itself follows a 3xx that has a Location (re-sent as GET, except "
            "307) and judges the final answer; a 3xx without Location counts as success.",
            on_failure="RequestScheduler.flushTask(): per request queue (requestQueues + 1 "
            "queues, default 3, each with its own worker thread), a failed batch goes back to the "
            "front and the queue is retried up to maxAttempt times (default 1, max 5), "
            "Thread.sleep(attemptTimeout, default 100 ms) between; hits stay queued for the next "
            "flush (or the shutdown hook's flush). onFlushComplete(false, queueId) reports it.",
            tools=("java", "javac"),
            notes=(
                "HttpURLConnection POST to http(s)://<trackDomain>/<trackId>/batch (a path in "
                "trackDomain is kept). Headers: Content-Type 'text/plain; utf-8' (sic), User-Agent "
                "Java/<jdk version>, Accept 'text/html, image/gif, image/jpeg, */*; q=0.2', "
                "Connection keep-alive, Content-Length. The library's Keep-Alive: timeout=1800 is "
                "dropped by HttpURLConnection (restricted header).",
                "Lines joined with System.lineSeparator() (CRLF on Windows). After p= the "
                "parameters come in HashMap order. URLEncoder + '+' -> %20: ( ) become %28 %29, "
                "* stays, ~ becomes %7E. Doubles via Double.toString (cb563=5.0).",
                "Product fields that the last product lacks are dropped altogether (no ca2, and "
                "the first product's cb1 is lost). Sends ceid. Also knows pec (advanced "
                "permission), eaj/ecwen/ecwei (Engage) and er1..er7 (registration).",
                "Hits go to requestQueues + 1 queues (eid mod requestQueues, else hash of UA+IP, "
                "else the last queue), each flushed by its own thread: one flush can produce "
                "several concurrent POSTs. Batches are also capped at 20 MiB.",
                "Generated everID: 8 + 13-digit epoch ms + 5 random digits (10000-99998).",
            ),
        ),
    )
}


# --------------------------------------------------------------------------------------------
# Fixtures


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request exactly as a Mapp library sent it (placeholders for host and base path)."""

    scenario: str
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: str
    track_id: str = TRACK_ID

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def chunked(self) -> bool:
        return "chunked" in (self.header("Transfer-Encoding") or "").lower()

    def lines(self) -> list[str]:
        """The body's ``wt?...`` lines.

        Split on LF (dropping a CR before it); PHP's fork-curl consumer joins its lines with a
        literal backslash + ``n``, which is split too (it cannot occur inside an encoded line).
        """
        return [
            line
            for part in self.body.split("\n")
            for line in part.removesuffix("\r").split("\\n")
            if line
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": [list(h) for h in self.headers],
            "body": self.body,
        }


@dataclass(frozen=True)
class Fixture:
    """``tests/fixtures/mapp/<name>.json``: what one client + consumer sent."""

    name: str
    client: str
    consumer: str
    source_file: str
    library_commit: str
    success_rule: str
    success_statuses: str
    on_failure: str
    track_id: str
    requests: tuple[RecordedRequest, ...]
    status_probe: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def by_scenario(self, scenario: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.scenario == scenario]

    def counts_as_success(self, status: int) -> bool:
        return status < 400 if self.success_rule == _LT400 else status == 200


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.json"))


def load_fixture(name: str) -> Fixture:
    data = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    track_id = str(data["track_id"])
    requests = tuple(
        RecordedRequest(
            scenario=str(r["scenario"]),
            method=str(r["method"]),
            path=str(r["path"]),
            query=str(r["query"]),
            headers=tuple((str(k), str(v)) for k, v in r["headers"]),
            body=str(r["body"]),
            track_id=track_id,
        )
        for r in data["requests"]
    )
    return Fixture(
        name=name,
        client=str(data["client"]),
        consumer=str(data["consumer"]),
        source_file=str(data["source_file"]),
        library_commit=str(data["library_commit"]),
        success_rule=str(data["success_rule"]),
        success_statuses=str(data["success_statuses"]),
        on_failure=str(data["on_failure"]),
        track_id=track_id,
        requests=requests,
        status_probe=dict(data.get("status_probe", {})),
        notes=tuple(str(n) for n in data.get("notes", ())),
    )


def load_fixtures() -> dict[str, Fixture]:
    return {name: load_fixture(name) for name in fixture_names()}


# --------------------------------------------------------------------------------------------
# Replay


@dataclass(frozen=True)
class ReplayResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _connection(
    base_url: str, timeout: float, ssl_context: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    parts = urlsplit(base_url)
    if parts.hostname is None:
        raise ValueError(f"no host in {base_url!r}")
    if parts.scheme == "https":
        return http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl_context
        )
    if parts.scheme != "http":
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def replay(
    request: RecordedRequest,
    base_url: str,
    *,
    track_id: str | None = None,
    timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
) -> ReplayResponse:
    """Send ``request`` to ``base_url`` as the library did: same method, header names, values and
    order, same body bytes and framing (chunked when the library chunked).

    ``{base_path}`` in the recorded path becomes ``base_url``'s path, ``{host}`` its host:port;
    ``track_id`` replaces the recorded track id in the path. Content-Length is recomputed.
    """
    parts = urlsplit(base_url)
    path = request.path.replace(BASE_PATH, parts.path.rstrip("/"))
    if track_id is not None:
        path = path.replace(f"/{request.track_id}/", f"/{track_id}/")
    target = path + (f"?{request.query}" if request.query else "")
    body = request.body.encode("utf-8")
    conn = _connection(base_url, timeout, ssl_context)
    try:
        conn.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in request.headers:
            if name.lower() == "content-length":
                continue
            conn.putheader(name, value.replace(HOST, parts.netloc))
        if request.chunked:
            conn.endheaders()
            conn.send(
                f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n"
            )
        else:
            if body or request.method not in ("GET", "HEAD"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
        response = conn.getresponse()
        return ReplayResponse(
            status=response.status,
            headers=tuple(response.getheaders()),
            body=response.read(),
        )
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Running the real libraries


class ClientUnavailable(RuntimeError):
    """A real library cannot run here; ``str(exc)`` is the skip reason."""


@dataclass(frozen=True)
class Step:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class RunResult:
    """What running one real library did. ``ok``: every step exited 0 (the library reported
    success; for the file clients, the cron job exited 0)."""

    name: str
    scenario: str
    steps: tuple[Step, ...]
    work_dir: Path

    @property
    def ok(self) -> bool:
        return all(s.returncode == 0 for s in self.steps)

    def describe(self) -> str:
        return "\n".join(
            f"$ {' '.join(s.args)}\n-> {s.returncode}\n{s.stdout}{s.stderr}" for s in self.steps
        )


def library_dir(client: str) -> Path:
    return MAPP_CLIENTS / _LIBRARY_DIRS[client]


_PHP_EXTENSIONS_PROBE: Final = (
    "exit(function_exists('curl_init') && function_exists('mb_strtoupper') ? 0 : 1);"
)


def _php_has_extensions() -> bool:
    php = shutil.which("php")
    if php is None:
        return False
    probe = subprocess.run(
        [
            php,
            "-r",
            "exit(function_exists('curl_init') && function_exists('mb_strtoupper') ? 0 : 1);",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return probe.returncode == 0


def skip_reason(name: str) -> str | None:
    """Why client ``name`` cannot run on this machine, or None when it can."""
    spec = CLIENTS[name]
    folder = library_dir(spec.client)
    if not folder.is_dir():
        return f"{spec.client} library copy not found at {folder}"
    for tool in spec.tools:
        if shutil.which(tool) is None:
            return f"{name} needs `{tool}` on PATH"
    if spec.client == "php" and not _php_has_extensions():
        return f"{name} needs PHP's curl and mbstring extensions (php-curl, php-mbstring)"
    return None


def require_client(name: str) -> None:
    """pytest.skip() unless client ``name`` can run."""
    reason = skip_reason(name)
    if reason is not None:
        import pytest

        pytest.skip(reason)


def _track_domain(base_url: str) -> tuple[str, bool]:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) base URL: {base_url!r}")
    return parts.netloc + parts.path.rstrip("/"), parts.scheme == "https"


def _run(args: Sequence[str], *, env: dict[str, str], timeout: float, cwd: Path) -> Step:
    done = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
    return Step(tuple(args), done.returncode, done.stdout, done.stderr)


def _expire_temp_files(folder: Path) -> None:
    """Rename request files ``*.tmp`` to ``*.log``: what the libraries' own cron jobs do once a
    temporary file is 30 minutes old (tests cannot wait that long)."""
    for tmp in sorted(folder.glob("MappIntelligenceRequests-*.tmp")):
        tmp.rename(tmp.with_suffix(".log"))


def _java_version() -> str:
    pom = (library_dir("java") / "pom.xml").read_text(encoding="utf-8")
    # The project's own <version>, after the <parent> block (what ${project.version} expands to).
    match = re.search(r"</parent>.*?<version>([^<]+)</version>", pom, re.S)
    if match is None:
        raise ClientUnavailable("no <version> in mapp-java/pom.xml")
    return match.group(1).strip()


_java_lock = threading.Lock()


def java_classes() -> Path:
    """Compile mapp-java + the driver (SOURCES.txt's recipe) into a cache folder; its path.

    The folder is keyed by a hash of every source, so edits recompile and nothing is committed.
    """
    sources_dir = library_dir("java") / "src" / "main"
    java_files = sorted((sources_dir / "java").rglob("*.java"))
    template = (sources_dir / "templates" / "MappIntelligence.java").read_text(encoding="utf-8")
    generated = template.replace("${project.version}", _java_version())
    driver = DRIVERS / "MappJavaDriver.java"
    digest = hashlib.sha256(generated.encode())
    for source in [*java_files, driver]:
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    out = Path(tempfile.gettempdir()) / f"mapp-java-classes-{digest.hexdigest()[:16]}"
    with _java_lock:
        if (out / "MappJavaDriver.class").is_file():
            return out
        build = Path(tempfile.mkdtemp(prefix="mapp-java-build-"))
        try:
            gen_file = build / "src" / "com" / "mapp" / "intelligence" / "tracking"
            gen_file.mkdir(parents=True)
            (gen_file / "MappIntelligence.java").write_text(generated, encoding="utf-8")
            classes = build / "classes"
            javac = shutil.which("javac") or "javac"
            done = subprocess.run(
                [
                    javac,
                    "-encoding",
                    "UTF-8",
                    "-nowarn",
                    "-d",
                    str(classes),
                    *(str(f) for f in java_files),
                    str(gen_file / "MappIntelligence.java"),
                    str(driver),
                ],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0:
                raise ClientUnavailable(f"javac failed:\n{done.stdout}{done.stderr}")
            try:
                classes.rename(out)
            except OSError:
                if not (out / "MappJavaDriver.class").is_file():
                    raise
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return out


def _java_truststore(ca_file: Path, work_dir: Path) -> Path:
    store = work_dir / "truststore.p12"
    keytool = shutil.which("keytool") or "keytool"
    subprocess.run(
        [
            keytool,
            "-importcert",
            "-noprompt",
            "-alias",
            "test-ca",
            "-file",
            str(ca_file),
            "-keystore",
            str(store),
            "-storetype",
            "PKCS12",
            "-storepass",
            "changeit",
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return store


def run_client(
    name: str,
    base_url: str,
    track_id: str = TRACK_ID,
    *,
    scenario: str = "identified",
    work_dir: Path | None = None,
    ca_file: Path | None = None,
    timeout: float = 120.0,
) -> RunResult:
    """Run real client ``name`` (a key of CLIENTS) against ``base_url``; return once it has sent.

    The file clients write their request files into ``work_dir`` (a fresh temporary folder when
    None; pass pytest's tmp_path), turn the temporary files into log files as the 30-minute
    expiry would, then run the library's cron job. ``ca_file`` (PEM) is trusted for an https
    ``base_url``. ``RunResult.ok`` is the library's own verdict on the answers it got.
    Raises ClientUnavailable (message = skip reason) when the client cannot run here.
    """
    spec = CLIENTS[name]
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    reason = skip_reason(name)
    if reason is not None:
        raise ClientUnavailable(reason)
    domain, https = _track_domain(base_url)
    flag = "1" if https else "0"
    folder = work_dir or Path(tempfile.mkdtemp(prefix=f"mapp-{name}-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    lib = library_dir(spec.client)
    steps: list[Step] = []

    def run(*args: str) -> Step:
        step = _run(args, env=env, timeout=timeout, cwd=folder)
        steps.append(step)
        return step

    if spec.client == "node":
        node = shutil.which("node") or "node"
        driver = [node, str(DRIVERS / "node_driver.js"), str(lib)]
        if ca_file is not None:
            env["NODE_EXTRA_CA_CERTS"] = str(ca_file)
            env["CURL_CA_BUNDLE"] = str(ca_file)
        common = [domain, track_id, flag, str(folder), scenario]
        if name == "node-http":
            run(*driver, "HTTP_CLIENT", *common)
        elif name == "node-fork-curl":
            run(*driver, "FORK_CURL", *common)
        else:
            if run(*driver, "FILE", *common).returncode == 0:
                _expire_temp_files(folder)
                run(*driver, "CRONJOB", *common)
    elif spec.client == "php":
        php = [shutil.which("php") or "php"]
        if ca_file is not None:
            php += ["-d", f"curl.cainfo={ca_file}", "-d", f"openssl.cafile={ca_file}"]
            env["CURL_CA_BUNDLE"] = str(ca_file)
        driver = [*php, str(DRIVERS / "php_driver.php"), str(lib)]
        common = [domain, track_id, flag, str(folder), scenario]
        if name == "php-curl":
            run(*driver, "CURL", *common)
        elif name == "php-fork-curl":
            run(*driver, "FORK_CURL", *common)
        else:
            # cronjob.php has no --forceSSL option: it comes from a config (ini) file.
            ini = folder / "mapp-cronjob.ini"
            ini.write_text(f"forceSSL = {'true' if https else 'false'}\n", encoding="utf-8")
            cron = [*php, str(lib / "cronjob.php"), "--trackId", track_id, "--trackDomain", domain]
            cron += ["--config", str(ini)]
            if name == "php-cronjob-file":
                if run(*driver, "FILE", *common).returncode == 0:
                    run(*cron, "--filename", str(folder / "MappIntelligenceRequests.log"))
            elif run(*driver, "FILE_ROTATION", *common).returncode == 0:
                _expire_temp_files(folder)
                run(
                    *cron,
                    "--consumerType",
                    "FILE_ROTATION",
                    "--filePath",
                    f"{folder}/",
                    "--filePrefix",
                    "MappIntelligenceRequests",
                )
    else:
        java = [shutil.which("java") or "java", "-cp", str(java_classes())]
        if ca_file is not None:
            store = _java_truststore(ca_file, folder)
            java += [
                f"-Djavax.net.ssl.trustStore={store}",
                "-Djavax.net.ssl.trustStorePassword=changeit",
                "-Djavax.net.ssl.trustStoreType=PKCS12",
            ]
        run(*java, "MappJavaDriver", "HTTP_CLIENT", domain, track_id, flag, str(folder), scenario)
    return RunResult(name=name, scenario=scenario, steps=tuple(steps), work_dir=folder)


#: The clients whose hits go through request files and a cron job; the file each one reads.
CRON_FILES: Final = {
    "node-cronjob-file": "MappIntelligenceRequests-<ms>.log",
    "php-cronjob-file": "MappIntelligenceRequests.log",
    "php-cronjob-file-rotation": "MappIntelligenceRequests-<ms>.log",
}


def request_file(name: str, work_dir: Path, time_ms: int) -> Path:
    """Where file client ``name`` keeps its request file in ``work_dir`` (see CRON_FILES)."""
    return work_dir / CRON_FILES[name].replace("<ms>", str(time_ms))


def run_cronjob(
    name: str,
    base_url: str,
    track_id: str = TRACK_ID,
    *,
    work_dir: Path,
    ca_file: Path | None = None,
    timeout: float = 120.0,
) -> RunResult:
    """Run only the real cron job of file client ``name`` (a key of CRON_FILES) on the request
    files already in ``work_dir``, as the last step of ``run_client`` does.

    For request files a test wrote itself in the FILE consumers' format (one ``wt?...`` line per
    hit, each followed by LF; name from ``request_file``), e.g. a full 1000-line cron batch.
    ``*.tmp`` files are turned into ``*.log`` first. Raises ClientUnavailable as run_client does.
    """
    if name not in CRON_FILES:
        raise ValueError(f"{name!r} has no cron job; choose one of {sorted(CRON_FILES)}")
    reason = skip_reason(name)
    if reason is not None:
        raise ClientUnavailable(reason)
    domain, https = _track_domain(base_url)
    env = dict(os.environ)
    lib = library_dir(CLIENTS[name].client)
    _expire_temp_files(work_dir)
    if name == "node-cronjob-file":
        if ca_file is not None:
            env["NODE_EXTRA_CA_CERTS"] = str(ca_file)
        node = shutil.which("node") or "node"
        flag = "1" if https else "0"
        args = [node, str(DRIVERS / "node_driver.js"), str(lib), "CRONJOB", domain, track_id]
        args += [flag, str(work_dir), "cronjob"]
    else:
        php = [shutil.which("php") or "php"]
        if ca_file is not None:
            php += ["-d", f"curl.cainfo={ca_file}", "-d", f"openssl.cafile={ca_file}"]
        ini = work_dir / "mapp-cronjob.ini"
        ini.write_text(f"forceSSL = {'true' if https else 'false'}\n", encoding="utf-8")
        args = [*php, str(lib / "cronjob.php"), "--trackId", track_id, "--trackDomain", domain]
        args += ["--config", str(ini)]
        if name == "php-cronjob-file":
            args += ["--filename", str(work_dir / CRON_FILES[name])]
        else:
            args += ["--consumerType", "FILE_ROTATION", "--filePath", f"{work_dir}/"]
            args += ["--filePrefix", "MappIntelligenceRequests"]
    step = _run(args, env=env, timeout=timeout, cwd=work_dir)
    return RunResult(name=name, scenario="cronjob", steps=(step,), work_dir=work_dir)


# --------------------------------------------------------------------------------------------
# Recording server (also used to regenerate the fixtures)


@dataclass(frozen=True)
class RawRequest:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that drop a kept-alive connection (Java at exit, curl) are not errors here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Recorder:
    """A loopback HTTP/1.1 server that stores every request and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[RawRequest] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                raw = RawRequest(
                    method=self.command,
                    target=self.path,
                    headers=tuple((k, v) for k, v in self.headers.items()),
                    body=self._body(),
                )
                with recorder._lock:
                    recorder.requests.append(raw)
                self.send_response(recorder.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_HEAD = _handle

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def base_url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def recording(status: int = 200) -> Iterator[Recorder]:
    with Recorder(status) as recorder:
        yield recorder


# --------------------------------------------------------------------------------------------
# Regenerating the fixtures: python -m tests.mapp_clients record [name ...]

_RECORD_BASE_PATH: Final = "/mapp"
_PROBE_STATUSES: Final = (200, 201, 204, 302, 400, 500, 503)


def _normalize(raw: RawRequest, port: int, scenario: str) -> RecordedRequest:
    host = f"127.0.0.1:{port}"
    path, _, query = raw.target.partition("?")
    if path.startswith(_RECORD_BASE_PATH + "/"):
        path = BASE_PATH + path[len(_RECORD_BASE_PATH) :]
    return RecordedRequest(
        scenario=scenario,
        method=raw.method,
        path=path,
        query=query,
        headers=tuple((k, v.replace(host, HOST)) for k, v in raw.headers),
        body=raw.body.decode("utf-8"),
    )


def _record(name: str) -> dict[str, Any]:
    spec = CLIENTS[name]
    requests: list[RecordedRequest] = []
    for scenario in SCENARIOS:
        with recording() as rec, tempfile.TemporaryDirectory(prefix="mapp-") as tmp:
            url = rec.base_url(_RECORD_BASE_PATH)
            result = run_client(name, url, scenario=scenario, work_dir=Path(tmp))
            if not result.ok or not rec.requests:
                raise RuntimeError(f"{name}/{scenario} did not deliver:\n{result.describe()}")
            requests += [_normalize(r, rec.port, scenario) for r in rec.requests]
    probe: dict[str, Any] = {}
    for status in _PROBE_STATUSES:
        with recording(status) as rec, tempfile.TemporaryDirectory(prefix="mapp-") as tmp:
            url = rec.base_url(_RECORD_BASE_PATH)
            result = run_client(name, url, scenario="no-eid", work_dir=Path(tmp))
            probe[str(status)] = {
                "requests_sent": len(rec.requests),
                "library_reported_success": result.ok,
                "exit_codes": [s.returncode for s in result.steps],
                "request_files_left": sorted(
                    re.sub(r"-\d{13}\.", "-<ms>.", p.name)
                    for p in result.work_dir.iterdir()
                    if p.name.startswith("MappIntelligenceRequests")
                ),
            }
    return {
        "client": spec.client,
        "consumer": spec.consumer,
        "source_file": spec.source_file,
        "library_commit": LIBRARY_COMMITS[spec.client],
        "success_rule": spec.success_rule,
        "success_statuses": spec.success_statuses,
        "on_failure": spec.on_failure,
        "notes": list(spec.notes),
        "track_id": TRACK_ID,
        "recorded_with": {
            "base_url": "http://{host}" + _RECORD_BASE_PATH,
            "scenarios": list(SCENARIOS),
            "tools": _tool_versions(spec),
        },
        "status_probe": {
            "about": "scenario no-eid (one hit) run once per answer status (config defaults: "
            "maxAttempt 1); requests_sent counts every request that reached the server. PHP "
            "sends a refused batch twice (flush(), then the queue's destructor). Racy (1 or 2): "
            "Java's shutdown hook flushes the still-queued hit again while the JVM exits; "
            "node's exit hook does too, and with FORK_CURL the spawned curl outlives node.",
            **probe,
        },
        "requests": [r.to_json() for r in requests],
    }


def _tool_versions(spec: MappClient) -> dict[str, str]:
    commands = {
        "node": ["node", "--version"],
        "php": ["php", "-r", "echo PHP_VERSION;"],
        "curl": ["curl", "--version"],
        "java": ["java", "-version"],
        "javac": ["javac", "-version"],
    }
    versions: dict[str, str] = {}
    for tool in spec.tools:
        done = subprocess.run(
            commands[tool], capture_output=True, text=True, timeout=60, check=False
        )
        versions[tool] = (done.stdout or done.stderr).strip().splitlines()[0]
    return versions


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] != "record":
        print("usage: python -m tests.mapp_clients record [name ...]", file=sys.stderr)
        return 2
    names = list(argv[1:]) or list(CLIENTS)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name in names:
        reason = skip_reason(name)
        if reason is not None:
            print(f"skip {name}: {reason}", file=sys.stderr)
            continue
        data = _record(name)
        path = FIXTURES / f"{name}.json"
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)} ({len(data['requests'])} requests)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
