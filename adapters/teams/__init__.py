"""Microsoft Teams through the Bot Framework (`POST /api/messages`), Adaptive Card answers.

Only this package imports botbuilder; the Bot Framework SDK is archived, and its successor (the
Microsoft 365 Agents SDK) speaks the same wire protocol, so a move touches this folder alone.
"""

from __future__ import annotations

from aiohttp import web

from bot.config import Settings
from bot.handler import ConversationHandler


def mount_teams(app: web.Application, *, settings: Settings, handler: ConversationHandler) -> object:
    """Always mounted: with no credentials it is the loopback-only local emulator mode."""
    from adapters.teams.app import TeamsAdapter

    teams = TeamsAdapter(settings=settings, handler=handler)
    teams.mount(app)
    return teams
