"""Slack: Events API over HTTP (`POST /slack/events`) or Socket Mode, Block Kit answers.

Only this package imports slack_bolt / slack_sdk.
"""

from __future__ import annotations

from aiohttp import web

from bot.config import Settings
from bot.handler import ConversationHandler


def mount_slack(app: web.Application, *, settings: Settings, handler: ConversationHandler) -> object | None:
    """Add Slack to the server when SLACK_BOT_TOKEN is set; returns the SlackBot (or None)."""
    if settings.slack_bot_token is None:
        return None
    from adapters.slack.app import SlackBot

    bot = SlackBot(settings=settings, handler=handler)
    bot.mount(app)
    return bot
