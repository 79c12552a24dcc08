"""Rollback (and the checklist) from the chat: two steps, one person, one config update.

`propose` checks the asker (deployers only), the endpoint (no update in progress) and the target
(exists, READY); the adapter posts it with Confirm / Cancel and `hold`s it (stored, pending). `confirm`
counts only for the asker, once, within 10 minutes (bot/store/deploys.py), then sends exactly one
`update_config` with the current served entity copied and only its version changed, moves the
HEALTHBOT_ROLLBACK_ALIAS too, and says in the thread what happened and who did it. What fails
halfway is said, never retried blindly; a crash between marking and sending is reported at start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.access import AccessGate
from bot.alerts.delivery import CANCEL_ACTION, CONFIRM_ACTION, Note, NoteButton
from bot.deploy import app_rollback
from agent.endpoint_config import version_label as label
from bot.deploy.checklist import Checklist, render
from bot.deploy.workspace_calls import DeployCalls, DeployError
from bot.models import Incoming
from bot.store import RequestLogRow, Store
from bot.store.deploys import CANCELED, CONFIRM_WITHIN_S, FAILED, INTERRUPTED, PENDING, SENDING, SENT, Rollback
from bot.text import inert

log = logging.getLogger(__name__)

Say = Callable[[str], Awaitable[None]]  # a line in the rollback's thread
FOLLOW_EVERY_S = 10.0
FOLLOW_FOR_S = 3600.0
PREVIOUS_WINDOW_S = 7 * 86400.0
PREVIOUS_TRIES = 20


@dataclass(frozen=True, slots=True)
class Proposal:
    rollback: Rollback
    text: str  # "Roll back health_monitor_orchestrator from v8 to v7?" with who may confirm


def confirmation_note(proposal: Proposal) -> Note:
    """The request as posted: the question, and Confirm / Cancel carrying the rollback's id."""
    value = {"id": proposal.rollback.id}
    return Note(f"🔁 {proposal.text}", (NoteButton("Confirm", CONFIRM_ACTION, value, primary=True),
                                        NoteButton("Cancel", CANCEL_ACTION, value)), summary=proposal.text[:250])


@dataclass(frozen=True, slots=True)
class Outcome:
    text: str
    public: bool  # True: for the thread (it happened); False: for the clicker alone (a refusal)


