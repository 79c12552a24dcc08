"""Pure translation between Slack payloads and healthbot's models: no I/O, table-tested.

Slack → Incoming: which events are questions, the thread they belong to (Bolt's
`thread_ts or ts`), the bot mention stripped. Reply → Block Kit: the answer in a `markdown` block
(Slack translates standard markdown itself, so tables, code and links are not mangled by a
home-made mrkdwn conversion), a context line with sources and confidence, feedback buttons.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.models import ErrorKind, Incoming, Platform, Reply, ThreadKey
from adapters.slack.chart_blocks import split_charts
from adapters.slack.tables import content_blocks
from bot.text import split_markdown
from bot.quick import QUICK_QUESTIONS

CHUNK = 11_000  # Slack allows 12,000 characters across a message's markdown blocks; room for the marker
FALLBACK_LIMIT = 3_000  # `text` is only the notification / screen-reader fallback

FEEDBACK = "feedback"  # Slack's own feedback_buttons element (a context_actions block)
FEEDBACK_UP = "feedback_up"  # the hand-made buttons: where Slack refuses the element, and older answers
FEEDBACK_DOWN = "feedback_down"
RETRY = "retry"
QUICK_PREFIX = "quick_"

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def strip_mention(text: str, bot_user_id: str | None) -> str:
    """Remove the bot's own `<@U…>` mention; other people's mentions stay."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    return " ".join(text.split())


def mentions(text: str, bot_user_id: str | None) -> bool:
    return bool(bot_user_id) and any(m.group(1) == bot_user_id for m in _MENTION.finditer(text or ""))


def team_of(body: dict[str, Any]) -> str:
    team = body.get("team_id") or body.get("team") or ""
    return str(team.get("id", "") if isinstance(team, dict) else team)


def org_signals(body: dict[str, Any], event: dict[str, Any]) -> str:
    """Every organisation the payload says the asker belongs to, comma-joined: an event's `user_team`,
    `team` and `source_team` (in a Slack Connect channel `team` can be the asker's own organisation, not
    the installing one), and outside the Events API envelope (slash commands, buttons) the payload's
    `team` / `team_id` and the clicker's `user.team_id`. The installing organisation never comes from
    here: the envelope's `team_id` and `authorizations`, which name the installation, are not signals;
    the adapter compares these with auth.test (SlackChannel.identify)."""
    found = [event.get("user_team"), event.get("team"), event.get("source_team")]
    if body.get("type") != "event_callback":
        user: dict[str, Any] = body["user"] if isinstance(body.get("user"), dict) else {}
        found += [user.get("team_id"), team_of(body)]
    seen: dict[str, None] = {}
    for value in found:
        if isinstance(value, str) and value:
            seen.setdefault(value, None)
    return ",".join(seen)


def event_to_incoming(body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None) -> Incoming | None:
    """The question in an `app_mention` or `message` event, or None when it is not one for us.

    The event id for dedupe is channel + message ts, not Slack's event_id: a mention in a thread
    arrives twice (`app_mention` and `message`, different event ids) and must be answered once.
    """
    if event.get("subtype") is not None or event.get("bot_id") or not event.get("user"):
        return None
    if bot_user_id and event.get("user") == bot_user_id:
        return None
    channel, ts = str(event.get("channel", "")), str(event.get("ts", ""))
    if not channel or not ts:
        return None
    text = str(event.get("text") or "")
    is_dm = event.get("channel_type") == "im" or channel.startswith("D")
    is_mention = event.get("type") == "app_mention" or mentions(text, bot_user_id)
    thread_ts = event.get("thread_ts")
    in_thread = bool(thread_ts) and thread_ts != ts
    if not (is_dm or is_mention or in_thread):
        return None  # a top-level channel message that does not mention us
    # Slack's agent messaging experience folds the asker's view (`app_context`) into every DM message of an
    # app subscribed to app_context_changed, and there each DM message is a thread root with its own session;
    # a plain DM (no agent experience) stays one conversation until `/healthbot new`.
    agent_experience = is_dm and isinstance(event.get("app_context"), dict)
    thread = str(thread_ts or ("" if is_dm and not agent_experience else ts))
    team = str(event.get("team") or team_of(body))
    viewing = viewed_channel(event.get("app_context")) if is_dm else ""
    return Incoming(
        key=ThreadKey(platform=Platform.SLACK, workspace=team, channel=channel, thread=thread),
        message_id=ts,
        user_id=str(event["user"]),
        text=strip_mention(text, bot_user_id),
        is_dm=is_dm,
        is_mention=is_mention,
        is_thread_followup=in_thread and not is_mention,
        event_id=f"slack:{team}:{channel}:{ts}",
        org=org_signals(body, event),
        viewing_channel=viewing if viewing != channel else "",
    )


