"""What people do with an alert thread, kept in its `care` record: snoozes, acknowledgements (when), the
state changes of the last half hour (flapping), and how often it was reminded. Pure functions over an
AlertThread; bot/alerts/threads.py applies them and bot/alerts/reminders.py sends the reminders.

- Snooze (1 h, 4 h, 1 day, until OK): while snoozed, repeats and re-triggers only update the root; a
  resolve still gets its quiet reply in the thread (and ends an "until OK" snooze); a snooze that runs
  out is a quiet root update.
- Flapping: more than 4 state changes within 30 minutes → one "flapping" line, then only root updates
  until the alert has kept its state for 30 minutes.
"""

from __future__ import annotations

from datetime import datetime, timezone

from bot.store.base import AlertThread

SNOOZES: dict[str, float | None] = {"1h": 3600.0, "4h": 4 * 3600.0, "1d": 86400.0, "ok": None}  # None: until OK
SNOOZE_LABELS = {"1h": "1 h", "4h": "4 h", "1d": "1 day", "ok": "until OK"}
FLAP_WINDOW_S = 1800.0
FLAP_CHANGES = 4  # more than this many changes in the window is flapping
OPEN_STATES = ("TRIGGERED", "ERROR", "failed")
MAX_REMINDERS = 3


def snooze(thread: AlertThread, who: str, choice: str, now: float) -> bool:
    """Snooze the thread; False for a choice healthbot does not offer."""
    if choice not in SNOOZES:
        return False
    length = SNOOZES[choice]
    thread.care["snooze"] = {"by": who[:80], "until": now + length if length is not None else None}
    return True


def snoozed(thread: AlertThread, now: float) -> bool:
    """True while a snooze holds; one that ran out is removed (the caller updates the root)."""
    held = thread.care.get("snooze")
    if not isinstance(held, dict):
        return False
    until = held.get("until")
    if isinstance(until, (int, float)) and until <= now:
        thread.care.pop("snooze", None)
        return False
    return True


def snooze_line(thread: AlertThread) -> str:
    held = thread.care.get("snooze")
    if not isinstance(held, dict):
        return ""
    until = held.get("until")
    when = (f"until {datetime.fromtimestamp(until, timezone.utc):%Y-%m-%d %H:%M} UTC"
            if isinstance(until, (int, float)) else "until it is OK")
    return f"Snoozed by {held.get('by') or 'someone'} {when}"


def end_snooze_on_clear(thread: AlertThread) -> None:
    held = thread.care.get("snooze")
    if isinstance(held, dict) and held.get("until") is None:
        thread.care.pop("snooze", None)


def acknowledged(thread: AlertThread, who: str, now: float) -> None:
    thread.acknowledged_by = who
    thread.care.setdefault("acked_at", now)


def record_change(thread: AlertThread, now: float) -> str:
    """Note a state change; "start" when it makes the alert flapping, "flapping" while it is, "" when it
    is not (a flapping alert stable for 30 minutes is no longer)."""
    changes = [t for t in thread.care.get("changes", []) if isinstance(t, (int, float)) and t > now - FLAP_WINDOW_S]
    still = bool(thread.care.get("flapping")) and bool(changes)  # no change in the window: stable again
    changes.append(now)
    thread.care["changes"] = changes[-20:]
    if still:
        return "flapping"
    thread.care.pop("flapping", None)
    if len(changes) > FLAP_CHANGES:
        thread.care["flapping"] = now
        return "start"
    return ""


def wants_reminder(thread: AlertThread, now: float) -> bool:
    return (thread.state in OPEN_STATES and not thread.acknowledged_by and not thread.digest
            and not snoozed(thread, now))


def flapping_line(name: str, thread: AlertThread) -> str:
    return (f"〰️ {name} is flapping: {len(thread.care.get('changes', []))} state changes in 30 minutes. Until it "
            "keeps one state for 30 minutes, healthbot only updates the message above.")
