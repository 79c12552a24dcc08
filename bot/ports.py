"""The only channel types bot/ knows: a `Channel` (Slack, Teams), the `ThreadPoster` every proactive
post goes through, and the `StreamSink` a streamed answer is shown on. Adapters implement them;
nothing here names a platform's SDK."""

from __future__ import annotations

from typing import Any, Protocol

from bot.alerts.delivery import Note
from bot.alerts.model import AlertView
from bot.models import Incoming, Platform, Reply, ThreadKey
from bot.ops.health import Check


class ThreadPoster(Protocol):
    """Posts, updates and replies in threads for every proactive post: alert threads, rollouts, digests,
    reminders, rollback notes and answers delivered late. Slack and Teams implement it."""

    platform: Platform

    async def post_root(self, channel: str, view: AlertView) -> dict[str, Any]:
        """Post a new thread root; returns the reference to the thread (JSON-able). The root carries
        the alert key where the platform can keep it (Slack message metadata) for `find_root`."""
        ...

    async def find_root(self, channel: str, alert_key: str, since: float) -> dict[str, Any] | None:
        """The root of this alert posted since then, if the platform can say (after a crash between
        posting and recording it); None when it was not posted or cannot be looked up."""
        ...

    async def update_root(self, channel: str, ref: dict[str, Any], view: AlertView) -> None:
        ...

    async def reply(self, channel: str, ref: dict[str, Any], text: str) -> None:
        """A plain-text reply in the thread (untrusted parts are escaped by the sink)."""
        ...

    async def remind(self, channel: str, ref: dict[str, Any], text: str, oncall: list[str]) -> None:
        """A reply in the thread that names (notifies) the on-call people: Slack user / user-group ids,
        Teams user ids. `text` is plain (escaped by the sink)."""
        ...

    async def post_chart(self, channel: str, ref: dict[str, Any], chart: dict[str, Any], *, what: str) -> None:
        """Draw the chart and put it in the thread (Slack: uploaded; Teams: a card image); a chart that
        cannot be drawn or posted is logged, never raised."""
        ...

    async def post_note(self, channel: str, ref: dict[str, Any] | None, note: Note) -> dict[str, Any]:
        """Post a note in the thread `ref` (None: as a new post in the channel); returns the reference
        of the thread it is in, as `post_root` does."""
        ...

    async def post_answer(self, channel: str, ref: dict[str, Any], reply: Reply) -> None:
        """Post an answer that could not be posted when it was ready (the platform was down): `ref` is
        what the adapter recorded to find the conversation again."""
        ...

    def thread_key(self, channel: str, ref: dict[str, Any]) -> ThreadKey:
        """The conversation key of the thread, so questions asked there share its session."""
        ...

    async def ask_in_thread(self, channel: str, ref: dict[str, Any], message: Incoming) -> None:
        """Have the handler answer `message` and post the answer in the thread."""
        ...


class StreamSink(Protocol):
    """Where an adapter shows a streamed answer as it comes (a growing Slack message, a Teams stream,
    the terminal). Errors showing it are the adapter's to absorb: the answer is delivered at the end."""

    async def stage(self, words: str) -> None: ...

    async def text(self, delta: str) -> None: ...


class Channel(Protocol):
    """A chat platform healthbot is on (Slack, Teams): built with the Core, it answers questions and
    card actions itself; the core reaches it for health and proactive posts."""

    platform: Platform

    async def health(self) -> Check:
        ...

    def poster(self) -> ThreadPoster:
        ...
