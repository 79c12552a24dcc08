"""Charts, at the wire: an answer's `custom_outputs.charts` uploaded into its Slack thread with
files_upload_v2 (a real PNG, decoded here), embedded in the Teams card under the message size limit,
left out — never the message — when it cannot be drawn or uploaded; `healthbot ask` writes it to a file."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.charts import ChartError, parse_spec
from tests.fakes.serving import FakeServing, Scripted, answer_body
from tests.test_access import MEMBER, Rig
from tests.test_teams import start_rig

ROOT = Path(__file__).resolve().parents[1]
CHART = {"type": "bar", "title": "Daily cost, last 7 days", "x": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
         "series": [{"name": "cost", "values": [1200, 1300, 1250, 1400, 1978, 1100, 1000]}], "unit": "USD",
         "threshold": 1500}


def decoded(png: bytes) -> tuple[int, ...]:
    from matplotlib import image

    return tuple(image.imread(io.BytesIO(png), format="png").shape)


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    from tests.fakes.connector import FakeConnector
    from tests.fakes.slack import FakeSlack
    from tests.fakes.workspace import FakeWorkspace

    slack, connector, workspace = FakeSlack(), FakeConnector(), FakeWorkspace()
    for fake in (slack, connector, workspace):
        await fake.start()
    r = Rig(slack, connector, workspace, tmp_path, monkeypatch)
    yield r
    await r.stop()
    for fake in (slack, connector, workspace):
        await fake.stop()


async def test_an_answers_chart_arrives_as_a_native_slack_chart_in_its_own_message(rig: Rig) -> None:
    rig.workspace.default = Scripted(200, answer_body(charts=[CHART]))
    await rig.start()
    await rig.mention(user=MEMBER)
    await rig.slack.wait_for(lambda: native_charts(rig.slack))
    [(answer, block)] = native_charts(rig.slack)
    assert "Costs rose 42%" in json.dumps(answer["blocks"])  # one message: no extra call, no upload
    assert [b["type"] for b in answer["blocks"]] == ["markdown", "data_visualization", "context", "context_actions"]
    assert block["title"] == "Daily cost, last 7 days" and block["chart"]["type"] == "bar"
    cost, threshold = block["chart"]["series"]
    assert [p["value"] for p in cost["data"]] == CHART["series"][0]["values"]  # type: ignore[index]
    assert threshold["name"] == "threshold" and {p["value"] for p in threshold["data"]} == {1500}
    assert block["chart"]["axis_config"] == {"categories": CHART["x"], "y_label": "USD"}
    [raw] = [call.body for call in rig.slack.requests_to("chat.postMessage") if b"data_visualization" in call.body]
    assert "👍".encode() in raw and b'"type":"data_visualization"' in raw  # by orjson (web_api_json): compact UTF-8
    await asyncio.sleep(0.3)
    assert rig.slack.uploads == {} and len([p for p in rig.slack.posted() if p.get("thread_ts")]) == 1  # no files:write needed


async def test_a_refused_native_chart_falls_back_to_the_png_upload(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """A workspace that answers invalid_blocks naming the chart (fixture webapi_chat_postMessage_invalid_blocks.json)
    gets the answer without it, native feedback kept, and today's PNG in the same thread."""
    caplog.set_level("INFO")
    rig.slack.native_charts = False
    rig.workspace.default = Scripted(200, answer_body(charts=[CHART]))
    await rig.start()
    await rig.mention(user=MEMBER)
    await rig.slack.wait_for(lambda: rig.slack.called("files.completeUploadExternal"))
    [png] = rig.slack.uploads.values()
    assert png.startswith(b"\x89PNG") and decoded(png)[:2] == (450, 800) and len(png) < 200_000
    [complete] = rig.slack.called("files.completeUploadExternal")
    [answer] = [p for p in rig.slack.posted() if "Costs rose 42%" in json.dumps(p.get("blocks", []))]
    assert [b["type"] for b in answer["blocks"]] == ["markdown", "context", "context_actions"]
    assert complete["channel_id"] == answer["channel"] and complete["thread_ts"] == answer["thread_ts"]
    assert json.loads(complete["files"])[0]["title"] == "Daily cost, last 7 days"
    assert any("data_visualization (invalid_blocks)" in r.getMessage() for r in caplog.records)


