"""healthbot's App Home: a page per person, published with views.publish when they open the Home tab;
and, when they open the Messages tab (the agent messaging experience's start), the suggested prompts.

What a platform engineer wants at a glance: the quick questions (answered in a DM thread), the open
alert threads with links, what the Health Monitor endpoint serves and its last rollout, and
healthbot's own figures of the last 24 h. Built fresh when the tab opens, never more than once a
minute per person (Slack sends `app_home_opened` on every visit; the page is a few store reads).
Guests and people of other organisations see the refusal instead of the figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from adapters.slack import translate as t
from adapters.slack.assistant import PROMPTS_TITLE
from adapters.slack.client import EXPECTED, describe
from bot.background import logged
from bot.quick import SUGGESTED_PROMPTS
from bot.alerts import care
from bot.deploy.rollout import Seen
from bot.models import Incoming, Platform, ThreadKey
from bot.ops.stats import Stats, collect
from bot.store import Store
from bot.store.base import AlertThread
from bot.text import inert

MaySee = Callable[[AlertThread], Awaitable[bool]]

if TYPE_CHECKING:
    from adapters.slack.app import SlackChannel

log = logging.getLogger(__name__)

REFRESH_EVERY_S = 60.0
MEMBERS_TTL_S = 300.0
OPEN_ALERTS_SHOWN = 10
ALERT_LOOK_BACK_S = 7 * 24 * 3600.0


class SlackHome:
    def __init__(self, bot: SlackChannel) -> None:
        self.bot = bot
        self._published: dict[str, float] = {}  # tab|user → when it was last served (this replica)
        self._channel_members: dict[str, tuple[float, frozenset[str]]] = {}  # channel → (expiry, members)

    def register(self, app: Any) -> None:
        app.event("app_home_opened")(self._on_opened)

    async def _on_opened(self, body: dict[str, Any], event: dict[str, Any], set_suggested_prompts: Any = None) -> None:
        user = str(event.get("user") or "")
        tab = event.get("tab")
        if tab not in ("home", "messages") or not user or not self._due(f"{tab}|{user}"):
            return
        if tab == "home":
            self.bot.spawn(self._publish(user, body, event))
        elif set_suggested_prompts is not None:  # bolt ≥ 1.30 hands it over for the DM, with no thread
            self.bot.spawn(logged(set_suggested_prompts(prompts=list(SUGGESTED_PROMPTS), title=PROMPTS_TITLE),
                                  what="Slack suggested prompts", expected=EXPECTED, describe=describe))

    def _due(self, visit: str) -> bool:
        """Slack sends `app_home_opened` on every visit: the page or the prompts at most once a minute."""
        now = time.monotonic()
        if now - self._published.get(visit, -REFRESH_EVERY_S) < REFRESH_EVERY_S:
            return False
        self._published[visit] = now
        if len(self._published) > 10_000:  # forget visits older than the window, not people
            self._published = {v: at for v, at in self._published.items() if now - at < REFRESH_EVERY_S}
        return True

    async def _publish(self, user: str, body: dict[str, Any], event: dict[str, Any]) -> None:
        visitor = await self.bot.identify(Incoming(key=ThreadKey(platform=Platform.SLACK, workspace=t.team_of(body),
                                                                 channel=""),
                                                   user_id=user, text="App Home", org=t.org_signals(body, event)))
        refusal = await self.bot.handler.access.admit(visitor)
        if refusal is not None:
            blocks = [_section(f":lock: {t.to_mrkdwn(refusal.message)}")]
        else:
            blocks = await home_blocks(self.bot.handler.store, endpoint=self.bot.settings.endpoint_name,
                                       workspace_url=await self._workspace_url(),
                                       may_see=lambda thread: self._may_see(visitor, thread),
                                       workspace=visitor.key.workspace)
        await self.bot.client.views_publish(user_id=user, view={"type": "home", "blocks": blocks})

    async def _may_see(self, visitor: Incoming, thread: AlertThread) -> bool:
        """An open alert is listed for a member of its channel, in its workspace, who may see its domain
        (the same domain rules as an answer): App Home shows nobody another channel's alerts."""
        team = str(thread.thread_ref.get("team") or "")
        if team and visitor.key.workspace and team != visitor.key.workspace:
            return False
        if visitor.user_id not in await self._members(thread.target.removeprefix("slack:")):
            return False
        domain = str(thread.alert.get("domain") or "")
        return not domain or await self.bot.handler.access.withheld(visitor, [domain]) is None

    async def _members(self, channel: str) -> frozenset[str]:
        """Who is in a channel (conversations.members, all pages), cached for a few minutes; nobody
        when Slack will not say (the alert is then not listed)."""
        now = time.monotonic()
        cached = self._channel_members.get(channel)
        if cached is not None and cached[0] > now:
            return cached[1]
        members: set[str] = set()
        cursor = ""
        try:
            while True:
                page = await self.bot.client.conversations_members(channel=channel, limit=1000, cursor=cursor or None)
                members.update(str(m) for m in page.get("members") or [])
                cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "")
                if not cursor:
                    break
        except SlackApiError as exc:
            log.info("App Home: conversations.members for %s failed (%s): its alerts are not listed", channel,
                     exc.response.get("error"))
            members = set()
        if len(self._channel_members) > 1000:
            self._channel_members.clear()
        self._channel_members[channel] = (now + MEMBERS_TTL_S, frozenset(members))
        return self._channel_members[channel][1]

    async def _workspace_url(self) -> str:
        if not self.bot.workspace_url:
            await self.bot.health()  # auth.test: the workspace's URL, for links to alert threads
        return self.bot.workspace_url


