"""Persistence behind one interface: SQLite embedded (default), PostgreSQL for several replicas."""

from __future__ import annotations

from bot.store.base import RequestLogRow, Session, Store
from bot.store.sqlite import SqliteStore

__all__ = ["RequestLogRow", "Session", "SqliteStore", "Store", "open_store"]


def open_store(database_url: str) -> Store:
    """Open the store named by `HEALTHBOT_DATABASE_URL`, creating or migrating its schema
    (PostgreSQL: on first use, since connecting is asynchronous)."""
    if database_url.startswith("sqlite:///"):
        return SqliteStore(database_url.removeprefix("sqlite:///") or "healthbot.db")
    if database_url.startswith(("postgresql://", "postgres://")):
        from bot.store.postgres import PostgresStore

        return PostgresStore(database_url)
    raise ValueError(f"HEALTHBOT_DATABASE_URL: unsupported database {database_url.split(':', 1)[0]!r}; "
                     "use sqlite:///PATH or postgresql://…")
