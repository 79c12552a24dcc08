"""Everything healthbot sends to Teams, over one pooled aiohttp session.

botbuilder stays for what it is good at (reading activities, validating JWTs, the turn logic), but
its outbound path is msrest over `requests`: every reply was a blocking call in a worker thread,
and a proactive turn rebuilt a TurnContext and ran the middleware just to post a card (measured in
bench/teams_activities.py). Here a reply is one HTTP request on a kept-alive connection, with the
Bearer token from the credentials botbuilder already holds for that serviceUrl (the same
`AppCredentials` its ConnectorClient would sign with; none in emulator mode).

The Bot Connector REST API: POST {serviceUrl}/v3/conversations/{id}/activities[/{replyToId}],
PUT …/activities/{activityId}; answers `{"id": …}`. 429 / 5xx are retried honouring Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from botbuilder.schema import ConversationReference
from botframework.connector.auth import AuthenticationConstants, BotFrameworkAuthentication, ClaimsIdentity

from agent.errors import retry_after_s

log = logging.getLogger(__name__)

SEND_ATTEMPTS = 6
TOKEN_REUSE_S = 30 * 60.0  # Entra tokens for the Bot Connector live an hour
RETRIED = frozenset({429, 500, 502, 503, 504})


class ConnectorError(Exception):
    """The Bot Connector said no (after retries for throttling and outages)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Bot Connector {status}: {detail[:200]}")
        self.status = status

    @property
    def permanent(self) -> bool:
        """Trying later will not help: the bot was removed, the conversation is gone, a bad request."""
        return self.status in (400, 401, 403, 404)


@dataclass(frozen=True, slots=True)
class Where:
    """A conversation to send into, and the activity to reply to (None: a new post)."""

    service_url: str
    conversation: dict[str, Any]
    channel_id: str = "msteams"
    bot: dict[str, Any] | None = None
    user: dict[str, Any] | None = None
    reply_to: str | None = None

    @classmethod
    def of(cls, reference: ConversationReference) -> Where:
        """From a botbuilder reference, by hand: msrest's serialize() cost more than the send."""
        conversation = reference.conversation
        return cls(service_url=reference.service_url or "", conversation=_fields(conversation, {
                       "id": "id", "name": "name", "is_group": "isGroup", "conversation_type": "conversationType",
                       "tenant_id": "tenantId"}) if conversation is not None else {},
                   channel_id=reference.channel_id or "msteams", bot=_account(reference.bot),
                   user=_account(reference.user), reply_to=reference.activity_id or None)

    @property
    def in_channel(self) -> bool:
        """A team channel's thread, where healthbot's cards keep their own 👍 / 👎 (Teams documents its
        feedback loop for chats with a bot; docs/native-surfaces.md)."""
        return self.conversation.get("conversationType") == "channel"

    def stamp(self, activity: dict[str, Any]) -> dict[str, Any]:
        """Address the activity as botbuilder's TurnContext would (from, recipient, conversation…)."""
        stamped = {**activity, "channelId": self.channel_id, "serviceUrl": self.service_url,
                   "conversation": self.conversation}
        if self.bot:
            stamped["from"] = self.bot
        if self.user:
            stamped["recipient"] = self.user
        if self.reply_to:
            stamped["replyToId"] = self.reply_to
        return stamped


def _fields(value: Any, names: dict[str, str]) -> dict[str, Any]:
    return {wire: getattr(value, attr) for attr, wire in names.items() if getattr(value, attr, None) is not None}


def _account(value: Any) -> dict[str, Any] | None:
    return _fields(value, {"id": "id", "name": "name", "aad_object_id": "aadObjectId", "role": "role"}) \
        if value is not None else None


class Connector:
    def __init__(self, auth: BotFrameworkAuthentication, app_id: str) -> None:
        self._auth = auth
        self._app_id = app_id
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, tuple[float, str]] = {}  # serviceUrl → (fetched at, "Bearer …" or "")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, where: Where, activity: dict[str, Any]) -> str | None:
        """Post (a reply when `where.reply_to` is set); the new activity's id."""
        path = f"v3/conversations/{quote(str(where.conversation.get('id', '')), safe='')}/activities"
        if where.reply_to:
            path += f"/{quote(where.reply_to, safe='')}"
        answer = await self._call("POST", where.service_url, path, where.stamp(activity))
        return str(answer["id"]) if isinstance(answer, dict) and answer.get("id") else None

    async def create(self, service_url: str, parameters: dict[str, Any]) -> tuple[str, str]:
        """A new conversation (in Teams: a new post in a channel); its (conversation id, activity id)."""
        answer = await self._call("POST", service_url, "v3/conversations", parameters)
        if not isinstance(answer, dict) or not answer.get("id"):
            raise ConnectorError(502, f"no conversation id in {str(answer)[:100]}")
        conversation_id = str(answer["id"])
        fallback = conversation_id.split(";messageid=")[1] if ";messageid=" in conversation_id else ""
        return conversation_id, str(answer.get("activityId") or fallback)

    async def update(self, where: Where, activity_id: str, activity: dict[str, Any]) -> None:
        path = (f"v3/conversations/{quote(str(where.conversation.get('id', '')), safe='')}/activities/"
                f"{quote(activity_id, safe='')}")
        await self._call("PUT", where.service_url, path, {**where.stamp(activity), "id": activity_id})

    async def _call(self, method: str, service_url: str, path: str, body: dict[str, Any]) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        url = service_url.rstrip("/") + "/" + path
        reconnected = False
        for attempt in range(SEND_ATTEMPTS):
            headers = {"Content-Type": "application/json"}
            if token := await self._authorization(service_url):
                headers["Authorization"] = token
            try:
                async with self._session.request(method, url, json=body, headers=headers) as response:
                    if response.status < 300:
                        return await response.json(content_type=None) if response.content_length != 0 else None
                    detail, retry_after = await response.text(), retry_after_s(dict(response.headers))
            except aiohttp.ServerDisconnectedError:
                # The pooled keep-alive connection was closed by the connector before any response: the
                # request was not taken, so it is sent again once, on a fresh connection.
                if reconnected:
                    raise
                reconnected = True
                log.info("the Bot Connector closed a pooled connection before answering: sending again once")
                continue
            if response.status == 401 and attempt == 0 and token:
                self._tokens.pop(service_url, None)  # revoked or rotated: fetch a new one, once
                continue
            if response.status not in RETRIED or attempt == SEND_ATTEMPTS - 1:
                raise ConnectorError(response.status, detail)
            delay = retry_after if retry_after is not None else min(8.0, 0.5 * 2 ** attempt)
            log.info("Bot Connector answered %s; retrying in %.1f s", response.status, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _authorization(self, service_url: str) -> str:
        """`Bearer <token>` from botbuilder's credentials for this serviceUrl, reused for half an hour
        (msal caches too, but asking it is a blocking call); "" where botbuilder sends none."""
        cached = self._tokens.get(service_url)
        if cached is not None and time.monotonic() - cached[0] < TOKEN_REUSE_S:
            return cached[1]
        identity = ClaimsIdentity({AuthenticationConstants.AUDIENCE_CLAIM: self._app_id,
                                   AuthenticationConstants.APP_ID_CLAIM: self._app_id}, True)
        client = await self._auth.create_connector_factory(identity).create(service_url,
                                                                           self._auth.get_originating_audience())
        credentials = client.config.credentials
        token = ""
        if credentials is not None and credentials._should_set_token(None):
            token = "Bearer " + await asyncio.to_thread(credentials.get_access_token)
        self._tokens[service_url] = (time.monotonic(), token)
        return token
