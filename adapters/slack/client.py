"""Outbound Slack Web API: one pooled AsyncWebClient, Slack's rate limits honoured by retrying.

Slack answers 429 with Retry-After (and ~1 message/s per channel); slack-sdk's retry handlers
sleep for Retry-After and try again, so a message is delayed, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.chart_blocks import without_charts
from adapters.slack.tables import without_data_tables
from adapters.slack.translate import without_native_feedback
from agent import json_bytes
from bot.models import Membership

log = logging.getLogger(__name__)

USER_CACHE_TTL_S = 3600.0
PERMANENT = {
    "channel_not_found": "the channel does not exist or the bot cannot see it",
    "not_in_channel": "the bot is not a member of the channel: invite @healthbot to it",
    "is_archived": "the channel is archived",
    "invalid_auth": "SLACK_BOT_TOKEN is not valid",
    "account_inactive": "the Slack app was uninstalled",
    "token_revoked": "the Slack bot token was revoked",
    "missing_scope": "the Slack app lacks a scope: reinstall it from manifest.yml",
    "restricted_action": "posting in this channel is restricted",
}


NO_SUCH_USER = frozenset({"user_not_found", "user_not_visible", "account_inactive"})
GONE = frozenset({"message_not_found", "cant_update_message"})  # the message to replace is not there (any more)


async def post_messages(client: AsyncWebClient, channel: str, thread_ts: str | None,
                        messages: list[tuple[str, list[dict[str, Any]]]], *,
                        replace_ts: str | None = None) -> list[dict[str, Any]]:
    """Post an answer's messages in the thread; the first replaces `replace_ts` (a placeholder, or the
    error a Retry answers) and is posted afresh when that message is gone. The blocks the last one went
    with (a refused chart, table or feedback element is left out or swapped: `with_block_fallbacks`)."""
    sent: list[dict[str, Any]] = []
    for index, (text, blocks) in enumerate(messages):
        if index == 0 and replace_ts:
            try:
                sent = await with_block_fallbacks(lambda b: client.chat_update(channel=channel, ts=replace_ts, text=text,
                                                                               blocks=b), blocks)
                continue
            except SlackApiError as exc:
                if error_code(exc) not in GONE:
                    raise
                log.info("the message to replace in %s is gone: posting the answer afresh", channel)
        sent = await with_block_fallbacks(lambda b: client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text,
                                                                            blocks=b), blocks)
    return sent


# Where Slack refuses a newer block, the same message with an older one: by the block's type.
FALLBACKS: dict[str, Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]] = {
    "data_visualization": without_charts,  # the caller uploads the chart as a PNG instead
    "data_table": without_data_tables,  # the markdown table
    "context_actions": without_native_feedback,  # plain 👍 / 👎 buttons
}
_POINTER = re.compile(r"json-pointer:/blocks/(\d+)")


def _refused_types(exc: SlackApiError, blocks: list[dict[str, Any]]) -> list[str]:
    """The types of the blocks Slack names in its errors (`[json-pointer:/blocks/1/type]`), if it names any."""
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    said = [*data.get("errors", []), *(data.get("response_metadata") or {}).get("messages", [])]
    indexes = {int(m) for line in said if isinstance(line, str) for m in _POINTER.findall(line)}
    return [str(blocks[i].get("type")) for i in sorted(indexes) if i < len(blocks)]


async def with_block_fallbacks(send: Callable[[list[dict[str, Any]]], Awaitable[Any]],
                               blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send, and return the blocks that went. Where Slack refuses a newer block (`invalid_blocks`: a
    workspace, app or client without it), send again with the older form of the block it names, or,
    when it names none, of the newest left: charts, then a data table, then the native feedback."""
    left = dict(FALLBACKS)
    while True:
        try:
            await send(blocks)
            return blocks
        except SlackApiError as exc:
            if error_code(exc) != "invalid_blocks":
                raise
            named = [kind for kind in _refused_types(exc, blocks) if kind in left] or list(left)
            swapped = None
            for kind in named:
                swapped = left.pop(kind)(blocks)
                if swapped is not None:
                    break
            if swapped is None:
                raise
            log.info("Slack refused the answer's %s (invalid_blocks): sending it with the older form", kind)
            blocks = swapped


def is_transient(exc: BaseException) -> bool:
    """Worth trying again later: Slack down or throttling after slack_sdk's own retries, the network."""
    if isinstance(exc, SlackApiError):
        return error_code(exc) not in PERMANENT
    return isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError))


EXPECTED = (SlackApiError, aiohttp.ClientError, asyncio.TimeoutError, ValueError)  # Slack said no, or the network


