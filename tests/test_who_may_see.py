"""Who may see what, at the wire: every surface that shows data asks the same gate as a question.

The holes an outside review found, one test each: the digest on demand (Slack and Teams) for a member
a domain rule keeps out, App Home for a member of one channel only, a Teams card action naming another
conversation's alert, a guest's flood of refusals, a deployer who lost the role before Confirm.
(Outside text, the emulator and the limits across replicas: tests/test_inert_text.py,
tests/test_teams_emulator.py, tests/test_postgres_limits.py.)"""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp
import pytest

from adapters.host.server import STORE
from bot.store import RequestLogRow
from bot.store.base import AlertThread
from tests.fakes.connector import fixture as teams_fixture
from tests.fakes.serving import Scripted, answer_body
from tests.fakes.workspace import scim_group, scim_user
from tests.test_access import MEMBER, Rig, rig  # noqa: F401  (the fixture)
from tests.test_identity_slack import IdentityRig, idrig  # noqa: F401  (the fixture)

OVERVIEW = answer_body("Platform overview: costs up 79% on the finance warehouse.", domains=["Costs"])
POLICY = "domains:\n  costs: [finops]\n"
CHANNEL = "C0123ABCDEF"  # the slash command fixture's channel


async def seed_question(rig: Rig, platform: str, channel: str, workspace: str) -> None:
    """One earlier question in the place, so the digest there is not a quiet one."""
    assert rig.app is not None
    await rig.app[STORE].log_request(RequestLogRow(
        request_id=f"seed-{channel}", ts=time.time() - 60, platform=platform, workspace=workspace, channel=channel,
        thread="1.1", session_id="s", user_id="u", question="q", answer="a", latency_ms=900.0))


def people(rig: Rig) -> None:
    """spengler (the Slack MEMBER) and alex (the Teams member) are members outside finops; egon is in it."""
    rig.workspace.scim_users = [scim_user("spengler@ghostbusters.example.com", user_id="u-spengler"),
                                scim_user("alex.smith@contoso.example", user_id="u-alex"),
                                scim_user("egon@ghostbusters.example.com", user_id="u-egon", groups=("finops",))]
    rig.workspace.scim_groups = [scim_group("finops", members=("u-egon",))]
    rig.slack.emails["U0EGON0001"] = "egon@ghostbusters.example.com"
    rig.workspace.default = Scripted(200, OVERVIEW)


async def test_slack_digest_withholds_the_overview_from_a_member_a_domain_rule_keeps_out(rig: Rig) -> None:
    people(rig)
    await rig.start(policy=POLICY)
    await seed_question(rig, "slack", CHANNEL, "T0123ABCDE")
    await rig.command("digest")
    posted = json.dumps(rig.slack.posted(), ensure_ascii=False)
    assert "healthbot digest" in posted and "costs up 79%" not in posted
    assert "touches costs data, which is limited to finops" in posted
    [asked] = rig.workspace.invocation_bodies()  # asked as the person, not as healthbot
    assert asked["inputs"]["params"]["user_id"] == "spengler@ghostbusters.example.com"

    await rig.command("digest", user="U0EGON0001")  # a finops member sees it
    assert "costs up 79%" in json.dumps(rig.slack.posted(), ensure_ascii=False)


async def test_teams_digest_withholds_the_overview_from_a_member_a_domain_rule_keeps_out(rig: Rig) -> None:
    people(rig)
    await rig.start(policy=POLICY)
    activity = teams_fixture("message_personal.json")
    activity.update(text="digest", id="1759900000001")
    conversation = activity["conversation"]["id"]
    await seed_question(rig, "teams", conversation, activity["conversation"]["tenantId"])
    await rig.teams(activity)
    sent = json.dumps([s.activity for s in rig.connector.sent], ensure_ascii=False)
    assert "healthbot digest" in sent and "costs up 79%" not in sent
    assert "touches costs data, which is limited to finops" in sent


