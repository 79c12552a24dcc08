"""The Teams adapter: botbuilder's CloudAdapter + TeamsActivityHandler on healthbot's aiohttp server.

The HTTP turn only acknowledges (typing indicator, conversation reference saved); the answer is
sent from a proactive turn (`continue_conversation`), because the endpoint may take longer than the
Bot Connector waits for the HTTP response. Only this package imports botbuilder, so moving to the
Microsoft 365 Agents SDK touches this folder alone.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import aiohttp
from aiohttp import web
from botbuilder.core import TurnContext
from botbuilder.core.serializer_helper import serializer_helper
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)
from botbuilder.schema import Activity, ActivityTypes, ConversationReference
from msrest.exceptions import ClientRequestError, DeserializationError, HttpOperationError

from adapters.teams import emulator
from adapters.teams import translate as t
from adapters.teams.answering import TeamsAnswering
from adapters.teams.outbound import Connector, ConnectorError, Where
from adapters.teams.perf import PooledConnectors, speed_up_msrest
from adapters.teams.validate import checked_activity
from bot.background import SHUTDOWN_GRACE_S, TaskSet
from bot.config import Settings
from adapters.channel_base import CoreChannel
from bot.core import Core
from bot.ops.health import Check
from bot.inbound import BadInput, refusals
from bot.models import Incoming, Membership, Platform, Reply

if TYPE_CHECKING:
    from adapters.teams.alerts import TeamsAlertSink

log = logging.getLogger(__name__)

SEND_ATTEMPTS = 6
ROUTE = "POST /api/messages"


class BotConfig:
    """The attribute names botbuilder's ConfigurationBotFrameworkAuthentication reads."""

    def __init__(self, settings: Settings) -> None:
        self.APP_ID = settings.microsoft_app_id
        self.APP_PASSWORD = settings.microsoft_app_password.get_secret_value() if settings.microsoft_app_password else ""
        # Without an app id botbuilder authenticates nobody (emulator mode, or Teams off), which it
        # allows only as "MultiTenant"; with one, the configured type (SingleTenant by default).
        self.APP_TYPE = settings.microsoft_app_type if settings.microsoft_app_id else "MultiTenant"
        self.APP_TENANTID = settings.microsoft_app_tenant_id


# What a Bot Connector that is down, unreachable or refusing raises, through our sender or botbuilder's.
UNREACHABLE = (ConnectorError, aiohttp.ClientError, HttpOperationError, ClientRequestError, OSError, TimeoutError)


