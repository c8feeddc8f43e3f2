"""Destinations for hits."""

from .base import Hit, Sink
from .jsonlines import JsonLinesSink, LoggingSink

__all__ = ["Hit", "JsonLinesSink", "LoggingSink", "Sink"]
