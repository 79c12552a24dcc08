"""Answers survive platform and database faults (issue 10): a question healthbot accepted is answered
once, or told plainly that it failed — never silently dropped."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

from agent.errors import ErrorKind
from bot.handler import ConversationHandler, HandlerOptions
from bot.models import Incoming, Membership, Platform, ThreadKey
from adapters.host.server import ALERTS, SLACK
from bot.store.postgres import PostgresStore
from tests.conftest import POSTGRES_DSN, make_client
from tests.fakes.serving import FakeServing
from tests.test_slack import SlackRig, mention, rig  # noqa: F401 - the Slack rig fixture

ANSWER = "Costs rose 42%."


def answers_per_thread(rig: SlackRig) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in rig.slack.posted():
        if ANSWER in str(message.get("text")):
            thread = message.get("thread_ts") or message["_ts"]
            counts[thread] = counts.get(thread, 0) + 1
    return counts


async def test_answers_outlast_a_slack_outage_and_arrive_once(rig: SlackRig, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr("adapters.slack.progress.PLACEHOLDER_DELAY_S", 60)  # the failures are for the answers
    for handler in rig.app[SLACK].client.retry_handlers:  # type: ignore[attr-defined]
        handler.interval_calculator = FixedValueRetryIntervalCalculator(0.01)  # the SDK's own retries, quickly
    rig.app[ALERTS].backoff_base_s = 0.2
    rig.app[ALERTS].backoff_max_s = 0.5
    rig.slack.fail("chat.postMessage", 500, {"ok": False, "error": "internal_error"}, times=15)
    rig.slack.fail("chat.postMessage", 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}, times=3)
    threads = [f"171234{i:04d}.000100" for i in range(3)]
    for i, ts in enumerate(threads):
        event = mention(ts=ts)
        event["event_id"] = f"EvOutage{i}"
        assert await rig.event(event) == 200
    await rig.slack.wait_for(lambda: len(answers_per_thread(rig)) == len(threads), timeout=30)
    await rig.app[ALERTS].drain(20)
    await rig.settle()
    assert answers_per_thread(rig) == {ts: 1 for ts in threads}
    assert [c for c in rig.slack.api if c.method == "chat.postMessage" and c.params.get("_failed") == 429]
    status = await rig.app[ALERTS].status()
    assert status["pending"] == 0 and status["delivered"] >= 1  # at least one went through the outbox


@pytest.fixture
async def blip_database() -> AsyncIterator[str]:
    """A throw-away database, so refusing its connections disturbs nothing else."""
    name = f"hb_blip_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES_DSN)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        await admin.execute(f"DROP DATABASE {name}")
        await admin.close()


async def refuse_connections(name: str, seconds: float) -> None:
    admin = await asyncpg.connect(POSTGRES_DSN)
    try:
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        await asyncio.sleep(seconds)
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    finally:
        await admin.close()


def question(i: int) -> Incoming:
    key = ThreadKey(platform=Platform.SLACK, workspace="T1", channel="C1", thread=f"1712345678.{i:06d}")
    return Incoming(key=key, user_id=f"U{i}", text="why did costs spike?", event_id=f"EvBlip{i}", is_mention=True,
                    membership=Membership.MEMBER)


async def test_answers_outlast_the_database_refusing_connections(blip_database: str, fake_serving: FakeServing) -> None:
    dsn = POSTGRES_DSN.rsplit("/", 1)[0] + f"/{blip_database}"
    store = PostgresStore(dsn)
    handler = ConversationHandler(store=store, engine=make_client(fake_serving), options=HandlerOptions())
    try:
        await handler.handle(question(0))  # connected and migrated
        blip = asyncio.create_task(refuse_connections(blip_database, 3.0))
        await asyncio.sleep(0.2)
        replies = await asyncio.gather(*(handler.handle(question(i)) for i in range(1, 11)))
        await blip
        assert all(reply is not None and reply.error is None and reply.content == ANSWER for reply in replies), \
            [reply.error if reply else None for reply in replies]
        rows = await store.requests_since(0)
        assert sorted(row.user_id for row in rows) == sorted(f"U{i}" for i in range(11))
    finally:
        await store.close()


async def test_a_database_that_stays_down_is_a_plain_error_not_an_internal_one(
        fake_serving: FakeServing, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bot.store import SqliteStore, retry

    monkeypatch.setattr(retry, "STORE_RETRY_DELAYS_S", (0.01, 0.01))
    store = SqliteStore(tmp_path / "bot.db")
    handler = ConversationHandler(store=store, engine=make_client(fake_serving))

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("the database is down")

    monkeypatch.setattr(store, "open_turn", refused)
    reply = await handler.handle(question(1))
    assert reply is not None and reply.error == ErrorKind.STORE and "cannot reach its own database" in reply.content
    assert fake_serving.invocation_bodies() == []
    await store.close()


async def test_alerts_accepted_before_a_database_blip_are_posted_once(
        blip_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_serving: FakeServing) -> None:
    from tests.fakes.connector import FakeConnector
    from tests.fakes.slack import FakeSlack
    from tests.test_alerts import AlertRig, generic

    for module in ("bot.store.postgres_alerts", "bot.alerts.dispatch"):  # rows leased when it went away come back in 1 s
        monkeypatch.setattr(f"{module}.LEASE_S", 1.0)
    slack, connector = FakeSlack(), FakeConnector()
    await slack.start()
    await connector.start()
    rig = AlertRig(slack, connector, fake_serving, tmp_path, monkeypatch)
    rig.pg_dsn, rig.pg_schema = POSTGRES_DSN.rsplit("/", 1)[0] + f"/{blip_database}", "public"
    try:
        await rig.start()
        rig.dispatcher.backoff_base_s, rig.dispatcher.backoff_max_s = 0.2, 0.5
        slack.fail("chat.postMessage", 200, {"ok": False, "error": "service_unavailable"}, times=3)
        for i in range(5):
            assert (await rig.send(generic(f"Blip alert {i}")))[0] == 200
        await refuse_connections(blip_database, 3.0)  # the worker meets a database that is not there
        await rig.delivered(30)
        assert sorted(r["text"] for r in rig.roots()) == sorted(f"🔴 Blip alert {i} is TRIGGERED" for i in range(5))
    finally:
        await rig.stop()
        await slack.stop()
        await connector.stop()