async def test_a_digest_holds_only_what_happened_in_its_own_channel(rig: Rig) -> None:
    await rig.start()
    assert rig.app is not None
    now = time.time()
    await rig.app[STORE].alerts.save_thread(AlertThread(
        "private-alert", "slack:C0PRIVATE01", {"ts": "1712340000.000100", "team": "T0123ABCDE"}, "TRIGGERED",
        now - 600, now - 600, now - 60, 1, "", False, {"name": "Payroll export failed"}))
    await seed_question(rig, "slack", "C0PRIVATE01", "T0123ABCDE")
    await rig.command("digest")
    posted = json.dumps(rig.slack.posted(), ensure_ascii=False)
    assert "Payroll export" not in posted and "Quiet" in posted  # nothing of the private channel shows here


async def test_app_home_lists_only_alerts_of_channels_the_viewer_is_in_and_may_see(rig: Rig) -> None:
    people(rig)
    rig.workspace.scim_groups.append(scim_group("platform-admins", members=("u-egon",)))
    await rig.start(policy="domains:\n  security: [platform-admins]\n")
    assert rig.app is not None
    now = time.time()
    threads = [("a-mine", "C0PLATFORM1", "T0123ABCDE", "Daily cost above budget", ""),
               ("a-private", "C0PRIVATE01", "T0123ABCDE", "Payroll export failed", ""),
               ("a-other-ws", "C0PLATFORM1", "T0OTHERWS1", "Other workspace alert", ""),
               ("a-security", "C0PLATFORM1", "T0123ABCDE", "Admin token created", "security")]
    for key, channel, team, name, domain in threads:
        await rig.app[STORE].alerts.save_thread(AlertThread(
            key, f"slack:{channel}", {"ts": f"1712340000.{len(key):06d}", "team": team}, "TRIGGERED", now - 600,
            now - 600, now - 60, 1, "", False, {"name": name, "domain": domain}))
    rig.slack.members = {"C0PLATFORM1": ["U0BOT12345", MEMBER, "U0EGON0001"], "C0PRIVATE01": ["U0EGON0001"]}
    body = json.loads((Path(__file__).parent / "fixtures" / "slack" / "event_app_home_opened.json").read_text())
    body["event"].update(user=MEMBER, tab="home")
    assert await rig.slack_post(json.dumps(body).encode()) == 200
    await rig.slack.wait_for(lambda: rig.slack.called("views.publish"))
    await rig.settle()
    page = json.dumps(rig.slack.called("views.publish")[0]["view"], ensure_ascii=False)
    assert "Daily cost above budget" in page
    assert "Payroll export" not in page  # a private channel they are not in
    assert "Other workspace alert" not in page  # another workspace's thread
    assert "Admin token created" not in page  # a domain they may not see


async def test_a_teams_alert_button_names_only_alerts_of_its_own_conversation(rig: Rig) -> None:
    channel = "19:0123456789abcdef0123456789abcdef@thread.tacv2"
    await rig.start(HEALTHBOT_ALERT_TOKEN="alert-token", HEALTHBOT_ALERT_CHANNELS=f"teams:{channel}")
    install = teams_fixture("message_channel_mention_new_post.json")
    install.update(type="conversationUpdate", text=None, membersAdded=[{"id": install["recipient"]["id"]}])
    await rig.teams(install)
    alert = json.loads((Path(__file__).parent / "fixtures" / "databricks" / "sql_alert_v2_webhook_triggered.json").read_text())
    async with aiohttp.ClientSession() as http, http.post(f"{rig.url}/alerts/databricks", json=alert,
                                                          headers={"Authorization": "Bearer alert-token"}) as resp:
        assert resp.status in (200, 202)
    await rig.connector.wait_for(lambda: any(s.kind == "create" for s in rig.connector.sent))
    [created] = [s for s in rig.connector.sent if s.kind == "create"]
    card = created.activity["attachments"][0]["content"]
    [ack] = [a for a in card["actions"] if a.get("verb") == "alert_acknowledge"]

    # From a personal chat, with the card's data copied (it names the channel): nothing happens.
    invoke = teams_fixture("invoke_adaptive_card_action_execute.json")
    personal = teams_fixture("message_personal.json")
    invoke.update(serviceUrl=rig.connector.url + "/", conversation=personal["conversation"], replyToId=None)
    invoke["value"]["action"].update(verb="alert_acknowledge", data={**ack["data"], "channel": channel})
    sent_before = len(rig.connector.sent)
    async with aiohttp.ClientSession() as http, http.post(f"{rig.url}/api/messages", json=invoke) as resp:
        answer = await resp.json()
    assert resp.status == 200 and "not known in this conversation" in json.dumps(answer)
    assert "Acknowledged" not in json.dumps(answer) and "AdaptiveCard" not in json.dumps(answer)
    await rig.settle()
    assert len(rig.connector.sent) == sent_before  # the channel's card was not updated
    assert rig.app is not None
    thread = await rig.app[STORE].alerts.thread(ack["data"]["key"], f"teams:{channel}")
    assert thread is not None and not thread.acknowledged_by

    # From the channel itself, the same click works.
    invoke["conversation"] = install["conversation"]
    async with aiohttp.ClientSession() as http, http.post(f"{rig.url}/api/messages", json=invoke) as resp:
        assert "Acknowledged" in json.dumps(await resp.json())