def describe(exc: BaseException) -> str:
    return error_code(exc) if isinstance(exc, SlackApiError) else str(exc)


def error_code(exc: SlackApiError) -> str:
    """Slack's `error` from a failed call; the HTTP status when the answer was not JSON (a proxy's
    error page), where `exc.response.get` would itself raise."""
    data = exc.response.data
    if isinstance(data, dict):
        return str(data.get("error") or "")
    return f"http_{exc.response.status_code}"


def web_api_json(value: Any) -> bytes:
    """A Web API call's JSON body (the session's `json_serialize_bytes`, with orjson as aiohttp's docs
    suggest): an answer's blocks are most of what healthbot writes, and json.dumps cost a native chart's
    data points alone more than the rest of the message; orjson a sixth of that, and standard JSON always."""
    return json_bytes.dumps(value)


def configure_web_client(client: AsyncWebClient, *, base_url: str | None) -> AsyncWebClient:
    """`SLACK_API_URL` (enterprise proxies, tests) replaces Slack's base URL; 429s are retried."""
    client.base_url = (base_url or AsyncWebClient.BASE_URL).rstrip("/") + "/"
    client.retry_handlers.extend([
        AsyncRateLimitErrorRetryHandler(max_retry_count=8),
        AsyncServerErrorRetryHandler(max_retry_count=4),
        AsyncConnectionErrorRetryHandler(max_retry_count=3),
    ])
    return client


@dataclass(frozen=True, slots=True)
class SlackUser:
    """What users.info says about an asker; `known` is False when Slack could not be asked."""

    id: str
    email: str = ""
    name: str = ""
    team: str = ""  # the user's own team (another organisation's for a Slack Connect user)
    guest: bool = False  # is_restricted (multi-channel) or is_ultra_restricted (single-channel)
    stranger: bool = False  # is_stranger: a user of another organisation in a shared channel
    enterprise: str = ""  # enterprise_user.enterprise_id: the user's Enterprise Grid org
    known: bool = True

    def membership(self, claimed: str, home: frozenset[str]) -> tuple[Membership, str]:
        """How this user belongs to the installation (`home`: auth.test's team and Enterprise Grid org),
        and the foreign organisation when they do not. Every signal must be home: the payload's
        (translate.org_signals, comma-joined), users.info's `team_id` and `enterprise_user.enterprise_id`;
        one foreign signal makes the asker external, and signals naming two other organisations leave no
        organisation to trust (""), so no allowlist lets them in."""
        signals = [part for part in claimed.split(",") if part] + [self.team, self.enterprise]
        foreign = sorted({signal for signal in signals if signal and signal not in home})
        if foreign or (self.known and self.stranger):
            return Membership.EXTERNAL, foreign[0] if len(foreign) == 1 else ""
        if not self.known:
            return Membership.UNVERIFIED, ""
        return (Membership.GUEST if self.guest else Membership.MEMBER), ""


class UserDirectory:
    """Slack user id → what healthbot needs to know (email for the endpoint, guest flags), cached."""

    def __init__(self, client: AsyncWebClient, *, ttl_s: float = USER_CACHE_TTL_S) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, SlackUser]] = {}

    async def lookup(self, user_id: str) -> SlackUser:
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            response = await self.client.users_info(user=user_id)
        except SlackApiError as exc:
            log.info("users.info for %.40s failed: %s", user_id, error_code(exc))
            user = SlackUser(user_id, known=False)
            if error_code(exc) not in NO_SUCH_USER:
                return user  # throttled, Slack down, a scope missing: not cached, the next message asks again
        except Exception as exc:  # an unreadable answer, a network error: unknown, for now
            log.warning("users.info for %.40s failed: %s: %s", user_id, type(exc).__name__, str(exc)[:200])
            return SlackUser(user_id, known=False)
        else:
            user = _slack_user(user_id, response.get("user"))
        self._cache[user_id] = (time.monotonic() + self.ttl_s, user)
        return user


def _slack_user(user_id: str, data: Any) -> SlackUser:
    data = data if isinstance(data, dict) else {}
    profile = data.get("profile") if isinstance(data.get("profile"), dict) else {}
    if data.get("deleted"):
        return SlackUser(user_id, known=False)
    return SlackUser(
        id=user_id, email=str(profile.get("email") or ""),
        name=str(profile.get("display_name") or data.get("real_name") or data.get("name") or ""),
        team=str(data.get("team_id") or profile.get("team") or ""),
        guest=bool(data.get("is_restricted") or data.get("is_ultra_restricted")),
        stranger=bool(data.get("is_stranger")),
        enterprise=str((data.get("enterprise_user") or {}).get("enterprise_id") or "")
        if isinstance(data.get("enterprise_user"), dict) else "",
    )