class TeamsChannel(CoreChannel):
    platform = Platform.TEAMS

    def __init__(self, core: Core) -> None:
        speed_up_msrest()
        settings = core.settings
        super().__init__(core)
        self.app_id = settings.microsoft_app_id
        self.emulator = not settings.microsoft_app_id and settings.teams_emulator
        self.off = not settings.microsoft_app_id and not settings.teams_emulator
        self.allowed_tenants = set(settings.teams_tenants)  # empty: not checked (emulator mode)
        self.adapter = CloudAdapter(PooledConnectors(ConfigurationBotFrameworkAuthentication(BotConfig(settings))))
        self.adapter.on_turn_error = self._on_turn_error
        self.connector = Connector(self.adapter.bot_framework_authentication, self.app_id)
        self._members: dict[str, tuple[float, Any]] = {}  # member id → (expiry, TeamsChannelAccount)
        self.answers: OrderedDict[str, str] = OrderedDict()  # answer activity id → request id (remember_answer)
        self._remembered: dict[str, tuple[str | None, ...]] = {}
        self._tasks = TaskSet(what="Teams work in the background", expected=UNREACHABLE)
        from adapters.teams.bot import TeamsBot
        from adapters.teams.connect import TeamsConnect

        self.bot = TeamsBot(self)
        self.connect = TeamsConnect(self)
        self.answering = TeamsAnswering(self)

    async def health(self) -> Check:
        """With credentials: a token from Microsoft Entra for the Bot Connector proves them."""
        if self.off:
            return Check(True, "off: no Bot Framework credentials (MICROSOFT_APP_ID, MICROSOFT_APP_PASSWORD)")
        if self.emulator:
            return Check(True, "no credentials: local emulator mode (HEALTHBOT_TEAMS_EMULATOR=on, loopback only)")
        from botframework.connector.auth import MicrosoftAppCredentials

        password = self.settings.microsoft_app_password.get_secret_value() if self.settings.microsoft_app_password else ""
        credentials = MicrosoftAppCredentials(self.app_id, password, channel_auth_tenant=self.settings.microsoft_app_tenant_id or None)
        try:
            token = await asyncio.wait_for(asyncio.to_thread(credentials.get_access_token), timeout=15)
        except Exception as exc:  # msal raises several types; never echo the secret
            return Check(False, f"Teams credentials did not obtain a token: {type(exc).__name__}")
        return Check(bool(token), "Teams credentials obtain a token" if token else "Teams credentials obtained no token")

    def poster(self) -> TeamsAlertSink:
        from adapters.teams.alerts import TeamsAlertSink

        return TeamsAlertSink(self)

    def mount(self, app: web.Application) -> None:
        app.router.add_post("/api/messages", self.messages)
        app.on_cleanup.append(self._stop)
        if self.emulator:
            log.warning("Teams emulator mode is on (HEALTHBOT_TEAMS_EMULATOR=on): unauthenticated activities from "
                        "loopback callers are accepted on /api/messages; never use it where other people can connect")

    async def _stop(self, _: web.Application) -> None:
        await self.drain(SHUTDOWN_GRACE_S)
        await self.connector.close()

    async def drain(self, timeout: float | None = None) -> None:
        await self._tasks.drain(timeout)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(work)

    # -- HTTP transport ---------------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        """POST /api/messages: 400 with a reason for bodies the connector never sends, 401 for bad
        JWTs (botbuilder) and when Teams is off, and in emulator mode loopback callers only (emulator.py)."""
        if self.off:
            refusals.refused(ROUTE, "Teams is off", status=401)
            return web.json_response({"error": "Teams is off: set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD (or "
                                               "HEALTHBOT_TEAMS_EMULATOR=on for a local tool)"}, status=401)
        try:
            body = checked_activity(await request.read())
            if self.emulator:
                why, service_url = emulator.refusal(request.remote, request.headers, str(body.get("serviceUrl") or ""))
                if why:
                    refusals.refused(ROUTE, why, status=401)
                    return web.json_response({"error": f"unauthorized: {why}"}, status=401)
                body["serviceUrl"] = service_url  # rebuilt from the checked parts: what every client then uses
            activity = Activity().deserialize(body)
        except (BadInput, DeserializationError) as exc:  # DeserializationError: what msrest still refuses
            reason = str(exc).splitlines()[0][:300]
            refusals.refused(ROUTE, reason)
            return web.json_response({"error": f"malformed body: {reason}"}, status=400)
        try:
            authenticated = await self.adapter.bot_framework_authentication.authenticate_request(
                activity, request.headers.get("Authorization", "")
            )
        except Exception as exc:  # PermissionError, jwt errors, an unknown key id (IndexError)…
            refusals.refused(ROUTE, f"{type(exc).__name__}: {str(exc)[:200]}", status=401)
            return web.json_response({"error": "unauthorized: missing or invalid Bot Framework token"}, status=401)
        # What CloudAdapter.process does after authenticating, so that any failure above is a 401 and
        # not a 500 (botbuilder only maps PermissionError).
        invoke_response = await self.adapter.process_activity(authenticated, activity, self.bot.on_turn)
        if invoke_response is not None and invoke_response.status == 501:  # botbuilder: no handler for it
            return web.json_response({"error": f"invoke {activity.name!r} is not supported"}, status=400)
        if invoke_response is not None:
            body = invoke_response.body  # a dict is already JSON (bot.message_response)
            return web.json_response(body if isinstance(body, dict) else serializer_helper(body),
                                     status=invoke_response.status)
        return web.Response(status=201)

    async def _on_turn_error(self, context: TurnContext, error: Exception) -> None:
        """Never a stack trace to a user: log it, and say something short in the conversation. If even
        that fails (the connector is unreachable), the failure is logged and the turn ends quietly."""
        if isinstance(error, DeserializationError):  # a field botbuilder reads in a shape it cannot take
            refusals.refused(ROUTE, f"activity {context.activity.type} could not be read: {str(error)[:200]}")
            return
        if isinstance(error, UNREACHABLE):  # the connector refused, timed out or said no: not our bug
            log.warning("Teams turn ended: the Bot Connector at %s could not be reached or refused: %s",
                        urlparse(str(context.activity.service_url or "")).hostname, type(error).__name__)
            return
        log.error("Teams turn failed: %s: %s", type(error).__name__, str(error)[:300], exc_info=error)
        if context.activity.type == ActivityTypes.message:
            try:
                await context.send_activity("Sorry, healthbot hit an internal error handling that message.")
            except Exception as exc:
                log.warning("could not tell the Teams conversation about it either: %s", type(exc).__name__)

    # -- helpers for the activity handler ----------------------------------------------------

    def tenant_allowed(self, activity: Activity) -> bool:
        tenant = t.tenant_of(activity)
        if self.allowed_tenants and tenant not in self.allowed_tenants:
            log.warning("refused a Teams activity from tenant %s (not in HEALTHBOT_TEAMS_TENANT_IDS)", tenant)
            return False
        return True

    async def remember(self, activity: Activity) -> None:
        """Store the conversation reference the first time a channel or chat is seen (or when where
        it lives changes). Compared by a few ids: serializing it per message cost more than the rest
        of the turn (msrest, bench/teams_activities.py)."""
        channel = t.channel_of(activity)
        seen = (activity.service_url, activity.conversation.id.split(";messageid=")[0] if activity.conversation else "",
                activity.recipient.id if activity.recipient else "", activity.from_property.id if activity.from_property else "")
        if self._remembered.get(channel) == seen:
            return  # already stored by this process: spare the store a write per message
        reference = TurnContext.get_conversation_reference(activity)
        reference.activity_id = None  # a channel-level reference: new posts, not replies
        if reference.conversation is not None:
            reference.conversation.id = reference.conversation.id.split(";messageid=")[0]
        if await self.handler.store.save_reference("teams", channel, reference.serialize()):
            log.info("stored the Teams conversation reference for %s", channel)
        self._remembered[channel] = seen

    async def identify(self, context: TurnContext, message: Incoming) -> Incoming:
        """Who asked (TeamsInfo member lookup, cached): email or UPN for the endpoint, and how they
        belong to the conversation's tenant for the access gate."""
        from botbuilder.core.teams import TeamsInfo

        member_id = context.activity.from_property.id if context.activity.from_property else ""
        cached = self._members.get(member_id)
        if cached is None or cached[0] <= time.monotonic():
            try:
                member = await TeamsInfo.get_member(context, member_id)
            except Exception as exc:  # msrest raises several types: unverified, refused, asked again next time
                log.info("TeamsInfo.get_member failed for %s: %s", member_id, type(exc).__name__)
                # The emulator (no credentials, loopback only) has no member lookup: the developer
                # at this machine is a member; with credentials nobody is let in unchecked.
                kind = Membership.MEMBER if self.emulator else Membership.UNVERIFIED
                return message.model_copy(update={"membership": kind})
            cached = self._members[member_id] = (time.monotonic() + 3600, member)
        member = cached[1]
        kind, org = t.membership(member, home_tenant=t.tenant_of(context.activity))
        return message.model_copy(update={"user_email": member.email or member.user_principal_name or "",
                                          "membership": kind, "org": org})

    async def send(self, where: Where | TurnContext, activity: dict[str, Any] | str) -> str | None:
        """Send over the pooled connector (a TurnContext: as a reply to its activity); the new id."""
        if isinstance(where, TurnContext):
            where = Where.of(TurnContext.get_conversation_reference(where.activity))
        return await self.connector.send(where, {"type": "message", "text": activity}
                                         if isinstance(activity, str) else activity)

    # -- answering (adapters/teams/answering.py) ---------------------------------------------

    def ask(self, reference: ConversationReference, message: Incoming) -> None:
        self.answering.ask(reference, message)

    async def send_reply(self, where: Where, reply: Reply, charts: list[dict[str, Any]] | None = None) -> None:
        await self.answering.send_reply(where, reply, charts)
