"""Persistence behind one interface: SQLite embedded (default), PostgreSQL for several replicas."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bot.store.base import RequestLogRow, Session, Store
from bot.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = ["RequestLogRow", "Session", "SqliteStore", "Store", "is_transient", "open_store", "open_store_for"]

# SQLSTATE classes that pass: connection exceptions, insufficient resources, operator intervention
# (a restart, a failover), and "not accepting connections now" (ALLOW_CONNECTIONS false, recovery).
_TRANSIENT_SQLSTATES = ("08", "53", "57", "55000")


def is_transient(exc: BaseException) -> bool:
    """A store error that waiting can fix: a dropped connection, a locked SQLite file, a database
    restarting or refusing connections for a moment. Not: a bug, a constraint, a full disk."""
    import sqlite3

    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc) or "busy" in str(exc)
    if isinstance(exc, (OSError, TimeoutError)):
        return True
    if type(exc).__module__.startswith("asyncpg"):
        import asyncpg

        if isinstance(exc, (asyncpg.InterfaceError, asyncpg.InternalClientError)):
            return True  # the client lost its connection or its state ("cannot switch to state 12")
        return str(getattr(exc, "sqlstate", "") or "").startswith(_TRANSIENT_SQLSTATES)
    return False


def open_store_for(settings: Settings) -> Store:
    """The configured store; with HEALTHBOT_LAKEBASE_INSTANCE or _ENDPOINT, its passwords are minted Lakebase
    tokens (and, for an Autoscaling endpoint nothing else locates, its host and user come from the endpoint)."""
    if not settings.uses_lakebase:
        return open_store(settings.database_url, sslmode=settings.database_sslmode)
    from bot.store.lakebase import Autoscaling, LakebaseCredentials, Provisioned
    from bot.workspace import Workspace, config_factory

    lakebase = Autoscaling(settings.lakebase_endpoint) if settings.lakebase_endpoint else \
        Provisioned(settings.lakebase_instance or "")
    password = LakebaseCredentials(lakebase=lakebase, workspace=Workspace(config_factory(settings)))
    located = bool(settings.database_url_setting or settings.pg_host)
    return open_store(settings.database_url, password=password, sslmode=settings.database_sslmode,
                      connect_to=None if located else password.connect_to)


def open_store(database_url: str, *, password: Callable[[], Awaitable[str]] | None = None,
               sslmode: str | None = None, connect_to: Callable[[], Awaitable[dict[str, str]]] | None = None) -> Store:
    """Open the store named by `HEALTHBOT_DATABASE_URL`, creating or migrating its schema
    (PostgreSQL: on first use, since connecting is asynchronous). `password` is called for each new
    PostgreSQL connection (Lakebase tokens expire)."""
    if database_url.startswith("sqlite:///"):
        return SqliteStore(database_url.removeprefix("sqlite:///") or "healthbot.db")
    if database_url.startswith(("postgresql://", "postgres://")):
        from bot.store.postgres import PostgresStore

        return PostgresStore(database_url, password=password, sslmode=sslmode, connect_to=connect_to)
    raise ValueError(f"HEALTHBOT_DATABASE_URL: unsupported database {database_url.split(':', 1)[0]!r}; "
                     "use sqlite:///PATH or postgresql://…")