async def test_charts_beyond_the_native_limits_go_as_pngs(rig: Rig) -> None:
    """A 30-day line (Slack draws at most 20 points) and a third chart (2 a message) are uploaded."""
    month = {**CHART, "type": "line", "title": "Daily cost, 30 days", "x": [str(d) for d in range(30)],
             "series": [{"name": "cost", "values": list(range(30))}]}
    rig.workspace.default = Scripted(200, answer_body(charts=[CHART, month, CHART]))
    await rig.start()
    await rig.mention(user=MEMBER)
    await rig.slack.wait_for(lambda: len(rig.slack.called("files.completeUploadExternal")) == 1)
    assert len(native_charts(rig.slack)) == 2  # the two 7-day charts, natively in the answer
    assert json.loads(rig.slack.called("files.completeUploadExternal")[0]["files"])[0]["title"] == "Daily cost, 30 days"


async def test_numbers_json_allows_but_slack_refuses_never_reach_it(rig: Rig) -> None:
    """An endpoint's JSON may say `Infinity`, `NaN` or a 400-digit integer (Python writes and reads them);
    Slack reads standard JSON only. A threshold that is not a finite number is left off its chart, and a
    value too big for a float is a gap (so that chart goes as a PNG): before, the first sent `Infinity`
    (Slack: invalid_json, the answer queued for ever) and the second raised OverflowError (no answer)."""
    endless = {**CHART, "title": "endless threshold", "threshold": float("inf")}
    huge = {**CHART, "title": "huge value", "series": [{"name": "cost", "values": [10**400, *CHART["series"][0]["values"][1:]]}]}  # type: ignore[index]
    rig.workspace.default = Scripted(200, answer_body(charts=[endless, huge]))
    await rig.start()
    await rig.mention(user=MEMBER)
    await rig.slack.wait_for(lambda: rig.slack.called("files.completeUploadExternal"))
    [(answer, block)] = native_charts(rig.slack)
    assert "Costs rose 42%" in json.dumps(answer["blocks"]) and block["title"] == "endless threshold"
    assert [series["name"] for series in block["chart"]["series"]] == ["cost"]  # no threshold series
    assert json.loads(rig.slack.called("files.completeUploadExternal")[0]["files"])[0]["title"] == "huge value"
    assert not [call for call in rig.slack.api if "_invalid_json" in call.params]


def test_web_api_bodies_are_standard_json_whatever_they_hold() -> None:
    from adapters.slack.client import web_api_json

    assert web_api_json({"value": float("nan"), "line": float("inf")}) == b'{"value":null,"line":null}'
    assert json.loads(web_api_json({1: "a key orjson will not write", "big": 10**30})) == {"1": "a key orjson will not write",
                                                                                         "big": 10**30}


@pytest.mark.parametrize("threshold", [float("inf"), float("-inf"), float("nan"), 10**400], ids=["inf", "-inf", "nan", "huge"])
def test_a_threshold_that_is_not_a_finite_number_is_left_off(threshold: Any) -> None:
    spec = parse_spec({**CHART, "threshold": threshold})
    assert spec.threshold is None and spec.series_with_threshold() == spec.series


def test_a_value_too_big_for_a_float_is_a_gap() -> None:
    import math

    spec = parse_spec({**CHART, "series": [{"values": [10**400, -(10**400), 1, 2, 3, 4, 5]}]})
    assert [math.isnan(v) for v in spec.series[0][1]][:3] == [True, True, False]


def test_small_values_keep_their_digits_on_native_charts() -> None:
    """Cents suit costs, not rates: rounded to two decimals, 0.0012 was a 0 on both platforms' charts."""
    from adapters.slack.chart_blocks import native_block
    from adapters.teams.charts import native_element

    spec = parse_spec({"type": "line", "title": "failure rate", "x": ["a", "b", "c", "d"],
                       "series": [{"name": "rate", "values": [0.0012, 0.0345678, -0.5, 1331.6666666666667]}]})
    block, element = native_block(spec), native_element(spec)
    assert block is not None and element is not None
    assert [p["value"] for p in block["chart"]["series"][0]["data"]] == [0.0012, 0.0346, -0.5, 1331.67]
    assert [p["y"] for p in element["data"][0]["values"]] == [0.0012, 0.0346, -0.5, 1331.67]


