"""What every server benchmark shares: a child process per server under test, on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def child_server(module: str, kind: str, *args: str) -> AsyncIterator[int]:
    """Run `python -m module --child kind --port P *args` and yield P once it accepts connections."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", module, "--child", kind, "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait()
