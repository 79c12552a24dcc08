"""The Slack adapter: slack-bolt's AsyncApp on healthbot's aiohttp server, or over Socket Mode.

Events are acknowledged at once (Bolt acks Events API requests before running the listener) and
answered from the listener; commands and buttons call `ack()` first thing. Slack needs the ack
within 3 s, otherwise it retries and people get duplicate answers (bolt-python #868, #1027).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.set_title.async_set_title import AsyncSetTitle
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import translate as t
from adapters.slack.client import (
    EXPECTED,
    UserDirectory,
    configure_web_client,
    describe,
    error_code,
    post_messages,
    web_api_json,
)
from adapters.slack.answering import SlackAnswering
from adapters.slack.assistant import PROMPTS_TITLE, TITLE_LIMIT, SlackAssistant, StatusPlaceholder, cosmetic
from adapters.slack.buttons import SlackButtons
from adapters.slack.commands import SlackCommands
from adapters.slack.connect import SlackConnect
from adapters.slack.deploys import SlackDeploys
from adapters.slack.home import SlackHome
from adapters.slack.progress import Placeholder
from adapters.slack.validate import checked_body
from bot.background import SHUTDOWN_GRACE_S, TaskSet, logged
from adapters.channel_base import CoreChannel
from bot.core import Core
from bot.ops.health import Check
from bot.inbound import BadInput, decode, refusals
from bot.models import Incoming, Membership, Platform

if TYPE_CHECKING:
    from adapters.slack.alerts import SlackAlertSink

log = logging.getLogger(__name__)

SOCKET_PING_INTERVAL_S = 10.0  # slack_sdk's default; also its pause between connection attempts
ROUTE = "POST /slack/events"


class SlackChannel(CoreChannel):
    platform = Platform.SLACK

    def __init__(self, core: Core) -> None:
        settings = core.settings
        assert settings.slack_bot_token is not None
        super().__init__(core)
        self.allowed_teams = set(settings.slack_team_ids)
        token = settings.slack_bot_token.get_secret_value()
        self._secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        self._verifier = SignatureVerifier(self._secret) if self._secret else None
        self._http: aiohttp.ClientSession | None = None
        self._tasks = TaskSet(what="Slack work in the background", expected=EXPECTED, describe=describe)
        self._socket: AsyncSocketModeHandler | None = None
        self._socket_task: asyncio.Task[None] | None = None
        # Signatures are checked in `events` (401 before any parsing), so Bolt's own check is off.
        self.app = AsyncApp(token=token, signing_secret=self._secret or None,
                            request_verification_enabled=False, process_before_response=False)
        self.client: AsyncWebClient = configure_web_client(self.app.client, base_url=settings.slack_api_url)
        self.users = UserDirectory(self.client)
        self._installation: frozenset[str] = frozenset()  # auth.test team_id and enterprise_id: who installed healthbot
        self.workspace_url = ""  # auth.test `url` (https://acme.slack.com/): links to messages
        self.commands = SlackCommands(self)
        self.deploy_commands = SlackDeploys(self)
        self.assistant = SlackAssistant(self)
        self.home = SlackHome(self)
        self.connect = SlackConnect(self)
        self.answering = SlackAnswering(self)
        self._register()

    # -- wiring -----------------------------------------------------------------------------

    async def health(self) -> Check:
        """auth.test: the token is valid and the workspace reachable."""
        try:
            response = await self.client.auth_test()
        except SlackApiError as exc:
            return Check(False, f"Slack auth.test failed: {error_code(exc)}")
        except Exception as exc:  # network errors
            return Check(False, f"Slack unreachable: {type(exc).__name__}")
        if response.get("team"):  # refusals name the workspace ("healthbot answers members of Acme only")
            self.handler.access.org_names[Platform.SLACK] = str(response["team"])
        self._installation = frozenset(str(response.get(k) or "") for k in ("team_id", "enterprise_id")) - {""}
        self.workspace_url = str(response.get("url") or "")
        return Check(True, f"Slack workspace {response.get('team')} as {response.get('user')}")

    def poster(self) -> SlackAlertSink:
        from adapters.slack.alerts import SlackAlertSink

        return SlackAlertSink(self)

    def mount(self, app: web.Application) -> None:
        if self._verifier is not None:
            app.router.add_post("/slack/events", self.events)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)

    async def _start(self, _: web.Application) -> None:
        self._http = aiohttp.ClientSession(json_serialize_bytes=web_api_json)
        self.client.session = self._http  # one pooled session for every Web API call
        if self.settings.slack_app_token is not None:
            self._socket = AsyncSocketModeHandler(self.app, self.settings.slack_app_token.get_secret_value(),
                                                  ping_interval=SOCKET_PING_INTERVAL_S)
            # In the background: slack_sdk's connect() retries until Slack answers, and a Slack outage
            # at start must not keep the server (and its /health) from coming up.
            self._socket_task = asyncio.create_task(self._socket.connect_async())

    async def _stop(self, _: web.Application) -> None:
        if self._socket_task is not None:
            self._socket_task.cancel()
        if self._socket is not None:
            await self._socket.close_async()
        await self.drain(SHUTDOWN_GRACE_S)
        if self._http is not None:
            await self._http.close()

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for answers still being worked on (shutdown: at most `timeout`; tests: all of them)."""
        await self._tasks.drain(timeout)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(work)

    # -- HTTP transport ---------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.Response:
        """POST /slack/events: 401 on a bad or stale signature, 400 with a reason on a body Slack never
        sends, 200 without Bolt for kinds healthbot does not act on."""
        body = await request.read()
        try:
            valid = self._verifier is not None and self._verifier.is_valid_request(body, request.headers)
        except UnicodeDecodeError:  # slack_sdk verifies text: check the bytes, so a signed body is a 400
            valid = self._signed_bytes(body, request.headers)
        except ValueError:  # a timestamp that is not a number
            valid = False
        if not valid:
            refusals.refused(ROUTE, "invalid or stale Slack signature", status=401)
            return web.json_response({"error": "invalid or stale Slack signature"}, status=401)
        try:
            text = checked_body(decode(body), request.content_type)
        except BadInput as exc:
            refusals.refused(ROUTE, str(exc))
            return web.json_response({"error": f"malformed body: {exc}"}, status=400)
        if text is None:
            return web.Response(status=200)
        bolt_request = AsyncBoltRequest(body=text, query=request.query_string, headers=dict(request.headers))
        response = await self.app.async_dispatch(bolt_request)
        if response.status == 404:  # an event type nobody listens to: ignore it, or Slack retries
            response = BoltResponse(status=200, body="")
        return await to_aiohttp_response(response)

    def _signed_bytes(self, body: bytes, headers: Any) -> bool:
        """Slack's v0 signature over raw bytes, for bodies slack_sdk cannot decode (same algorithm,
        same freshness window as slack_sdk.signature)."""
        timestamp, signature = headers.get("X-Slack-Request-Timestamp", ""), headers.get("X-Slack-Signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 60 * 5:
            return False
        digest = hmac.new(self._secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(f"v0={digest}", signature)

    # -- listeners --------------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app

        async def only_allowed_workspaces(body: dict[str, Any], next: Any) -> BoltResponse | None:
            team = t.team_of(body) or str((body.get("user") or {}).get("team_id", ""))
            if team not in self.allowed_teams:
                log.warning("refused a request from Slack workspace %s (not in HEALTHBOT_SLACK_TEAM_IDS)", team)
                return BoltResponse(status=200, body="healthbot is not enabled for this workspace.")
            return await next()

        if self.allowed_teams:  # a middleware costs every request bolt's argument matching, even when it lets all pass
            app.middleware(only_allowed_workspaces)
        app.assistant(self.assistant.middleware)  # the agent view's events and its threads' questions
        app.event("app_mention")(self._on_message)
        app.event("message")(self._on_message)
        self.home.register(app)
        app.event(re.compile(".*"))(self._ignore)  # last: bolt runs the first listener that matches
        app.command(re.compile(r"^/healthbot"))(self.commands.on_command)
        SlackButtons(self).register(app)
        self.deploy_commands.register(app)
        self.connect.register(app)

    async def _ignore(self) -> None:
        return None

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any], context: Any,
                          set_status: Any = None) -> None:
        # Bolt would log a listener's exception with its traceback: handled here, in one line
        await logged(self._message(body, event, context, set_status), what="Slack message", expected=EXPECTED,
                     describe=describe)

    async def _message(self, body: dict[str, Any], event: dict[str, Any], context: Any, set_status: Any) -> None:
        message = t.event_to_incoming(body, event, context.get("bot_user_id"))
        if message is None:
            return
        if message.is_thread_followup and not message.is_dm and not await self.handler.takes_part_in(message.key):
            return  # a thread healthbot is not part of
        placeholder = None
        if message.is_dm and "app_context" in event and set_status is not None:
            # the agent messaging experience: Slack's status line while answering, as in the assistant view
            # (bolt ≥ 1.30 hands `set_status` to any DM message's listener, for its thread)
            placeholder = StatusPlaceholder(self.client, set_status, channel=message.key.channel,
                                            thread_ts=message.key.thread)
            if not message.is_thread_followup:  # a new conversation: its question names it in the Messages tab
                title = AsyncSetTitle(client=self.client, channel_id=message.key.channel, thread_ts=message.key.thread)
                self.spawn(cosmetic("assistant.threads.setTitle", title(message.text[:TITLE_LIMIT] or PROMPTS_TITLE)))
        await self.answer(message, channel=message.key.channel, thread_ts=message.key.thread, placeholder=placeholder)

    async def answer(self, message: Incoming, *, channel: str, thread_ts: str, replace_ts: str | None = None,
                     placeholder: Placeholder | None = None) -> None:
        await self.answering.answer(message, channel=channel, thread_ts=thread_ts, replace_ts=replace_ts,
                                    placeholder=placeholder)

    async def identify(self, message: Incoming) -> Incoming:
        """Who asked (users.info, cached): the email the endpoint is told, and how they belong to this
        workspace for the access gate (guest, another organisation)."""
        if message.membership is Membership.OPERATOR:
            return message  # healthbot itself (an alert investigation)
        user = await self.users.lookup(message.user_id)
        update: dict[str, Any] = {"user_email": user.email, "user_name": user.name or message.user_name}
        if message.membership is Membership.UNVERIFIED:
            if not self._installation:
                await self.health()  # auth.test, until it answers: the installation, and its name for refusals
            if self._installation:
                membership, foreign = user.membership(message.org, self._installation)
                update.update(membership=membership, org=foreign)
            else:  # nobody to compare with: refused as unverified, asked again next message
                update.update(org="")
        return message.model_copy(update=update)

    async def refused(self, message: Incoming, respond: Any = None) -> bool:
        """Check the asker before healthbot does anything visible for them (a slash command's question
        in the channel, an alert button): True, with the refusal shown to them alone, when barred."""
        reply = await self.handler.refusal_for(await self.identify(message))
        if reply is None:
            return False
        if not reply.content:
            return True  # over the request limit: nothing is shown (the handler logged it)
        if respond is not None:  # a slash command: its response_url, ephemeral
            await respond(text=reply.content, response_type="ephemeral", replace_original=False)
        else:
            await self.client.chat_postEphemeral(channel=message.key.channel, user=message.user_id, text=reply.content,
                                                 thread_ts=message.key.thread or None)
        return True

    async def post(self, channel: str, thread_ts: str | None, messages: list[tuple[str, list[dict[str, Any]]]],
                   *, replace_ts: str | None = None) -> list[dict[str, Any]]:
        """Post; the blocks the last message went with (client.post_messages)."""
        return await post_messages(self.client, channel, thread_ts, messages, replace_ts=replace_ts)

