"""The PostgreSQL store against the local server: same behaviour as SQLite, and safe for replicas."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest

from agent.base import ChatMessage
from agent.errors import ErrorKind
from bot.config import load_settings
from bot.handler import ConversationHandler
from bot.models import Incoming, Membership, Platform, ThreadKey
from adapters.host.server import create_app
from bot.store import RequestLogRow, open_store
from bot.store.postgres import PostgresStore
from tests.conftest import POSTGRES_DSN, make_client
from tests.fakes.base import serve
from tests.fakes.serving import FakeServing
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.test_alerts import TOKEN, generic

KEY = ThreadKey(platform=Platform.SLACK, workspace="T1", channel="C1", thread="1712345678.123456")


def test_database_url_selects_postgres() -> None:
    assert isinstance(open_store(POSTGRES_DSN), PostgresStore)


async def test_conversation_store(pg_schema: str) -> None:
    store = PostgresStore(POSTGRES_DSN, schema=pg_schema)
    assert await store.claim_event("Ev1") and not await store.claim_event("Ev1")
    assert await store.claim_event("Ev2", ttl_s=0.05)
    await asyncio.sleep(0.1)
    assert await store.claim_event("Ev2", ttl_s=0.05)  # expired: a new delivery
    first = await store.session_for(KEY)
    assert first.created and (await store.session_for(KEY)).session_id == first.session_id
    assert await store.has_session(KEY) and not await store.has_session(KEY.model_copy(update={"thread": "x"}))
    for i in range(5):
        await store.append_message(first.session_id, ChatMessage("user" if i % 2 == 0 else "assistant", f"m{i}"))
    assert [m.content for m in await store.recent_messages(first.session_id, 3)] == ["m2", "m3", "m4"]
    row = RequestLogRow(request_id="r1", ts=time.time(), platform="slack", workspace="T1", channel="C1", thread="t",
                        session_id=first.session_id, user_id="u", question="q", answer="a", sources=["x"], confidence=0.5,
                        domains=["costs"], latency_ms=12.5, endpoint_latency_ms=10.0, trace_id="tr-1")
    await store.record_answer(first.session_id, ChatMessage("assistant", "a"), row)
    assert await store.get_request("r1") == row
    assert await store.record_feedback("r1", user_id="u", value=1) and await store.record_feedback("r1", user_id="u", value=-1)
    assert not await store.record_feedback("nope", user_id="u", value=1)
    assert await store.feedback_since(0) == [("r1", -1)] and [r.request_id for r in await store.requests_since(0)] == ["r1"]
    assert await store.save_reference("teams", "19:c", {"serviceUrl": "x"})
    assert not await store.save_reference("teams", "19:c", {"serviceUrl": "x"})  # unchanged
    assert await store.get_reference("teams", "19:c") == {"serviceUrl": "x"}
    await store.ping()
    await store.close()
    reopened = PostgresStore(POSTGRES_DSN, schema=pg_schema)  # a restart: migrations are not re-run
    assert (await reopened.session_for(KEY)).session_id == first.session_id
    await reopened.close()


async def test_replicas_share_sessions_and_answer_each_event_once(pg_schema: str, fake_serving: FakeServing) -> None:
    replicas = [ConversationHandler(store=PostgresStore(POSTGRES_DSN, schema=pg_schema), engine=make_client(fake_serving))
                for _ in range(2)]
    message = Incoming(key=KEY, user_id="U1", text="why did costs spike?", event_id="slack:T1:C1:1712345678.123456",
                       membership=Membership.MEMBER)
    replies = await asyncio.gather(*(replica.handle(message) for replica in replicas))
    assert sum(1 for reply in replies if reply is not None) == 1  # the event is answered once
    follow = Incoming(key=KEY, user_id="U1", text="which job?", event_id="slack:T1:C1:1712345679.000001",
                      membership=Membership.MEMBER)
    second = await replicas[1].handle(follow)
    first = next(reply for reply in replies if reply is not None)
    assert second is not None and second.session_id == first.session_id
    for replica in replicas:
        await replica.engine.close()
        await replica.store.close()


async def test_two_servers_on_one_database_post_each_alert_once(pg_schema: str, monkeypatch: pytest.MonkeyPatch,
                                                                  fake_serving: FakeServing, tmp_path: Path) -> None:
    slack = FakeSlack()
    await slack.start()
    for name, value in {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack.api_url,
                        "HEALTHBOT_ALERT_TOKEN": TOKEN, "HEALTHBOT_ALERT_CHANNELS": "slack:C0PLATFORM1",
                        "HEALTHBOT_ALERT_PACE_SECONDS": "0", "HEALTHBOT_ALERT_STORM_THRESHOLD": "1000"}.items():
        monkeypatch.setenv(name, value)
    runners, urls = [], []
    for _ in range(2):
        app = create_app(load_settings(), store=PostgresStore(POSTGRES_DSN, schema=pg_schema), engine=make_client(fake_serving))
        runner, url = await serve(app)
        runners.append(runner)
        urls.append(url)
    try:
        async with aiohttp.ClientSession() as http:
            for i in range(40):
                async with http.post(f"{urls[i % 2]}/alerts/databricks", json=generic(f"Replica alert {i}"),
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                    assert resp.status == 200
        await slack.wait_for(lambda: len(slack.called("chat.postMessage")) >= 40, timeout=15)
        await asyncio.sleep(0.5)
        names = sorted(json.dumps(p["blocks"][0]["text"]["text"], ensure_ascii=False) for p in slack.called("chat.postMessage"))
        assert len(names) == 40 and len(set(names)) == 40  # every alert posted, none twice
    finally:
        for runner in runners:
            await runner.cleanup()
        await slack.stop()


async def test_a_newer_schema_is_refused(pg_schema: str) -> None:
    store = PostgresStore(POSTGRES_DSN, schema=pg_schema)
    await store.ping()  # creates the schema at the current version
    pool = await store.pool()
    await pool.execute("INSERT INTO healthbot_schema (version) VALUES (99)")
    await store.close()
    with pytest.raises(RuntimeError, match="newer than this healthbot"):
        await PostgresStore(POSTGRES_DSN, schema=pg_schema).ping()


async def test_two_replicas_hold_one_users_limit_together(pg_schema: str, fake_serving: FakeServing) -> None:
    """30 questions a minute per user, whichever replica takes them; refused ones never reach the endpoint."""
    stores = [PostgresStore(POSTGRES_DSN, schema=pg_schema) for _ in range(2)]
    handlers = [ConversationHandler(store=store, engine=make_client(fake_serving)) for store in stores]
    try:
        replies = await asyncio.gather(*(
            handlers[i % 2].handle(Incoming(key=KEY.model_copy(update={"thread": f"1712345678.{i:06d}"}),
                                            user_id="U0CHATTY", text=f"question {i}", event_id=f"EvLimit{i}",
                                            membership=Membership.MEMBER))
            for i in range(40)))
        answered = [r for r in replies if r is not None and r.error is None]
        throttled = [r for r in replies if r is not None and r.error == ErrorKind.THROTTLED]
        assert (len(answered), len(throttled)) == (30, 10)
        assert len(fake_serving.invocation_bodies()) == 30
        assert all("Try again in" in r.content for r in throttled)
        other = await handlers[0].handle(Incoming(key=KEY, user_id="U0QUIET", text="hello", event_id="EvOther",
                                                  membership=Membership.MEMBER))
        assert other is not None and other.error is None  # the limit is per user
    finally:
        for store in stores:
            await store.close()


async def test_recording_an_answer_twice_records_it_once(pg_schema: str) -> None:
    """A retry after a commit whose reply was lost must not fail on the request id, nor double the answer."""
    store = PostgresStore(POSTGRES_DSN, schema=pg_schema)
    try:
        session = await store.session_for(KEY)
        row = RequestLogRow(request_id="r-twice", ts=time.time(), platform="slack", workspace="T1", channel="C1",
                            thread=KEY.thread, session_id=session.session_id, user_id="U1", question="q", answer="a")
        for _ in range(2):
            await store.record_answer(session.session_id, ChatMessage("assistant", "a"), row)
            await store.log_request(row)
        assert [m.content for m in await store.recent_messages(session.session_id, 10)] == ["a"]
        assert len(await store.requests_since(0)) == 1
    finally:
        await store.close()