class DeployActions:
    def __init__(self, *, calls: DeployCalls, store: Store, gate: AccessGate, alias: str | None,
                 checklist: Checklist | None = None, follow_every_s: float | None = None) -> None:
        self.calls, self.store, self.gate, self.alias = calls, store, gate, alias
        self.checklist = checklist
        self.follow_every_s = follow_every_s or FOLLOW_EVERY_S
        self._followers: set[asyncio.Task[None]] = set()

    async def checklist_for(self, msg: Incoming) -> Outcome:
        """`/healthbot checklist`: the deployment checklist (markdown), for deployers."""
        refused = await self.gate.may_deploy(msg, what="see the deployment checklist in the chat")
        if refused is not None:
            return Outcome(refused.message, public=False)
        if self.checklist is None:
            return Outcome("The deployment checklist needs a workspace.", public=False)
        items = await self.checklist.run()
        failed = sum(1 for item in items.values() if item.status == "fail")
        head = f"**Deployment checklist for {self.calls.endpoint_name}**: " + (f"{failed} to fix" if failed else "all clear")
        return Outcome(head + "\n\n" + "\n".join(f"- {line}" for line in render(items).splitlines()), public=True)

    async def propose(self, msg: Incoming, version: str | None) -> Proposal | str:
        """A rollback to confirm (not stored until `hold`), or why not (in words for the asker)."""
        refused = await self.gate.may_deploy(msg)
        if refused is not None:
            await self._audit(msg.platform.value, msg.user_id, f"rollback {version or ''}".strip(), refused.message,
                              f"refused:{refused.reason}")
            return refused.message
        try:
            view = await self.calls.endpoint()
            if view.updating:
                return (f"{self.calls.endpoint_name} is being updated right now (config "
                        f"{view.pending.version if view.pending else '?'}): roll back once that update has ended.")
            entity = view.config.primary
            if self.calls.app and entity is not None:
                target = await app_rollback.app_target(self.calls, view, version)
                if target.startswith("!"):
                    return target[1:]
                return self._proposal(msg, entity.version, target,
                                      f"Roll back the app {self.calls.app} from {label(entity.version)} to "
                                      f"{label(target)} (its code deployed again)?")
            if entity is None or not entity.version:
                return f"{self.calls.endpoint_name} serves {inert(view.config.split())}, which has no model version to roll back."
            target = (version or "").removeprefix("v").strip() or await self._previous(entity.model, entity.version)
            if not target:
                return f"No earlier version of {inert(entity.model)} is known: say which, e.g. `rollback 6`."
            if not target.isdigit():
                return f"“{target[:40]}” is not a model version number."
            if target == entity.version:
                return f"{self.calls.endpoint_name} already serves v{target}."
            found = await self.calls.model_version(entity.model, target)
        except DeployError as exc:
            return f"Cannot roll back: {inert(str(exc))}"
        if found is None:
            return f"Version {target} of {inert(entity.model)} does not exist."
        if found.status != "READY":
            return f"Version {target} of {inert(entity.model)} is {found.status or 'in no known state'}, not READY."
        alias = f" and move @{self.alias} to v{target}" if self.alias else ""
        return self._proposal(msg, entity.version, target,
                              f"Roll back {self.calls.endpoint_name} from v{entity.version} to v{target}{alias}? "
                              f"All traffic goes to v{target}; everything else of the served entity stays.")

    def _proposal(self, msg: Incoming, current: str, target: str, question: str) -> Proposal:
        now = time.time()
        record = Rollback(id=uuid.uuid4().hex, endpoint=self.calls.endpoint_name, asker=asker_key(msg),
                          asker_name=plain_name(msg.user_email or msg.user_name or msg.user_id), from_version=current,
                          to_version=target, status=PENDING, detail="", place="{}", created_at=now,
                          expires_at=now + CONFIRM_WITHIN_S, updated_at=now)
        return Proposal(record, f"{question} Only {record.asker_name} can confirm, within 10 minutes.")

    async def hold(self, proposal: Proposal, place: dict[str, object]) -> None:
        """Store the proposal as posted (`place`: where its thread is, to report into after a restart)."""
        await self.store.deploys.create_rollback(dataclasses.replace(proposal.rollback, place=json.dumps(place)))

    async def _previous(self, model: str, current: str) -> str:
        """The version served before the current one: the last other version the request log saw
        answer in the past week, else the newest READY version below the current one."""
        for row in reversed(await self.store.requests_since(time.time() - PREVIOUS_WINDOW_S)):
            if row.served_version.isdigit() and row.served_version != current:
                return row.served_version
        for candidate in list(range(int(current) - 1, 0, -1))[:PREVIOUS_TRIES] if current.isdigit() else []:
            found = await self.calls.model_version(model, str(candidate))
            if found is not None and found.status == "READY":
                return str(candidate)
        return ""

    async def cancel(self, rollback_id: str, msg: Incoming) -> Outcome:
        claimed = await self.store.deploys.claim_rollback(rollback_id, asker_key(msg), CANCELED)
        if isinstance(claimed, str):
            return Outcome(claimed, public=False)
        return Outcome(f"Rollback of {claimed.endpoint} to {label(claimed.to_version)} canceled by {claimed.asker_name}.",
                       public=True)

    async def confirm(self, rollback_id: str, msg: Incoming, say: Say) -> Outcome:
        """Send the rollback; the first line for the thread. Progress follows through `say`. The clicker's
        deployer membership is checked again here: it may have been taken away since they asked."""
        record = await self.store.deploys.rollback(rollback_id)
        if record is not None and record.asker == asker_key(msg):  # anyone else is told so by the claim below
            refused = await self.gate.may_deploy(msg)
            if refused is not None:
                await self._audit(msg.platform.value, msg.user_id, "rollback confirm", refused.message,
                                  f"refused:{refused.reason}")
                return Outcome(refused.message, public=False)
        claimed = await self.store.deploys.claim_rollback(rollback_id, asker_key(msg), SENDING)
        if isinstance(claimed, str):
            return Outcome(claimed, public=False)
        return Outcome(await self._send(claimed, say), public=True)

    async def _send(self, record: Rollback, say: Say) -> str:
        who = record.asker_name
        what = f"{record.endpoint} {label(record.from_version)} → {label(record.to_version)}"
        try:
            view = await self.calls.endpoint()
            entity = view.config.primary
            if view.updating or entity is None or entity.version != record.from_version:
                now = f"now serves {inert(view.config.split())}" + (", update in progress" if view.updating else "")
                return await self._end(record, FAILED, f"Rollback {what} not sent: the endpoint changed since it was "
                                                       f"asked ({now}). Ask again if it is still needed.")
            if self.calls.app:
                gone = await app_rollback.redeploy(self.calls, record.to_version)
                if gone:
                    return await self._end(record, FAILED, f"Rollback {what} not sent: {gone}.")
            else:
                await self.calls.update_config(view, entity, record.to_version)
        except DeployError as exc:
            return await self._end(record, FAILED, f"Rollback {what} by {who} failed: {inert(str(exc))}. Nothing was changed.")
        if self.calls.app:
            line = f"🔁 {who} rolled back {what}: {label(record.to_version)}'s code is being deployed again."
            await self._end(record, SENT, line)
            self._follow(record, say)
            return line
        line = f"🔁 {who} rolled back {what}: the config update is sent; all traffic goes to v{record.to_version}."
        if self.alias:
            try:
                await self.calls.set_alias(entity.model, self.alias, record.to_version)
                line += f" @{self.alias} now points to v{record.to_version}."
            except DeployError as exc:
                line += f" But moving @{self.alias} failed: {inert(str(exc))} — the endpoint is rolled back, the alias is not."
        await self._end(record, SENT, line)
        self._follow(record, say)
        return line

    async def _end(self, record: Rollback, status: str, line: str) -> str:
        await self.store.deploys.finish_rollback(record.id, status, line)
        platform, _, user = record.asker.partition(":")
        await self._audit(platform, user, f"rollback {record.endpoint} {label(record.from_version)} → {label(record.to_version)}",
                          line, None if status == SENT else "rollback_failed")
        log.info("rollback %s by %s: %s", record.id, record.asker_name, status)
        return line

    async def _audit(self, platform: str, user: str, question: str, answer: str, error: str | None) -> None:
        row = RequestLogRow(request_id=uuid.uuid4().hex, ts=time.time(), platform=platform, workspace="", channel="",
                            thread="", session_id="", user_id=user, question=question, answer=answer, error=error,
                            domains=["deployment"])
        await self.store.log_request(row)

    def _follow(self, record: Rollback, say: Say) -> None:
        task = asyncio.create_task(self._watch(record, say))
        self._followers.add(task)
        task.add_done_callback(self._followers.discard)

    async def _watch(self, record: Rollback, say: Say) -> None:
        """Report in the rollback's thread how the update ended (the rollout thread says it too)."""
        started = time.monotonic()
        while time.monotonic() - started < FOLLOW_FOR_S:
            await asyncio.sleep(self.follow_every_s)
            try:
                view = await self.calls.endpoint()
            except DeployError as exc:
                log.info("following rollback %s: %s", record.id, exc)
                continue
            if view.updating:
                continue
            minutes = max(1, round((time.monotonic() - started) / 60))
            primary = view.config.primary
            if self.calls.app:
                ok = view.config_update == "NOT_UPDATING" and app_rollback.landed(view, record.from_version)
            else:
                ok = view.config_update == "NOT_UPDATING" and primary is not None and primary.version == record.to_version
            if ok:
                await say(f"✅ {label(record.to_version)} is serving {record.endpoint} again (took {minutes} min).")
            else:
                await say(f"🔴 The rollback to {label(record.to_version)} did not take ({view.config_update or 'unknown'}): "
                          f"{record.endpoint} serves {inert(view.config.split())}.")
            return

    async def interrupted(self) -> list[tuple[Rollback, str]]:
        """Rollbacks a crash left between marking and sending: reported, never sent again."""
        found = []
        for record in await self.store.deploys.rollbacks_in(SENDING):
            try:
                view = await self.calls.endpoint()
                now = f"{record.endpoint} serves {inert(view.config.split())}" + (" (an update is in progress)" if view.updating else "")
            except DeployError as exc:
                now = f"the endpoint could not be read ({inert(str(exc))})"
            line = (f"⚠️ The rollback {record.endpoint} {label(record.from_version)} → {label(record.to_version)} asked by "
                    f"{record.asker_name} was interrupted by a restart; healthbot does not know whether it reached "
                    f"Databricks and will not send it again. Now {now}.")
            await self.store.deploys.finish_rollback(record.id, INTERRUPTED, line)
            found.append((record, line))
        return found

    async def close(self) -> None:
        for task in list(self._followers):
            task.cancel()


def plain_name(name: str) -> str:
    """A person's name as it may stand in markdown healthbot writes: no links, marks or mentions."""
    return "".join(c for c in name if c not in "[]()<>*`|~\\#!")[:80] or "someone"


def asker_key(msg: Incoming) -> str:
    return f"{msg.platform.value}:{msg.user_id}"