async def home_blocks(store: Store, *, endpoint: str, workspace_url: str, may_see: MaySee, workspace: str,
                      now: float | None = None) -> list[dict[str, Any]]:
    """The page for one person: open alerts they may see (`may_see`), figures of their workspace."""
    now = time.time() if now is None else now
    _, quick = t.help_blocks()
    blocks: list[dict[str, Any]] = [
        _header("healthbot · Databricks Health Monitor"),
        _section("Ask about costs, jobs, query performance, security and data quality. A quick question is answered "
                 "in a direct message thread; mention `@healthbot` in any channel for the rest."),
        quick[-1],  # the five quick-question buttons
        {"type": "divider"}, _header("Open alerts"),
        *await _open_alerts(store, workspace_url, now, may_see),
        {"type": "divider"}, _header("The Health Monitor endpoint"),
        *await _deployment(store, endpoint),
        {"type": "divider"}, _header("healthbot, last 24 hours"),
        _figures(await collect(store, 24, where=lambda row: row.platform == "slack" and row.workspace == workspace)),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Updated {_when(now)}"}]},
    ]
    return blocks


async def _open_alerts(store: Store, workspace_url: str, now: float, may_see: MaySee) -> list[dict[str, Any]]:
    threads = [thread for thread in await store.alerts.threads_seen_since(now - ALERT_LOOK_BACK_S,
                                                                           states=care.OPEN_STATES)
               if thread.target.startswith("slack:") and not thread.acknowledged_by and "ts" in thread.thread_ref
               and await may_see(thread)]
    if not threads:
        return [_section("No open alert threads. :white_check_mark:")]
    lines = []
    for thread in sorted(threads, key=lambda th: th.state_since, reverse=True)[:OPEN_ALERTS_SHOWN]:
        channel, ts = thread.target.removeprefix("slack:"), str(thread.thread_ref["ts"])
        name = inert(str(thread.alert.get("name") or thread.alert_key)[:150])
        link = f"<{workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}|{name}>" if workspace_url else name
        snoozed = " · snoozed" if care.snoozed(thread, now) else ""
        lines.append(f"• {link} in <#{channel}> · {thread.state.lower()} since {_when(thread.state_since)}{snoozed}")
    more = len(threads) - OPEN_ALERTS_SHOWN
    if more > 0:
        lines.append(f"… and {more} more")
    return [_section("\n".join(lines))]


async def _deployment(store: Store, endpoint: str) -> list[dict[str, Any]]:
    """What the rollout watcher last saw (its cursor in the store), or the versions that answered."""
    stored = (await store.alerts.observed(f"deploy:{endpoint}")).get(f"deploy:{endpoint}")
    seen = Seen.loads(stored[0] if stored else None)
    if seen is None:
        rows = [row for row in await store.requests_since(time.time() - 24 * 3600) if row.served_version]
        served = f"v{inert(rows[-1].served_version)} answered last" if rows else "no version seen yet"
        return [_section(f"`{endpoint}`: {served} (the rollout watch is off: HEALTHBOT_DEPLOY_CHANNELS).")]
    text = f"`{endpoint}` serves *{inert(seen.served or seen.model or 'an unknown entity')}* (config {inert(seen.config or '?')})"
    if seen.pending:
        text += f"\n:arrows_counterclockwise: Rolling out config {seen.pending} ({seen.pending_split})"
        if seen.progress:
            text += f": {inert(seen.progress[:300])}"
    assert stored is not None
    return [_section(text), {"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"Last change seen {_when(stored[1])} · state {seen.update or 'NOT_UPDATING'}"}]}]


def _figures(stats: Stats) -> dict[str, Any]:
    def pct(value: float | None) -> str:
        return "–" if value is None else f"{value:.0%}"

    p95 = "–" if stats.p95_latency_ms is None else f"{stats.p95_latency_ms / 1000:.1f} s"
    fields = [f"*Questions*\n{stats.requests}", f"*Answered*\n{pct(stats.success_rate)}",
              f"*p95 answer time*\n{p95}", f"*👍 share*\n{pct(stats.feedback_up_rate)}"]
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": text} for text in fields]}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def _section(text: str) -> dict[str, Any]:
    """mrkdwn, `verbatim`: Slack links only what the page writes as a link, never a name that looks like one."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000], "verbatim": True}}


def _when(ts: float) -> str:
    """Slack's date formatting: each reader sees their own time zone."""
    return f"<!date^{int(ts)}^{{date_short_pretty}} {{time}}|{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(ts))}>"
