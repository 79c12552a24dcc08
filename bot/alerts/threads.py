"""One alert, one thread per target: roots, updates, state-change replies, digests and buttons.

Posting a root and recording it cannot be one transaction, so the intent is recorded first (a
thread row whose `thread_ref` is `{"posting": <time>}`), then the root is posted, then its
reference saved. A delivery that finds an intent left by a worker that died in between asks the
platform whether the root was posted (Slack: the alert key in the message metadata) and adopts it
instead of posting twice.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from agent.base import ChatMessage
from bot.alerts.delivery import ROLLBACK_ACTION, Note, NoteButton
from bot.ports import ThreadPoster
from bot.alerts.model import Alert, AlertSource, AlertView
from bot.handler import ConversationHandler
from bot.models import Incoming, Membership, Platform
from bot.store.base import AlertStore, AlertThread
from bot.alerts import care
from bot.alerts.alert_charts import record_value, values_chart
from bot.targets import ChannelTarget, parse_target

log = logging.getLogger(__name__)

DIGEST_KEY = "digest"
STORM_WINDOW_S = 60.0
POSTING = "posting"  # thread_ref of a root being posted: the intent


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def view_of(thread: AlertThread) -> AlertView:
    alert = Alert.model_validate(thread.alert)
    resolved = thread.last_seen - thread.first_seen if alert.clear else None
    return AlertView(alert=alert, count=thread.count, first_seen=_at(thread.first_seen), last_seen=_at(thread.last_seen),
                     acknowledged_by=thread.acknowledged_by, resolved_after_s=resolved,
                     snoozed=care.snooze_line(thread), flapping=bool(thread.care.get("flapping")))


def transition_text(alert: Alert, previous: str, seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    if alert.rollout:
        from bot.deploy.rollout import transition_line

        return transition_line(alert, minutes)
    if alert.clear and alert.source == AlertSource.JOB and alert.run_id:
        return f"✅ {alert.name} recovered: {alert.description} (failing for {minutes} min)."
    if alert.clear:
        return f"✅ {alert.name} is {alert.state} (resolved after {minutes} min)."
    return f"🔔 {alert.name} is {alert.state} again (was {previous} for {minutes} min)."


def note_of(alert: Alert) -> Note:
    buttons: tuple[NoteButton, ...] = ()
    if alert.rollback_to:
        buttons = (NoteButton(f"Roll back to v{alert.rollback_to}", ROLLBACK_ACTION, {"to": alert.rollback_to},
                              primary=True),)
    return Note(alert.note, buttons, summary=alert.note.splitlines()[0][:250])


class AlertThreads:
    def __init__(self, *, alerts: AlertStore, handler: ConversationHandler, sinks: dict[Platform, ThreadPoster],
                 storm_threshold: int = 10) -> None:
        self.alerts = alerts
        self.handler = handler
        self.sinks = sinks
        self.storm_threshold = storm_threshold

    async def apply(self, sink: ThreadPoster, target: ChannelTarget, alert: Alert, investigate: bool) -> None:
        now = time.time()
        thread = await self.alerts.thread(alert.key, str(target))
        if alert.source == AlertSource.DIGEST:
            if thread is None:  # once per period and channel; a redelivery finds the thread and stops
                await self._post_digest(sink, target, alert, now)
            return
        if thread is None:
            await self._open(sink, target, alert, investigate, now)
        elif POSTING in thread.thread_ref:  # a worker died between posting the root and recording it
            await self._post_root(sink, target, thread, investigate, reconcile=True)
        elif not (alert.note or alert.reminder):
            await self._change(sink, target, thread, alert, now)
        if alert.note or alert.reminder:  # a message in the thread; the state stays
            thread = await self.alerts.thread(alert.key, str(target))
            if thread is None or POSTING in thread.thread_ref:
                return
            if alert.note:  # a rollout's before / after comparison
                await sink.post_note(target.channel, thread.thread_ref, note_of(alert))
                await self._chart(sink, target, thread, alert)
            elif care.wants_reminder(thread, now):  # still unacknowledged, not snoozed, still firing
                minutes = max(1, round((now - thread.state_since) / 60))
                await sink.remind(target.channel, thread.thread_ref,
                                  f"⏰ Reminder {alert.reminder}/{care.MAX_REMINDERS}: {alert.name} is still {thread.state} "
                                  f"after {minutes} min and nobody has acknowledged it.", alert.oncall)

    async def _change(self, sink: ThreadPoster, target: ChannelTarget, thread: AlertThread, alert: Alert,
                      now: float) -> None:
        thread.last_seen = now
        thread.care["events"] = int(thread.care.get("events", 1)) + 1  # every notification: the digest's noisiest
        record_value(thread, alert, now)
        if alert.state == thread.state:
            thread.count += 1  # the same state again: no new message, the root shows count and time
        else:
            previous, since = thread.state, thread.state_since
            thread.state, thread.state_since = alert.state, now
            flap = care.record_change(thread, now)
            if flap == "start":
                await sink.reply(target.channel, thread.thread_ref, care.flapping_line(alert.name, thread))
            elif flap:
                pass  # flapping: only the root is updated
            elif alert.clear:  # quiet: in the thread only (never broadcast), and the root shows it resolved
                care.end_snooze_on_clear(thread)
                await sink.reply(target.channel, thread.thread_ref, transition_text(alert, previous, now - since))
                await self._chart(sink, target, thread, alert)
            elif not care.snoozed(thread, now):  # snoozed: a re-trigger only updates the root
                await sink.reply(target.channel, thread.thread_ref, transition_text(alert, previous, now - since))
                await self._chart(sink, target, thread, alert)
        thread.alert = alert.model_dump(mode="json")
        if not thread.digest:
            await sink.update_root(target.channel, thread.thread_ref, view_of(thread))
        await self.alerts.save_thread(thread)

    async def _chart(self, sink: ThreadPoster, target: ChannelTarget, thread: AlertThread, alert: Alert) -> None:
        """The alert's own chart in its thread: never a reason for the delivery to fail or repeat."""
        chart = alert.chart or values_chart(thread, alert)
        if not chart:
            return
        try:
            await sink.post_chart(target.channel, thread.thread_ref, chart, what=alert.key)
        except Exception as exc:
            log.warning("the chart of %s was not posted to %s: %s", alert.key, target, type(exc).__name__)

    async def _post_digest(self, sink: ThreadPoster, target: ChannelTarget, alert: Alert, now: float) -> None:
        from bot.alerts.digest import digest_of

        root, detail = digest_of(alert).notes(str(target))
        thread = AlertThread(alert.key, str(target), {POSTING: now}, "OK", now, now, now, 1, "", True,
                             alert.model_dump(mode="json"))
        await self.alerts.save_thread(thread)  # the intent, before the side effect
        thread.thread_ref = await sink.post_note(target.channel, None, root)
        await self.alerts.save_thread(thread)
        if detail is not None:
            await sink.post_note(target.channel, thread.thread_ref, detail)
            await self._chart(sink, target, thread, alert)

    async def _open(self, sink: ThreadPoster, target: ChannelTarget, alert: Alert, investigate: bool, now: float) -> None:
        if await self.alerts.new_roots_since(str(target), now - STORM_WINDOW_S) >= self.storm_threshold:
            await self._into_digest(sink, target, alert, now)
            return
        thread = AlertThread(alert.key, str(target), {POSTING: now}, alert.state, now, now, now, 1, "", False,
                             alert.model_dump(mode="json"))
        record_value(thread, alert, now)
        await self.alerts.save_thread(thread)  # the intent, before the side effect
        await self._post_root(sink, target, thread, investigate, reconcile=False)

    async def _post_root(self, sink: ThreadPoster, target: ChannelTarget, thread: AlertThread, investigate: bool, *,
                         reconcile: bool) -> None:
        found = await sink.find_root(target.channel, thread.alert_key, float(thread.thread_ref[POSTING])) if reconcile else None
        thread.thread_ref = found or await sink.post_root(target.channel, view_of(thread))
        await self.alerts.save_thread(thread)
        if not found:
            await self._chart(sink, target, thread, Alert.model_validate(thread.alert))
        key = sink.thread_key(target.channel, thread.thread_ref)
        session = await self.handler.store.session_for(key)
        alert = Alert.model_validate(thread.alert)
        await self.handler.store.append_message(session.session_id, ChatMessage("system", alert.context_text()))
        if investigate:
            await self.investigate(sink, target, thread, user_id="healthbot-alerts", membership=Membership.OPERATOR)

    async def _into_digest(self, sink: ThreadPoster, target: ChannelTarget, alert: Alert, now: float) -> None:
        """A storm: one digest thread per channel and minute instead of a root per alert."""
        digest = await self.alerts.thread(DIGEST_KEY, str(target))
        line = f"{alert.name}: {alert.state}"
        if digest is None or digest.first_seen < now - STORM_WINDOW_S:
            summary = Alert(source=AlertSource.HEALTHBOT, key=DIGEST_KEY, name="Alert storm: grouping new alerts",
                            state="TRIGGERED", severity="high", description=line)
            digest = AlertThread(DIGEST_KEY, str(target), {}, "TRIGGERED", now, now, now, 1, "", True,
                                 summary.model_dump(mode="json"))
            digest.thread_ref = await sink.post_root(target.channel, view_of(digest))
        else:
            digest.count += 1
            digest.last_seen = now
            summary = Alert.model_validate(digest.alert)
            summary.description = (summary.description + "\n" + line)[-2500:]
            digest.alert = summary.model_dump(mode="json")
            await sink.update_root(target.channel, digest.thread_ref, view_of(digest))
        await self.alerts.save_thread(digest)
        await self.alerts.save_thread(AlertThread(alert.key, str(target), digest.thread_ref, alert.state, now, now, now, 1,
                                                  "", True, alert.model_dump(mode="json")))

    # -- buttons ----------------------------------------------------------------------------

    async def _known(self, target: ChannelTarget, alert_key: str) -> tuple[AlertThread, ThreadPoster] | None:
        thread = await self.alerts.thread(alert_key, str(target))
        sink = self.sinks.get(target.platform)
        if thread is None or sink is None or POSTING in thread.thread_ref:
            return None
        return thread, sink

    async def acknowledge(self, target: ChannelTarget, alert_key: str, user: str) -> bool:
        known = await self._known(target, alert_key)
        if known is None:
            return False
        thread, sink = known
        care.acknowledged(thread, user, time.time())
        await self.alerts.save_thread(thread)
        await sink.update_root(target.channel, thread.thread_ref, view_of(thread))
        return True

    async def snooze(self, target: ChannelTarget, alert_key: str, user: str, choice: str) -> AlertView | None:
        """Snooze a thread (the root says who, until when); None for an unknown alert or choice."""
        known = await self._known(target, alert_key)
        if known is None:
            return None
        thread, sink = known
        if not care.snooze(thread, user, choice, time.time()):
            return None
        await self.alerts.save_thread(thread)
        view = view_of(thread)
        await sink.update_root(target.channel, thread.thread_ref, view)
        return view

    async def refresh(self, thread: AlertThread) -> None:
        """A quiet root update (a snooze that ran out)."""
        target = parse_target(thread.target)
        sink = self.sinks.get(target.platform)
        if sink is not None and POSTING not in thread.thread_ref:
            await self.alerts.save_thread(thread)
            await sink.update_root(target.channel, thread.thread_ref, view_of(thread))

    async def investigate(self, sink: ThreadPoster, target: ChannelTarget, thread: AlertThread, *, user_id: str,
                          membership: Membership = Membership.UNVERIFIED, email: str = "") -> None:
        """Ask the endpoint about the alert in its thread: for a route (healthbot itself, OPERATOR) or
        for the person who clicked Investigate (checked like any asker: the adapter looks them up
        unless it already did and says so)."""
        alert = Alert.model_validate(thread.alert)
        question = f"Why did the alert \"{alert.name}\" fire, and what should we do about it?"
        message = Incoming(key=sink.thread_key(target.channel, thread.thread_ref), user_id=user_id, text=question,
                           event_id=f"investigate:{alert.key}:{target}:{time.time()}", membership=membership,
                           user_email=email)
        await sink.ask_in_thread(target.channel, thread.thread_ref, message)

    async def investigate_key(self, target: ChannelTarget, alert_key: str, user_id: str,
                              membership: Membership = Membership.UNVERIFIED, email: str = "") -> bool:
        known = await self._known(target, alert_key)
        if known is None:
            return False
        await self.investigate(known[1], target, known[0], user_id=user_id, membership=membership, email=email)
        return True

    async def view_for(self, target: ChannelTarget, alert_key: str) -> AlertView | None:
        thread = await self.alerts.thread(alert_key, str(target))
        return view_of(thread) if thread is not None else None
