"""`healthbot doctor`: one line per check, ✓ or ✗ with the fix; non-zero exit when a required one fails.

It builds the same app `healthbot serve` would (without starting it), so it checks exactly what the
server will use: config, store, Databricks auth and endpoint, Slack token and scopes, Teams
credentials, alert token, routes and their channels.
"""

from __future__ import annotations

import asyncio
from typing import Any

from agent.base import AgentRequest, ChatMessage
from agent.errors import EngineError
from bot.config import Settings
from bot.ops.health import Check
from bot.ops.housekeeping import describe_stats
from bot.models import Platform
from bot.ops.report import FAIL, OK, WARN, Line

async def run_doctor(settings: Settings, *, probe: bool = False) -> list[Line]:
    from adapters.host.alert_wiring import PULLER
    from bot.identity.wiring import doctor_lines
    from adapters.host.server import ALERTS, HANDLER, HEALTH, SLACK, TEAMS, create_app

    lines = [Line(OK, "config", "all values valid" + (" (.env read)" if _dotenv() else ""))]
    app = create_app(settings)
    health = app[HEALTH]
    try:
        lines.append(_line("store", await health.store_check(), f"check HEALTHBOT_DATABASE_URL ({_where(settings)})"))
        lines.append(Line(OK, "store location", _where(settings)))
        try:
            stats = await health.store.table_stats()
            lines.append(Line(OK, "store rows", f"{describe_stats(stats)}; kept {settings.retention_days:g} days"))
        except Exception as exc:  # already reported by the store line
            lines.append(Line(WARN, "store rows", f"could not count: {type(exc).__name__}"))
        password = getattr(health.store, "password", None)
        if password is not None:
            lines.append(Line(OK, "lakebase", password.describe()))
        if settings.use_serving:
            lines += await _databricks(settings, health.engine, probe)
        else:
            lines.append(Line(OK, "answer engine", "embedded demo engine (no workspace configured)"))
        slack = app[SLACK]
        if slack is not None:
            lines.append(_line("slack", await slack.health(), "check SLACK_BOT_TOKEN / reinstall the app"))
            lines.append(await _slack_scopes(slack))
        else:
            lines.append(Line(WARN, "slack", "not configured", "set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN)"))
        teams = app[TEAMS]
        if settings.microsoft_app_id:
            lines.append(_line("teams", await teams.health(), "check MICROSOFT_APP_ID / MICROSOFT_APP_PASSWORD / tenant"))
            lines.append(Line(OK, "teams tenants", f"{settings.microsoft_app_type}: accepts conversations of "
                                                   f"{', '.join(settings.teams_tenants)} only"))
        elif settings.teams_emulator:
            lines.append(Line(WARN, "teams", "emulator mode: unauthenticated loopback callers only",
                              "set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD, and HEALTHBOT_TEAMS_EMULATOR=off"))
        else:
            lines.append(Line(WARN, "teams", "off (no Bot Framework credentials)", "set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD"))
        lines += await _access(settings, app[HANDLER].access)
        lines += doctor_lines(settings, app)
        lines += await _alerts(settings, app[ALERTS])
        if PULLER in app:
            lines += await _pull(app[PULLER])
    finally:
        await health.engine.close()
        await health.store.close()
    return lines


def _where(settings: Settings) -> str:
    """The database without its password (a postgresql:// URL may carry one)."""
    from urllib.parse import urlsplit

    url = settings.database_url
    parts = urlsplit(url)
    if parts.password:
        url = url.replace(f":{parts.password}@", ":***@")
    return url


async def _pull(puller: Any) -> list[Line]:
    """One small list call per pulled source: proves the App's principal may read what it polls."""
    from bot.workspace import describe_error

    lines = []
    for source in puller.sources:
        workspace = source.workspace
        try:
            if source.name == "sql_alerts":
                await workspace.call(lambda client: next(iter(client.alerts_v2.list_alerts(page_size=1)), None))
            else:
                await workspace.call(lambda client: next(iter(client.jobs.list_runs(limit=1)), None))
        except Exception as exc:
            lines.append(Line(FAIL, f"alert pull {source.name}", describe_error(exc),
                              f"grant the app's service principal {source.permission}"))
        else:
            lines.append(Line(OK, f"alert pull {source.name}", f"can list (every {puller.interval_s:.0f} s)"))
    return lines


async def _access(settings: Settings, gate: Any) -> list[Line]:
    """Who may ask, one line per rule, and each group the policy names looked up in the workspace
    (a misspelt group would quietly withhold answers from everyone)."""
    from bot.access.directory import DirectoryUnavailable

    trusted = [*settings.slack_team_ids, *settings.teams_tenant_ids]
    lines = [Line(OK, "access", "members only" + ("; guests allowed" if settings.allow_guests else "; guests refused")
                  + (f"; other organisations allowed: {', '.join(trusted)}" if trusted else ""))]
    if gate.policy is None:
        return lines
    lines += [Line(OK, "access policy", rule) for rule in gate.policy.describe()]
    for group in gate.policy.groups:
        try:
            found = await gate.directory.group_exists(group)
        except DirectoryUnavailable as exc:
            lines.append(Line(FAIL, "access group", f"{group}: {exc}", "grant the principal access to read groups"))
            continue
        lines.append(Line(OK, "access group", f"group {group} exists") if found else
                     Line(FAIL, "access group", f"group {group} not found in the workspace",
                          "fix the group name in HEALTHBOT_ACCESS_POLICY (SCIM displayName, case-sensitive)"))
    return lines


