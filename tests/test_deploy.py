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
    assert {"dev", "prod"} <= set(bundle["targets"])


def test_the_app_runs_everything_inside_databricks() -> None:
    """Socket Mode Slack, pulled alerts, Lakebase: nothing the App does needs an inbound URL."""
    app = yaml.safe_load((ROOT / "app.yaml").read_text())
    env = {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in app["env"]}
    assert env["SLACK_APP_TOKEN"] == "slack-app-token" and "SLACK_SIGNING_SECRET" not in env
    assert env["HEALTHBOT_ALERT_PULL"] == "sql_alerts,jobs" and "HEALTHBOT_ALERT_TOKEN" not in env
    bundle = yaml.safe_load((ROOT / "databricks.yml").read_text())
    [database] = [r["database"] for r in bundle["resources"]["apps"]["healthbot"]["resources"] if "database" in r]
    assert database["permission"] == "CAN_CONNECT_AND_CREATE"
    assert bundle["variables"]["lakebase_instance"]["default"] == env["HEALTHBOT_LAKEBASE_INSTANCE"]
    assert "HEALTHBOT_DATABASE_URL" not in env  # the database resource's PG* variables configure it


def test_app_yaml_settings_are_valid_with_what_apps_inject(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import json

    from bot.config import load_settings

    app = yaml.safe_load((ROOT / "app.yaml").read_text())
    secrets = {"serving-endpoint": "health_monitor_orchestrator", "slack-bot-token": "xoxb-test",
               "slack-app-token": "xapp-test"}
    for entry in app["env"]:
        monkeypatch.setenv(entry["name"], entry["value"] if "value" in entry else secrets[entry["valueFrom"]])
    injected = json.loads((ROOT / "tests" / "fixtures" / "databricks" / "apps_database_resource_env.json").read_text())
    for name, value in {**injected, "DATABRICKS_HOST": "https://dbc-01234567-89ab.cloud.databricks.com"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.alert_pull == ["sql_alerts", "jobs"] and settings.use_serving
    assert settings.database_url.startswith(f"postgresql://{injected['PGUSER']}@{injected['PGHOST']}:5432/")
    assert settings.database_sslmode == "require"


def test_the_bundle_and_the_documented_autoscaling_resource_match_databricks_bundle_models() -> None:
    """databricks-bundles (Databricks' own typed models of the bundle schema) refuses unknown fields and
    wrong enums: the App, its resources and the alerts as declared, and docs/databricks.md's Autoscaling resource."""
    import re

    from databricks.bundles.alerts import Alert
    from databricks.bundles.apps import App

    bundle = yaml.safe_load((ROOT / "databricks.yml").read_text())
    App.from_dict(bundle["resources"]["apps"]["healthbot"])
    for alert in bundle["resources"]["alerts"].values():
        Alert.from_dict(alert)
    readme = (ROOT / "docs" / "databricks.md").read_text()
    [snippet] = [block for block in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "postgres:" in block]
    resources = yaml.safe_load(snippet)
    app = {**bundle["resources"]["apps"]["healthbot"], "resources": resources}
    App.from_dict(app)
    assert resources[0]["postgres"]["permission"] == "CAN_CONNECT_AND_CREATE"