def viewed_channel(app_context: Any) -> str:
    """The channel a person is looking at, from Slack's agent context (`app_context` on a DM message):
    the first channel, or the channel of the first message, in Slack's order of relevance."""
    entities = app_context.get("entities") if isinstance(app_context, dict) else None
    for entity in entities if isinstance(entities, list) else []:
        if not isinstance(entity, dict):
            continue
        value = entity.get("value")
        if entity.get("type") == "slack#/types/channel_id" and isinstance(value, str):
            return value
        if entity.get("type") == "slack#/types/message_context" and isinstance(value, dict):
            return str(value.get("channel_id") or "")
    return ""


# -- rendering --------------------------------------------------------------------------------


def to_mrkdwn(markdown: str) -> str:
    """A plain mrkdwn rendering for the `text` fallback (notifications): escape, bold, links."""
    text = markdown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"\*\*(.+?)\*\*", r"*\1*", text)
    text = re.sub(r"\[([^\]]+)\]\((https?://[^)\s]+)\)", r"<\2|\1>", text)
    return text


def fallback_text(markdown: str) -> str:
    text = to_mrkdwn(markdown)
    return text if len(text) <= FALLBACK_LIMIT else text[: FALLBACK_LIMIT - 1] + "…"


def context_line(reply: Reply) -> str:
    return to_mrkdwn(reply.footer())[:3000]


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": text, "emoji": True},
                              "action_id": action_id, "value": value}
    if style:
        button["style"] = style
    return button


def answer_messages(reply: Reply) -> list[tuple[str, list[dict[str, Any]]]]:
    """(text, blocks) for each message of an answer: long answers become several, all complete."""
    chunks = split_markdown(reply.content, CHUNK)
    messages = []
    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        body = chunk if len(chunks) == 1 else f"{chunk}\n\n_({index + 1}/{len(chunks)})_"
        blocks: list[dict[str, Any]] = content_blocks(body)  # a table as a data_table block
        if last:
            blocks += [block for _, block in split_charts(reply.charts)[0]]  # native charts (the rest: as PNGs)
            line = context_line(reply)
            if line:
                blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
            blocks.append(feedback_block(reply.request_id))
        messages.append((fallback_text(chunk), blocks))
    return messages


def feedback_block(request_id: str) -> dict[str, Any]:
    """Slack's native 👍 / 👎 (the element toggles: the last click is the grade). Each value names the
    answer, so a click needs no lookup."""
    def side(text: str, label: str, grade: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": text}, "accessibility_label": label,
                "value": f"{grade}:{request_id}"}

    return {"type": "context_actions", "block_id": "feedback", "elements": [{
        "type": "feedback_buttons", "action_id": FEEDBACK,
        "positive_button": side("👍", "This answer was helpful", "up"),
        "negative_button": side("👎", "This answer was not helpful", "down")}]}


def native_feedback(value: Any) -> tuple[bool, str] | None:
    """(positive, request id) from a feedback_buttons click's value; None for anything else."""
    grade, _, request_id = str(value or "").partition(":")
    return (grade == "up", request_id) if grade in ("up", "down") and request_id else None


