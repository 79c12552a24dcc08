"""The Slack app manifest: every scope the code needs and no more.

`manifest.yml` at the repository root is this, rendered with a placeholder URL (a test keeps the
two equal); `healthbot slack-manifest --url https://HOST` renders it for a real host.
"""

from __future__ import annotations

from typing import Any

import yaml

from bot.quick import SUGGESTED_PROMPTS

PLACEHOLDER_URL = "https://YOUR-HEALTHBOT-HOST"

# Web API method → bot scopes it needs (https://api.slack.com/methods).
METHOD_SCOPES: dict[str, list[str]] = {
    "chat.postMessage": ["chat:write"],
    "chat.update": ["chat:write"],
    "chat.postEphemeral": ["chat:write"],  # refusals shown to the asker alone (alert buttons)
    "chat.delete": ["chat:write"],  # the placeholder, once an answer streams
    "chat.startStream": ["chat:write"],  # streamed answers (chat.appendStream / chat.stopStream alike)
    "chat.appendStream": ["chat:write"],
    "chat.stopStream": ["chat:write"],
    "users.info": ["users:read", "users:read.email"],
    "conversations.open": ["im:write"],
    "conversations.history": ["channels:history", "groups:history"],  # alert roots after a crash
    "files.getUploadURLExternal": ["files:write"],  # the PNG fallback of native charts (files_upload_v2)
    "files.completeUploadExternal": ["files:write"],
    # the agent view, through bolt's Assistant utilities (set_suggested_prompts, set_title, set_status)
    "assistant.threads.setSuggestedPrompts": ["assistant:write"],
    "assistant.threads.setTitle": ["assistant:write"],
    "assistant.threads.setStatus": ["assistant:write"],
    # App Home lists an open alert to the members of its channel only (public, private, DM, group DM)
    "conversations.members": ["channels:read", "groups:read", "im:read", "mpim:read"],
    "views.publish": [],  # App Home (no scope: the bot token may publish its own Home tab)
}
# Event subscription → the scope that grants it.
EVENT_SCOPES: dict[str, str | None] = {
    "app_mention": "app_mentions:read",
    "message.channels": "channels:history",  # un-mentioned follow-ups in public channel threads
    "message.groups": "groups:history",  # … and in private channels
    "message.im": "im:history",  # direct messages
    "app_home_opened": None,  # App Home, and (tab "messages") the agent messaging experience's DM opening
}
# Slack's agent messaging experience (features.agent_view, what new apps get since 2026-06-30) and the older
# assistant split pane (features.assistant_view): each has its own events (docs.slack.dev, "Migrating to the
# Agent messaging experience"); healthbot handles both sets, so existing installs keep working.
AGENT_EVENTS: dict[str, str | None] = {
    "app_context_changed": None,  # the channel the person is looking at (docs list no scope for it)
}
ASSISTANT_EVENTS: dict[str, str | None] = {
    "assistant_thread_started": "assistant:write",  # a new thread in the split pane
    "assistant_thread_context_changed": "assistant:write",  # … and the channel the person is looking at
}
AGENT_DESCRIPTION = ("Ask the Databricks Health Monitor about costs, jobs, queries, security and data quality, "
                     "with the channel you are looking at in mind.")
COMMAND_SCOPES = ["commands"]


def event_scopes(*, assistant_view: bool = False) -> dict[str, str | None]:
    return {**EVENT_SCOPES, **(ASSISTANT_EVENTS if assistant_view else AGENT_EVENTS)}


# Scopes an installer may decline (`oauth_config.scopes.bot_optional`, Slack changelog 2026-03-16): charts
# go natively as data_visualization blocks; only their PNG fallback uploads files.
OPTIONAL_SCOPES = frozenset({"files:write"})


def bot_scopes(*, assistant_view: bool = False) -> list[str]:
    """The scopes an install must grant (OPTIONAL_SCOPES apart)."""
    scopes = {scope for needed in METHOD_SCOPES.values() for scope in needed}
    scopes |= {scope for scope in event_scopes(assistant_view=assistant_view).values() if scope} | set(COMMAND_SCOPES)
    return sorted(scopes - OPTIONAL_SCOPES)


def build_manifest(base_url: str = PLACEHOLDER_URL, *, socket_mode: bool = False,
                   assistant_view: bool = False) -> dict[str, Any]:
    """The manifest of a new app: the agent messaging experience, unless `assistant_view` (an app created
    before Slack's change that keeps the split pane)."""
    events_url = base_url.rstrip("/") + "/slack/events"
    command: dict[str, Any] = {
        "command": "/healthbot",
        "description": "Ask the Databricks Health Monitor",
        "usage_hint": "[costs | jobs | queries | security | health | new | digest | rollback [VERSION] | checklist | connect | disconnect | help | your question]",
        "should_escape": False,
    }
    events: dict[str, Any] = {"bot_events": sorted(event_scopes(assistant_view=assistant_view))}
    prompts = [{"title": question, "message": question} for question in SUGGESTED_PROMPTS]
    agent = ({"assistant_view": {"assistant_description": AGENT_DESCRIPTION, "suggested_prompts": prompts}}
             if assistant_view else {"agent_view": {"agent_description": AGENT_DESCRIPTION, "suggested_prompts": prompts}})
    interactivity: dict[str, Any] = {"is_enabled": True}
    if not socket_mode:
        command["url"] = events_url
        events["request_url"] = events_url
        interactivity["request_url"] = events_url
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": "healthbot",
            "description": "Databricks Health Monitor: costs, jobs, queries, security and data quality",
            "background_color": "#1b3139",
        },
        "features": {
            "app_home": {"home_tab_enabled": True, "messages_tab_enabled": True, "messages_tab_read_only_enabled": False},
            **agent,
            "bot_user": {"display_name": "healthbot", "always_online": True},
            "slash_commands": [command],
        },
        "oauth_config": {"scopes": {"bot": bot_scopes(assistant_view=assistant_view),
                                    "bot_optional": sorted(OPTIONAL_SCOPES)}},
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }


def render_manifest(base_url: str = PLACEHOLDER_URL, *, socket_mode: bool = False, assistant_view: bool = False) -> str:
    made = ("# Generated by `healthbot slack-manifest --url https://HOST` (replace the placeholder host).\n"
            if base_url == PLACEHOLDER_URL and not socket_mode else
            "# Generated by `healthbot slack-manifest --socket-mode`: no request URLs (Slack connects through SLACK_APP_TOKEN).\n"
            if socket_mode else f"# Generated by `healthbot slack-manifest --url {base_url}`.\n")
    header = "# Slack app manifest for healthbot: paste into api.slack.com/apps → Create New App → From a manifest.\n" + made
    if assistant_view:
        header += "# --assistant-view: the older split pane, for an app created before Slack's agent messaging experience.\n"
    return header + yaml.safe_dump(build_manifest(base_url, socket_mode=socket_mode, assistant_view=assistant_view),
                                   sort_keys=False, allow_unicode=True)
