"""Slack: Events API over HTTP (`POST /slack/events`) or Socket Mode, Block Kit answers.

Only this package imports slack_bolt / slack_sdk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.core import Core

if TYPE_CHECKING:
    from adapters.slack.app import SlackChannel


def mount_slack(app: web.Application, core: Core) -> SlackChannel | None:
    """Add Slack to the server when SLACK_BOT_TOKEN is set (slack_bolt is imported only then)."""
    if core.settings.slack_bot_token is None:
        return None
    from adapters.slack.app import SlackChannel

    channel = SlackChannel(core)
    channel.mount(app)
    return channel