def test_native_blocks_keep_to_slacks_documented_limits() -> None:
    from adapters.slack.chart_blocks import native_block
    from bot.charts import parse_spec
    from tests.fakes.slack import FakeSlack, fixture

    documented = fixture("block_data_visualization_bar.json")
    assert FakeSlack()._refused_blocks([documented]) == ""  # the fake's checks pass the documented example
    chart = documented["chart"]
    spec = parse_spec({"type": "bar", "title": documented["title"], "x": chart["axis_config"]["categories"], "unit": "Tastiness (%)",
                       "x_label": "Pie", "series": [{"name": "Pie", "values": [p["value"] for p in chart["series"][0]["data"]]}]})
    assert native_block(spec) == documented
    long = parse_spec({"type": "line", "title": "A title much longer than the fifty characters Slack allows", "x_label": "x" * 60,
                       "x": [f"a category name over twenty {i}" for i in range(12)], "threshold": 5, "threshold_label": "t" * 30,
                       "series": [{"name": "n" * 30, "values": list(range(12))}]})
    block = native_block(long)
    assert block is not None and FakeSlack()._refused_blocks([block]) == ""
    assert len(set(block["chart"]["axis_config"]["categories"])) == 12  # shortened yet distinct
    assert native_block(parse_spec({**CHART, "x": [str(i) for i in range(30)], "series": [{"values": list(range(30))}]})) is None
    assert FakeSlack()._refused_blocks([block, block, block]) != ""  # at most two a message


@pytest.mark.parametrize("bad", [
    [], {"type": "line"}, {"type": "line", "x": [1, 2], "series": [{"values": [1]}]},
    {"type": "bar", "x": list(range(600)), "series": [{"values": list(range(600))}]},
    {"type": "line", "x": [1], "series": [{"values": ["x"]}]},
    {"type": "line", "x": [1, 2], "series": [{"values": [float("nan"), float("inf")]}]},
])
def test_charts_that_cannot_be_drawn_are_refused_with_a_reason(bad: Any) -> None:
    with pytest.raises(ChartError):
        parse_spec(bad)


async def teams_answer_card(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing, *,
                            max_message_bytes: int | None = None, chart: dict[str, Any] = CHART) -> dict[str, Any]:
    """The card a Teams channel mention is answered with, when the answer carries `chart`."""
    fake_serving.default = Scripted(200, answer_body(charts=[chart]))
    rig, runner = await start_rig(monkeypatch, tmp_path, fake_serving)
    rig.connector.max_message_bytes = max_message_bytes
    try:
        await rig.post(rig.activity("message_channel_mention_new_post.json"))
        await rig.connector.wait_for(lambda: rig.connector.cards())
        await rig.settle()
        [card] = rig.connector.cards()
    finally:
        await runner.cleanup()
        await rig.connector.stop()
    return card


async def test_a_teams_answer_carries_the_chart_in_its_card_under_the_size_limit(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing) -> None:
    """Natively, a Chart.VerticalBar.Grouped (cost and threshold), with today's PNG as its fallback for a
    client that does not draw charts (in the Agents Playground the PNG alone never showed: 15340 bytes)."""
    card = await teams_answer_card(monkeypatch, tmp_path, fake_serving)
    [chart] = [block for block in card["body"] if block["type"].startswith("Chart.")]
    assert chart["type"] == "Chart.VerticalBar.Grouped" and chart["title"] == "Daily cost, last 7 days"
    cost, threshold = chart["data"]
    assert [v["y"] for v in cost["values"]] == CHART["series"][0]["values"]  # type: ignore[index]
    assert threshold["legend"] == "threshold" and {v["y"] for v in threshold["values"]} == {1500}
    image = chart["fallback"]
    assert image["url"].startswith("data:image/png;base64,") and image["altText"] == "Daily cost, last 7 days"
    png = base64.b64decode(image["url"].split(",", 1)[1])
    assert decoded(png)[:2] in ((270, 480), (225, 400)) and len(png) <= 14_000  # scaled down to fit
    assert len(json.dumps(card)) < 28_000


async def test_a_teams_chart_with_an_endless_threshold_goes_without_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing) -> None:
    """The Bot Framework reads standard JSON: an `Infinity` threshold from the endpoint is left off the chart
    (before, the card said `"y": Infinity` and the connector refused it: 400)."""
    card = await teams_answer_card(monkeypatch, tmp_path, fake_serving, chart={**CHART, "threshold": float("inf")})
    [chart] = [block for block in card["body"] if block["type"].startswith("Chart.")]
    assert chart["type"] == "Chart.VerticalBar" and [v["y"] for v in chart["data"]] == CHART["series"][0]["values"]  # type: ignore[index]


async def test_healthbot_ask_writes_the_chart_to_a_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "SLACK_", "HEALTHBOT_"))}
    env.update(HEALTHBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}", HEALTHBOT_DEMO_DATA_DIR=str(tmp_path / "demo"),
               HEALTHBOT_DEMO_PACE="0", PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path))
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "adapters.host.cli", "ask", "why did costs spike yesterday?",
                                                   cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    [line] = [line for line in out.decode().splitlines() if line.startswith("chart: ")]
    path = Path(line.removeprefix("chart: "))
    assert path.is_relative_to(tmp_path) and path.read_bytes().startswith(b"\x89PNG")



