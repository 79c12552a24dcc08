"""Deployments in Teams: `rollback [VERSION]` and `checklist` said to the bot, and the card buttons —
*Roll back to vN* on a rollout comparison, *Confirm* / *Cancel* on a rollback request (Action.Execute).

The request is a card in the conversation; only the asker's click counts, anyone else's (and any
refusal) is a message to the clicker alone (the invoke's answer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botbuilder.core import TurnContext

from adapters.teams import translate as t
from adapters.teams.alerts import note_card
from adapters.teams.outbound import Where
from bot.alerts.delivery import CONFIRM_ACTION, DEPLOY_ACTIONS, ROLLBACK_ACTION, Note
from bot.deploy.rollback import confirmation_note
from bot.models import Incoming, Platform
from bot.targets import ChannelTarget

if TYPE_CHECKING:
    from adapters.teams.app import TeamsChannel

VERBS = frozenset(DEPLOY_ACTIONS)
NO_WORKSPACE = "Rollback and the deployment checklist need a Databricks workspace (DATABRICKS_HOST) and the serving backend."


def deploy_word(text: str) -> tuple[str, str] | None:
    """`rollback 7` → ("rollback", "7"); `checklist` → ("checklist", ""); None for anything else."""
    words = text.strip(" .!").split()
    if not words:
        return None
    if words[0].lower() == "roll" and len(words) > 1 and words[1].lower() == "back":
        words = ["rollback", *words[2:]]
    head = words[0].lower()
    if head not in ("rollback", "checklist") or len(words) > 2:
        return None
    return head, words[1] if len(words) > 1 else ""


def _place(turn_context: TurnContext) -> dict[str, Any]:
    """Where the rollback's thread is, in the Teams alert sink's reference shape."""
    reference = TurnContext.get_conversation_reference(turn_context.activity)
    conversation = reference.conversation
    return {"conversation_id": conversation.id if conversation else "", "activity_id": reference.activity_id or "",
            "service_url": reference.service_url or "", "tenant": (conversation.tenant_id if conversation else "") or "",
            "bot": reference.bot.serialize() if reference.bot else None}


class TeamsDeploys:
    def __init__(self, teams: TeamsChannel) -> None:
        self.teams = teams

    async def said(self, turn_context: TurnContext, message: Incoming, word: str, argument: str) -> None:
        actions = self.teams.deploys
        if actions is None:
            await self.teams.send(turn_context, NO_WORKSPACE)
            return
        asker = await self.teams.identify(turn_context, message)
        if word == "checklist":
            outcome = await actions.checklist_for(asker)
            await self.teams.send(turn_context, t.card_message(note_card(Note(outcome.text)), "Deployment checklist")
                                  if outcome.public else outcome.text)
            return
        refusal = await self.propose(turn_context, asker, argument or None)
        if refusal:
            await self.teams.send(turn_context, refusal)

    async def propose(self, turn_context: TurnContext, asker: Incoming, version: str | None) -> str:
        actions = self.teams.deploys
        assert actions is not None
        proposal = await actions.propose(asker, version)
        if isinstance(proposal, str):
            return proposal
        note = confirmation_note(proposal)
        await self.teams.send(turn_context, t.card_message(note_card(note), note.summary))
        await actions.hold(proposal, {"target": str(ChannelTarget(Platform.TEAMS, t.channel_of(turn_context.activity))),
                                      "ref": _place(turn_context)})
        return ""

    async def clicked(self, turn_context: TurnContext, verb: str, data: dict[str, Any],
                      clicker: Incoming) -> dict[str, Any] | str:
        """The invoke's answer: a card (what became of the request) or a line for the clicker alone."""
        actions = self.teams.deploys
        if actions is None:
            return NO_WORKSPACE
        if verb == ROLLBACK_ACTION:
            refusal = await self.propose(turn_context, clicker, str(data.get("to") or "") or None)
            return refusal or "Rollback requested: confirm it on the card below."
        where = Where.of(TurnContext.get_conversation_reference(turn_context.activity))

        async def say(text: str) -> None:
            await self.teams.connector.send(where, {"type": "message", "text": text, "textFormat": "plain"})

        rollback_id = str(data.get("id") or "")
        outcome = await (actions.confirm(rollback_id, clicker, say) if verb == CONFIRM_ACTION
                         else actions.cancel(rollback_id, clicker))
        if not outcome.public:
            return outcome.text
        return note_card(Note(outcome.text))
