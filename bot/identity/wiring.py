"""HEALTHBOT_IDENTITY=user on `healthbot serve`: the Identities service, its callback route, its
`/health` line (how many people are connected, never who or which token) and `healthbot doctor`'s
checks of the OAuth app's configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.config import Settings
from bot.identity.callback import mount_identity
from bot.identity.oauth import WorkspaceOAuth
from bot.identity.service import Identities
from bot.identity.vault import Sealer
from bot.ops.health import Check, HealthChecks
from bot.store import Store

if TYPE_CHECKING:
    from bot.ops.doctor import Line


def identities_for(settings: Settings, store: Store) -> Identities | None:
    if settings.identity != "user":
        return None
    oauth = WorkspaceOAuth(host=settings.databricks_host or "", client_id=settings.oauth_client_id,
                           redirect_url=settings.redirect_url, scopes=settings.oauth_scopes.split(),
                           client_secret=settings.oauth_client_secret.get_secret_value()
                           if settings.oauth_client_secret else "")
    sealer = Sealer.from_setting(settings.token_keys)
    return Identities(store=store.identities, oauth=oauth, sealer=sealer)


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


def doctor_lines(settings: Settings, app: web.Application) -> list[Line]:
    """The OAuth app integration as healthbot will use it: client, redirect URL served here, key, scopes."""
    from bot.ops.doctor import FAIL, OK, WARN, Line

    if settings.identity != "user":
        return [Line(OK, "identity", "questions are asked as healthbot's service principal (HEALTHBOT_IDENTITY)")]
    routes = {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource is not None}
    served = ("GET", "/oauth/callback") in routes
    scopes = settings.oauth_scopes.split()
    keys = Sealer.from_setting(settings.token_keys).keys
    lines = [
        Line(OK, "oauth client", f"{settings.oauth_client_id} at {settings.databricks_host}/oidc/v1/authorize"
                                 + (" (confidential: a client secret is set)" if settings.oauth_client_secret else
                                    " (public: PKCE, no secret)")),
        Line(OK if served else FAIL, "oauth redirect", f"{settings.redirect_url} is served by this app" if served else
             f"{settings.redirect_url}: no /oauth/callback route", "register exactly this URL on the OAuth app integration"),
        Line(OK, "token key", f"{keys} Fernet key{'s' if keys != 1 else ''}; the first seals new tokens"),
    ]
    if "offline_access" not in scopes:
        lines.append(Line(WARN, "oauth scopes", f"{' '.join(scopes)} has no offline_access: people must sign in again "
                                                "every hour", "add offline_access to HEALTHBOT_OAUTH_SCOPES"))
    return lines
