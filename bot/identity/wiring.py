"""HEALTHBOT_IDENTITY=user: the Identities service the core is built with, and `healthbot doctor`'s
checks of the OAuth app's configuration (the route and /health line: adapters/host/identity_wiring.py)."""

from __future__ import annotations

from aiohttp import web

from bot.config import Settings
from bot.identity.oauth import WorkspaceOAuth
from bot.identity.service import Identities
from bot.identity.vault import Sealer
from bot.ops.report import FAIL, OK, WARN, Line
from bot.store import Store


def identities_for(settings: Settings, store: Store) -> Identities | None:
    if settings.identity != "user":
        return None
    oauth = WorkspaceOAuth(host=settings.databricks_host or "", client_id=settings.oauth_client_id,
                           redirect_url=settings.redirect_url, scopes=settings.oauth_scopes.split(),
                           client_secret=settings.oauth_client_secret.get_secret_value()
                           if settings.oauth_client_secret else "")
    sealer = Sealer.from_setting(settings.token_keys)
    return Identities(store=store.identities, oauth=oauth, sealer=sealer)


def doctor_lines(settings: Settings, app: web.Application) -> list[Line]:
    """The OAuth app integration as healthbot will use it: client, redirect URL served here, key, scopes."""
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
