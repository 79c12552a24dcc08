"""Store operations retried through transient failures before anyone is told anything.

A dropped connection, a database failing over, refusing connections for a few seconds or a locked
SQLite file pass within ~10 s; a user who asked in that window should get an answer, not an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.store import is_transient

log = logging.getLogger(__name__)

T = TypeVar("T")
STORE_RETRY_DELAYS_S = (0.1, 0.2, 0.4, 0.8, 1.5, 2.0, 2.0, 3.0)  # ~10 s: a database failover or a blip


class StoreUnavailable(Exception):
    """The store kept failing through the retries: the user is told so in plain words."""


async def with_retries(operation: Callable[[], Awaitable[T]]) -> T:
    """`operation()`, again after each transient failure; other errors are raised at once. Each
    operation is retried on its own, so a step that succeeded (a claimed event) is not done twice."""
    for delay in (*STORE_RETRY_DELAYS_S, None):
        try:
            return await operation()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if delay is None:
                raise StoreUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}") from None
            log.warning("store: %s: %s; retrying in %.1f s", type(exc).__name__, str(exc)[:200], delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
