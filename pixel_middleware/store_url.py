"""What a ``store`` setting names: a SQLite file or a PostgreSQL database. Pure.

The forms are the ones Python users already know from SQLAlchemy and dj-database-url, so a URL
copied from another project means the same thing here:

- ``sqlite:///relative/path.db``: three slashes, a path relative to the working directory;
- ``sqlite:////absolute/path.db``: four slashes, an absolute path;
- ``relative/path.db`` or ``/absolute/path.db``: a plain file path;
- ``postgresql://…`` (or ``postgres://…``): a libpq connection URL.

Anything else is refused with the accepted forms, never guessed at: ``sqlite://pixel.db`` once
wrote ``/pixel.db`` at the root of the file system.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

ACCEPTED_FORMS = (
    "sqlite:///relative/path.db (relative to the working directory), "
    "sqlite:////absolute/path.db, a plain file path (pixel_hits.sqlite3, /var/lib/pixel.db), "
    "or postgresql://user:password@host/dbname"
)
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# A URL scheme; a single letter is a Windows drive ("C:\\hits.db"), which is a plain path.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """A parsed ``store``: ``kind`` and the file path (SQLite) or connection URL (PostgreSQL)."""

    kind: Literal["sqlite", "postgresql"]
    target: str

    def describe(self) -> str:
        """For messages: the absolute file path, or the URL with its password hidden."""
        if self.kind == "sqlite":
            return os.path.abspath(self.target)
        return hide_password(self.target)


def parse_store(store: str) -> StoreLocation:
    """Parse a ``store`` setting; a ``ValueError`` shows the accepted forms."""
    if store.startswith(POSTGRES_SCHEMES):
        return StoreLocation("postgresql", store)
    if store.startswith("sqlite:"):
        return StoreLocation("sqlite", _sqlite_file(store))
    if not store.strip():
        raise _refused(store, "it is empty")
    if _SCHEME.match(store):
        raise _refused(store, "this package stores hits only in SQLite or PostgreSQL")
    return StoreLocation("sqlite", store)


def sqlite_file(store: str) -> str:
    """The file a SQLite ``store`` names (``ValueError`` if it names none)."""
    location = parse_store(store)
    if location.kind != "sqlite":
        raise ValueError(f"{hide_password(store)} is not a SQLite store")
    return location.target


def _sqlite_file(store: str) -> str:
    rest = store[len("sqlite:") :]
    if not rest.startswith("///"):
        # sqlite:pixel.db and sqlite://pixel.db: no path part at all in the URL convention.
        path = rest[2:] if rest.startswith("//") else rest
        raise _refused(store, f"did you mean {'sqlite:///' + path!r}?")
    path = rest[3:]
    if not path or path == "/":
        raise _refused(store, "it names no file")
    if "?" in path or path == ":memory:":
        raise _refused(store, "options and in-memory databases are not supported")
    return path


def _refused(store: str, why: str) -> ValueError:
    return ValueError(
        f"store {hide_password(store)!r} is not understood ({why}); use {ACCEPTED_FORMS}"
    )


def hide_password(url: str) -> str:
    """``url`` with the password of its user part replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    # Rebuild from the raw netloc: parts.port raises on a malformed port, and messages must not.
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
