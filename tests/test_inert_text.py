"""Outside text is inert: names and messages from Databricks (alert, job, run, endpoint and model
names, error messages) come out of every renderer as text — no live link, mention or markup — on Slack
and Teams alike (DESIGN.md "Who may see what"). One function does it (bot.text.inert); these tests run
every renderer that shows such text with a hostile name, and a property over `inert` itself."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from adapters.slack.alerts import SlackAlertSink, alert_blocks, note_blocks
from adapters.slack.home import home_blocks
from adapters.teams.alerts import TeamsAlertSink, alert_card, note_card
from bot.alerts.digest import Period, build_digest
from bot.alerts.model import Alert, AlertSource, AlertView
from bot.deploy.rollout import comparison_markdown
from bot.ops.stats import VersionFigures
from bot.store import SqliteStore
from bot.store.base import AlertThread
from bot.text import inert

HOSTILE = "Re-verify [SSO](https://evil.example/sso) <!channel> <@U0ATTACKER> <at>Ana</at> **now** www.evil.example"
# What must never survive into anything posted: a markdown link, a Slack link / mention / broadcast, a Teams
# mention, a bare URL scheme or www. link, bold markup.
LIVE = [re.compile(p) for p in (r"\]\(", r"<[!@#]", r"<https?:", r"<at>", r"https?://evil", r"www\.evil", r"\*\*now")]


def without_literal_text(value: Any) -> Any:
    """The rendered JSON less Slack plain_text objects and Teams TextRuns: both platforms show those
    literally (no markup, links or mentions: Block Kit and Adaptive Card references), so outside text
    may stand there as it is. Everything else must have gone through bot.text.inert."""
    if isinstance(value, dict):
        if value.get("type") in ("plain_text", "TextRun"):
            return {}
        return {k: without_literal_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_literal_text(v) for v in value]
    return value


def assert_inert(rendered: Any, *, shown: bool = True) -> None:
    text = rendered if isinstance(rendered, str) else json.dumps(without_literal_text(rendered), ensure_ascii=False)
    for pattern in LIVE:
        assert not pattern.search(text), (pattern.pattern, text[:400])
    assert "Re-verify" in text or not shown  # shown, not dropped


def view() -> AlertView:
    now = datetime.now(timezone.utc)
    alert = Alert(source=AlertSource.SQL_ALERT, key="sql:1", name=HOSTILE, state="TRIGGERED", description=HOSTILE,
                  detail=HOSTILE, query=HOSTILE, domain="costs", value="3", operator=">", threshold="2")
    return AlertView(alert=alert, first_seen=now, last_seen=now, acknowledged_by=HOSTILE, snoozed=f"Snoozed by {HOSTILE}")


class Recorder:
    """Stands in for an SDK client: records the one call a sink makes."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __getattr__(self, method: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> dict[str, Any]:
            self.calls.append({"method": method, "args": args, **kwargs})
            return {"ok": True, "ts": "1.1", "id": "1"}
        return call


def test_slack_alert_root_and_its_notification_text() -> None:
    text, blocks = alert_blocks(view())
    assert_inert(text)
    assert_inert(blocks, shown=False)  # the name is in plain_text objects only
    assert "plain_text" in json.dumps(blocks[0])


def test_teams_alert_card() -> None:
    card = alert_card(view())
    assert_inert(card["body"], shown=False)  # the name is in TextRuns; FactSet values (markdown) inert
    assert "Re-verify" in json.dumps([f["value"] for b in card["body"] if b["type"] == "FactSet" for f in b["facts"]])


async def test_the_digest_on_both_platforms(tmp_path: Any) -> None:
    store = SqliteStore(tmp_path / "bot.db")
    now = time.time()
    for key, target in (("sql:1", "slack:C1"), ("job:2", "slack:C1")):
        await store.alerts.save_thread(AlertThread(key, target, {"ts": "1.1"}, "TRIGGERED", now - 60, now - 600, now - 30,
                                                   3, "", False, {"source": "job", "key": key, "name": HOSTILE,
                                                                  "state": "TRIGGERED"}))
    from bot.targets import parse_target

    digest = await build_digest(store, Period("p", now - 3600, now, "the hour"), target=parse_target("slack:C1"))
    await store.close()
    root, detail = digest.notes("slack:C1")
    assert detail is not None and "failed 3 times in a row" in detail.markdown
    for note in (root, detail):
        assert_inert(note_blocks(note), shown=note is detail)
        assert_inert(note_card(note), shown=note is detail)


async def test_app_home(tmp_path: Any) -> None:
    store = SqliteStore(tmp_path / "bot.db")
    now = time.time()
    await store.alerts.save_thread(AlertThread("sql:1", "slack:C1", {"ts": "1.1", "team": "T1"}, "TRIGGERED", now - 60,
                                               now - 600, now - 30, 1, "", False, {"name": HOSTILE}))

    async def anyone(_: AlertThread) -> bool:
        return True

    blocks = await home_blocks(store, endpoint="e", workspace_url="https://w.slack.com", may_see=anyone, workspace="T1")
    await store.close()
    alerts = next(b for b in blocks if "Re-verify" in json.dumps(b))
    label = alerts["text"]["text"].split("|", 1)[1].split("> in <#C1>")[0]  # the link and channel are healthbot's own
    assert_inert(label)
    assert alerts["text"]["verbatim"] is True


async def test_reminders_on_both_platforms() -> None:
    slack_client, teams_connector = Recorder(), Recorder()
    slack = SlackAlertSink(type("Bot", (), {"client": slack_client})())  # type: ignore[arg-type]
    await slack.remind("C1", {"ts": "1.1"}, f"⏰ Reminder 1/3: {HOSTILE} is still TRIGGERED", [])
    assert_inert([slack_client.calls[0]["text"], slack_client.calls[0]["blocks"]])

    class Teams:
        connector = teams_connector

    teams = TeamsAlertSink(Teams())  # type: ignore[arg-type]
    await teams.remind("19:c", {"conversation_id": "19:c;messageid=1", "activity_id": "1", "service_url": "http://x/",
                                "tenant": "t", "bot": {"id": "b"}}, f"⏰ Reminder 1/3: {HOSTILE} is still TRIGGERED", [])
    assert_inert(teams_connector.calls[0]["args"][1]["text"])


def test_rollout_comparison_with_a_hostile_version_name() -> None:
    old = VersionFigures(HOSTILE, 10, 0, 0.0, 1200.0, 0.9, 1, 0)
    new = VersionFigures("8", 10, 0, 0.0, 1100.0, 0.9, 1, 0)
    assert_inert(comparison_markdown(old, new, []))


@given(st.lists(st.sampled_from(["[", "](", ")", "https://", "http://", "www.", "<!channel>", "<!here>", "<@U1>",
                                 "<#C1>", "<at>", "</at>", "**", "_", "`", "~", "|", "@here", "\n", "#", "> ",
                                 "evil.example", " ", "x", "mailto:"]), max_size=30).map("".join))
def test_nothing_live_survives_inert(text: str) -> None:
    shown = inert(text)
    for pattern in (r"\]\(", r"<", r">", r"https?://", r"www\.", r"\*", r"`", r"\n", r"@here", r"mailto:"):
        assert not re.search(pattern, shown), (pattern, text, shown)
