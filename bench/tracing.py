"""Handler throughput with MLflow tracing on (local SQLite tracking store) against off, same run.

In the request a span is a small record; the exporter process builds the MLflow traces meanwhile.
Reported: messages/s in the request (target >= 0.9 x off) and the exporter's own rate (traces/s
until its queue is empty, so the export cost is shown, not hidden). The queue is sized so that
nothing is dropped here; dropped traces are printed anyway.
Run: python -m bench.tracing [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.handler import InstantEngine, incoming
from bot.handler import ConversationHandler, HandlerOptions
from bot.models import Incoming
from bot.store import SqliteStore
from bot.ops.tracing import Tracer

OPTIONS = HandlerOptions(user_rate_per_min=10**9, global_rate_per_min=10**9)


async def timed(handler: ConversationHandler, batch: list[Incoming]) -> float:
    started = time.perf_counter()
    for message in batch:
        await handler.handle(message)
    return len(batch) / (time.perf_counter() - started)


async def main_async(messages: int, rounds: int) -> None:
    """Tracing off and on take turns, `rounds` times, so the machine's drift hits both alike; the
    figure is the median of each side. The exporter works through its queue all the while."""
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        tracer = Tracer(f"sqlite:///{tmp}/mlflow.db", queue_size=messages * rounds + 10)
        off = ConversationHandler(store=SqliteStore(tmp / "off.db"), engine=InstantEngine(), options=OPTIONS)
        on = ConversationHandler(store=SqliteStore(tmp / "on.db"), engine=InstantEngine(), options=OPTIONS, tracer=tracer)
        for handler in (off, on):  # connected, warm, the exporter started: no start-up in the figures
            await handler.handle(incoming(10**9, 1))
        tracer.flush()
        exported_before, started = tracer.exported, time.perf_counter()
        rates: dict[str, list[float]] = {"off": [], "on": []}
        for r in range(rounds):
            batch = [incoming(r * messages + i, 200) for i in range(messages)]
            rates["off"].append(await timed(off, batch))
            rates["on"].append(await timed(on, batch))
        tracer.flush(timeout=600)
        export_rate = (tracer.exported - exported_before) / (time.perf_counter() - started)
        await off.close()
        await on.close()
    off_rate, on_rate = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(f"tracing off                 : {off_rate:>8,.0f} messages/s (baseline; median of {rounds} turns)")
    print(f"tracing on, in the request  : {on_rate:>8,.0f} messages/s = {on_rate / off_rate:.3f} x off (target >= 0.9)")
    print(f"exporter, to a local store  : {export_rate:>8,.0f} traces/s (dropped {tracer.dropped}, failed {tracer.failed})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100, help="messages per turn")
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    asyncio.run(main_async(args.messages, args.rounds))


if __name__ == "__main__":
    main()
