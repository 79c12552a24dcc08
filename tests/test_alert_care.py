"""Alerts people act on, at the wire: Snooze from the root (Slack block_actions, Teams Action.Execute),
reminders naming the on-call people (once each, across two replicas), quiet resolves, flapping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import postgres_schema
from tests.fakes.connector import FakeConnector
from tests.fakes.serving import FakeServing
from tests.fakes.slack import FakeSlack, sign
from tests.test_alerts import PLATFORM, AlertRig, generic, install_in_team


class CareRig(AlertRig):
    async def click(self, message: dict[str, Any], action_id: str, user: str = "U0USER1234") -> None:
        [button] = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
                    if e["action_id"] == action_id]
        payload = {"type": "block_actions", "user": {"id": user, "team_id": "T0123ABCDE"}, "team": {"id": "T0123ABCDE"},
                   "channel": {"id": PLATFORM}, "container": {"type": "message", "channel_id": PLATFORM,
                                                              "message_ts": message["_ts"]},
                   "message": {"ts": message["_ts"], "blocks": message["blocks"]},
                   "actions": [dict(button, action_ts="1.0")], "api_app_id": "A0123ABCDE", "token": "x",
                   "trigger_id": "1.2"}
        body = ("payload=" + urllib.parse.quote(json.dumps(payload))).encode()
        async with aiohttp.ClientSession() as http, http.post(
                f"{self.url}/slack/events", data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded", **sign(body)}) as resp:
            assert resp.status == 200

    def updates_of(self, ts: str) -> list[dict[str, Any]]:
        return [u for u in self.slack.called("chat.update") if u["ts"] == ts]


@contextlib.asynccontextmanager
async def care_rig(store: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                   fake_serving: FakeServing) -> AsyncIterator[CareRig]:
    """A running-alerts rig on the fake Slack and connector, on SQLite or a throw-away PostgreSQL schema."""
    slack, connector = FakeSlack(), FakeConnector()
    await slack.start()
    await connector.start()
    r = CareRig(slack, connector, fake_serving, tmp_path, monkeypatch)
    async with contextlib.AsyncExitStack() as stack:
        if store == "postgres":
            r.pg_schema = await stack.enter_async_context(postgres_schema())
        yield r
        await r.stop()
    await slack.stop()
    await connector.stop()


@pytest.fixture(params=["sqlite"])
async def rig(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
              fake_serving: FakeServing) -> AsyncIterator[CareRig]:
    async with care_rig(request.param, monkeypatch, tmp_path, fake_serving) as r:
        yield r


async def test_a_snoozed_alert_only_updates_its_root_and_resolves_quietly(rig: CareRig) -> None:
    await rig.start()
    await rig.send(generic())
    await rig.delivered()
    [root] = rig.roots()
    await rig.click(root, "alert_snooze_1h")
    await rig.slack.wait_for(lambda: any("Snoozed by spengler until" in json.dumps(u["blocks"])
                                         for u in rig.updates_of(root["_ts"])))
    await rig.send(generic(state="OK"))
    await rig.delivered()
    [resolved] = rig.replies()
    assert "resolved after" in resolved["text"] and "reply_broadcast" not in resolved  # in the thread only
    assert "State: OK" in json.dumps(rig.updates_of(root["_ts"])[-1]["blocks"])
    await rig.send(generic())  # re-triggered while still snoozed for the hour: the root only
    await rig.delivered()
    assert len(rig.replies()) == 1 and len(rig.roots()) == 1
    assert "State: TRIGGERED" in json.dumps(rig.updates_of(root["_ts"])[-1]["blocks"])


async def test_until_ok_ends_with_the_resolve(rig: CareRig) -> None:
    await rig.start()
    await rig.send(generic())
    await rig.delivered()
    [root] = rig.roots()
    await rig.click(root, "alert_snooze_ok")
    await rig.slack.wait_for(lambda: any("until it is OK" in json.dumps(u["blocks"]) for u in rig.updates_of(root["_ts"])))
    await rig.send(generic(state="OK"))
    await rig.send(generic())
    await rig.delivered()
    assert [r["text"].split(" ")[0] for r in rig.replies()] == ["✅", "🔔"]  # the snooze ended at OK


async def test_flapping_gets_one_line_then_only_root_updates(rig: CareRig) -> None:
    await rig.start()
    for state in ["TRIGGERED", "OK", "TRIGGERED", "OK", "TRIGGERED", "OK", "TRIGGERED", "OK"]:
        await rig.send(generic(state=state))
        await rig.delivered()
    texts = [r["text"] for r in rig.replies()]
    assert len(texts) == 5 and "is flapping: 5 state changes in 30 minutes" in texts[-1]
    [root] = rig.roots()
    assert "Flapping: only this message is updated" in json.dumps(rig.updates_of(root["_ts"])[-1]["blocks"])


async def test_reminders_name_the_oncall_at_most_three_times_and_not_after_an_acknowledgement(rig: CareRig) -> None:
    routes = rig.tmp_path / "routes.yml"
    routes.write_text(f"routes:\n  - match: {{name: 'High*'}}\n    targets: [slack:{PLATFORM}]\n"
                      "    oncall: [U0ONCALL1, S0TEAM0001]\n")
    await rig.start(HEALTHBOT_ALERT_REMIND_MINUTES="0.005", HEALTHBOT_ALERT_ROUTES=str(routes))
    await rig.send(generic())
    await rig.send(generic(name="Other alert"))  # acknowledged below: never reminded
    await rig.delivered()
    other = next(r for r in rig.roots() if "Other alert" in r["text"])
    await rig.click(other, "alert_acknowledge")
    await rig.slack.wait_for(lambda: len([r for r in rig.replies() if "Reminder 3/3" in r["text"]]) == 1, timeout=15)
    await asyncio.sleep(1.0)
    reminders = [r for r in rig.replies() if "Reminder" in r["text"]]
    assert [r["text"].split(":")[0] for r in reminders] == ["<@U0ONCALL1> <!subteam^S0TEAM0001> ⏰ Reminder 1/3",
                                                            "<@U0ONCALL1> <!subteam^S0TEAM0001> ⏰ Reminder 2/3",
                                                            "<@U0ONCALL1> <!subteam^S0TEAM0001> ⏰ Reminder 3/3"]
    root = next(r for r in rig.roots() if "High Error Rate" in r["text"])
    assert all(r["thread_ts"] == root["_ts"] for r in reminders)
    assert "High Error Rate is still TRIGGERED" in reminders[0]["text"]


@pytest.mark.parametrize("rig", ["postgres"], indirect=True)
async def test_two_replicas_send_each_reminder_once(rig: CareRig) -> None:
    other = CareRig(rig.slack, rig.connector, rig.serving, rig.tmp_path, rig.monkeypatch)
    other.pg_schema = rig.pg_schema
    await rig.start(HEALTHBOT_ALERT_REMIND_MINUTES="0.005")
    await other.start(HEALTHBOT_ALERT_REMIND_MINUTES="0.005")
    try:
        await rig.send(generic())
        await rig.delivered()
        await rig.slack.wait_for(lambda: any("Reminder 3/3" in r["text"] for r in rig.replies()), timeout=15)
        await asyncio.sleep(1.0)
        await other.delivered()
        assert [r["text"] for r in rig.replies()].count("⏰ Reminder 1/3: High Error Rate is still TRIGGERED after "
                                                       "1 min and nobody has acknowledged it.") == 1
        assert len([r for r in rig.replies() if "Reminder" in r["text"]]) == 3
    finally:
        await other.stop()


async def test_a_snooze_for_an_unknown_alert_is_refused_to_the_clicker(rig: CareRig) -> None:
    await rig.start()
    fake_root = {"_ts": "1712345000.000001", "blocks": [{"type": "actions", "elements": [
        {"type": "button", "action_id": "alert_snooze_4h", "value": json.dumps({"key": "no-such-alert"})}]}]}
    await rig.click(fake_root, "alert_snooze_4h")
    await rig.slack.wait_for(lambda: rig.slack.called("chat.postEphemeral"))
    assert "not known in this channel" in rig.slack.called("chat.postEphemeral")[0]["text"]
    assert rig.slack.called("chat.update") == []


async def test_teams_snooze_and_a_reminder_that_mentions_the_oncall(rig: CareRig) -> None:
    channel = "19:0123456789abcdef0123456789abcdef@thread.tacv2"
    oncall = "29:1FAKEoncallUser"
    routes = rig.tmp_path / "routes.yml"
    routes.write_text(f"routes:\n  - match: {{name: 'High*'}}\n    targets: [teams:{channel}]\n    oncall: ['{oncall}']\n")
    await rig.start(HEALTHBOT_ALERT_REMIND_MINUTES="0.005", HEALTHBOT_ALERT_ROUTES=str(routes))
    install = await install_in_team(rig)
    await rig.send(generic())
    await rig.connector.wait_for(lambda: any("Reminder 1/3" in (s.activity.get("text") or "") for s in rig.connector.sent))
    reminder = next(s.activity for s in rig.connector.sent if "Reminder 1/3" in (s.activity.get("text") or ""))
    assert reminder["text"].startswith(f"<at>{oncall}</at> ⏰ Reminder 1/3")
    assert reminder["entities"] == [{"type": "mention", "text": f"<at>{oncall}</at>",
                                     "mentioned": {"id": oncall, "name": oncall}}]
    [created] = [s for s in rig.connector.sent if s.kind == "create"]
    card = created.activity["attachments"][0]["content"]
    assert len(card["actions"]) <= 5  # Microsoft's renderer shows five
    [choose] = [a for a in card["actions"] if a["type"] == "Action.ShowCard"]  # the durations, as one action
    [snooze] = choose["card"]["actions"]
    assert "ok" in [c["value"] for c in choose["card"]["body"][0]["choices"]]
    invoke = json.loads((Path(__file__).parent / "fixtures" / "teams" / "invoke_adaptive_card_action_execute.json").read_text())
    invoke.update(serviceUrl=rig.connector.url + "/", conversation=install["conversation"])
    # Universal Actions send the card's inputs with the action's data: the choice set's `for`
    invoke["value"]["action"].update(verb=snooze["verb"], data={**snooze["data"], "for": "ok"})
    async with aiohttp.ClientSession() as http, http.post(f"{rig.url}/api/messages", json=invoke) as resp:
        body = await resp.json()
    assert resp.status == 200 and "until it is OK" in json.dumps(body)
    await asyncio.sleep(0.6)
    assert not any("Reminder 3/3" in (s.activity.get("text") or "") for s in rig.connector.sent)  # snoozed: no more
