"""The ``store`` setting: SQLAlchemy's SQLite URL forms, plain paths, PostgreSQL, nothing else."""

from __future__ import annotations

import pytest

from pixel_middleware.store_url import StoreLocation, parse_store

from .helpers import settings


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("sqlite:///pixel.db", StoreLocation("sqlite", "pixel.db")),
        ("sqlite:///data/pixel.db", StoreLocation("sqlite", "data/pixel.db")),
        ("sqlite:////var/lib/pixel.db", StoreLocation("sqlite", "/var/lib/pixel.db")),
        ("pixel.db", StoreLocation("sqlite", "pixel.db")),
        ("./data/pixel.db", StoreLocation("sqlite", "./data/pixel.db")),
        ("/var/lib/pixel.db", StoreLocation("sqlite", "/var/lib/pixel.db")),
        ("postgresql://u@db/pixel", StoreLocation("postgresql", "postgresql://u@db/pixel")),
        ("postgres://u@db/pixel", StoreLocation("postgresql", "postgres://u@db/pixel")),
    ],
)
def test_accepted_forms(store: str, expected: StoreLocation) -> None:
    assert parse_store(store) == expected
    assert settings(store=store).store == store


@pytest.mark.parametrize(
    ("store", "hint"),
    [
        ("sqlite://pixel.db", "did you mean 'sqlite:///pixel.db'"),
        ("sqlite:pixel.db", "did you mean 'sqlite:///pixel.db'"),
        ("sqlite:/var/lib/pixel.db", "did you mean 'sqlite:////var/lib/pixel.db'"),
        ("sqlite:///", "names no file"),
        ("sqlite:///:memory:", "in-memory"),
        ("mysql://u@db/pixel", "only in SQLite or PostgreSQL"),
        ("", "empty"),
    ],
)
def test_anything_else_is_refused_with_the_accepted_forms(store: str, hint: str) -> None:
    with pytest.raises(ValueError) as info:
        settings(store=store)
    message = str(info.value)
    assert hint in message
    for form in ("sqlite:///relative/path.db", "sqlite:////absolute/path.db", "postgresql://"):
        assert form in message


def test_default_store_is_relative_to_the_working_directory() -> None:
    store = settings(store=settings().__class__.__dataclass_fields__["store"].default).store
    assert store == "sqlite:///pixel_hits.sqlite3"
    assert parse_store(store) == StoreLocation("sqlite", "pixel_hits.sqlite3")


def test_messages_hide_the_password() -> None:
    location = parse_store("postgresql://pixel:hunter2@db:5432/hits")
    assert location.describe() == "postgresql://pixel:***@db:5432/hits"
