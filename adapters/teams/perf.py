"""Documented fixes for botbuilder's per-activity cost, without forking it.

CloudAdapter builds a new msrest ConnectorClient for every activity. Each one constructs a
`msrest.universal_http.requests.ClientRetryPolicy`, whose `__init__` computes
`[i for i in range(999) if i not in self.safe_codes]` with `safe_codes` a ~500-item *list*:
about 500,000 comparisons, ~16 ms of CPU per request on this class of machine, which capped a
stock CloudAdapter at ~60 activities/s. The class attribute made a frozenset gives the same
retry codes in microseconds. The fix is idempotent and changes no behaviour.
"""

from __future__ import annotations

from typing import Any

from botframework.connector.auth import (
    AuthenticateRequestResult,
    BotFrameworkAuthentication,
    ClaimsIdentity,
    ConnectorFactory,
)
from msrest.universal_http.requests import ClientRetryPolicy


def speed_up_msrest() -> None:
    if not isinstance(ClientRetryPolicy.safe_codes, frozenset):
        ClientRetryPolicy.safe_codes = frozenset(ClientRetryPolicy.safe_codes)  # type: ignore[assignment]


class PooledConnectors(BotFrameworkAuthentication):
    """Reuse one ConnectorClient per (app id, serviceUrl, audience) instead of one per turn.

    CloudAdapter asks its connector factory for a fresh msrest ConnectorClient on every inbound
    and every proactive turn; each has its own `requests` session, so every reply opened a new TCP
    (and TLS) connection from a worker thread. A client is safe to share: its credentials object
    caches and refreshes the token itself, and urllib3's pool is thread-safe. Everything else is
    delegated unchanged to botbuilder's own authentication.
    """

    def __init__(self, inner: BotFrameworkAuthentication) -> None:
        self._inner = inner
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._token_clients: dict[str, Any] = {}

    def _pooled(self, factory: ConnectorFactory, app_id: str) -> ConnectorFactory:
        return _PooledFactory(factory, app_id, self._clients)

    async def authenticate_request(self, activity: Any, auth_header: str) -> AuthenticateRequestResult:
        result = await self._inner.authenticate_request(activity, auth_header)
        if result.connector_factory is not None:
            result.connector_factory = self._pooled(result.connector_factory, _app_id(result.claims_identity))
        return result

    async def authenticate_streaming_request(self, auth_header: str, channel_id_header: str) -> AuthenticateRequestResult:
        return await self._inner.authenticate_streaming_request(auth_header, channel_id_header)

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return self._pooled(self._inner.create_connector_factory(claims_identity), _app_id(claims_identity))

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> Any:
        """Also one per app id: botbuilder builds a TokenApiClient (and its msrest config) per turn,
        though healthbot never signs users in."""
        app_id = _app_id(claims_identity)
        client = self._token_clients.get(app_id)
        if client is None:
            client = self._token_clients[app_id] = await self._inner.create_user_token_client(claims_identity)
        return client

    def create_bot_framework_client(self) -> Any:
        return self._inner.create_bot_framework_client()

    def get_originating_audience(self) -> str:
        return self._inner.get_originating_audience()

    async def authenticate_channel_request(self, auth_header: str) -> ClaimsIdentity:
        return await self._inner.authenticate_channel_request(auth_header)


def _app_id(identity: ClaimsIdentity | None) -> str:
    claims = identity.claims if identity is not None and identity.claims else {}
    return str(claims.get("appid") or claims.get("aud") or "")


class _PooledFactory(ConnectorFactory):
    def __init__(self, inner: ConnectorFactory, app_id: str, clients: dict[tuple[str, str, str], Any]) -> None:
        self._inner = inner
        self._app_id = app_id
        self._clients = clients

    async def create(self, service_url: str, audience: str | None = None) -> Any:
        key = (self._app_id, service_url, audience or "")
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = await self._inner.create(service_url, audience)
        return client
