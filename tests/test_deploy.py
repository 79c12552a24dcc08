"""app.yaml and databricks.yml: valid YAML, the keys Databricks needs, a command that really runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_app_yaml_runs_a_real_command_with_declared_secrets() -> None:
    app = yaml.safe_load((ROOT / "app.yaml").read_text())
    command = app["command"]
    assert command[:2] == ["healthbot", "serve"]
    result = subprocess.run([str(Path(sys.executable).parent / "healthbot"), *command[1:], "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "--port" in result.stdout
    bundle = yaml.safe_load((ROOT / "databricks.yml").read_text())
    declared = {resource["name"] for resource in bundle["resources"]["apps"]["healthbot"]["resources"]}
    referenced = {entry["valueFrom"] for entry in app["env"] if "valueFrom" in entry}
    assert referenced <= declared, referenced - declared
    assert all(set(entry) in ({"name", "value"}, {"name", "valueFrom"}) for entry in app["env"])


def test_bundle_grants_can_query_and_defines_both_alert_rules() -> None:
    bundle = yaml.safe_load((ROOT / "databricks.yml").read_text())
    assert bundle["bundle"]["name"] == "healthbot"
    app = bundle["resources"]["apps"]["healthbot"]
    endpoint = next(r for r in app["resources"] if "serving_endpoint" in r)["serving_endpoint"]
    assert endpoint == {"name": "${var.serving_endpoint}", "permission": "CAN_QUERY"}
    assert bundle["variables"]["serving_endpoint"]["default"] == "health_monitor_orchestrator"
    alerts = bundle["resources"]["alerts"]
    thresholds = {a["display_name"]: a["evaluation"]["threshold"]["value"]["double_value"] for a in alerts.values()}
    assert thresholds == {"Health Monitor: High Error Rate": 0.1, "Health Monitor: High Latency": 10}
    for alert in alerts.values():
        assert "${var.inference_table}" in alert["query_text"] and alert["warehouse_id"] == "${var.warehouse_id}"
        assert alert["evaluation"]["source"]["name"] in alert["query_text"]
        assert alert["evaluation"]["notification"]["subscriptions"][0]["destination_id"] == "${var.alert_destination_id}"
    assert {"dev", "prod"} <= set(bundle["targets"])
