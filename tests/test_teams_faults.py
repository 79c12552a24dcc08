"""A Bot Connector that refuses the connection: one warning line, never a traceback (found by the
held-out fuzzing in adapters/teams/outbound.py), and the activity still answered 200."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from tests.fakes.serving import FakeServing
from tests.test_teams import start_rig


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


@pytest.mark.parametrize("name", ["message_personal.json", "message_channel_mention_new_post.json",
                                  "conversation_update_bot_added_personal.json"])
async def test_a_connector_that_refuses_the_connection_is_one_warning_line(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing,
        caplog: pytest.LogCaptureFixture, name: str) -> None:
    rig, runner = await start_rig(monkeypatch, tmp_path, fake_serving)
    try:
        caplog.set_level(logging.INFO)
        status, _ = await rig.post(rig.activity(name, serviceUrl=f"http://127.0.0.1:{closed_port()}/"))
        await rig.settle()
    finally:
        await runner.cleanup()
        await rig.connector.stop()
    assert status in (200, 201)
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING]
