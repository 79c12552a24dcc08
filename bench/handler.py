"""Messages per second through ConversationHandler on SQLite, against calling the engine directly.

The engine answers instantly, so the difference is the handler's own cost: dedupe, rate limit,
session lookup, history read and write, request log. Target: <= 1 ms per message.
Run: python -m bench.handler [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from agent.base import AgentRequest, Answer, ChatMessage, ProgressCallback
from bot.handler import ConversationHandler, HandlerOptions
from bot.models import Incoming, Platform, ThreadKey
from bot.store import SqliteStore


class InstantEngine:
    name = "instant"

    async def answer(self, request: AgentRequest, *, on_progress: ProgressCallback | None = None) -> Answer:
        return Answer(f"answer to {request.messages[-1].content}", ["system.billing.usage"], 0.9, ["costs"], 0.0)

    async def close(self) -> None:
        pass


def incoming(i: int, threads: int) -> Incoming:
    key = ThreadKey(platform=Platform.SLACK, workspace="T1", channel="C1", thread=f"{i % threads}.0")
    return Incoming(key=key, user_id=f"U{i % 50}", text=f"question number {i}", event_id=f"Ev{i}", is_mention=True)


async def run(messages: int, threads: int) -> dict[str, float]:
    engine = InstantEngine()
    history = [ChatMessage("user", "q")] * 20
    started = time.perf_counter()
    for i in range(messages):
        await engine.answer(AgentRequest(history, "u", "s"))
    direct = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        handler = ConversationHandler(store=store, engine=engine, options=HandlerOptions(
            user_rate_per_min=10**9, global_rate_per_min=10**9))
        batch = [incoming(i, threads) for i in range(messages)]
        started = time.perf_counter()
        for message in batch:
            await handler.handle(message)
        handled = time.perf_counter() - started
        await store.close()
    return {
        "direct_per_s": messages / direct,
        "handler_per_s": messages / handled,
        "overhead_ms": (handled - direct) / messages * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=500)
    args = parser.parse_args()
    figures = asyncio.run(run(args.messages, args.threads))
    print(f"engine called directly : {figures['direct_per_s']:>10,.0f} msg/s")
    print(f"through the handler    : {figures['handler_per_s']:>10,.0f} msg/s")
    print(f"ratio handler / direct : {figures['handler_per_s'] / figures['direct_per_s']:.4f}")
    print(f"handler's own cost     : {figures['overhead_ms']:.3f} ms per message (target <= 1 ms)")


if __name__ == "__main__":
    main()