def without_native_feedback(blocks: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The blocks with the native feedback swapped for the hand-made buttons, for a workspace whose Slack
    refuses `context_actions` (not an AI app, an older client); None when there was none to swap."""
    swapped, found = [], False
    for block in blocks:
        element = (block.get("elements") or [{}])[0] if block.get("type") == "context_actions" else {}
        grade = native_feedback((element.get("positive_button") or {}).get("value"))
        if grade is None:
            swapped.append(block)
            continue
        found = True
        swapped.append({"type": "actions", "block_id": "feedback", "elements": [
            _button("👍 Helpful", FEEDBACK_UP, grade[1]), _button("👎 Not helpful", FEEDBACK_DOWN, grade[1])]})
    return swapped if found else None


def error_message(reply: Reply) -> tuple[str, list[dict[str, Any]]]:
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _icon(reply) + to_mrkdwn(reply.content)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"request id `{reply.request_id}`"}]},
    ]
    if reply.retryable:
        blocks.append({"type": "actions", "block_id": "retry", "elements": [
            _button("Retry", RETRY, json.dumps({"request_id": reply.request_id}), "primary")]})
    return fallback_text(reply.content), blocks


def _icon(reply: Reply) -> str:
    return ":lock: " if reply.error is ErrorKind.REFUSED else ":warning: "


def reply_messages(reply: Reply) -> list[tuple[str, list[dict[str, Any]]]]:
    return [error_message(reply)] if reply.error is not None else answer_messages(reply)


def progress_message(stage: str) -> tuple[str, list[dict[str, Any]]]:
    text = ("Waking up the Health Monitor (the endpoint scaled to zero); this can take a few minutes…"
            if stage == "waking_up" else "Analyzing your question…")
    return text, progress_blocks(text)


def progress_blocks(text: str) -> list[dict[str, Any]]:
    return [{"type": "context", "elements": [{"type": "mrkdwn", "text": f":hourglass_flowing_sand: {to_mrkdwn(text)}"}]}]


def feedback_done(blocks: list[dict[str, Any]], user_id: str, positive: bool) -> list[dict[str, Any]]:
    """The answer's blocks with the feedback buttons replaced by a thank-you line."""
    kept = [b for b in blocks if b.get("block_id") != "feedback"]
    mark = "👍" if positive else "👎"
    return kept + [{"type": "context", "elements": [{"type": "mrkdwn", "text": f"{mark} Thanks for the feedback, <@{user_id}>."}]}]


def help_blocks() -> tuple[str, list[dict[str, Any]]]:
    usage = (
        "*healthbot* answers questions about your Databricks platform: costs, jobs, query performance, "
        "security and data quality.\n"
        "• Mention me in any channel: `@healthbot why did costs spike yesterday?` (I answer in the thread; "
        "follow-ups in the thread keep the context)\n"
        "• `/healthbot costs | jobs | queries | security | health` asks a quick question\n"
        "• `/healthbot <your question>` asks anything, `/healthbot new` starts a fresh DM conversation\n"
        "• `/healthbot digest` posts the week's digest here; `/healthbot rollback [VERSION]` rolls the Health "
        "Monitor endpoint back, `/healthbot checklist` walks its deployment checklist (deployers only)\n"
        "• `/healthbot connect` / `disconnect`: where healthbot asks as you, connect or forget your Databricks account"
    )
    buttons = [_button(question, f"{QUICK_PREFIX}{name}", name) for name, question in QUICK_QUESTIONS.items()]
    return "healthbot: usage and quick questions", [
        {"type": "section", "text": {"type": "mrkdwn", "text": usage}},
        {"type": "actions", "block_id": "quick", "elements": buttons},
    ]


def question_root(user_id: str, question: str) -> tuple[str, list[dict[str, Any]]]:
    """The visible thread root for a slash-command question, so follow-ups can happen there."""
    text = f"<@{user_id}> asked: {to_mrkdwn(question)}"
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
