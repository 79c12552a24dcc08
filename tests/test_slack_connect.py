"""Membership decided by the installation (auth.test's team and Enterprise Grid org), never by a
payload's own `team`: every Slack Connect shape at the wire. The held-out suite let a Slack Connect
user through whose event carried `team` = their own organisation; these fail on that code."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.connector import FakeConnector
from tests.fakes.slack import FakeSlack, fixture
from tests.fakes.workspace import FakeWorkspace
from tests.test_access import MEMBER, Rig

HOME, HOME_ORG, OTHER, OTHER_2 = "T0123ABCDE", "E0HOME0001", "T0EXTRN999", "T0EXTRN777"


def users_info(user: str, team: str, enterprise: str | None = None) -> dict[str, Any]:
    answer = fixture("webapi_users_info_ok.json")
    answer["user"].update(id=user, team_id=team)
    if enterprise is not None:
        answer["user"]["enterprise_user"] = {"id": user, "enterprise_id": enterprise, "enterprise_name": "Org",
                                             "is_admin": False, "is_owner": False, "teams": [team]}
    return answer


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Rig]:
    slack, connector, workspace = FakeSlack(), FakeConnector(), FakeWorkspace()
    for fake in (slack, connector, workspace):
        await fake.start()
    rig = Rig(slack, connector, workspace, tmp_path, monkeypatch)
    yield rig
    await rig.stop()
    for fake in (slack, connector, workspace):
        await fake.stop()


async def post_event(rig: Rig, body: dict[str, Any]) -> None:
    assert await rig.slack_post(json.dumps(body).encode()) == 200
    await rig.settle()


def mention(user: str = "U0EXTRN001", **event: Any) -> dict[str, Any]:
    body = fixture("event_app_mention_channel.json")
    body["event"].pop("user_team", None)
    body["event"].update(user=user, **event)
    return body


@pytest.mark.parametrize("shape", [
    pytest.param({"team": OTHER}, id="event team is the user's own organisation"),
    pytest.param({"user_team": OTHER, "team": HOME}, id="user_team foreign"),
    pytest.param({"source_team": OTHER, "team": HOME}, id="source_team foreign"),
    pytest.param({"user_team": OTHER, "team": OTHER}, id="both foreign"),
])
async def test_a_foreign_organisation_in_the_event_is_refused(rig: Rig, shape: dict[str, Any]) -> None:
    rig.slack.users["U0EXTRN001"] = users_info("U0EXTRN001", HOME)  # users.info alone would say member
    await rig.start()
    await post_event(rig, mention(**shape))
    assert rig.workspace.invocation_bodies() == []
    assert "healthbot answers members of Subarachnoid Workspace only" in rig.thread_text()
    assert (await rig.stats())["refused_by_reason"] == {"external": 1}


@pytest.mark.parametrize("team, enterprise", [(OTHER, None), (HOME, "E0OTHER001")])
async def test_users_info_naming_another_team_or_grid_org_is_refused(rig: Rig, team: str,
                                                                     enterprise: str | None) -> None:
    rig.slack.users["U0EXTRN001"] = users_info("U0EXTRN001", team, enterprise)
    await rig.start()
    await post_event(rig, mention(team=HOME))  # the event itself says nothing foreign
    assert rig.workspace.invocation_bodies() == []
    assert (await rig.stats())["refused_by_reason"] == {"external": 1}


async def test_the_envelope_and_authorizations_are_not_the_askers_organisation(rig: Rig) -> None:
    """An envelope naming the user's org cannot make them a member: only auth.test counts as home."""
    rig.slack.users["U0EXTRN001"] = users_info("U0EXTRN001", OTHER)
    await rig.start()
    body = mention(team=OTHER, user_team=OTHER)
    body["team_id"] = OTHER
    body["authorizations"] = [{"team_id": OTHER, "enterprise_id": None, "user_id": "U0BOT12345", "is_bot": True}]
    await post_event(rig, body)
    assert rig.workspace.invocation_bodies() == []


async def test_an_allowlisted_organisation_is_let_in_but_not_when_the_signals_disagree(rig: Rig) -> None:
    rig.slack.users["U0EXTRN001"] = users_info("U0EXTRN001", OTHER)
    rig.slack.users["U0EXTRN002"] = users_info("U0EXTRN002", OTHER_2)
    await rig.start(HEALTHBOT_SLACK_TEAM_IDS=f"{HOME},{OTHER}")
    await post_event(rig, mention(user_team=OTHER, team=OTHER))
    assert len(rig.workspace.invocation_bodies()) == 1
    await post_event(rig, mention(user="U0EXTRN002", user_team=OTHER, ts="1712345699.000001",
                                  event_ts="1712345699.000001"))  # users.info: yet another organisation
    assert len(rig.workspace.invocation_bodies()) == 1


async def test_members_of_the_installing_team_and_its_grid_org_are_answered(rig: Rig) -> None:
    rig.slack.auth = {**fixture("webapi_auth_test_ok.json"), "enterprise_id": HOME_ORG}
    rig.slack.users["U0GRID0001"] = users_info("U0GRID0001", HOME, HOME_ORG)
    await rig.start()
    await post_event(rig, mention(user=MEMBER, team=HOME))
    await post_event(rig, mention(user="U0GRID0001", user_team=HOME_ORG, team=HOME, ts="1712345698.000001",
                                  event_ts="1712345698.000001"))
    assert len(rig.workspace.invocation_bodies()) == 2


async def test_a_slash_command_and_a_button_from_another_organisation_are_refused(rig: Rig) -> None:
    rig.slack.users["U0EXTRN001"] = users_info("U0EXTRN001", HOME)
    await rig.start()
    fields = {k: v[0] for k, v in urllib.parse.parse_qs(
        (Path(__file__).parent / "fixtures" / "slack" / "slash_command_healthbot.txt").read_text().strip()).items()}
    fields.update(text="costs", user_id="U0EXTRN001", team_id=OTHER, response_url=f"{rig.slack.url}/hooks/1")
    assert await rig.slack_post(urllib.parse.urlencode(fields).encode(), "application/x-www-form-urlencoded") == 200
    await rig.settle()
    assert rig.workspace.invocation_bodies() == [] and rig.slack.called("chat.postMessage") == []
    assert rig.slack.hooks[-1]["response_type"] == "ephemeral"
    payload = fixture("interactive_block_actions_thread.payload.json")
    payload["user"] = {"id": "U0EXTRN001", "team_id": OTHER, "username": "ext", "name": "ext"}
    payload["actions"][0].update(action_id="feedback_down", value="req-1")
    ephemeral = await rig.click_refused(payload)
    assert "members of Subarachnoid Workspace only" in ephemeral["text"]
