"""Smart-Pixel-compatible analytics for ASGI apps, with Mapp's anonymous-tracking switch."""

from .decision import Decision, decide
from .middleware import PixelMiddleware, get_visitor
from .settings import PixelSettings
from .sinks import Hit, JsonLinesSink, LoggingSink, Sink
from .visitor import Visitor

__all__ = [
    "Decision",
    "Hit",
    "JsonLinesSink",
    "LoggingSink",
    "PixelMiddleware",
    "PixelSettings",
    "Sink",
    "Visitor",
    "decide",
    "get_visitor",
]
__version__ = "0.1.0"
