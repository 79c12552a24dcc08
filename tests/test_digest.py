"""The weekly digest: its schedule, its content from real alert threads and the request log, posted
exactly once per period across two replicas and a restart, a late one posted within 6 h and never
twice, and `healthbot digest --preview` offline."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.alerts.digest import build_digest, digest_alert, digest_overview, with_overview
from bot.alerts.schedule import Schedule
from adapters.host.server import HANDLER, SLACK, STORE
from tests.test_charts import native_charts
from tests.fakes.serving import FakeServing
from tests.test_alert_care import CareRig, care_rig
from tests.test_alerts import PLATFORM, generic

ROOT = Path(__file__).resolve().parents[1]


def test_schedules_parse_and_find_the_latest_period() -> None:
    monday_9 = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)  # a Monday
    weekly = Schedule.parse("mon 09:00")
    period = weekly.latest((monday_9 + timedelta(hours=2)).timestamp())
    assert (period.key, period.end, period.start) == ("2026-W49", monday_9.timestamp(),
                                                     (monday_9 - timedelta(days=7)).timestamp())
    assert weekly.latest((monday_9 - timedelta(minutes=1)).timestamp()).key == "2026-W48"
    daily = Schedule.parse("daily 09:00", "Europe/Berlin")  # 08:00 UTC in winter
    assert daily.latest(datetime(2026, 12, 3, 8, 30, tzinfo=timezone.utc).timestamp()).key == "2026-12-03"
    assert daily.latest(datetime(2026, 12, 3, 7, 30, tzinfo=timezone.utc).timestamp()).key == "2026-12-02"
    for bad, zone, words in [("monday 9", "UTC", "expected '<day> <HH:MM>'"), ("mon 25:00", "UTC", "not a time"),
                             ("mon 09:00", "Mars/Olympus", "not an IANA time zone")]:
        with pytest.raises(ValueError, match=words):
            Schedule.parse(bad, zone)


def due(hours_ago: float) -> str:
    at = datetime.now(timezone.utc) - timedelta(hours=hours_ago)
    return f"daily {at:%H:%M}"


@pytest.fixture(params=["sqlite", "postgres"])
async def rig(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
              fake_serving: FakeServing) -> AsyncIterator[CareRig]:
    monkeypatch.setattr("bot.alerts.digest_schedule.CHECK_EVERY_S", 0.1)
    async with care_rig(request.param, monkeypatch, tmp_path, fake_serving) as r:
        yield r


def digests(rig: CareRig) -> list[dict[str, object]]:
    return [r for r in rig.roots() if "healthbot digest" in str(r["text"]) or "Quiet" in str(r["text"])]


async def test_the_digest_reports_the_period_with_snooze_on_open_alerts(rig: CareRig) -> None:
    await rig.start()
    await rig.send(generic())
    for state in ("TRIGGERED", "OK"):
        await rig.send(generic(name="Daily cost spike", state=state))
    await rig.delivered()
    assert rig.app is not None
    store, engine = rig.app[STORE], rig.app[HANDLER].engine
    period = Schedule.parse("daily 09:00").until_now(time.time())  # as `healthbot digest` and /healthbot digest
    alert = digest_alert(period, with_overview(await build_digest(store, period), await digest_overview(engine, period)))
    await store.alerts.enqueue(alert.key, alert.model_dump(mode="json"), [(f"slack:{PLATFORM}", False)])
    await rig.delivered()
    [root] = digests(rig)
    assert "2 alerts fired, 1 still open" in str(root["text"])
    [detail] = [r for r in rig.replies() if r["thread_ts"] == root["_ts"]]
    markdown = detail["blocks"][0]["text"]
    assert "2 fired (the period before: 0), 1 resolved, 1 still open" in markdown
    assert "| High Error Rate | 1 | TRIGGERED |" in markdown and "| Daily cost spike | 2 | OK |" in markdown
    assert "**Platform health overview**" in markdown and "Costs rose 42%." in markdown
    await rig.slack.wait_for(lambda: native_charts(rig.slack))
    assert any(b["title"].startswith("Alerts fired per day") and m["thread_ts"] == root["_ts"] for m, b in native_charts(rig.slack))
    [button] = detail["blocks"][1]["elements"]
    assert button["action_id"] == "alert_snooze_1d" and "High Error Rate" in button["text"]["text"]
    await rig.click(detail, "alert_snooze_1d")
    high = next(r for r in rig.roots() if "High Error Rate" in str(r["text"]))
    await rig.slack.wait_for(lambda: any("Snoozed by spengler" in json.dumps(u["blocks"])
                                         for u in rig.updates_of(str(high["_ts"]))))


@pytest.mark.parametrize("rig", ["postgres"], indirect=True)
async def test_two_replicas_and_a_restart_post_one_digest_per_period(rig: CareRig) -> None:
    other = CareRig(rig.slack, rig.connector, rig.serving, rig.tmp_path, rig.monkeypatch)
    other.pg_schema = rig.pg_schema
    schedule = due(2)
    await rig.start(HEALTHBOT_DIGEST=schedule)
    await other.start(HEALTHBOT_DIGEST=schedule)
    try:
        await rig.slack.wait_for(lambda: len(digests(rig)) == 1, timeout=15)
        await asyncio.sleep(0.5)
        await rig.stop()
        await rig.start(HEALTHBOT_DIGEST=schedule)
        await asyncio.sleep(0.5)
        await rig.delivered()
        await other.delivered()
        assert len(digests(rig)) == 1 and "Quiet" in str(digests(rig)[0]["text"])
        [overview] = rig.replies()  # a quiet period: the platform overview still comes, once, in its thread
        assert "Platform health overview" in overview["blocks"][0]["text"]
    finally:
        await other.stop()


@pytest.mark.parametrize("rig", ["sqlite"], indirect=True)
async def test_a_digest_missed_by_more_than_6_hours_is_skipped(rig: CareRig) -> None:
    await rig.start(HEALTHBOT_DIGEST=due(7))
    await asyncio.sleep(0.6)
    await rig.delivered()
    assert digests(rig) == []


async def test_digest_preview_runs_offline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "SLACK_", "HEALTHBOT_"))}
    env.update(HEALTHBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}", HEALTHBOT_DEMO_DATA_DIR=str(tmp_path / "demo"),
               HEALTHBOT_DEMO_PACE="0", PYTHONPATH=str(ROOT))
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "adapters.host.cli", "digest", "--preview", cwd=tmp_path,
                                                   env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert out.decode().startswith("🌙 Quiet week") and time.time()


async def slash_digest(rig: CareRig, channel: str, user: str = "U0USER1234") -> None:
    import urllib.parse

    import aiohttp

    from tests.fakes.slack import sign

    fields = {k: v[0] for k, v in urllib.parse.parse_qs(
        (ROOT / "tests" / "fixtures" / "slack" / "slash_command_healthbot.txt").read_text().strip()).items()}
    fields.update(text="digest", channel_id=channel, user_id=user, response_url=f"{rig.slack.url}/hooks/1")
    body = urllib.parse.urlencode(fields).encode()
    async with aiohttp.ClientSession() as http, http.post(
            f"{rig.url}/slack/events", data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **sign(body)}) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("rig", ["sqlite"], indirect=True)
async def test_slash_digest_holds_only_the_channel_it_is_posted_in(rig: CareRig) -> None:
    await rig.start()
    await rig.send(generic())
    await rig.delivered()
    await slash_digest(rig, "C0ELSEWHERE")  # the alert's thread is in another channel: none of it shows here
    await rig.slack.wait_for(lambda: len([p for p in rig.slack.called("chat.postMessage")
                                          if p["channel"] == "C0ELSEWHERE"]) == 2)
    assert rig.app is not None
    await rig.app[SLACK].drain()
    root, overview = [p for p in rig.slack.called("chat.postMessage") if p["channel"] == "C0ELSEWHERE"]
    assert root["text"].startswith("🌙 Quiet") and "Platform health overview" in json.dumps(overview)
    assert "Daily cost" not in json.dumps([root, overview])  # the other channel's alert is not named
    assert len(rig.serving.invocation_bodies()) == 1  # the overview, always there ("quiet" is about alerts)

    await slash_digest(rig, PLATFORM)
    await rig.slack.wait_for(lambda: any(p["channel"] == PLATFORM and p.get("thread_ts") and "Digest" in str(p["text"])
                                         for p in rig.slack.called("chat.postMessage")))
    [root] = [p for p in rig.roots() if p["channel"] == PLATFORM and "digest" in str(p["text"])]
    assert "1 alerts fired, 1 still open" in str(root["text"])
    [detail] = [p for p in rig.replies() if p["channel"] == PLATFORM and "Digest" in str(p["text"])]
    assert any(b["type"] == "actions" for b in detail["blocks"])  # Snooze for this channel's open alert
    asked = rig.serving.invocation_bodies()[-1]  # the overview, asked as the person who typed the command
    assert asked["inputs"]["params"]["user_id"] == "spengler@ghostbusters.example.com"
