"""What the prefix serves besides consent and hits: the browser script and the HTML report."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope

from . import wire
from .request_info import RequestInfo
from .resources import static_dir
from .responses import NO_STORE, query, text
from .settings import PixelSettings


def browser_script() -> bytes:
    """``static/pixel.js`` with the server's identifier lists filled in.

    The lists live in one place (``wire``); the file in the repository carries a copy between
    markers so that it also runs unserved, and the copy is replaced here at start-up.
    """
    script = (static_dir() / "pixel.js").read_text(encoding="utf-8")
    for marker, values in (
        ("identifiers", wire.IDENTIFIER_PARAMS),
        ("prefixes", wire.IDENTIFIER_PREFIXES),
    ):
        pattern = re.compile(rf"/\*pixel:{marker}\*/.*?/\*end\*/")
        script, count = pattern.subn(json.dumps(list(values)).replace("\\", r"\\"), script)
        if count != 1:
            raise RuntimeError(f"static/pixel.js has no /*pixel:{marker}*/ list")
    return script.encode("utf-8")


class Assets:
    """``/pixel.js`` and ``/report`` under the prefix."""

    def __init__(self, settings: PixelSettings) -> None:
        self.settings = settings
        self._script = browser_script()
        self._script_etag = '"' + hashlib.sha256(self._script).hexdigest()[:16] + '"'

    async def script(self, request: RequestInfo, scope: Scope, receive: Receive) -> Response:
        headers = {"cache-control": "public, max-age=3600", "etag": self._script_etag}
        if request.header("if-none-match") == self._script_etag:
            return Response(status_code=304, headers=headers)
        return Response(self._script, media_type="text/javascript; charset=utf-8", headers=headers)

    async def report(self, request: RequestInfo, scope: Scope, receive: Receive) -> Response:
        """The HTML report; exists only when ``report_token`` and a store are configured."""
        token, store = self.settings.report_token, self.settings.store
        if token is None or store is None:
            return text(404, "not found")
        # Percent-decoded to bytes (latin-1 maps each byte to one character and back), so the
        # query's bytes are the token's UTF-8 bytes whether escaped or not; header values
        # arrive as latin-1 text of their bytes too. Bytes against bytes, in constant time.
        params = dict(parse_qsl(query(scope), encoding="latin-1"))
        given = params.get("token") or ""
        auth = request.header("authorization") or ""
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode("latin-1"), token.encode("utf-8")):
            return text(401, "report token missing or wrong", **{"www-authenticate": "Bearer"})
        days_text = params.get("days", "30")
        if not days_text.isdigit() or not 1 <= int(days_text) <= 366:
            return text(400, "days must be a whole number from 1 to 366")
        days = int(days_text)
        from .report.html import report_page  # the report's code loads on first use only

        page = await anyio.to_thread.run_sync(
            report_page, store, days, self.settings.report_time_zone
        )
        return HTMLResponse(
            page,
            headers={
                **NO_STORE,
                # The page has no script and loads nothing: say so to the browser.
                "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
                "referrer-policy": "no-referrer",
            },
        )
