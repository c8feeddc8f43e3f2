"""Destinations for hits."""

from .base import Hit, Sink, keeps_receipts, write_durably, write_receipts
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
    "keeps_receipts",
    "write_durably",
    "write_receipts",
]
