"""One `Settings` object, read once from the environment (and `.env`), validated at start.

Field aliases are the vendors' and DESIGN.md's variable names, so an error names the variable a
person actually sets. Secrets are `SecretStr`: they never print, not even in a repr.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot import settings_rules
from bot.deploy.thresholds import load_thresholds
from bot.targets import ChannelTarget, parse_targets

CommaList = Annotated[list[str], NoDecode]
PULL_SOURCES = frozenset({"sql_alerts", "jobs"})


class ConfigError(Exception):
    """Every wrong or missing setting at once, one line each, naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # Slack
    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_api_url: str | None = Field(None, alias="SLACK_API_URL")
    slack_team_ids: CommaList = Field(default_factory=list, alias="HEALTHBOT_SLACK_TEAM_IDS")

    # Teams / Bot Framework
    microsoft_app_id: str = Field("", alias="MICROSOFT_APP_ID")
    microsoft_app_password: SecretStr | None = Field(None, alias="MICROSOFT_APP_PASSWORD")
    microsoft_app_tenant_id: str = Field("", alias="MICROSOFT_APP_TENANT_ID")
    microsoft_app_type: Literal["SingleTenant", "MultiTenant", "UserAssignedMSI"] = Field(
        "SingleTenant", alias="MICROSOFT_APP_TYPE")
    teams_tenant_ids: CommaList = Field(default_factory=list, alias="HEALTHBOT_TEAMS_TENANT_IDS")
    teams_emulator: bool = Field(False, alias="HEALTHBOT_TEAMS_EMULATOR")  # `on`: unauthenticated loopback tools

    # Who may ask (DESIGN.md "Who may ask")
    allow_guests: bool = Field(False, alias="HEALTHBOT_ALLOW_GUESTS")
    access_policy: str | None = Field(None, alias="HEALTHBOT_ACCESS_POLICY")

    # Databricks (any other databricks-sdk auth variable is read by the SDK itself)
    databricks_host: str | None = Field(None, alias="DATABRICKS_HOST")
    databricks_token: SecretStr | None = Field(None, alias="DATABRICKS_TOKEN")
    databricks_profile: str | None = Field(
        None, validation_alias=AliasChoices("DATABRICKS_CONFIG_PROFILE", "databricks_profile")
    )
    backend: Literal["auto", "serving", "demo"] = Field("auto", alias="HEALTHBOT_BACKEND")
    endpoint_name: str = Field("health_monitor_orchestrator", alias="HEALTHBOT_ENDPOINT_NAME", min_length=1)
    endpoint_format: Literal["inputs", "chat_agent", "responses", "chat_completions", "invocations", "auto"] = Field(
        "auto", alias="HEALTHBOT_ENDPOINT_FORMAT"
    )
    endpoint_timeout_s: float = Field(60.0, alias="HEALTHBOT_ENDPOINT_TIMEOUT", gt=0)
    cold_start_wait_s: float = Field(600.0, alias="HEALTHBOT_COLD_START_WAIT", ge=0)
    stream: Literal["auto", "off"] = Field("auto", alias="HEALTHBOT_STREAM")
    demo_pace_s: float = Field(0.03, alias="HEALTHBOT_DEMO_PACE", ge=0, le=5)

    # Conversation engine limits (the Health Monitor's own defaults)
    history_limit: int = Field(20, alias="HEALTHBOT_HISTORY_LIMIT", ge=1)
    max_concurrency: int = Field(10, alias="HEALTHBOT_MAX_CONCURRENCY", ge=1)
    user_rate_per_min: int = Field(30, alias="HEALTHBOT_USER_RATE_PER_MIN", ge=1)
    global_rate_per_min: int = Field(1000, alias="HEALTHBOT_GLOBAL_RATE_PER_MIN", ge=1)
    cache_ttl_s: float = Field(300.0, alias="HEALTHBOT_CACHE_TTL", ge=0)
    cache_size: int = Field(100, alias="HEALTHBOT_CACHE_SIZE", ge=0)
    dm_idle_minutes: float = Field(30.0, alias="HEALTHBOT_DM_IDLE_MINUTES", gt=0)

    # Operations
    mlflow_tracking_uri: str | None = Field(None, alias="MLFLOW_TRACKING_URI")
    database_url_setting: str | None = Field(None, alias="HEALTHBOT_DATABASE_URL")
    lakebase_instance: str | None = Field(None, alias="HEALTHBOT_LAKEBASE_INSTANCE", min_length=1)
    lakebase_endpoint: str | None = Field(None, alias="HEALTHBOT_LAKEBASE_ENDPOINT",
                                          pattern=r"^projects/[^/\s]+/branches/[^/\s]+/endpoints/[^/\s]+$")
    pg_host: str | None = Field(None, alias="PGHOST")  # set by a Databricks App's database resource
    pg_port: str = Field("5432", alias="PGPORT")
    pg_database: str = Field("databricks_postgres", alias="PGDATABASE")
    pg_user: str | None = Field(None, alias="PGUSER")
    pg_sslmode: str | None = Field(None, alias="PGSSLMODE")
    demo_data_dir: str | None = Field(None, alias="HEALTHBOT_DEMO_DATA_DIR")
    retention_days: float = Field(90.0, alias="HEALTHBOT_RETENTION_DAYS", gt=0)

    # Alerts
    alert_token: SecretStr | None = Field(None, alias="HEALTHBOT_ALERT_TOKEN")
    alert_routes: str | None = Field(None, alias="HEALTHBOT_ALERT_ROUTES")
    alert_channels: CommaList = Field(default_factory=list, alias="HEALTHBOT_ALERT_CHANNELS")
    alert_pace_s: float = Field(1.0, alias="HEALTHBOT_ALERT_PACE_SECONDS", ge=0)
    alert_storm_threshold: int = Field(10, alias="HEALTHBOT_ALERT_STORM_THRESHOLD", ge=1)
    selfmon_error_rate: float = Field(0.10, alias="HEALTHBOT_SELFMON_ERROR_RATE", gt=0, le=1)
    selfmon_p95_ms: float = Field(10_000.0, alias="HEALTHBOT_SELFMON_P95_MS", gt=0)
    alert_max_body_bytes: int = Field(256 * 1024, alias="HEALTHBOT_ALERT_MAX_BODY_BYTES", ge=1024)
    alert_pull: CommaList = Field(default_factory=list, alias="HEALTHBOT_ALERT_PULL")
    alert_pull_interval_s: float = Field(60.0, alias="HEALTHBOT_ALERT_PULL_INTERVAL_S", gt=0)
    alert_pull_jobs: CommaList = Field(default_factory=list, alias="HEALTHBOT_ALERT_PULL_JOBS")

    alert_remind_minutes: float = Field(60.0, alias="HEALTHBOT_ALERT_REMIND_MINUTES", ge=0)
    digest: str | None = Field(None, alias="HEALTHBOT_DIGEST")  # "mon 09:00", "daily 09:00"; None: off
    digest_tz: str = Field("UTC", alias="HEALTHBOT_DIGEST_TZ")
    digest_channels: CommaList | None = Field(None, alias="HEALTHBOT_DIGEST_CHANNELS")  # None: the alert channels

    # Deployments (the served agent's versions)
    deploy_channels: CommaList | None = Field(None, alias="HEALTHBOT_DEPLOY_CHANNELS")  # None: the alert channels
    deploy_poll_s: float = Field(60.0, alias="HEALTHBOT_DEPLOY_POLL_S", gt=0)
    rollback_alias: str | None = Field(None, alias="HEALTHBOT_ROLLBACK_ALIAS", min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    eval_thresholds: str | None = Field(None, alias="HEALTHBOT_EVAL_THRESHOLDS")
    app_name: str | None = Field(None, alias="DATABRICKS_APP_NAME")  # set by Databricks Apps

    # Each asker's own identity (DESIGN.md): OAuth U2M on behalf of the person asking
    identity: Literal["service_principal", "user"] = Field("service_principal", alias="HEALTHBOT_IDENTITY")
    oauth_client_id: str = Field("", alias="HEALTHBOT_OAUTH_CLIENT_ID")
    oauth_client_secret: SecretStr | None = Field(None, alias="HEALTHBOT_OAUTH_CLIENT_SECRET")
    oauth_scopes: str = Field("all-apis offline_access", alias="HEALTHBOT_OAUTH_SCOPES", min_length=1)
    public_url: str | None = Field(None, alias="HEALTHBOT_PUBLIC_URL", pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    token_key: SecretStr | None = Field(None, alias="HEALTHBOT_TOKEN_KEY")

    @field_validator("slack_team_ids", "teams_tenant_ids", "alert_channels", "alert_pull", "alert_pull_jobs",
                     "deploy_channels", "digest_channels", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("alert_channels")
    @classmethod
    def _valid_targets(cls, value: list[str]) -> list[str]:
        parse_targets(value)  # raises ValueError naming the bad entry
        return value

    @field_validator("deploy_channels")
    @classmethod
    def _valid_deploy_targets(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and value != ["off"]:
            parse_targets(value)
        return value

    @field_validator("digest_channels")
    @classmethod
    def _valid_digest_targets(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            parse_targets(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        """The rules across variables (bot/settings_rules.py), each naming what to set."""
        for rule in settings_rules.RULES:
            rule(self)
        return self

    @field_validator("eval_thresholds")
    @classmethod
    def _thresholds_parse(cls, value: str | None) -> str | None:
        load_thresholds(value)  # a bad file fails at start
        return value

    @field_validator("database_url_setting")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("alert_pull")
    @classmethod
    def _known_pull_sources(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - PULL_SOURCES)
        if unknown:
            raise ValueError(f"unknown source {', '.join(unknown)}; use a comma list of sql_alerts, jobs")
        return value

    @property
    def uses_lakebase(self) -> bool:
        """Lakebase (Provisioned or Autoscaling): the database password is a minted token."""
        return bool(self.lakebase_instance or self.lakebase_endpoint)

    @property
    def teams_tenants(self) -> list[str]:
        """The tenants whose conversations Teams activities may come from; [] = not checked (emulator
        mode without HEALTHBOT_TEAMS_TENANT_IDS)."""
        if self.microsoft_app_id and self.microsoft_app_type != "MultiTenant":
            return [self.microsoft_app_tenant_id]
        return list(self.teams_tenant_ids)

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_prefix(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("a Slack app-level token starts with xapp-")
        return value

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _mlflow_installed(cls, value: str | None) -> str | None:
        import importlib.util

        if value and importlib.util.find_spec("mlflow") is None:
            raise ValueError("tracing needs mlflow: pip install 'healthbot[tracing]' (or unset MLFLOW_TRACKING_URI)")
        return value

    @property
    def token_keys(self) -> str:
        """HEALTHBOT_TOKEN_KEY as set (one Fernet key, or several comma-separated); "" when unset."""
        return self.token_key.get_secret_value() if self.token_key else ""

    @property
    def redirect_url(self) -> str:
        """Where the workspace sends people back after they sign in (registered on the OAuth app)."""
        return f"{(self.public_url or '').rstrip('/')}/oauth/callback"

    @property
    def workspace_configured(self) -> bool:
        """True when databricks-sdk would find a workspace; decides `HEALTHBOT_BACKEND=auto`."""
        return bool(self.databricks_host or self.databricks_profile)

    @property
    def use_serving(self) -> bool:
        return self.backend == "serving" or (self.backend == "auto" and self.workspace_configured)

    @property
    def alert_targets(self) -> list[ChannelTarget]:
        return parse_targets(self.alert_channels)

    @property
    def digest_targets(self) -> list[ChannelTarget]:
        return self.alert_targets if self.digest_channels is None else parse_targets(self.digest_channels)

    @property
    def deploy_targets(self) -> list[ChannelTarget]:
        """HEALTHBOT_DEPLOY_CHANNELS, `off` for none, unset for the alert channels."""
        if self.deploy_channels is None:
            return self.alert_targets
        return [] if self.deploy_channels == ["off"] else parse_targets(self.deploy_channels)

    @property
    def database_url(self) -> str:
        """HEALTHBOT_DATABASE_URL; else, for Lakebase, the PG* variables of the App's database resource;
        else a SQLite file in the user's state directory (never the working directory)."""
        if self.database_url_setting:
            return self.database_url_setting
        if self.uses_lakebase and self.pg_host and self.pg_user:
            return f"postgresql://{quote(self.pg_user, safe='')}@{self.pg_host}:{self.pg_port}/{quote(self.pg_database)}"
        if self.lakebase_endpoint:  # host and user from the endpoint itself, at first connection
            return f"postgresql:///{quote(self.pg_database)}?port={self.pg_port}"
        return f"sqlite:///{state_dir() / 'healthbot.db'}"

    @property
    def database_sslmode(self) -> str | None:
        """TLS for PostgreSQL: `sslmode` in the URL wins, then PGSSLMODE, and Lakebase requires TLS."""
        if "sslmode=" in urlsplit(self.database_url).query:
            return None  # asyncpg reads it from the URL
        return self.pg_sslmode or ("require" if self.uses_lakebase else None)


def state_dir() -> Path:
    """$XDG_STATE_HOME/healthbot (~/.local/state/healthbot): where the embedded store lives."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "healthbot"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning pydantic's error into one readable message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(part) for part in err["loc"]) or "settings"
            lines.append(f"  {name}: {err['msg']}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
