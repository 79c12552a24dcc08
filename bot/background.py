"""One background task per component, started with the server and cancelled when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundLoop:
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def logged(work: Coroutine[Any, Any, Any], *, what: str, expected: tuple[type[BaseException], ...],
                 describe: Callable[[BaseException], str] = str) -> None:
    """Run spawned work that must handle its own failure: an `expected` error (a platform refusing a
    call, a network error) is one warning line; anything else is a bug and keeps its traceback. Never
    asyncio's "Task exception was never retrieved"."""
    try:
        await work
    except expected as exc:
        log.warning("%s failed: %s: %s", what, type(exc).__name__, describe(exc)[:200])
    except Exception:
        log.exception("%s failed", what)
