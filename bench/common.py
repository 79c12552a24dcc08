"""What every server benchmark shares: a child process per server under test, on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp

Headers = Callable[[bytes], dict[str, str]]
POSTGRES_DSN = os.environ.get("HEALTHBOT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


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


def json_headers(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json"}


async def post_all(url: str, bodies: list[bytes], concurrency: int, headers: Headers = json_headers) -> list[float]:
    """POST every body with `concurrency` requests in flight; each request's latency, sorted.
    Headers are made just before each send (Slack signatures carry a timestamp)."""
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            async with http.post(url, data=body, headers=headers(body)) as resp:
                await resp.read()
                if resp.status >= 300:
                    raise RuntimeError(f"HTTP {resp.status}")
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return sorted(latencies)


async def pg_schema(dsn: str) -> tuple[str, Callable[[], Awaitable[None]]] | None:
    """A throw-away schema in the given PostgreSQL and the coroutine that drops it; None when the
    server cannot be reached (the PostgreSQL figures are then left out)."""
    import uuid

    import asyncpg

    try:
        admin = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None
    schema = f"hb_bench_{uuid.uuid4().hex[:10]}"
    await admin.execute(f"CREATE SCHEMA {schema}")

    async def drop() -> None:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()

    return schema, drop
