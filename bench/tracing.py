"""Handler throughput with MLflow tracing on (local SQLite tracking store) against off, same run.

Traces are exported by MLflow's background queue; the figure counts the time until that queue is
flushed too, so tracing cannot look cheap by leaving its work for later. Target: under 10 % cost.
Run: python -m bench.tracing [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bench.handler import InstantEngine, incoming
from bot.handler import ConversationHandler, HandlerOptions
from bot.store import SqliteStore
from bot.ops.tracing import Tracer

OPTIONS = HandlerOptions(user_rate_per_min=10**9, global_rate_per_min=10**9)


async def run(messages: int, tracer: Tracer, tmp: Path, label: str) -> tuple[float, float]:
    store = SqliteStore(tmp / f"{label}.db")
    handler = ConversationHandler(store=store, engine=InstantEngine(), options=OPTIONS, tracer=tracer)
    batch = [incoming(i, 200) for i in range(messages)]
    started = time.perf_counter()
    for message in batch:
        await handler.handle(message)
    in_request = time.perf_counter() - started
    tracer.flush()
    elapsed = time.perf_counter() - started
    await store.close()
    return messages / in_request, messages / elapsed


async def main_async(messages: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        off, _ = await run(messages, Tracer(None), Path(tmp), "off")
        on, exported = await run(messages, Tracer(f"sqlite:///{tmp}/mlflow.db"), Path(tmp), "on")
    print(f"tracing off                 : {off:>8,.0f} messages/s (baseline)")
    print(f"tracing on, in the request  : {on:>8,.0f} messages/s = {on / off:.3f} x off (cost {1 - on / off:.0%}; target < 10 %)")
    print(f"tracing on, traces exported : {exported:>8,.0f} messages/s = {exported / off:.3f} x off")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main_async(args.messages))


if __name__ == "__main__":
    main()
