"""Destinations for hits."""

from .base import Hit, Sink, write_durably
from .buffered import BufferedSink
from .factory import MultiSink, build_sink
from .jsonlines import JsonLinesSink, LoggingSink
from .relay import RelaySink
from .sqlite import SQLiteSink

__all__ = [
    "BufferedSink",
    "Hit",
    "JsonLinesSink",
    "LoggingSink",
    "MultiSink",
    "RelaySink",
    "SQLiteSink",
    "Sink",
    "build_sink",
    "write_durably",
]
