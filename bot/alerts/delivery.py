"""What proactive posts are made of: notes with buttons, the button ids, and how a delivery fails.

The channel types that post them are in bot/ports.py."""

from __future__ import annotations

from dataclasses import dataclass


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
