"""Group commit for the embedded store: the writes of every conversation in flight, one transaction.

Each commit writes the B-tree pages it changed to the WAL, a frame a page, and on the answer path
that is most of a message's cost in SQLite (bench/README.md, "The Slack answer path"). Messages
answered at the same time change the same pages (the tail of `messages`, of `request_log`, of their
indexes), so one commit for all of them writes each page once. A write joins the batch of the
current event-loop turn and is committed with it before its caller goes on (in the WAL, as every
commit here: durable across a crash of the bot), and a lone message waits for nothing but one loop turn.

A write that fails (a constraint, a bug) must not take the others' with it: the batch is rolled back,
that write's caller gets its error and the rest are committed again without it. When the transaction
itself fails (a file locked past its busy timeout, a full disk) every write in it does, once, and each
caller's retries (bot/store/retry.py) take it from there. The writes are plain functions over the
connection, run on the event-loop thread with no await inside, so nothing else touches the connection
between BEGIN and COMMIT.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class GroupCommit:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._pending: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []

    async def write(self, work: Callable[[], T]) -> T:
        """Run `work` in the transaction of this loop turn's writes; its result once that is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((work, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        while batch:
            try:
                results = self._transaction([work for work, _ in batch])
            except _WriteFailed as failed:  # that write's own fault: it alone fails, the rest go again together
                self._settle(batch[failed.index][1], failed.error)
                del batch[failed.index]
                continue
            except Exception as exc:  # the transaction itself (a locked file, a full disk): every write in it
                for _, future in batch:
                    self._settle(future, exc)
                return
            for (_, future), result in zip(batch, results):
                self._settle(future, result)
            return

    def _transaction(self, works: list[Callable[[], Any]]) -> list[Any]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            results = []
            for index, work in enumerate(works):
                try:
                    results.append(work())
                except Exception as exc:
                    raise _WriteFailed(index, exc) from exc
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return results

    @staticmethod
    def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
        if future.done():  # its caller was cancelled meanwhile: the write stands, nobody waits for it
            return
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class _WriteFailed(Exception):
    def __init__(self, index: int, error: Exception) -> None:
        self.index, self.error = index, error