def _dotenv() -> bool:
    import os

    return os.path.exists(".env")


def _line(name: str, check: Check, fix: str) -> Line:
    return Line(OK if check.ok else FAIL, name, check.detail, fix)


async def _databricks(settings: Settings, engine: Any, probe: bool) -> list[Line]:
    lines = []
    try:
        host, _ = await engine.http.auth()
        lines.append(Line(OK, "databricks auth", f"credentials for {host}"))
    except EngineError as exc:
        return [Line(FAIL, "databricks auth", exc.detail or exc.kind.value,
                     "set DATABRICKS_HOST and DATABRICKS_TOKEN, or another databricks-sdk login")]
    try:
        state = await engine.endpoint_state()
        lines.append(Line(OK if state.is_ready else FAIL, "serving endpoint", f"{settings.endpoint_name} is {state.ready}",
                          "wait for it to finish deploying, or check its events in the Serving UI"))
    except EngineError as exc:
        fixes = {"not_found": "check HEALTHBOT_ENDPOINT_NAME", "permission_denied": "grant the bot's principal CAN_QUERY"}
        lines.append(Line(FAIL, "serving endpoint", f"{settings.endpoint_name}: {exc.kind.value} {exc.detail}",
                          fixes.get(exc.kind.value, "check the workspace URL and the endpoint")))
        return lines
    if probe:
        try:
            answer = await engine.answer(AgentRequest([ChatMessage("user", "Platform health overview")], "healthbot-doctor", "doctor"))
            lines.append(Line(OK, "probe question", f"answered in {answer.endpoint_latency_ms or 0:.0f} ms"))
        except EngineError as exc:
            lines.append(Line(FAIL, "probe question", f"{exc.kind.value}: {exc.detail}", "see the endpoint's logs"))
    return lines


async def _slack_scopes(slack: Any) -> Line:
    from adapters.slack.manifest import bot_scopes

    try:
        response = await slack.client.auth_test()
    except Exception as exc:
        return Line(FAIL, "slack scopes", f"could not read them: {type(exc).__name__}", "check SLACK_BOT_TOKEN")
    granted = {s.strip() for s in str(response.headers.get("x-oauth-scopes", "")).split(",") if s.strip()}
    if not granted:
        return Line(WARN, "slack scopes", "Slack did not report the token's scopes")
    missing = sorted(set(bot_scopes()) - granted)
    if missing:
        return Line(FAIL, "slack scopes", "missing " + ", ".join(missing), "reinstall the app from manifest.yml")
    return Line(OK, "slack scopes", "every scope manifest.yml asks for")


async def _alerts(settings: Settings, dispatcher: Any) -> list[Line]:
    if settings.alert_token:
        lines = [Line(OK, "alert token", "set")]
    elif settings.alert_pull:  # pulling needs no token: the webhook route just stays closed
        lines = [Line(OK, "alert token", f"not set: alerts are pulled ({', '.join(settings.alert_pull)}), "
                                         "/alerts/databricks stays closed")]
    else:
        mark = FAIL if dispatcher.router.all_targets else WARN
        return [Line(mark, "alert token", "HEALTHBOT_ALERT_TOKEN is not set: /alerts/databricks answers 503",
                     "set HEALTHBOT_ALERT_TOKEN to a long random secret")]
    targets = dispatcher.router.all_targets
    if not targets:
        lines.append(Line(WARN, "alert routes", "no targets", "set HEALTHBOT_ALERT_CHANNELS (or HEALTHBOT_ALERT_ROUTES)"))
        return lines
    for target in targets:
        sink = dispatcher.sinks.get(target.platform)
        if sink is None:
            lines.append(Line(FAIL, f"alert target {target}", f"{target.platform.value} is not configured",
                              f"configure {target.platform.value} or remove the target"))
        elif target.platform == Platform.TEAMS:
            known = await dispatcher.handler.store.get_reference("teams", target.channel)
            lines.append(Line(OK if known else FAIL, f"alert target {target}",
                              "conversation reference stored" if known else "no conversation reference",
                              "install the healthbot app in that team"))
        else:
            lines.append(Line(OK, f"alert target {target}", "Slack configured (invite @healthbot to the channel)"))
    return lines


def exit_code(lines: list[Line]) -> int:
    return 1 if any(line.mark == FAIL for line in lines) else 0


def main(settings: Settings, *, probe: bool) -> int:
    lines = asyncio.run(run_doctor(settings, probe=probe))
    for line in lines:
        print(line)
    return exit_code(lines)
