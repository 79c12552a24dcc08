"""A fake workspace that also signs people in: OAuth U2M with PKCE, as databricks-sdk's client speaks it.

`/oidc/v1/authorize` plays the browser's whole visit (the person is `signing_in_as`): it checks the
client, redirect URI and S256 challenge and redirects back with a code. `/oidc/v1/token` redeems a code
once (checking the verifier against the challenge) and renews with refresh tokens, rotating them when
`rotate` is set, as single-use refresh tokens do. SCIM `Me` answers for whoever holds the bearer
token, and serving invocations accept people's access tokens, recording whose each call used.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import itertools
import time
import urllib.parse
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from cryptography.fernet import Fernet

from tests.fakes.serving import fixture
from tests.fakes.workspace import FakeWorkspace

CLIENT_ID = "healthbot-oauth-client"
PUBLIC_URL = "https://healthbot.example.com"
REDIRECT_URL = f"{PUBLIC_URL}/oauth/callback"


def user_mode(workspace: FakeIdentityWorkspace) -> dict[str, str]:
    """The environment of a healthbot that asks as each person, against this workspace."""
    return {"DATABRICKS_HOST": workspace.url, "DATABRICKS_TOKEN": workspace.token, "HEALTHBOT_IDENTITY": "user",
            "HEALTHBOT_OAUTH_CLIENT_ID": CLIENT_ID, "HEALTHBOT_PUBLIC_URL": PUBLIC_URL,
            "HEALTHBOT_TOKEN_KEY": Fernet.generate_key().decode(), "HEALTHBOT_DEPLOY_CHANNELS": "off"}


async def visit(server_url: str, location: str) -> tuple[int, str]:
    """The browser at healthbot's public URL, which a proxy forwards to the server under test."""
    async with aiohttp.ClientSession() as http, http.get(location.replace(PUBLIC_URL, server_url)) as resp:
        return resp.status, await resp.text()


async def sign_in(server_url: str, link: str) -> tuple[int, str]:
    """The browser's visit: the workspace's authorization page redirects back to the callback."""
    async with aiohttp.ClientSession() as http, http.get(link, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
    return await visit(server_url, location)


@dataclass
class Issued:
    email: str
    expires_at: float


@dataclass
class FakeIdentityWorkspace(FakeWorkspace):
    signing_in_as: str = "spengler@ghostbusters.example.com"
    access_ttl_s: int = 3600
    rotate: bool = True
    token_down: bool = False  # the token endpoint answers 503
    token_delay_s: float = 0.0
    access: dict[str, Issued] = field(default_factory=dict)  # access token → whose, until when
    refresh: dict[str, str] = field(default_factory=dict)  # live refresh token → email
    revoked: list[str] = field(default_factory=list)
    codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # code → (challenge, redirect, email)
    invoked_as: list[str] = field(default_factory=list)  # whose token each invocation carried ("bot": the SP's)
    _serial: itertools.count = field(default_factory=lambda: itertools.count(1))

    def build(self, app: web.Application) -> None:
        super().build(app)
        app.router.add_get("/oidc/.well-known/oauth-authorization-server", self._metadata_oauth)
        app.router.add_get("/oidc/v1/authorize", self._authorize)
        app.router.add_post("/oidc/v1/token", self._token)
        app.router.add_post("/oidc/v1/revoke", self._revoke)

    def person(self, request: web.Request) -> str | None:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        issued = self.access.get(bearer)
        return issued.email if issued is not None and issued.expires_at > time.time() else None

    def _authorized(self, request: web.Request) -> bool:
        return super()._authorized(request) or self.person(request) is not None

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        if self._authorized(request):
            self.invoked_as.append(self.person(request) or "bot")
        return await super()._invoke(request)

    async def _metadata_oauth(self, request: web.Request) -> web.Response:
        body = fixture("oidc_oauth_authorization_server.json")
        for key, value in body.items():
            if isinstance(value, str):
                body[key] = value.replace("https://dbc-01234567-89ab.cloud.databricks.com", self.url)
        return web.json_response(body)

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        if (query.get("client_id") != CLIENT_ID or query.get("redirect_uri") != REDIRECT_URL
                or query.get("response_type") != "code" or query.get("code_challenge_method") != "S256"
                or not query.get("code_challenge") or not query.get("state")):
            return web.Response(status=400, text="invalid_request")
        code = f"code-{next(self._serial)}"
        self.codes[code] = (query["code_challenge"], query["redirect_uri"], self.signing_in_as)
        location = f"{query['redirect_uri']}?{urllib.parse.urlencode({'code': code, 'state': query['state']})}"
        raise web.HTTPFound(location)

    async def _token(self, request: web.Request) -> web.Response:
        if self.token_delay_s:
            await asyncio.sleep(self.token_delay_s)
        if self.token_down:
            return web.json_response({"error": "temporarily_unavailable", "error_description": "try later"}, status=503)
        form = await request.post()
        if form.get("client_id") != CLIENT_ID:
            return self._error("invalid_client", "unknown client")
        if form.get("grant_type") == "authorization_code":
            found = self.codes.pop(str(form.get("code")), None)
            verifier = str(form.get("code_verifier") or "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            if found is None or found[0] != challenge or found[1] != form.get("redirect_uri"):
                return self._error("invalid_grant", "authorization code is invalid or was used")
            return self._issue(found[2])
        if form.get("grant_type") == "refresh_token":
            token = str(form.get("refresh_token"))
            email = self.refresh.get(token)
            if email is None:
                return self._error("invalid_grant", "Refresh token is invalid or expired")
            if self.rotate:
                del self.refresh[token]
            return self._issue(email, keep=None if self.rotate else token)
        return self._error("unsupported_grant_type", "")

    def _issue(self, email: str, keep: str | None = None) -> web.Response:
        body = copy.deepcopy(fixture("oidc_token_response_authorization_code.json"))
        serial = next(self._serial)
        body["access_token"] = f"access-{serial}-{email}"
        body["refresh_token"] = keep or f"refresh-{serial}-{email}"
        body["expires_in"] = self.access_ttl_s
        self.access[body["access_token"]] = Issued(email, time.time() + self.access_ttl_s)
        self.refresh[body["refresh_token"]] = email
        return web.json_response(body)

    @staticmethod
    def _error(code: str, words: str) -> web.Response:
        return web.json_response({"error": code, "error_description": words}, status=400)

    async def _revoke(self, request: web.Request) -> web.Response:
        token = str((await request.post()).get("token"))
        if self.refresh.pop(token, None) is not None:
            self.revoked.append(token)
        return web.Response(status=200)

    async def _scim_me(self, request: web.Request) -> web.Response:  # whose token it is (FakeWorkspace routes it)
        email = self.person(request)
        if email is None:
            return web.json_response({"error_code": "UNAUTHENTICATED", "message": "bad token"}, status=401)
        body = fixture("scim_me.json")
        body.update(userName=email, displayName=email.split("@")[0])
        body["emails"][0]["value"] = email
        return web.json_response(body)
