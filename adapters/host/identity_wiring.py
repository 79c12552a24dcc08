"""HEALTHBOT_IDENTITY=user on `healthbot serve`: the OAuth callback route and the `/health` line (how
many people are connected, never who or which token)."""

from __future__ import annotations

from aiohttp import web

from bot.identity.callback import mount_identity
from bot.identity.service import Identities
from bot.ops.health import Check, HealthChecks


def mount_identities(app: web.Application, identities: Identities | None, health: HealthChecks) -> None:
    if identities is None:
        return
    mount_identity(app, identities)

    async def connected() -> Check:
        try:
            count = await identities.connected()
        except Exception as exc:  # the store line says why
            return Check(False, f"cannot count connected people: {type(exc).__name__}")
        return Check(True, f"{count} {'person' if count == 1 else 'people'} connected (HEALTHBOT_IDENTITY=user)")

    health.add("identity", connected)
