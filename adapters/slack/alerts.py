"""Alert threads in Slack: the root card, its updates and replies, and the alert buttons.

Alert names, descriptions and query text are untrusted: they go into `plain_text` objects (no
mrkdwn, no mentions, no links), the notification `text` has `& < >` escaped so `<!channel>` cannot
ping, and posts use `parse: none` with unfurling off.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from adapters.slack.charts import post_charts
from adapters.slack.client import PERMANENT, error_code, post_messages
from adapters.slack.translate import reply_messages
from bot.alerts.care import SNOOZE_LABELS
from bot.alerts.delivery import ACKNOWLEDGE, INVESTIGATE, SNOOZE, DeliveryError, Note
from bot.alerts.model import AlertView
from bot.models import Incoming, Platform, Reply, ThreadKey
from bot.text import inert

if TYPE_CHECKING:
    from adapters.slack.app import SlackChannel

METADATA_EVENT = "healthbot_alert"  # Slack message metadata on alert roots: finds a root after a crash


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(text: str, limit: int = 2900) -> dict[str, Any]:
    """A plain_text object: Slack shows it literally (no mrkdwn, links or mentions), so outside text goes
    here as it is; outside text in mrkdwn or markdown goes through bot.text.inert instead."""
    return {"type": "plain_text", "text": (text if len(text) <= limit else text[: limit - 1] + "…") or " ", "emoji": False}


def _link(label: str, url: str) -> str:
    safe = url.replace("<", "%3C").replace(">", "%3E").replace("|", "%7C").replace(" ", "%20")
    return f"<{safe}|{label}>"


def alert_blocks(view: AlertView) -> tuple[str, list[dict[str, Any]]]:
    alert = view.alert
    mark = alert.mark
    fields = [plain(f"State: {alert.state}"), plain(f"Severity: {alert.severity}")]
    if alert.value or alert.threshold:
        fields.append(plain(f"Value: {alert.value or '?'} {alert.operator or 'vs'} {alert.threshold or '?'}"))
    if alert.domain:
        fields.append(plain(f"Domain: {alert.domain}"))
    if alert.rollout:
        fields.append(plain(f"Since {view.first_seen:%Y-%m-%d %H:%M} UTC"))
    else:
        fields.append(plain(f"Seen {view.count}×, last {view.last_seen:%Y-%m-%d %H:%M} UTC"))
    if view.resolved_after_s is not None:
        took = "Took" if alert.rollout else "Resolved after"
        fields.append(plain(f"{took} {max(1, round(view.resolved_after_s / 60))} min"))
    if view.acknowledged_by:
        fields.append(plain(f"Acknowledged by {view.acknowledged_by}"))
    if view.snoozed:
        fields.append(plain(view.snoozed))
    if view.flapping:
        fields.append(plain("Flapping: only this message is updated"))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(f"{mark} {alert.name}", 150)},
        {"type": "section", "fields": fields[:10]},
    ]
    if alert.description:
        blocks.append({"type": "section", "text": plain(alert.description)})
    if alert.detail:
        blocks.append({"type": "section", "text": plain(f"Details: {alert.detail}")})
    if alert.query:
        blocks.append({"type": "section", "text": plain(f"Query: {alert.query}", 600)})
    links = [_link(label, url) for label, url in alert.links.items() if url.startswith(("https://", "http://"))]
    if links:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "  ·  ".join(links)}]})
    value = json.dumps({"key": alert.key})
    buttons = []
    if alert.investigable:
        buttons += [
            {"type": "button", "action_id": INVESTIGATE, "text": plain("Investigate"), "value": value, "style": "primary"},
            {"type": "button", "action_id": ACKNOWLEDGE, "text": plain("Acknowledge"), "value": value},
        ]
    if alert.snoozable_now:
        buttons += [{"type": "button", "action_id": f"{SNOOZE}_{choice}", "text": plain(f"Snooze {label}"),
                     "value": value} for choice, label in SNOOZE_LABELS.items()]
    if buttons:
        blocks.append({"type": "actions", "block_id": "alert", "elements": buttons})
    return escape(f"{mark} {inert(alert.name)} is {alert.state}"), blocks


def note_blocks(note: Note) -> tuple[str, list[dict[str, Any]]]:
    """A note as a `markdown` block (Slack renders standard markdown, tables included) and its buttons."""
    blocks: list[dict[str, Any]] = [{"type": "markdown", "text": note.markdown[:11_000]}]
    if note.buttons:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "action_id": b.action, "text": plain(b.label, 75), "value": json.dumps(b.value),
             **({"style": "primary"} if b.primary else {})} for b in note.buttons]})
    return escape(note.summary or note.markdown.splitlines()[0])[:3000], blocks


class SlackAlertSink:
    platform = Platform.SLACK

    def __init__(self, bot: SlackChannel) -> None:
        self.bot = bot
        self._team: str | None = None

    async def _team_id(self) -> str:
        if self._team is None:
            self._team = str((await self.bot.client.auth_test()).get("team_id") or "")
        return self._team

    async def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return await getattr(self.bot.client, method)(**kwargs)
        except SlackApiError as exc:
            raise self._delivery_error(exc) from None

    @staticmethod
    def _delivery_error(exc: SlackApiError) -> DeliveryError:
        error = error_code(exc)
        if error in PERMANENT:
            return DeliveryError(f"Slack {error}: {PERMANENT[error]}", permanent=True)
        return DeliveryError(f"Slack {error or exc.response.status_code}", permanent=False)

    async def post_root(self, channel: str, view: AlertView) -> dict[str, Any]:
        text, blocks = alert_blocks(view)
        response = await self._call("chat_postMessage", channel=channel, text=text, blocks=blocks, parse="none",
                                    unfurl_links=False, unfurl_media=False,
                                    metadata={"event_type": METADATA_EVENT, "event_payload": {"alert_key": view.alert.key}})
        return {"ts": str(response["ts"]), "team": await self._team_id()}

    async def find_root(self, channel: str, alert_key: str, since: float) -> dict[str, Any] | None:
        """conversations.history since the intent was recorded, matched on the message metadata."""
        response = await self._call("conversations_history", channel=channel, oldest=f"{since - 60:.6f}", limit=200,
                                    include_all_metadata=True)
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            if metadata.get("event_type") == METADATA_EVENT and \
                    (metadata.get("event_payload") or {}).get("alert_key") == alert_key:
                return {"ts": str(message["ts"]), "team": await self._team_id()}
        return None

    async def update_root(self, channel: str, ref: dict[str, Any], view: AlertView) -> None:
        text, blocks = alert_blocks(view)
        await self._call("chat_update", channel=channel, ts=ref["ts"], text=text, blocks=blocks, parse="none")

    async def reply(self, channel: str, ref: dict[str, Any], text: str) -> None:
        await self._call("chat_postMessage", channel=channel, thread_ts=ref["ts"], text=escape(text),
                         blocks=[{"type": "section", "text": plain(text)}], parse="none", unfurl_links=False)

    async def post_chart(self, channel: str, ref: dict[str, Any], chart: dict[str, Any], *, what: str) -> None:
        await post_charts(self.bot.client, channel, ref["ts"], [chart], what=what)

    async def remind(self, channel: str, ref: dict[str, Any], text: str, oncall: list[str]) -> None:
        names = " ".join(f"<!subteam^{who}>" if who.startswith("S") else f"<@{who}>"
                         for who in oncall if who[:1] in "UWS" and who.isalnum())
        line = f"{names} {escape(inert(text))}".strip()
        await self._call("chat_postMessage", channel=channel, thread_ts=ref["ts"], text=line,
                         blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": line, "verbatim": True}}],
                         unfurl_links=False)

    async def post_note(self, channel: str, ref: dict[str, Any] | None, note: Note) -> dict[str, Any]:
        text, blocks = note_blocks(note)
        thread = {"thread_ts": ref["ts"]} if ref else {}
        response = await self._call("chat_postMessage", channel=channel, text=text, blocks=blocks, unfurl_links=False,
                                    **thread)
        return ref or {"ts": str(response["ts"]), "team": await self._team_id()}

    async def post_answer(self, channel: str, ref: dict[str, Any], reply: Reply) -> None:
        """An answer that could not be posted when it was ready (Slack was down), from the outbox."""
        try:
            await post_messages(self.bot.client, channel, ref.get("thread_ts") or None, reply_messages(reply),
                                replace_ts=ref.get("replace_ts"))
        except SlackApiError as exc:
            raise self._delivery_error(exc) from None

    def thread_key(self, channel: str, ref: dict[str, Any]) -> ThreadKey:
        return ThreadKey(platform=Platform.SLACK, workspace=str(ref.get("team", "")), channel=channel, thread=str(ref["ts"]))

    async def ask_in_thread(self, channel: str, ref: dict[str, Any], message: Incoming) -> None:
        await self.bot.answer(message, channel=channel, thread_ts=str(ref["ts"]))
