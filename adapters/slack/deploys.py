"""Deployments in Slack: `/healthbot rollback [VERSION]`, `/healthbot checklist`, and the buttons —
*Roll back to vN* on a rollout comparison, *Confirm* / *Cancel* on a rollback request.

The request is posted visibly (a platform team sees who asks to change the endpoint), and only the
asker's click counts; anyone else, and any refusal, gets one ephemeral line.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from slack_bolt.app.async_app import AsyncApp

from adapters.slack import translate as t
from adapters.slack.alerts import SlackAlertSink, plain
from adapters.slack.buttons import button_channel, clicker_of
from bot.alerts.delivery import CONFIRM_ACTION, DEPLOY_ACTIONS, ROLLBACK_ACTION, Note
from bot.deploy.rollback import confirmation_note
from bot.models import Incoming, Platform, ThreadKey
from bot.targets import ChannelTarget

if TYPE_CHECKING:
    from adapters.slack.app import SlackChannel
    from bot.deploy.rollback import DeployActions

NO_WORKSPACE = "Rollback and the deployment checklist need a Databricks workspace (DATABRICKS_HOST) and the serving backend."


def _value(action: dict[str, Any], key: str) -> str:
    try:
        data = json.loads(action.get("value") or "")
    except (TypeError, ValueError):
        return ""
    return str(data.get(key, "")) if isinstance(data, dict) else ""


class SlackDeploys:
    def __init__(self, bot: SlackChannel) -> None:
        self.bot = bot
        self._sink: SlackAlertSink | None = None

    @property
    def sink(self) -> SlackAlertSink:
        if self._sink is None:
            self._sink = self.bot.poster()
        return self._sink

    def register(self, app: AsyncApp) -> None:
        for action in DEPLOY_ACTIONS:
            app.action(action)(self._on_button)

    # -- /healthbot rollback | checklist ---------------------------------------------------------

    async def command(self, command: dict[str, Any], word: str, argument: str, respond: Any) -> None:
        """After the ack: the command's work, answered to the asker alone unless it goes ahead."""
        channel = str(command.get("channel_id", ""))
        asker = Incoming(key=ThreadKey(platform=Platform.SLACK, workspace=str(command.get("team_id", "")),
                                       channel=channel), user_id=str(command.get("user_id", "")),
                         text=f"/healthbot {word} {argument}".strip(), org=t.org_signals(command, {}))
        actions = self.bot.deploys
        if actions is None:
            await respond(text=NO_WORKSPACE, response_type="ephemeral")
            return
        asker = await self.bot.identify(asker)
        if word == "checklist":
            outcome = await actions.checklist_for(asker)
            if not outcome.public:
                await respond(text=outcome.text, response_type="ephemeral")
                return
            await self.sink.post_note(channel, None, Note(outcome.text, summary="Deployment checklist"))
            return
        refusal = await self.propose(actions, asker, argument or None, channel, None)
        if refusal:
            await respond(text=refusal, response_type="ephemeral")

    async def propose(self, actions: DeployActions, asker: Incoming, version: str | None, channel: str,
                      ref: dict[str, Any] | None) -> str:
        """Post the rollback request with Confirm / Cancel (in `ref`'s thread, or as a new post); the
        refusal text instead when it cannot go ahead."""
        proposal = await actions.propose(asker, version)
        if isinstance(proposal, str):
            return proposal
        posted = await self.sink.post_note(channel, ref, confirmation_note(proposal))
        await actions.hold(proposal, {"target": str(ChannelTarget(Platform.SLACK, channel)), "ref": posted})
        return ""

    # -- buttons ----------------------------------------------------------------------------------

    async def _on_button(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        self.bot.spawn(self._button(body, action))

    async def _button(self, body: dict[str, Any], action: dict[str, Any]) -> None:
        channel, user = button_channel(body), str((body.get("user") or {}).get("id", ""))
        message = body.get("message") or {}
        thread_ts = str(message.get("thread_ts") or message.get("ts") or "")
        actions = self.bot.deploys
        if actions is None:
            await self._tell(channel, user, thread_ts, NO_WORKSPACE)
            return
        clicker = await self.bot.identify(clicker_of(body, f"{action.get('action_id')} {action.get('value', '')}"[:200]))
        if await self.bot.refused(clicker):
            return  # an external or a guest: told so, to them alone
        ref = {"ts": thread_ts, "team": t.team_of(body)}
        kind = action.get("action_id")
        if kind == ROLLBACK_ACTION:
            refusal = await self.propose(actions, clicker, _value(action, "to") or None, channel, ref)
            if refusal:
                await self._tell(channel, user, thread_ts, refusal)
            return

        async def say(text: str) -> None:
            await self.sink.reply(channel, ref, text)

        rollback_id = _value(action, "id")
        outcome = await (actions.confirm(rollback_id, clicker, say) if kind == CONFIRM_ACTION
                         else actions.cancel(rollback_id, clicker))
        if not outcome.public:
            await self._tell(channel, user, thread_ts, outcome.text)
            return
        if message.get("ts"):  # the request keeps its words, loses its buttons, and says what became of it
            blocks = [b for b in message.get("blocks") or [] if b.get("type") != "actions"]
            blocks.append({"type": "context", "elements": [plain(outcome.text[:300])]})
            await self.bot.client.chat_update(channel=channel, ts=message["ts"], text=message.get("text", ""),
                                              blocks=blocks)
        await say(outcome.text)

    async def _tell(self, channel: str, user: str, thread_ts: str, text: str) -> None:
        await self.bot.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts or None)
