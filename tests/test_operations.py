"""Operations: /metrics, /health, stats, self-monitoring, doctor and logging, checked at the wire."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.config import load_settings
from adapters.host.doctor import exit_code, run_doctor
from bot.ops.logs import JsonFormatter, RedactingFilter
from bot.ops.selfmon import SelfMonitor
from adapters.host.server import ALERTS, HEALTH, SLACK
from bot.ops.stats import compute, percentile
from bot.store import RequestLogRow, SqliteStore
from tests.fakes.serving import FakeServing, Scripted
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET
from tests.test_alerts import AlertRig, generic
from tests.test_alerts import rig as alert_rig  # noqa: F401 (fixture)
from tests.test_slack import (
    SlackRig,
    mention,
    rig,  # noqa: F401 (fixture)
)


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_count_the_traffic_sent(rig: SlackRig) -> None:  # noqa: F811
    rig.serving.invocations.append(Scripted(500, {"error_code": "INTERNAL_ERROR"}))
    for i in range(4):
        ts = f"1712345678.00000{i}"
        await rig.event(mention(ts=ts, event_id=f"Ev{i}"))
        await rig.slack.wait_for(lambda: len(rig.slack.called("chat.postMessage")) == i + 1)
    await rig.settle()
    samples = await scrape(rig.url)
    assert samples[("healthbot_messages_total", (("outcome", "answered"), ("platform", "slack")))] == 3
    assert samples[("healthbot_messages_total", (("outcome", "error"), ("platform", "slack")))] == 1
    assert samples[("healthbot_endpoint_errors_total", (("kind", "unavailable"),))] == 1
    assert samples[("healthbot_answer_latency_seconds_count", (("platform", "slack"),))] == 4
    assert samples[("healthbot_endpoint_latency_seconds_count", ())] == 3
    assert ("process_resident_memory_bytes", ()) in samples
    assert samples[("healthbot_alert_deliveries_pending", ())] == 0


async def test_health_reports_slack_and_never_secrets(rig: SlackRig) -> None:  # noqa: F811
    async with aiohttp.ClientSession() as http, http.get(f"{rig.url}/health") as resp:
        body = await resp.json()
    assert resp.status == 200 and body["checks"]["slack"]["ok"] and "Subarachnoid" in body["checks"]["slack"]["detail"]
    assert BOT_TOKEN not in json.dumps(body) and SIGNING_SECRET not in json.dumps(body)
    rig.slack.fail("auth.test", 200, {"ok": False, "error": "invalid_auth"}, times=5)
    rig.app[HEALTH].checks["slack"] = rig.app[SLACK].health  # type: ignore[attr-defined]  # drop the 30 s cache
    async with aiohttp.ClientSession() as http, http.get(f"{rig.url}/health") as resp:
        body = await resp.json()
    assert resp.status == 503 and body["status"] == "degraded"
    assert body["checks"]["slack"] == {"ok": False, "detail": "Slack auth.test failed: invalid_auth"}


async def test_health_shows_a_failed_alert_delivery(alert_rig: AlertRig) -> None:  # noqa: F811
    alert_rig.slack.fail("chat.postMessage", 200, {"ok": False, "error": "channel_not_found"})
    await alert_rig.send(generic())
    await alert_rig.delivered()
    async with aiohttp.ClientSession() as http, http.get(f"{alert_rig.url}/health") as resp:
        body = await resp.json()
    assert resp.status == 503 and not body["checks"]["alerts"]["ok"]
    assert "channel_not_found" in body["checks"]["alerts"]["detail"] and "1 failed" in body["checks"]["alerts"]["detail"]


def rows_for_stats(now: float) -> tuple[list[RequestLogRow], list[tuple[str, int]]]:
    rows = []
    for i in range(40):
        rows.append(RequestLogRow(
            request_id=f"r{i}", ts=now - 3600 * (i % 3) - 60, platform="slack", workspace="T", channel="C", thread="t",
            session_id="s", user_id="u", question="q", latency_ms=100.0 + 37 * i, confidence=0.5 + (i % 5) / 10,
            domains=["costs"] if i % 2 else ["jobs", "security"], error="timeout" if i % 7 == 0 else None))
    return rows, [("r1", 1), ("r2", 1), ("r3", -1)]


def test_stats_match_an_independent_computation() -> None:
    now = time.time()
    rows, votes = rows_for_stats(now)
    stats = compute(rows, votes, hours=24, since=now - 24 * 3600)
    latencies = [r.latency_ms for r in rows]
    assert stats.requests == 40 and stats.errors == sum(1 for i in range(40) if i % 7 == 0)
    assert stats.success_rate == pytest.approx((40 - stats.errors) / 40)
    assert stats.p95_latency_ms == pytest.approx(statistics.quantiles(latencies, n=100, method="inclusive")[94])
    for hour in stats.per_hour:
        group = [r for r in rows if time.strftime("%Y-%m-%d %H:00", time.gmtime(r.ts)) == hour.hour]
        assert hour.requests == len(group)
        assert hour.avg_latency_ms == pytest.approx(statistics.fmean(r.latency_ms for r in group))
        assert hour.p95_latency_ms == pytest.approx(statistics.quantiles([r.latency_ms for r in group], n=100, method="inclusive")[94])
        assert hour.avg_confidence == pytest.approx(statistics.fmean(r.confidence for r in group if r.confidence is not None))
    day_counts = sum(sum(c.values()) for c in stats.domains_per_day.values())
    assert day_counts == sum(len(r.domains) for r in rows)
    assert (stats.feedback_up, stats.feedback_down, stats.feedback_up_rate) == (2, 1, pytest.approx(2 / 3))
    assert percentile([], 0.95) is None and percentile([5.0], 0.95) == 5.0


async def test_stats_command_reads_the_request_log(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state" / "healthbot" / "healthbot.db")  # the default store ($XDG_STATE_HOME)
    rows, _ = rows_for_stats(time.time())
    for row in rows:
        await store.log_request(row)
    await store.record_feedback("r1", user_id="u", value=1)
    await store.close()
    healthbot = str(Path(sys.executable).parent / "healthbot")
    out = subprocess.run([healthbot, "stats", "--json"], capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    data = json.loads(out)
    assert data["requests"] == 40 and data["feedback_up"] == 1 and len(data["per_hour"]) == 3
    table = subprocess.run([healthbot, "stats", "--hours", "1"], capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert "requests 14" in table and "success rate" in table


async def test_self_monitoring_posts_once_and_resolves_once(alert_rig: AlertRig) -> None:  # noqa: F811
    store = alert_rig.dispatcher.handler.store
    now = time.time()
    clock = [now]
    monitor = SelfMonitor(store=store, dispatcher=alert_rig.app[ALERTS], clock=lambda: clock[0])  # type: ignore[index]
    for i in range(20):
        await store.log_request(RequestLogRow(request_id=f"m{i}", ts=now - 60, platform="slack", workspace="T", channel="C",
                                              thread="t", session_id="s", user_id="u", question="q", latency_ms=200.0,
                                              error="unavailable" if i < 3 else None))
    fired = await monitor.evaluate()
    assert [a.name for a in fired] == ["healthbot: High Error Rate"] and fired[0].value == "15.0%"
    assert await monitor.evaluate() == []  # still breaching: nothing new
    await alert_rig.delivered()
    assert len(alert_rig.roots()) == 1 and "High Error Rate" in alert_rig.roots()[0]["text"]
    clock[0] = now + 7200  # two hours on: the errors have aged out of the window
    resolved = await monitor.evaluate()
    assert [(a.name, a.state) for a in resolved] == [("healthbot: High Error Rate", "OK")]
    assert await monitor.evaluate() == []
    await alert_rig.delivered()
    assert len(alert_rig.roots()) == 1 and "resolved after" in alert_rig.replies()[-1]["text"]


async def test_doctor_against_a_good_and_a_broken_workspace(monkeypatch: pytest.MonkeyPatch, fake_serving: FakeServing) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", fake_serving.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", fake_serving.token)
    lines = await run_doctor(load_settings(), probe=True)
    text = "\n".join(map(str, lines))
    assert "✓ serving endpoint: health_monitor_orchestrator is READY" in text and "✓ probe question" in text
    assert exit_code(lines) == 0  # alerts and chat platforms unset are warnings, not failures
    monkeypatch.setenv("HEALTHBOT_ENDPOINT_NAME", "missing_endpoint")
    monkeypatch.setenv("HEALTHBOT_ALERT_CHANNELS", "teams:19:nowhere@thread.tacv2")
    lines = await run_doctor(load_settings())
    text = "\n".join(map(str, lines))
    assert "✗ serving endpoint: missing_endpoint: not_found" in text and "check HEALTHBOT_ENDPOINT_NAME" in text
    assert "✗ alert token" in text
    assert exit_code(lines) == 1
    assert fake_serving.token not in text


def test_doctor_command_exit_code(tmp_path: Path) -> None:
    healthbot = str(Path(sys.executable).parent / "healthbot")
    result = subprocess.run([healthbot, "doctor"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and "✓ store" in result.stdout and "embedded demo engine" in result.stdout


def test_json_log_lines_and_redaction() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("calling with %s and Bearer abcdefghijkl0123 for dapi0123456789abcdef0123", "xoxb-12-34",
                   extra={"request_id": "r1", "platform": "slack"})
    entry = json.loads(stream.getvalue())
    assert entry["request_id"] == "r1" and entry["level"] == "warning"
    assert "xoxb" not in entry["message"] and "abcdefghijkl" not in entry["message"] and "dapi0123" not in entry["message"]
    assert entry["message"].count("[redacted]") == 3


async def test_serve_logs_one_json_line_per_message(tmp_path: Path, demo_data_dir: Path) -> None:
    from tests.test_cli import free_port, wait_for_port

    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "healthbot"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path,
                            env={**os.environ, "HEALTHBOT_DEMO_DATA_DIR": str(demo_data_dir)})
    try:
        wait_for_port(port, proc)  # type: ignore[arg-type]
        activity = json.loads((Path(__file__).parent / "fixtures" / "teams" / "message_personal.json").read_text())
        activity["serviceUrl"] = f"http://127.0.0.1:{port}/nowhere/"  # the reply fails; the message is still handled
        async with aiohttp.ClientSession() as http, http.post(f"http://127.0.0.1:{port}/api/messages", json=activity) as resp:
            assert resp.status in (200, 201)
        await asyncio.sleep(1.0)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    handled = [line for line in lines if line["logger"] == "healthbot.requests"]
    assert len(handled) == 1 and handled[0]["platform"] == "teams" and handled[0]["outcome"] == "answered"
    assert handled[0]["request_id"] and "latency_ms" in handled[0]
