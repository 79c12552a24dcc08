"""The workspace's OAuth U2M endpoints, through databricks-sdk's own OAuth client.

Authorization code with PKCE (S256): `OAuthClient.initiate_consent` builds the authorization URL and
verifier, `Consent.exchange` redeems the code, `SessionCredentials.refresh` renews an access token;
the token's user is read with `WorkspaceClient.current_user.me()` (SCIM `Me`). The SDK's calls are
synchronous `requests` without a timeout, so each runs in a worker thread under `CALL_TIMEOUT_S`:
a slow token endpoint costs the person a clear sentence, never a hung answer. Revocation (RFC 7009)
is not in the SDK; it is one form POST to the `revocation_endpoint` the workspace's OAuth metadata
names (`{host}/oidc/.well-known/oauth-authorization-server`), else to `{host}/oidc/v1/revoke`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from agent.databricks_config import databricks_config

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 10.0
T = TypeVar("T")


class SignInFailed(Exception):
    """The workspace did not give (or renew) a token. `rejected`: it said no (a used or revoked code or
    refresh token; connecting again helps); otherwise it was unreachable or slow (trying later helps).
    The message is safe to show: it never holds a token."""

    def __init__(self, reason: str, *, rejected: bool) -> None:
        super().__init__(reason)
        self.rejected = rejected


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float  # epoch seconds

    def as_dict(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token, "expires_at": self.expires_at}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Tokens:
        return cls(str(value["access_token"]), str(value.get("refresh_token") or ""), float(value["expires_at"]))


@dataclass(frozen=True, slots=True)
class Consent:
    state: str
    url: str
    verifier: str = field(repr=False)


class WorkspaceOAuth:
    def __init__(self, *, host: str, client_id: str, redirect_url: str, scopes: list[str],
                 client_secret: str = "", timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.host = host.rstrip("/")
        self.client_id = client_id
        self.redirect_url = redirect_url
        self.scopes = scopes
        self._secret: Any = client_secret or None  # the SDK types it `str` but means "None when public"
        self.timeout_s = timeout_s
        self.token_endpoint = f"{self.host}/oidc/v1/token"
        self.authorization_endpoint = f"{self.host}/oidc/v1/authorize"

    def begin(self) -> Consent:
        """A fresh state and PKCE verifier, and the authorization URL to send the person to."""
        from databricks.sdk.oauth import OAuthClient, OidcEndpoints

        client = OAuthClient(OidcEndpoints(self.authorization_endpoint, self.token_endpoint), self.redirect_url,
                             self.client_id, self.scopes, self._secret)
        consent = client.initiate_consent()
        raw = consent.as_dict()
        return Consent(state=raw["state"], url=consent.authorization_url, verifier=raw["verifier"])

    async def exchange(self, code: str, state: str, verifier: str) -> Tokens:
        from databricks.sdk.oauth import Consent as SdkConsent

        consent = SdkConsent(state, verifier, authorization_url="", redirect_url=self.redirect_url,
                             token_endpoint=self.token_endpoint, client_id=self.client_id, client_secret=self._secret)
        # token() in the worker too: on a token that expires within 40 s it renews, blocking.
        token = await self._run(lambda: consent.exchange(code, state).token(), "redeem the sign-in")
        return _tokens(token, refresh_token="")

    async def refresh(self, tokens: Tokens) -> Tokens:
        from databricks.sdk.oauth import SessionCredentials, Token

        if not tokens.refresh_token:
            raise SignInFailed("no refresh token was issued (is offline_access in HEALTHBOT_OAUTH_SCOPES?)", rejected=True)
        credentials = SessionCredentials(Token(access_token="", refresh_token=tokens.refresh_token), self.token_endpoint,
                                         self.client_id, self._secret, self.redirect_url)
        fresh = await self._run(credentials.refresh, "renew the sign-in")
        return _tokens(fresh, refresh_token=tokens.refresh_token)  # kept when not rotated

    async def whoami(self, access_token: str) -> set[str]:
        """The token's user (SCIM Me): their user name and emails, lower-cased."""
        from databricks.sdk import WorkspaceClient

        def me() -> Any:
            config = databricks_config(host=self.host, token=access_token, auth_type="pat")
            return WorkspaceClient(config=config).current_user.me()

        user = await self._run(me, "read who signed in")
        names = {str(user.user_name or "")} | {str(e.value or "") for e in (user.emails or [])}
        return {name.lower() for name in names if name}

    async def revoke(self, refresh_token: str) -> bool:
        """Revoke at the workspace (best effort); False when it could not be done. The endpoint is the
        one the OAuth metadata names, else `{host}/oidc/v1/revoke`."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                async with http.get(f"{self.host}/oidc/.well-known/oauth-authorization-server") as response:
                    metadata = await response.json(content_type=None) if response.status == 200 else {}
                named = metadata.get("revocation_endpoint") if isinstance(metadata, dict) else None
                form = {"token": refresh_token, "token_type_hint": "refresh_token", "client_id": self.client_id}
                if self._secret:
                    form["client_secret"] = self._secret
                async with http.post(str(named or f"{self.host}/oidc/v1/revoke"), data=form) as response:
                    if response.status >= 300:
                        log.warning("revoking a refresh token: the workspace answered %s", response.status)
                    return response.status < 300
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("revoking a refresh token failed: %s", type(exc).__name__)
            return False

    async def _run(self, call: Callable[[], T], doing: str) -> T:
        try:
            return await asyncio.wait_for(asyncio.to_thread(call), self.timeout_s)
        except asyncio.TimeoutError:
            raise SignInFailed(f"Databricks did not answer within {self.timeout_s:g} s trying to {doing}",
                               rejected=False) from None
        except Exception as exc:  # the SDK raises ValueError("invalid_grant: …"), requests' errors, DatabricksError
            text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            rejected = isinstance(exc, ValueError) and text.split(":")[0].strip() in REJECTIONS
            log.info("OAuth call to %s failed (%s): %s", self.host, doing, text)
            raise SignInFailed(f"Databricks could not {doing}: {text}", rejected=rejected) from None


REJECTIONS = frozenset({"invalid_grant", "invalid_request", "invalid_client", "unauthorized_client", "access_denied"})


def _tokens(token: Any, *, refresh_token: str) -> Tokens:
    expiry = token.expiry.timestamp() if token.expiry is not None else time.time() + 3600
    return Tokens(access_token=token.access_token, refresh_token=token.refresh_token or refresh_token, expires_at=expiry)
