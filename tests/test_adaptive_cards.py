"""Every kind of card healthbot sends to Teams, parsed by Microsoft's own `adaptivecards` package (npm,
the library Teams' renderers build on): no element, action or value it does not understand. CI installs
the package (.ci/run); elsewhere the test runs when `HEALTHBOT_ADAPTIVECARDS_NODE_PATH` (or the same cache
folder) has it, and is skipped otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from adapters.teams import translate as t
from adapters.teams.charts import image_blocks, native_element
from adapters.teams.alerts import alert_card, note_card
from adapters.teams.connect import connect_card
from bot.alerts.delivery import CONFIRM_ACTION, SNOOZE, Note, NoteButton
from bot.alerts.model import Alert, AlertSource, AlertView
from bot.charts import parse_spec
from bot.models import ErrorKind, Reply

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "healthbot-node" / "node_modules"
NODE_PATH = Path(os.environ.get("HEALTHBOT_ADAPTIVECARDS_NODE_PATH") or DEFAULT)

CHARTS = [  # one of each native kind: a bar with its threshold, a single bar series, a line
    {"type": "bar", "title": "Cost on Mondays", "x": ["11-09", "11-16", "11-23", "11-30", "12-07"],
     "series": [{"name": "cost", "values": [1210.5, 1302, 1250, 1288, 2140]}], "unit": "USD", "threshold": 1262.6,
     "threshold_label": "average Monday", "x_label": "Monday"},
    {"type": "bar", "title": "Failed runs per job", "x": ["daily_revenue_rollup", "batch_scoring"],
     "series": [{"name": "failed runs", "values": [2, 1]}], "unit": "runs"},
    {"type": "line", "title": "Daily cost, the last 14 days", "x": [f"11-{d:02d}" for d in range(20, 30)],
     "series": [{"name": "cost", "values": [1100 + d for d in range(10)]}], "unit": "USD"},
]


def chart_elements() -> list[dict[str, Any]]:
    """The elements card_charts makes, the first with its PNG fallback (a stand-in image), the others with a line."""
    elements = []
    for index, chart in enumerate(CHARTS):
        element = native_element(parse_spec(chart))
        assert element is not None
        element["fallback"] = (image_blocks([("chart", b"\x89PNG")])[0] if index == 0
                               else {"type": "TextBlock", "text": "a chart", "wrap": True})
        elements.append(element)
    return elements


TABLE = "**Costs rose 42%** yesterday.\n\n| Job | Cost |\n|---|---|\n| nightly_customer_etl | $607 |\n\n```sql\nSELECT 1\n```"


def every_card() -> dict[str, dict[str, Any]]:
    now = datetime.now(timezone.utc)
    answer = Reply(content=TABLE, sources=["system.billing.usage", "SQL: SELECT 1"], confidence=0.9,
                   domains=["costs"], request_id="r1")
    long = answer.model_copy(update={"content": "word " * 5000})
    alert = Alert(source=AlertSource.SQL_ALERT, key="sql:1", name="High Error Rate", state="TRIGGERED", value="0.2",
                  operator=">", threshold="0.1", description="Error rate over 10 %", query="SELECT 1",
                  links={"Open alert": "https://dbc.example.com/sql/alerts/1"})
    rollout = alert.model_copy(update={"source": AlertSource.DEPLOYMENT, "state": "SERVING"})
    failed = Reply(content="The Health Monitor endpoint is unavailable right now.", error=ErrorKind.UNAVAILABLE,
                   request_id="r2")
    cards = {
        "welcome": t.help_card(welcome=True),
        "answer with buttons and charts": t.reply_messages(answer, chart_elements(), buttons=True)[0],
        "answer, Teams' own feedback": t.reply_messages(answer)[0],
        "long answer, last part": t.reply_messages(long)[-1],
        "error": t.reply_messages(failed)[0],
        "error, retrying": t.error_card(failed, retrying=True),
        "alert": alert_card(AlertView(alert=alert, first_seen=now, last_seen=now, acknowledged_by="ana")),
        "rollout": alert_card(AlertView(alert=rollout, first_seen=now, last_seen=now, resolved_after_s=120)),
        "digest with snooze": note_card(Note(TABLE, (NoteButton("Snooze High Error Rate 1 day", f"{SNOOZE}_1d",
                                                                {"key": "sql:1"}),))),
        "rollback request": note_card(Note("🔁 Roll back v8 → v7?", (NoteButton("Confirm", CONFIRM_ACTION, {"id": "x"},
                                                                          primary=True),))),
        "thanked": t.thanked(t.answer_cards(answer)[-1], True),
        "notice": t.notice("That answer is no longer known."),
        "connect": connect_card("Connect your Databricks account once.", "https://dbc.example.com/oidc/v1/authorize"),
    }
    return {name: card.get("attachments", [{}])[0].get("content", card) if "attachments" in card else card
            for name, card in cards.items()}


def test_microsofts_adaptivecards_package_understands_every_card() -> None:
    if shutil.which("node") is None or not (NODE_PATH / "adaptivecards").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"adaptivecards is not installed in {NODE_PATH} (.ci/run installs it)")
        pytest.skip("node or the adaptivecards package is not installed (see .ci/run)")
    cards = every_card()
    done = subprocess.run(["node", str(ROOT / "tests" / "node" / "check_cards.js")], input=json.dumps(cards),
                          capture_output=True, text=True, env={**os.environ, "NODE_PATH": str(NODE_PATH)}, timeout=60)
    assert done.returncode == 0, done.stderr
    report = {entry["name"]: entry["events"] for entry in json.loads(done.stdout)}
    assert set(report) == set(cards)
    # The generic renderer does not draw Teams' Chart.* elements: it says it falls back, which is their design.
    understood = {name: [e for e in events if not e["message"].startswith('Unknown element type "Chart.')]
                  for name, events in report.items()}
    assert {name: events for name, events in understood.items() if events} == {}
    assert sum(len(events) for events in report.values()) == len(CHARTS)  # one fallback note per chart, no more
    assert all(len(card.get("actions") or []) <= t.MAX_ACTIONS for card in cards.values())


def test_every_chart_element_validates_with_microsofts_own_models() -> None:
    """microsoft-teams-cards (Microsoft's Teams SDK for Python) models each Chart.* element: the fields
    healthbot sends are theirs, with the types they declare."""
    from microsoft_teams.cards import GroupedVerticalBarChart, LineChart, VerticalBarChart

    models = {"Chart.VerticalBar": VerticalBarChart, "Chart.VerticalBar.Grouped": GroupedVerticalBarChart,
              "Chart.Line": LineChart}
    elements = chart_elements()
    assert [e["type"] for e in elements] == ["Chart.VerticalBar.Grouped", "Chart.VerticalBar", "Chart.Line"]
    for element in elements:
        model = models[element["type"]].model_validate(element)
        assert not model.model_extra, model.model_extra  # no field the model does not know
        back = model.model_dump(by_alias=True, exclude_none=True)
        assert json.loads(json.dumps(back["data"])) == json.loads(json.dumps(element["data"], default=float))
    threshold = elements[0]["data"][1]
    assert threshold["legend"] == "average Monday" and {v["y"] for v in threshold["values"]} == {1262.6}


def test_the_documented_line_chart_is_what_healthbot_sends() -> None:
    from microsoft_teams.cards import LineChart

    documented = json.loads((ROOT / "tests" / "fixtures" / "teams" / "card_element_chart_line.json").read_text())
    assert not LineChart.model_validate(documented).model_extra
    values = documented["data"]
    spec = parse_spec({"type": "line", "title": documented["title"], "x": [v["x"] for v in values[0]["values"]],
                       "series": [{"name": "cost", "values": [v["y"] for v in values[0]["values"]]}], "unit": "USD",
                       "x_label": "day", "threshold": values[1]["values"][0]["y"], "threshold_label": "average"})
    assert native_element(spec) == {key: value for key, value in documented.items() if key != "fallback"}
