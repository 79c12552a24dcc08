"""WAL checkpoints for the embedded store, off the event loop, keeping the WAL file small."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path

from bot.background import BackgroundLoop

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 5.0
WAL_LIMIT_BYTES = 64 * 1024 * 1024  # past this the checkpointer truncates the WAL (it grew without bound)


class WalCheckpointer(BackgroundLoop):
    """Checkpoints the embedded store's WAL from a worker thread (see SqliteStore.start_checkpointing)."""

    def __init__(self, path: str, every_s: float, wal_limit_bytes: int) -> None:
        self.path = path
        self.every_s = every_s
        self.wal_limit_bytes = wal_limit_bytes
        self._last_size = -1

    def _checkpoint(self) -> None:
        wal = Path(self.path + "-wal")
        size = wal.stat().st_size if wal.exists() else 0
        idle = size == self._last_size and size > 0  # nothing written since the last look
        mode = "TRUNCATE" if size > self.wal_limit_bytes or idle else "PASSIVE"
        with contextlib.closing(sqlite3.connect(self.path, timeout=5)) as db:
            db.execute(f"PRAGMA wal_checkpoint({mode})")
        self._last_size = wal.stat().st_size if wal.exists() else 0

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await asyncio.to_thread(self._checkpoint)
            except sqlite3.Error as exc:
                log.warning("WAL checkpoint failed: %s", exc)
