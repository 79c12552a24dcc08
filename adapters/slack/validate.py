"""The shapes of Slack requests healthbot acts on, checked before slack-bolt sees the body.

Bolt reads many paths of a body before any listener runs (team, enterprise, user and channel ids,
`authorizations[0]`, `event.*`, `view.*`) and raises on a wrong type, which is a 500; listeners
then index `body["user"]["id"]`. So each kind healthbot listens to is described here with the types
Bolt and the listeners read (strict: a number is not a string), everything else allowed through.
A request of a kind healthbot does not act on is answered 200 without reaching Bolt, as Slack asks
(it retries anything else).
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode

from pydantic import Field, ValidationError

from bot.inbound import BadInput, HttpUrl, Shape, clean, clean_text, has_unsafe_escapes, load_json, reason

log = logging.getLogger(__name__)

LISTENED_EVENTS = frozenset({"app_mention", "message", "assistant_thread_started", "assistant_thread_context_changed",
                             "app_home_opened", "app_context_changed"})  # the manifest subscribes to these
Id = Annotated[str, Field(max_length=255)]  # user, channel, team ids and timestamps: short on the wire


class Ref(Shape):
    """`{"id": …}` objects: team, enterprise, channel, user in interactivity payloads."""

    id: Id


class UserRef(Ref):
    team_id: Id | None = None


class Authorization(Shape):
    enterprise_id: Id | None = None
    team_id: Id | None = None
    user_id: Id | None = None
    is_bot: bool | None = None
    is_enterprise_install: bool | None = None


class AssistantContext(Shape):
    """`assistant_thread.context`: what the person is looking at beside the agent view."""

    channel_id: Id | None = None
    team_id: Id | None = None
    enterprise_id: Id | None = None


class Nested(Shape):
    """`item`, `message`, `previous_message`, `assistant_thread` inside an event."""

    user: Id | None = None
    channel: Id | None = None
    channel_id: Id | None = None
    ts: Id | None = None
    thread_ts: Id | None = None
    text: str | None = None
    user_id: Id | None = None
    context: AssistantContext | None = None


class ContextEntity(Shape):
    """An entity of Slack's agent context: `{type: "slack#/types/channel_id", value: "C…"}`, or a
    message_context whose value is `{message_ts, channel_id}` (other kinds: canvas, list)."""

    type: str
    value: Any = None
    team_id: Id | None = None


class AgentContext(Shape):
    entities: list[ContextEntity] | None = None


class Event(Shape):
    type: str
    subtype: str | None = None
    user: Id | None = None
    user_id: Id | None = None
    team: Id | None = None
    user_team: Id | None = None
    enterprise_id: Id | None = None
    channel: Id | None = None
    channel_type: str | None = None
    text: str | None = None
    ts: Id | None = None
    thread_ts: Id | None = None
    event_ts: Id | None = None
    bot_id: Id | None = None
    hidden: bool | None = None
    item: Nested | None = None
    message: Nested | None = None
    previous_message: Nested | None = None
    assistant_thread: Nested | None = None
    function_execution_id: str | None = None
    bot_access_token: str | None = None
    inputs: dict[str, Any] | None = None
    blocks: list[Any] | None = None
    tab: str | None = None  # app_home_opened: "home" or "messages"
    app_context: AgentContext | None = None  # the agent messaging experience: what the asker is looking at


class EventCallback(Shape):
    type: Literal["event_callback"]
    team_id: Id
    api_app_id: str | None = None
    enterprise_id: Id | None = None
    context_team_id: Id | None = None
    context_enterprise_id: Id | None = None
    is_ext_shared_channel: bool | None = None
    event_id: str | None = None
    event: Event
    authorizations: list[Authorization] | None = None


class UrlVerification(Shape):
    type: Literal["url_verification"]
    challenge: str


class Action(Shape):
    action_id: str
    block_id: str | None = None
    value: str | None = None
    action_ts: str | None = None


class Container(Shape):
    type: str | None = None
    channel_id: Id | None = None
    message_ts: Id | None = None
    thread_ts: Id | None = None


class Message(Shape):
    ts: Id
    thread_ts: Id | None = None
    text: str | None = None
    user: Id | None = None
    blocks: list[dict[str, Any]] | None = None


class View(Shape):
    team_id: Id | None = None
    app_installed_team_id: str | None = None


class BlockActions(Shape):
    type: Literal["block_actions"]
    user: UserRef
    team: Ref | None = None
    enterprise: Ref | None = None
    is_enterprise_install: bool | None = None
    channel: Ref | None = None
    container: Container | None = None
    message: Message | None = None
    actions: Annotated[list[Action], Field(min_length=1)]
    response_url: HttpUrl | None = None
    trigger_id: str | None = None
    view: View | None = None


class SlashCommand(Shape):
    command: str
    text: str = ""
    team_id: Id
    channel_id: Id
    user_id: Id
    trigger_id: str = ""
    response_url: HttpUrl
    enterprise_id: Id | None = None


def checked_body(text: str, content_type: str) -> str | None:
    """The body to give Bolt (normalised when it had to be), or None for a kind healthbot ignores.
    Raises BadInput with the reason for a body Slack never sends."""
    try:
        if content_type == "application/json":
            return _checked_json(text)
        if content_type == "application/x-www-form-urlencoded":
            return _checked_form(text)
    except ValidationError as exc:
        raise BadInput(reason(exc)) from None
    raise BadInput(f"unsupported content type {content_type or 'none'}")


def _checked_json(text: str) -> str | None:
    body = load_json(text)
    if not isinstance(body, dict):
        raise BadInput("expected a JSON object")
    kind = body.get("type")
    if kind == "event_callback":
        event = body.get("event")
        if isinstance(event, dict) and isinstance(event.get("type"), str) and event["type"] not in LISTENED_EVENTS:
            return None  # subscribed elsewhere, not handled here: 200, or Slack retries
        EventCallback.model_validate(body)
        if not _assistant_can_take(body["event"]):
            log.info("ignored a Slack %s event bolt's Assistant middleware cannot take (no channel and thread)",
                     body["event"]["type"])
            return None
    elif kind == "url_verification":
        UrlVerification.model_validate(body)
    else:
        return None  # app_rate_limited and the like: nothing to do
    return _json_text(body) if has_unsafe_escapes(text) else text


def _assistant_can_take(event: dict[str, Any]) -> bool:
    """bolt's Assistant middleware builds its utilities from `assistant_thread.channel_id` and
    `.thread_ts` (assistant events) or `channel` and `thread_ts` (DM thread messages), and raises
    ValueError — a 500 — for an event it matches that has neither (slack_bolt
    context/assistant/async_assistant_utilities.py). Such events are no conversation: ignored."""
    kind = event.get("type")
    nested = event.get("assistant_thread")
    thread: dict[str, Any] = nested if isinstance(nested, dict) else {}
    if kind in ("assistant_thread_started", "assistant_thread_context_changed"):
        return bool(thread.get("channel_id") and thread.get("thread_ts")) or bool(event.get("channel")
                                                                                   and event.get("thread_ts"))
    if kind == "message" and event.get("channel_type") == "im" and event.get("thread_ts") is not None:
        return bool(event.get("channel"))
    return True


def _checked_form(text: str) -> str | None:
    try:
        fields = {key: values[-1] for key, values in parse_qs(text, keep_blank_values=True, strict_parsing=True,
                                                                 errors="strict").items()}
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"malformed form body: {exc}") from None
    if "ssl_check" in fields:
        return text
    if "payload" in fields:
        payload = load_json(fields["payload"])
        if not isinstance(payload, dict):
            raise BadInput("payload: expected a JSON object")
        if payload.get("type") != "block_actions":
            return None  # shortcuts, views, …: healthbot offers none
        BlockActions.model_validate(payload)
        return urlencode({**fields, "payload": _json_text(payload)}) if has_unsafe_escapes(fields["payload"]) else text
    if "command" in fields:
        cleaned = {key: clean_text(value) for key, value in fields.items()}
        SlashCommand.model_validate(cleaned)
        return urlencode(cleaned) if cleaned != fields else text
    raise BadInput("neither a slash command nor an interactivity payload")


def _json_text(value: Any) -> str:
    return json.dumps(clean(value))
