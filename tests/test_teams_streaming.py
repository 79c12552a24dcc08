"""Streamed answers in Teams, at the wire: personal chat streams (typing activities with a
`streaminfo` entity, then the final card), channels update a placeholder; the fake connector plays
the Bot Connector's streaming answers (201 with the stream id, then 202; 403 when refused)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.teams.translate import plain_text
from bot.config import load_settings
from adapters.host.server import create_app
from bot.store import SqliteStore
from tests.conftest import make_client
from tests.fakes.base import serve
from tests.fakes.connector import FakeConnector
from tests.fakes.serving import FakeServing, Scripted
from tests.test_slack_streaming import PIECES, WHOLE, chat_agent_events
from tests.test_teams import TeamsRig

PLAIN = plain_text(WHOLE)  # streamed text: the answer's characters, markdown syntax removed (it wraps)


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing) -> AsyncIterator[TeamsRig]:
    connector = FakeConnector()
    await connector.start()
    monkeypatch.setattr("adapters.teams.answering.TYPING_AFTER_S", 0.2)
    fake_serving.default = Scripted(events=chat_agent_events(PIECES), gap_s=0.3)
    app = create_app(load_settings(), store=SqliteStore(tmp_path / "bot.db"),
                     engine=make_client(fake_serving, fmt="chat_agent"))
    runner, url = await serve(app)
    yield TeamsRig(connector, fake_serving, url, app)
    await runner.cleanup()
    await connector.stop()


def streaminfo(activity: dict[str, Any]) -> dict[str, Any] | None:
    return next((e for e in activity.get("entities") or [] if e.get("type") == "streaminfo"), None)


async def test_personal_chat_streams_then_ends_with_the_card(rig: TeamsRig) -> None:
    await rig.post(rig.activity("message_personal.json"))
    await rig.connector.wait_for(lambda: rig.connector.cards(), timeout=15)
    await rig.settle()
    streamed = [s for s in rig.connector.sent if s.activity["type"] == "typing" and streaminfo(s.activity)]
    assert len(streamed) >= 2
    infos = [streaminfo(s.activity) for s in streamed]
    assert [i["streamSequence"] for i in infos if i] == list(range(1, len(infos) + 1))
    assert infos[0] is not None and "streamId" not in infos[0]  # the first one gets the id (201)
    stream_id = {i["streamId"] for i in infos[1:] if i}
    assert len(stream_id) == 1 and all(i["streamType"] == "streaming" for i in infos if i)
    texts = [s.activity["text"] for s in streamed]
    assert all(PLAIN.startswith(text) for text in texts) and len(set(texts)) == len(texts)  # cumulative, growing
    assert all(s.reply_to is None for s in streamed)
    [final] = rig.connector.messages()
    assert streaminfo(final.activity) == {"type": "streaminfo", "streamId": stream_id.pop(), "streamType": "final"}
    assert final.card is not None and "Confidence 90%" in json.dumps(final.card)


async def test_a_refused_stream_falls_back_to_a_placeholder_replaced_by_the_card(rig: TeamsRig) -> None:
    rig.connector.stream_failures.append((403, "streaming_error_403_cancelled_by_user.json"))
    await rig.post(rig.activity("message_personal.json"))
    await rig.connector.wait_for(lambda: any(s.kind == "update" and s.card for s in rig.connector.sent), timeout=15)
    await rig.settle()
    [placeholder] = [s for s in rig.connector.sent if s.kind == "reply"]
    updates = [s for s in rig.connector.sent if s.kind == "update"]
    assert updates and all(u.reply_to == "1760000000001" for u in updates)
    assert updates[-1].card is not None and PLAIN.startswith(placeholder.activity["text"])


async def test_a_channel_thread_updates_a_placeholder_in_place(rig: TeamsRig) -> None:
    await rig.post(rig.activity("message_channel_mention_new_post.json"))
    await rig.connector.wait_for(lambda: any(s.kind == "update" and s.card for s in rig.connector.sent), timeout=15)
    await rig.settle()
    assert not [s for s in rig.connector.sent if streaminfo(s.activity)]  # channels cannot stream
    posts = [s for s in rig.connector.sent if s.kind == "reply" and s.activity["type"] == "message"]
    updates = [s for s in rig.connector.sent if s.kind == "update"]
    assert len(posts) == 1 and len(updates) >= 2 and updates[-1].card is not None
    growing = [u.activity.get("text", "") for u in updates[:-1]]
    assert all(PLAIN.startswith(text) for text in growing)  # the characters, without markdown syntax


async def test_a_streamed_answer_longer_than_a_card_continues_in_follow_ups(rig: TeamsRig) -> None:
    paragraphs = [f"Paragraph {i}: " + "x" * 900 + "\n\n" for i in range(40)]  # ~37,000 characters
    rig.serving.default = Scripted(events=chat_agent_events(paragraphs), gap_s=0.02)
    await rig.post(rig.activity("message_personal.json"))
    await rig.connector.wait_for(lambda: len(rig.connector.messages()) >= 2, timeout=15)
    await rig.settle()
    finals = rig.connector.messages()
    cards = [json.dumps(m.card) for m in finals]
    assert len(finals) >= 2 and all(m.card is not None for m in finals)
    for i in range(40):  # every paragraph once, none cut
        assert sum(c.count(f"Paragraph {i}: " + "x" * 900) for c in cards) == 1, i
    infos = [streaminfo(m.activity) for m in finals]
    assert infos[0] is not None and infos[0]["streamType"] == "final" and all(i is None for i in infos[1:])
    assert all("feedback" not in c for c in cards)  # personal chat: Teams' own feedback loop, no card buttons
    assert all(m.activity["channelData"]["feedbackLoopEnabled"] for m in finals)
