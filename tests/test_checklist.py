"""`healthbot checklist` against a fake workspace driven by databricks-sdk's real client: all items pass on
a healthy deployment, and each item fails (or is skipped) for its own reason."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_settings
from adapters.host.checklist_command import run_checklist
from bot.deploy.checklist import exit_code
from bot.deploy.thresholds import load_thresholds
from tests.fakes.deployments import FakeDeployWorkspace, served_entity
from tests.fakes.serving import Scripted, fixture
from tests.fakes.workspace import alert_v2

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def workspace() -> AsyncIterator[FakeDeployWorkspace]:
    fake = FakeDeployWorkspace()
    fake.alerts = [alert_v2("a1", "Health Monitor - High Error Rate", "OK"),
                   alert_v2("a2", "Health Monitor - High Latency", "OK")]
    fake.apps["healthbot"] = fixture("apps_get_running.json")
    run = fixture("mlflow_runs_get_response.json")
    fake.mlflow_runs[run["run"]["info"]["run_id"]] = run
    await fake.start()
    yield fake
    await fake.stop()


def environment(workspace: FakeDeployWorkspace, tmp_path: Path, **extra: str) -> dict[str, str]:
    thresholds = tmp_path / "thresholds.yml"
    thresholds.write_text("relevance: 0.8\ngroundedness: 0.85\n")
    return {"DATABRICKS_HOST": workspace.url, "DATABRICKS_TOKEN": workspace.token,
            "HEALTHBOT_ENDPOINT_NAME": workspace.endpoint_name, "HEALTHBOT_DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
            "HEALTHBOT_EVAL_THRESHOLDS": str(thresholds), "DATABRICKS_APP_NAME": "healthbot", **extra}


async def checklist(workspace: FakeDeployWorkspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    **extra: str) -> dict[str, Any]:
    for name, value in environment(workspace, tmp_path, **extra).items():
        monkeypatch.setenv(name, value)
    items = await run_checklist(load_settings())
    return {key: (item.status, item.detail) for key, item in items.items()} | {"_exit": exit_code(items)}


async def test_a_healthy_deployment_passes_every_item(workspace: FakeDeployWorkspace, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    result = await checklist(workspace, tmp_path, monkeypatch)
    assert {k: v[0] for k, v in result.items() if k != "_exit"} == {
        "endpoint_ready": "pass", "endpoint_answers": "pass", "served_version": "pass", "inference_tables": "pass",
        "alerts": "pass", "app": "pass", "evaluation": "pass", "health": "pass"}
    assert result["_exit"] == 0
    assert "serving v7" in result["endpoint_ready"][1] and "by v7" in result["endpoint_answers"][1]
    assert "relevance 0.87 ≥ 0.8" in result["evaluation"][1]


@pytest.mark.parametrize(("kind", "says"), [
    ("unity_gateway", "Unity Gateway inference table main.health_monitor.orchestrator_payload, 100% of requests"),
    ("ai_gateway_legacy", "AI Gateway (legacy) inference table on (main.health_monitor.orchestrator)"),
    ("auto_capture_legacy", "legacy inference table on (main.health_monitor.orchestrator)")])
async def test_each_kind_of_inference_table_passes_and_is_named(workspace: FakeDeployWorkspace, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch, kind: str, says: str) -> None:
    workspace.endpoint.pop("ai_gateway")
    fragment = fixture("serving_endpoint_inference_table_kinds.json")[kind]
    for key, value in fragment.items():
        workspace.endpoint[key] = {**workspace.endpoint.get(key, {}), **value}
    result = await checklist(workspace, tmp_path, monkeypatch)
    assert result["inference_tables"] == ("pass", says)


async def test_an_update_in_progress_and_drift_fail(workspace: FakeDeployWorkspace, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    workspace.begin_update(served_entity(8))
    workspace.aliases["production"] = 6
    result = await checklist(workspace, tmp_path, monkeypatch)
    assert result["endpoint_ready"][0] == "fail" and "update is in progress" in result["endpoint_ready"][1]
    assert result["served_version"] == ("fail", "drift: serving v7 but @production of main.health_monitor.orchestrator "
                                                "is v6 — moving an alias changes nothing served: update the endpoint's "
                                                "config, or move the alias")
    assert result["_exit"] == 1


async def test_each_remaining_item_fails_for_its_own_reason(workspace: FakeDeployWorkspace, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    workspace.endpoint.pop("ai_gateway")
    workspace.alerts[0]["schedule"]["pause_status"] = "PAUSED"
    workspace.alerts[1]["evaluation"]["notification"]["subscriptions"] = []
    workspace.apps["healthbot"]["app_status"] = {"state": "CRASHED", "message": "App crashed"}
    workspace.mlflow_runs["0a1b2c3d4e5f60718293a4b5c6d7e8f9"]["run"]["data"]["metrics"][0]["value"] = 0.5
    monkeypatch.setattr("bot.deploy.checklist.ANSWER_WITHIN_S", 0.5)
    workspace.default = Scripted(delay_s=1.0)
    result = await checklist(workspace, tmp_path, monkeypatch)
    assert result["inference_tables"][0] == "fail"
    assert result["alerts"][0] == "fail" and "is paused" in result["alerts"][1] and "notifies nobody" in result["alerts"][1]
    assert result["app"][0] == "fail" and "CRASHED" in result["app"][1]
    assert result["evaluation"][0] == "fail" and "relevance 0.5 < 0.8" in result["evaluation"][1]
    assert result["endpoint_answers"][0] == "fail" and "within 0.5 s" in result["endpoint_answers"][1]


async def test_a_missing_permission_names_it_and_unset_items_are_skipped(workspace: FakeDeployWorkspace,
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    denied = fixture("serving_error_403_permission_denied.json")
    workspace.fail("/api/2.0/alerts", Scripted(denied["status"], denied["body"]))
    workspace.endpoint["config"]["served_entities"] = [
        {"name": "claude", "foundation_model": {"name": "databricks-claude-sonnet-4"}, "state": {}}]
    workspace.endpoint["config"]["traffic_config"] = {"routes": [{"served_entity_name": "claude", "traffic_percentage": 100}]}
    monkeypatch.delenv("DATABRICKS_APP_NAME", raising=False)
    result = await checklist(workspace, tmp_path, monkeypatch, HEALTHBOT_EVAL_THRESHOLDS="")
    assert result["alerts"][0] == "fail" and "403" in result["alerts"][1] and "CAN_VIEW on the alerts" in result["alerts"][1]
    assert result["served_version"][0] == "skip" and result["evaluation"][0] == "skip"
    assert "databricks-claude-sonnet-4" in result["endpoint_ready"][1]  # a foundation model, shown as what it is


def test_thresholds_file_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "t.yml"
    bad.write_text("relevance: high\n")
    with pytest.raises(ValueError, match="minimum of 'relevance' is not a number"):
        load_thresholds(str(bad))
    assert load_thresholds(None) == {}


async def test_the_command_prints_json_and_exits_1_on_a_failure(workspace: FakeDeployWorkspace, tmp_path: Path) -> None:
    workspace.endpoint.pop("ai_gateway")
    env = {**os.environ, **environment(workspace, tmp_path), "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "adapters.host.cli", "checklist", "--json", env=env,
                                                   cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1, err.decode()
    items = json.loads(out)["items"]
    assert items["inference_tables"]["status"] == "fail" and items["endpoint_ready"]["status"] == "pass"
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "adapters.host.cli", "checklist", env=env, cwd=tmp_path,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert out.decode().splitlines()[0].startswith("✓ endpoint_ready: health_monitor_orchestrator READY")
    assert any(line.startswith("✗ inference_tables: no inference table") for line in out.decode().splitlines())
