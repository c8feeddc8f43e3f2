"""Extra peak memory serving a 2 MB page sent in 64 KB chunks, Content-Length declared.

``tracemalloc`` traces Python's allocations during one request (after a warm-up request): the
peak of what was allocated and still alive at the same moment. The app's page is made before
tracing starts; each chunk it sends is a new 64 KB object, as an app reading a file would make.
The extra peak of a middleware is its peak minus the bare app's, divided by the page's size.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import tracemalloc
from typing import Any

from pixel_middleware import PixelMiddleware

from . import apps
from .asgi import call, fetch
from .reference import ReferenceInjector


async def _peaks(app: apps.App, rounds: int, injects: bool) -> list[int]:
    response = await fetch(app, "/", apps.IDENTIFIED_COOKIE.encode())
    body = response.body
    if response.status != 200 or len(body) < apps.BIG_PAGE_BYTES:
        raise RuntimeError(f"the big page came back as {response.status}, {len(body)} B")
    if (b"pixel.js" in body[-4096:]) != injects:
        raise RuntimeError(f"the big page was {'' if injects else 'not '}expected to get the tag")
    peaks = []
    for _ in range(rounds):
        gc.collect()
        tracemalloc.start()
        try:
            await call(app, "/", b"", apps.IDENTIFIED_COOKIE.encode())
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return peaks


def run(rounds: int = 3) -> dict[str, Any]:
    setups: dict[str, apps.App] = {
        "bare": apps.big_page_app(),
        "reference": ReferenceInjector(apps.big_page_app()),
        "pixel": PixelMiddleware(apps.big_page_app(), settings=apps.settings()),
    }
    peaks = {
        name: asyncio.run(_peaks(app, rounds, injects=name != "bare"))
        for name, app in setups.items()
    }
    median = {name: statistics.median(values) for name, values in peaks.items()}
    extra = {name: median[name] - median["bare"] for name in setups if name != "bare"}
    return {
        "page_bytes": apps.BIG_PAGE_BYTES,
        "chunk_bytes": apps.CHUNK_BYTES,
        "peak_bytes": peaks,
        "extra_bytes": extra,
        "extra_per_page": {name: value / apps.BIG_PAGE_BYTES for name, value in extra.items()},
        "rounds": rounds,
    }
