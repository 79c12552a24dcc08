"""ConversationHandler over a real SQLite store and the real serving client against a fake workspace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.errors import ErrorKind
from bot.handler import ConversationHandler, HandlerOptions
from bot.models import Incoming, Membership, Platform, ThreadKey
from bot.store import SqliteStore
from tests.conftest import make_client
from tests.fakes.serving import FakeServing, Scripted, answer_body, error


def key(thread: str = "1712345678.123456", channel: str = "C0123ABCDEF") -> ThreadKey:
    return ThreadKey(platform=Platform.SLACK, workspace="T0123ABCDE", channel=channel, thread=thread)


def msg(text: str, *, thread: str = "1712345678.123456", user: str = "U0USER1234", event_id: str = "",
        email: str = "ana@example.com", channel: str = "C0123ABCDEF") -> Incoming:
    return Incoming(key=key(thread, channel), user_id=user, user_email=email, text=text, event_id=event_id, is_mention=True,
                    membership=Membership.MEMBER)


class Rig:
    """A handler wired to a store file and a fake endpoint; `reopen` simulates a restart."""

    def __init__(self, fake: FakeServing, db_path: Path, options: HandlerOptions) -> None:
        self.fake, self.db_path, self.options = fake, db_path, options
        self.handler = self._build()

    def _build(self) -> ConversationHandler:
        return ConversationHandler(store=SqliteStore(self.db_path), engine=make_client(self.fake), options=self.options)

    async def reopen(self) -> None:
        await self.close()
        self.handler = self._build()

    async def close(self) -> None:
        await self.handler.engine.close()
        await self.handler.store.close()

    def sent(self) -> list[dict]:
        return [body["inputs"] for body in self.fake.invocation_bodies()]


@pytest.fixture
async def rig(fake_serving: FakeServing, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    options = getattr(request, "param", HandlerOptions())
    r = Rig(fake_serving, tmp_path / "bot.db", options)
    yield r
    await r.close()


async def test_same_thread_same_session_even_after_restart(rig: Rig) -> None:
    first = await rig.handler.handle(msg("why did costs spike?"))
    second = await rig.handler.handle(msg("which job was it?"))
    await rig.reopen()
    third = await rig.handler.handle(msg("and the day before?"))
    assert first and second and third
    assert first.session_id == second.session_id == third.session_id
    sessions = [body["params"]["session_id"] for body in rig.sent()]
    assert sessions == [first.session_id] * 3
    assert [m["content"] for m in rig.sent()[2]["messages"]] == [
        "why did costs spike?", "Costs rose 42%.", "which job was it?", "Costs rose 42%.", "and the day before?"]
    assert rig.sent()[0]["params"]["user_id"] == "ana@example.com"


async def test_different_threads_get_different_sessions(rig: Rig) -> None:
    a = await rig.handler.handle(msg("q", thread="1.1"))
    b = await rig.handler.handle(msg("q", thread="2.2"))
    c = await rig.handler.handle(msg("q", thread="1.1", channel="C0OTHER"))
    assert a and b and c
    assert len({a.session_id, b.session_id, c.session_id}) == 3
    assert rig.sent()[1]["messages"] == [{"role": "user", "content": "q"}]  # no history leaks across threads


async def test_duplicate_event_answered_once_across_restart(rig: Rig) -> None:
    assert await rig.handler.handle(msg("hello", event_id="Ev1")) is not None
    assert await rig.handler.handle(msg("hello", event_id="Ev1")) is None
    await rig.reopen()
    assert await rig.handler.handle(msg("hello", event_id="Ev1")) is None
    assert len(rig.sent()) == 1


@pytest.mark.parametrize("rig", [HandlerOptions(user_rate_per_min=3, global_rate_per_min=5)], indirect=True)
async def test_rate_limits_answer_with_a_wait_time(rig: Rig) -> None:
    replies = [await rig.handler.handle(msg(f"q{i}", thread=f"{i}.0")) for i in range(4)]
    assert [r.error for r in replies if r] == [None, None, None, ErrorKind.THROTTLED]
    throttled = replies[3]
    assert throttled is not None and "Try again in" in throttled.content
    assert int(throttled.content.split("Try again in ")[1].split(" s")[0]) in range(55, 61)
    other = [await rig.handler.handle(msg(f"o{i}", user="U0USER5678", thread=f"o{i}")) for i in range(3)]
    assert [r.error for r in other if r] == [None, None, ErrorKind.THROTTLED]  # global limit of 5
    assert len(rig.sent()) == 5
    rows = await rig.handler.store.requests_since(0)
    assert [row.error for row in rows].count("throttled") == 2


@pytest.mark.parametrize("rig", [HandlerOptions(max_concurrency=2)], indirect=True)
async def test_at_most_n_endpoint_calls_in_flight_the_rest_queue(rig: Rig) -> None:
    rig.fake.default = Scripted(200, answer_body(), delay_s=0.15)
    replies = await asyncio.gather(*(rig.handler.handle(msg(f"q{i}", thread=f"t{i}")) for i in range(6)))
    assert all(r is not None and r.error is None for r in replies)
    assert rig.fake.max_in_flight == 2


async def test_first_turn_quick_questions_are_cached(rig: Rig) -> None:
    a = await rig.handler.handle(msg("Why did costs spike yesterday?", thread="a"))
    b = await rig.handler.handle(msg("why did costs spike yesterday", thread="b", user="U0USER5678"))
    c = await rig.handler.handle(msg("Why did costs spike yesterday?", thread="a"))  # second turn: not cached
    d = await rig.handler.handle(msg("something else", thread="d"))
    assert a and b and c and d
    assert (a.cached, b.cached, c.cached, d.cached) == (False, True, False, False)
    assert b.content == a.content and b.session_id != a.session_id
    assert len(rig.sent()) == 3
    rows = {row.request_id: row for row in await rig.handler.store.requests_since(0)}
    assert rows[b.request_id].cached and rows[b.request_id].endpoint_latency_ms is None


@pytest.mark.parametrize(
    ("scripted", "kind", "words"),
    [
        (error("serving_error_403_permission_denied.json"), ErrorKind.PERMISSION_DENIED, "CAN_QUERY"),
        (error("serving_error_404_resource_does_not_exist.json"), ErrorKind.NOT_FOUND, "does not exist"),
        (Scripted(200, b"<html>"), ErrorKind.BAD_RESPONSE, "not in a format"),
        (Scripted(500, {}), ErrorKind.UNAVAILABLE, "unavailable"),
    ],
)
async def test_endpoint_failures_become_plain_replies(rig: Rig, scripted: Scripted, kind: ErrorKind, words: str) -> None:
    rig.fake.invocations.append(scripted)
    reply = await rig.handler.handle(msg("why did costs spike?"))
    assert reply is not None and reply.error == kind
    assert words in reply.content and "Traceback" not in reply.content
    assert reply.request_id and reply.question == "why did costs spike?"
    row = await rig.handler.store.get_request(reply.request_id)
    assert row is not None and row.error == kind.value and row.question == "why did costs spike?"


@pytest.mark.parametrize("rig", [HandlerOptions(endpoint_timeout_s=0.2)], indirect=True)
async def test_timeout_then_retry_reasks_the_same_question_in_the_same_session(rig: Rig) -> None:
    rig.handler.engine.timeout_s = 0.2  # type: ignore[attr-defined]
    rig.fake.invocations.append(Scripted(200, answer_body(), delay_s=1.0))
    failed = await rig.handler.handle(msg("which jobs failed today?"))
    assert failed is not None and failed.error == ErrorKind.TIMEOUT and "0.2 s" in failed.content
    retried = await rig.handler.handle(msg("retry"))
    assert retried is not None and retried.error is None
    assert retried.session_id == failed.session_id and retried.question == "which jobs failed today?"
    assert rig.sent()[1]["messages"] == [{"role": "user", "content": "which jobs failed today?"}]
    history = await rig.handler.store.recent_messages(failed.session_id, 10)
    assert [m.role for m in history] == ["user", "assistant"]


@pytest.mark.parametrize("rig", [HandlerOptions(history_limit=4)], indirect=True)
async def test_only_recent_history_is_sent(rig: Rig) -> None:
    for i in range(4):
        await rig.handler.handle(msg(f"question {i}"))
    last = rig.sent()[-1]["messages"]
    assert [m["content"] for m in last] == ["Costs rose 42%.", "question 2", "Costs rose 42%.", "question 3"]


@pytest.mark.parametrize("rig", [HandlerOptions(dm_idle_s=0.2)], indirect=True)
async def test_threadless_dm_session_expires_when_idle(rig: Rig) -> None:
    dm = ThreadKey(platform=Platform.SLACK, workspace="T0123ABCDE", channel="D0123ABCDEF", thread="")
    first = await rig.handler.handle(Incoming(key=dm, user_id="U1", text="hi", is_dm=True, membership=Membership.MEMBER))
    again = await rig.handler.handle(Incoming(key=dm, user_id="U1", text="hi again", is_dm=True, membership=Membership.MEMBER))
    await asyncio.sleep(0.3)
    later = await rig.handler.handle(Incoming(key=dm, user_id="U1", text="back", is_dm=True, membership=Membership.MEMBER))
    assert first and again and later
    assert first.session_id == again.session_id != later.session_id
    assert rig.sent()[2]["messages"] == [{"role": "user", "content": "back"}]


async def test_new_session_starts_over(rig: Rig) -> None:
    first = await rig.handler.handle(msg("hello"))
    fresh = await rig.handler.new_session(key())
    after = await rig.handler.handle(msg("hello again"))
    assert first and after and after.session_id == fresh != first.session_id


async def test_every_message_writes_one_request_log_row(rig: Rig) -> None:
    rig.fake.invocations.append(error("serving_error_403_permission_denied.json"))
    failed = await rig.handler.handle(msg("q1"))
    ok = await rig.handler.handle(msg("q2"))
    rows = await rig.handler.store.requests_since(0)
    assert failed and ok and [r.request_id for r in rows] == [failed.request_id, ok.request_id]
    row = rows[1]
    assert (row.platform, row.workspace, row.channel, row.thread) == ("slack", "T0123ABCDE", "C0123ABCDEF", "1712345678.123456")
    assert (row.user_id, row.question, row.answer) == ("ana@example.com", "q2", "Costs rose 42%.")
    assert row.sources == ["system.billing.usage"] and row.domains == ["costs"] and row.confidence == 0.9
    assert row.latency_ms >= (row.endpoint_latency_ms or 0) > 0