async def test_a_guests_flood_gets_at_most_the_limit_of_refusals(rig: Rig) -> None:
    await rig.start(HEALTHBOT_USER_RATE_PER_MIN="5")
    for i in range(20):
        await rig.mention(user="U0GUEST001", ts=f"17123456{i:02d}.000001")
    refusals = [p for p in rig.slack.posted() if "guest accounts are not included" in p.get("text", "")]
    assert len(refusals) == 5 and rig.workspace.invocation_bodies() == []


async def test_digest_in_user_mode_asks_a_person_who_never_connected_to_connect(idrig: IdentityRig) -> None:
    await idrig.app[STORE].log_request(RequestLogRow(
        request_id="seed", ts=time.time() - 60, platform="slack", workspace="T0123ABCDE", channel=CHANNEL,
        thread="1.1", session_id="s", user_id="u", question="q", answer="a", latency_ms=900.0))
    assert await idrig.command("digest") == 200
    await idrig.settle()
    assert idrig.workspace.invoked_as == []  # not through the service principal's token either
    assert idrig.slack.called("chat.postMessage") == []  # nothing posted in the channel
    assert "Connect your Databricks account" in idrig.slack.hooks[-1]["text"]
    assert idrig.slack.hooks[-1]["response_type"] == "ephemeral"


async def test_an_assistant_event_bolt_cannot_take_is_ignored_without_a_traceback(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    await rig.start()
    for broken in ({"channel": "D0123ABCDEF"}, {"channel": "D0123ABCDEF", "subtype": "assistant_app_thread"},
                   {"assistant_thread": {"user_id": MEMBER}, "channel": "D0123ABCDEF"}):  # no thread to build on
        body = json.loads((Path(__file__).parent / "fixtures" / "slack" / "event_assistant_thread_started.json").read_text())
        body["event"].pop("assistant_thread")
        body["event"].update(broken)
        assert await rig.slack_post(json.dumps(body).encode()) == 200
    await rig.settle()
    assert not [r for r in caplog.records if r.exc_info or r.levelname == "ERROR"]
    assert rig.slack.api == [] or all(c.method == "auth.test" for c in rig.slack.api)


async def test_a_deployer_who_lost_the_role_cannot_confirm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.fakes.deployments import FakeDeployWorkspace
    from tests.test_rollback import rollback_rig
    from tests.test_rollback import start as start_rollback

    monkeypatch.setattr("bot.access.directory.CACHE_TTL_S", 0.0)  # what SCIM says now, not ten minutes ago
    async with rollback_rig(monkeypatch, tmp_path, FakeDeployWorkspace()) as rollback:
        await start_rollback(rollback)
        await rollback.command("rollback")
        [request] = rollback.requests()
        rollback.workspace.scim_groups[0]["members"] = []  # removed from platform-admins since
        await rollback.click(request, "deploy_confirm")
        assert rollback.workspace.config_puts == []
        assert "Only members of platform-admins may roll back" in rollback.ephemerals()[-1]
