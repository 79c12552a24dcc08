"""Messages per second through ConversationHandler on SQLite, against calling the engine directly.

The engine answers instantly, so the difference is the handler's own cost: dedupe, rate limit,
session lookup, history read and write, request log. Target: <= 1 ms per message. The access checks
(issue 11) are measured on their own: the same run with a policy (Databricks user required, costs
limited to a group) and warm caches, against none. Target: <= 0.1 ms more per message.
Run: python -m bench.handler [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from typing import Any

from agent.base import AgentRequest, Answer, ChatMessage, ProgressCallback
from bot.access import AccessGate, AccessPolicy
from bot.access.directory import DatabricksDirectory, DatabricksUser
from bot.handler import ConversationHandler, HandlerOptions
from bot.identity.service import Identities
from bot.models import Incoming, Membership, Platform, ThreadKey
from bench.common import POSTGRES_DSN, pg_schema
from bot.store import SqliteStore, Store


class InstantEngine:
    name = "instant"
    charts: list[dict[str, Any]] = []  # each answer's (a copy); a subclass sets them, at no other cost

    async def answer(self, request: AgentRequest, *, on_progress: ProgressCallback | None = None) -> Answer:
        return Answer(f"answer to {request.messages[-1].content}", ["system.billing.usage"], 0.9, ["costs"], 0.0,
                      charts=list(self.charts))

    async def close(self) -> None:
        pass


def incoming(i: int, threads: int) -> Incoming:
    key = ThreadKey(platform=Platform.SLACK, workspace="T1", channel="C1", thread=f"{i % threads}.0")
    return Incoming(key=key, user_id=f"U{i % 50}", user_email=f"user{i % 50}@example.com", text=f"question number {i}",
                    event_id=f"Ev{i}", is_mention=True, membership=Membership.MEMBER)


class WarmDirectory(DatabricksDirectory):
    """The real directory and its caches; only the SCIM call is answered in-process (warm-up)."""

    async def _call(self, fn: Any, what: str) -> Any:
        email = what.removeprefix("user ")
        return DatabricksUser(id=email, user_name=email, active=True, groups=frozenset({"finops"}))


def policy_gate() -> AccessGate:
    policy = AccessPolicy(require_databricks_user=True, domains={"costs": ("finops",), "security": ("admins",)})
    return AccessGate(policy=policy, directory=WarmDirectory(workspace=None))  # type: ignore[arg-type]


async def through_handler(store: Store, batch: list[Incoming], access: AccessGate | None = None,
                          identity: Identities | None = None) -> float:
    handler = ConversationHandler(store=store, engine=InstantEngine(), options=HandlerOptions(
        user_rate_per_min=10**9, global_rate_per_min=10**9), access=access, identity=identity)
    await handler.handle(incoming(10**9, 1))  # connect / warm up
    for user in {m.user_id: m for m in batch}.values():  # every asker's directory entry cached
        await handler.handle(user.model_copy(update={"event_id": "warm" + user.event_id}))
    started = time.perf_counter()
    for message in batch:
        await handler.handle(message)
    elapsed = time.perf_counter() - started
    await store.close()
    return elapsed


async def postgres_store(dsn: str) -> tuple[Store, Callable[[], Awaitable[None]]] | None:
    """A PostgreSQL store in a throw-away schema, or None when the server cannot be reached."""
    from bot.store.postgres import PostgresStore

    made = await pg_schema(dsn)
    if made is None:
        return None
    schema, drop = made
    return PostgresStore(dsn, schema=schema), drop


async def run(messages: int, threads: int, postgres_dsn: str | None = None) -> dict[str, float]:
    engine = InstantEngine()
    history = [ChatMessage("user", "q")] * 20
    started = time.perf_counter()
    for i in range(messages):
        await engine.answer(AgentRequest(history, "u", "s"))
    direct = time.perf_counter() - started

    batch = [incoming(i, threads) for i in range(messages)]
    with tempfile.TemporaryDirectory() as tmp:
        handled = await through_handler(SqliteStore(Path(tmp) / "bench.db"), batch)
        checked = await through_handler(SqliteStore(Path(tmp) / "policy.db"), batch, policy_gate())
    figures = {
        "direct_per_s": messages / direct,
        "handler_per_s": messages / handled,
        "overhead_ms": (handled - direct) / messages * 1000,
        "access_ms": (checked - handled) / messages * 1000,
    }
    pg = await postgres_store(postgres_dsn) if postgres_dsn else None
    if pg is not None:
        store, drop = pg
        try:
            pg_handled = await through_handler(store, [m.model_copy(update={"event_id": m.event_id + "pg"}) for m in batch])
        finally:
            await drop()
        figures["postgres_per_s"] = messages / pg_handled
        figures["postgres_overhead_ms"] = (pg_handled - direct) / messages * 1000
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=500)
    parser.add_argument("--postgres", default=POSTGRES_DSN,
                        help="also measure the PostgreSQL store here ('' to skip)")
    args = parser.parse_args()
    figures = asyncio.run(run(args.messages, args.threads, args.postgres or None))
    print(f"engine called directly : {figures['direct_per_s']:>10,.0f} msg/s")
    print(f"through the handler    : {figures['handler_per_s']:>10,.0f} msg/s")
    print(f"ratio handler / direct : {figures['handler_per_s'] / figures['direct_per_s']:.4f}")
    print(f"handler's own cost     : {figures['overhead_ms']:.3f} ms per message on SQLite (target <= 1 ms)")
    print(f"access policy, warm    : {figures['access_ms']:+.3f} ms per message (target <= 0.1 ms)")
    if "postgres_per_s" in figures:
        print(f"through the handler, PG: {figures['postgres_per_s']:>10,.0f} msg/s = "
              f"{figures['postgres_per_s'] / figures['handler_per_s']:.2f} x SQLite; "
              f"{figures['postgres_overhead_ms']:.3f} ms per message")


if __name__ == "__main__":
    main()
