"""Settings: DESIGN.md's variable names, .env support, errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.models import Platform


def test_defaults_run_on_the_demo_engine(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.backend == "auto" and not settings.use_serving
    assert settings.endpoint_name == "health_monitor_orchestrator" and settings.endpoint_format == "auto"
    assert settings.database_url == f"sqlite:///{tmp_path / 'state' / 'healthbot' / 'healthbot.db'}"  # XDG_STATE_HOME
    assert (settings.user_rate_per_min, settings.global_rate_per_min, settings.max_concurrency) == (30, 1000, 10)


def test_workspace_switches_auto_to_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", "https://adb-1.azuredatabricks.net")
    assert load_settings().use_serving
    monkeypatch.setenv("HEALTHBOT_BACKEND", "demo")
    assert not load_settings().use_serving


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HEALTHBOT_ENDPOINT_NAME=my_endpoint\nHEALTHBOT_ALERT_CHANNELS=slack:C0123ABCD, teams:19:x@thread.tacv2\n")
    settings = load_settings()
    assert settings.endpoint_name == "my_endpoint"
    assert [(t.platform, t.channel) for t in settings.alert_targets] == [
        (Platform.SLACK, "C0123ABCD"), (Platform.TEAMS, "19:x@thread.tacv2")]


def test_every_bad_value_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHBOT_BACKEND", "cloud")
    monkeypatch.setenv("HEALTHBOT_ENDPOINT_FORMAT", "xml")
    monkeypatch.setenv("HEALTHBOT_ALERT_CHANNELS", "discord:123")
    monkeypatch.setenv("HEALTHBOT_USER_RATE_PER_MIN", "lots")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xoxb-wrong")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    for name in ("HEALTHBOT_BACKEND", "HEALTHBOT_ENDPOINT_FORMAT", "HEALTHBOT_ALERT_CHANNELS",
                 "HEALTHBOT_USER_RATE_PER_MIN", "SLACK_APP_TOKEN"):
        assert name in text
    assert "xoxb-wrong" not in text  # secrets are never echoed


def test_secrets_do_not_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-hidden1")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-hidden2")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "hidden3")
    settings = load_settings()
    assert "hidden" not in repr(settings) and "hidden" not in str(settings.model_dump())


def test_slack_token_without_a_way_in_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET .HTTP mode. or SLACK_APP_TOKEN"):
        load_settings()
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    assert load_settings().slack_app_token is not None


def test_tracing_without_mlflow_installed_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "databricks")
    with pytest.raises(ConfigError, match=r"MLFLOW_TRACKING_URI: .*pip install 'healthbot\[tracing\]'"):
        load_settings()
