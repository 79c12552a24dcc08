"""What a chat platform must offer the alert path; Slack and Teams adapters implement it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bot.alerts.model import AlertView
from bot.models import Incoming, Platform, Reply, ThreadKey

INVESTIGATE = "alert_investigate"
ACKNOWLEDGE = "alert_acknowledge"
SNOOZE = "alert_snooze"  # Slack: alert_snooze_<choice> (action ids are unique in a block); Teams: data.for
ROLLBACK_ACTION = "deploy_rollback"  # a rollout comparison's Roll back button: {"to": version}
CONFIRM_ACTION = "deploy_confirm"  # a rollback confirmation's buttons: {"id": rollback id}
CANCEL_ACTION = "deploy_cancel"
DEPLOY_ACTIONS = (ROLLBACK_ACTION, CONFIRM_ACTION, CANCEL_ACTION)


@dataclass(frozen=True, slots=True)
class NoteButton:
    label: str
    action: str  # the action id / Teams verb (bot/deploy: deploy_rollback, deploy_confirm, deploy_cancel)
    value: dict[str, str]
    primary: bool = False


@dataclass(frozen=True, slots=True)
class Note:
    """A message healthbot writes itself (a rollout comparison, a rollback confirmation): trusted
    markdown (tables allowed; any untrusted part is escaped by whoever builds it) and buttons."""

    markdown: str
    buttons: tuple[NoteButton, ...] = ()
    summary: str = ""  # the notification text


class DeliveryError(Exception):
    """`permanent`: retrying cannot help (channel gone, bot removed, no reference) — say what to do."""

    def __init__(self, reason: str, *, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


class AlertSink(Protocol):
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


class AlertCapable(Protocol):
    """An adapter that can carry alert threads (Slack, Teams); it calls the dispatcher for buttons."""

    dispatcher: Any

    def alert_sink(self) -> AlertSink:
        ...
