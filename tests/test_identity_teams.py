"""HEALTHBOT_IDENTITY=user over the wire in Teams: the link in the asker's personal chat (opened
proactively when they asked in a channel), the answer where they asked once they connect, and
`disconnect`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.teams.connect import NO_PRIVATE_CHAT, SENT_PRIVATELY
from tests.fakes.identity import FakeIdentityWorkspace, sign_in, user_mode
from tests.test_teams import THREAD, TeamsRig, start_rig

ASKER = "alex.smith@contoso.example"
AUTHORIZE = "/oidc/v1/authorize"


@pytest.fixture
async def teams(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[tuple[TeamsRig, FakeIdentityWorkspace]]:
    workspace = FakeIdentityWorkspace(signing_in_as=ASKER)
    await workspace.start()
    rig, runner = await start_rig(monkeypatch, tmp_path, workspace, **user_mode(workspace))
    yield rig, workspace
    await runner.cleanup()
    await rig.connector.stop()
    await workspace.stop()


def link_cards(rig: TeamsRig) -> list[tuple[str, dict[str, Any]]]:
    """(conversation, card) of every card with the Connect link."""
    return [(m.conversation_id, m.card) for m in rig.connector.messages()
            if m.card and any(a.get("type") == "Action.OpenUrl" for a in m.card.get("actions", []))]


async def settle(rig: TeamsRig) -> None:
    await rig.settle()
    await rig.teams.handler.identity.drain()
    await rig.settle()


async def test_in_personal_chat_the_link_comes_there_and_the_question_is_answered_after_connecting(
        teams: tuple[TeamsRig, FakeIdentityWorkspace]) -> None:
    rig, workspace = teams
    await rig.post(rig.activity("message_personal.json"))
    await settle(rig)
    [(conversation, card)] = link_cards(rig)
    personal = rig.activity("message_personal.json")["conversation"]["id"]
    assert conversation == personal and workspace.invoked_as == []
    url = card["actions"][0]["url"]
    assert url.startswith(f"{workspace.url}{AUTHORIZE}?") and "code_challenge_method=S256" in url
    status, _ = await sign_in(rig.url, url)
    await settle(rig)
    assert status == 200 and workspace.invoked_as == [ASKER]
    answers = [m for m in rig.connector.messages() if m.card and "Costs rose 42%." in json.dumps(m.card)]
    assert [m.conversation_id for m in answers] == [personal]


async def test_in_a_channel_the_link_goes_to_a_personal_chat_and_the_answer_to_the_thread(
        teams: tuple[TeamsRig, FakeIdentityWorkspace]) -> None:
    rig, workspace = teams
    await rig.post(rig.activity("message_channel_mention_new_post.json"))
    await settle(rig)
    [created] = [s for s in rig.connector.sent if s.kind == "create"]
    params = created.activity["_create"]
    user = rig.activity("message_channel_mention_new_post.json")["from"]["id"]
    assert params["isGroup"] is False and params["members"] == [{"id": user}]
    [(conversation, card)] = link_cards(rig)
    assert conversation.startswith("a:1personal-")
    in_thread = [m.activity.get("text") for m in rig.connector.messages() if m.conversation_id == THREAD]
    assert in_thread == [SENT_PRIVATELY]  # the thread hears where to look, never the link
    await sign_in(rig.url, card["actions"][0]["url"])
    await settle(rig)
    answer = [m for m in rig.connector.messages() if m.card and "Costs rose 42%." in json.dumps(m.card)]
    assert [(m.conversation_id, m.reply_to) for m in answer] == [(THREAD, "1759881511856")]
    assert workspace.invoked_as == [ASKER]


async def test_without_a_personal_chat_the_thread_is_told_how_and_the_link_is_never_shown(
        teams: tuple[TeamsRig, FakeIdentityWorkspace]) -> None:
    rig, workspace = teams
    rig.connector.personal_refused = True
    await rig.post(rig.activity("message_channel_mention_new_post.json"))
    await settle(rig)
    assert [m.activity.get("text") for m in rig.connector.messages()] == [NO_PRIVATE_CHAT]
    assert AUTHORIZE not in json.dumps([s.activity for s in rig.connector.sent]) and workspace.invoked_as == []


async def test_disconnect_removes_and_revokes_the_tokens(teams: tuple[TeamsRig, FakeIdentityWorkspace]) -> None:
    rig, workspace = teams
    await rig.post(rig.activity("message_personal.json"))
    await settle(rig)
    await sign_in(rig.url, link_cards(rig)[0][1]["actions"][0]["url"])
    await settle(rig)
    refresh = list(workspace.refresh)
    await rig.post(rig.activity("message_personal.json", id="1759950000009", text="disconnect"))
    await settle(rig)
    assert any("Disconnected" in str(m.activity.get("text")) for m in rig.connector.messages())
    assert workspace.revoked == refresh and await rig.teams.handler.identity.connected() == 0
