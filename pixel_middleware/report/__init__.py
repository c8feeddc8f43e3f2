"""Reading the store back: summaries for the command line and the HTML report, and pruning."""

from .store import StoreReader, open_store
from .summary import Summary, summarize

__all__ = ["StoreReader", "Summary", "open_store", "summarize"]