# -- an alert's thread carries its own metric's chart ----------------------------------------------


def native_charts(slack: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(message, block) for each data_visualization block Slack took."""
    return [(p, b) for p in slack.posted() for b in p.get("blocks") or [] if b.get("type") == "data_visualization"]


async def test_a_sql_alerts_values_are_charted_with_the_threshold(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                   fake_serving: FakeServing) -> None:
    from tests.fakes.connector import FakeConnector
    from tests.fakes.slack import FakeSlack
    from tests.test_alerts import AlertRig, generic

    slack, connector = FakeSlack(), FakeConnector()
    await slack.start()
    await connector.start()
    rig = AlertRig(slack, connector, fake_serving, tmp_path, monkeypatch)
    try:
        await rig.start()
        await rig.send(generic(value=0.14))
        await rig.delivered()
        assert native_charts(slack) == [] and slack.uploads == {}  # one value: nothing a chart would add
        await rig.send(generic(state="OK", value=0.04))
        await rig.delivered()
        await slack.wait_for(lambda: native_charts(slack))
        [(posted, block)] = native_charts(slack)
        [root] = rig.roots()
        assert posted["thread_ts"] == root["_ts"] and block["title"] == "High Error Rate: value over the last 24 h"
        assert "threshold" in [series["name"] for series in block["chart"]["series"]]
    finally:
        await rig.stop()
        await slack.stop()
        await connector.stop()


async def test_a_jobs_thread_charts_its_last_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import time

    from tests.fakes.connector import FakeConnector
    from tests.fakes.slack import FakeSlack
    from tests.fakes.workspace import FakeWorkspace, job_run
    from tests.test_alert_pull import PullRig

    slack, connector, workspace = FakeSlack(), FakeConnector(), FakeWorkspace()
    for fake in (slack, connector, workspace):
        await fake.start()
    rig = PullRig(slack, connector, workspace, tmp_path, monkeypatch)
    rig.workspace = workspace
    try:
        now = int(time.time() * 1000)
        workspace.job_runs = [job_run(42, 50000 + i, result="SUCCESS", start_ms=now - 86_400_000 * (i + 2),
                                      end_ms=now - 86_400_000 * (i + 2) + 600_000 * (i + 1)) for i in range(5)]
        await rig.start(HEALTHBOT_ALERT_PULL="jobs")
        await rig.polls(source="jobs")
        workspace.job_runs.append(job_run(42, 60001, result="FAILED", start_ms=now, end_ms=now + 120_000))
        await rig.polls(source="jobs")
        await slack.wait_for(lambda: native_charts(slack))
        [(_, block)] = native_charts(slack)
        assert block["title"].startswith("etl_nightly: the last") and len(block["title"]) <= 50
    finally:
        await rig.stop()
        for fake in (slack, connector, workspace):
            await fake.stop()


def test_the_self_monitoring_chart_is_hourly_with_its_threshold() -> None:
    import time

    from bot.alerts.alert_charts import hourly_chart
    from bot.store import RequestLogRow

    now = time.time()
    rows = [RequestLogRow(request_id=str(i), ts=now - 60 * i, platform="slack", workspace="T", channel="C", thread="t",
                          session_id="s", user_id="u", question="q", latency_ms=100.0, error="timeout" if i % 4 == 0 else None)
            for i in range(100)]
    chart = hourly_chart("healthbot: High Error Rate: hourly", rows, 0.10, rate=True, now=now)
    assert chart is not None and chart["threshold"] == 10.0 and chart["unit"] == "%" and len(chart["x"]) == 24
    assert parse_spec(chart).series[0][1][-1] == 25.0  # the last hour: every fourth failed
    assert hourly_chart("x", [], 0.1, rate=True, now=now) is None


async def test_a_card_the_connector_refuses_with_its_chart_goes_without_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_serving: FakeServing) -> None:
    # this tenant's connector takes only small messages
    card = await teams_answer_card(monkeypatch, tmp_path, fake_serving, max_message_bytes=4_000)
    assert "Costs rose 42%." in json.dumps(card)
    assert all(block["type"] != "Image" and not block["type"].startswith("Chart.") for block in card["body"])


def test_a_megabyte_of_charts_is_left_out_before_anything_draws() -> None:
    from agent.formats import parse_response

    huge = {"type": "line", "title": "t", "x": list(range(60_000)), "series": [{"values": list(range(60_000))}]}
    answer = parse_response(answer_body(charts=[huge, CHART]))
    assert answer.charts == [CHART]
