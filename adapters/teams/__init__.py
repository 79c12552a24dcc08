"""Microsoft Teams through the Bot Framework (`POST /api/messages`), Adaptive Card answers.

Only this package imports botbuilder; the Bot Framework SDK is archived, and its successor (the
Microsoft 365 Agents SDK) speaks the same wire protocol, so a move touches this folder alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.core import Core

if TYPE_CHECKING:
    from adapters.teams.app import TeamsChannel


def mount_teams(app: web.Application, core: Core) -> TeamsChannel:
    """Always mounted: without credentials `/api/messages` answers 401, or (HEALTHBOT_TEAMS_EMULATOR=on)
    takes loopback tools."""
    from adapters.teams.app import TeamsChannel

    channel = TeamsChannel(core)
    channel.mount(app)
    return channel
