"""Rules across settings: each takes the parsed Settings and raises ValueError naming the variables to
set. `Settings` runs them all at start (bot/config.py), so a half-configured feature never starts."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bot.access.policy import load_policy
from bot.alerts.routes import load_router
from bot.alerts.schedule import Schedule
from bot.targets import parse_targets

if TYPE_CHECKING:
    from bot.config import Settings


def digest_schedule(s: Settings) -> None:
    """A bad schedule or time zone fails at start."""
    if s.digest:
        Schedule.parse(s.digest, s.digest_tz)  # a bad schedule or zone fails at start


def databricks_features(s: Settings) -> None:
    """Pulling alerts and Lakebase need a workspace; one Lakebase, its password minted."""
    if s.alert_pull and not s.workspace_configured:
        raise ValueError("HEALTHBOT_ALERT_PULL needs a workspace: set DATABRICKS_HOST (a Databricks App sets it)")
    if s.lakebase_instance and s.lakebase_endpoint:
        raise ValueError("set one Lakebase: HEALTHBOT_LAKEBASE_INSTANCE (Provisioned) or HEALTHBOT_LAKEBASE_ENDPOINT "
                         "(Autoscaling: projects/…/branches/…/endpoints/…), not both")
    if s.uses_lakebase:
        name = "HEALTHBOT_LAKEBASE_INSTANCE" if s.lakebase_instance else "HEALTHBOT_LAKEBASE_ENDPOINT"
        if not s.workspace_configured:
            raise ValueError(f"{name} needs a workspace to mint database credentials: "
                             "set DATABRICKS_HOST (a Databricks App sets it)")
        if not s.database_url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"{name} needs a postgresql:// HEALTHBOT_DATABASE_URL or the PGHOST "
                             "and PGUSER variables of a Databricks App database resource")
        if urlsplit(s.database_url).password:
            raise ValueError(f"{name} mints the database password: remove it from HEALTHBOT_DATABASE_URL")


def teams_tenants(s: Settings) -> None:
    """A bot that accepts any Microsoft 365 tenant is open to anyone who sideloads its id: refused."""
    if not s.microsoft_app_id:
        return
    if s.microsoft_app_type == "MultiTenant" and not s.teams_tenant_ids:
        raise ValueError("MICROSOFT_APP_TYPE=MultiTenant accepts every Microsoft 365 tenant: list the accepted ones "
                         "in HEALTHBOT_TEAMS_TENANT_IDS, or use MICROSOFT_APP_TYPE=SingleTenant with "
                         "MICROSOFT_APP_TENANT_ID (the default)")
    if s.microsoft_app_type != "MultiTenant" and not s.microsoft_app_tenant_id:
        raise ValueError(f"MICROSOFT_APP_TYPE={s.microsoft_app_type} needs MICROSOFT_APP_TENANT_ID (the bot's home "
                         "tenant, the only one it accepts)")


def slack_transport(s: Settings) -> None:
    """A bot token needs a way for Slack to reach healthbot."""
    if s.slack_bot_token is not None and s.slack_signing_secret is None and s.slack_app_token is None:
        raise ValueError(
            "SLACK_BOT_TOKEN is set but Slack cannot reach healthbot: set SLACK_SIGNING_SECRET (HTTP mode) "
            "or SLACK_APP_TOKEN (Socket Mode)"
        )


def alert_routes(s: Settings) -> None:
    """A bad routes file fails at start."""
    load_router(s.alert_routes, parse_targets(s.alert_channels))  # a bad file fails at start


def access_policy(s: Settings) -> None:
    """A bad policy fails at start, naming its line; one that checks people needs a workspace."""
    policy = load_policy(s.access_policy)  # a bad file fails at start, naming its line
    if policy is not None and policy.needs_identity and not s.workspace_configured:
        raise ValueError("HEALTHBOT_ACCESS_POLICY checks people in Databricks: set DATABRICKS_HOST (and "
                         "credentials) so healthbot can read users and groups")


def user_identity(s: Settings) -> None:
    """`HEALTHBOT_IDENTITY=user` cannot start half-configured: every missing piece, named."""
    if s.identity != "user":
        return
    from bot.identity.vault import Sealer  # cryptography, only in user mode (`healthbot ask` starts fast)

    missing = [name for name, value in (("DATABRICKS_HOST", s.databricks_host),
                                        ("HEALTHBOT_OAUTH_CLIENT_ID", s.oauth_client_id),
                                        ("HEALTHBOT_PUBLIC_URL", s.public_url)) if not value]
    if missing:
        raise ValueError(f"HEALTHBOT_IDENTITY=user needs {', '.join(missing)}")
    Sealer.from_setting(s.token_keys)  # raises naming the problem


RULES = (digest_schedule, databricks_features, teams_tenants, slack_transport, alert_routes, access_policy,
         user_identity)
