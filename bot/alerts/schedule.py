"""When a digest is due: HEALTHBOT_DIGEST = "<day> <HH:MM>" (`mon 09:00`, or `daily 09:00`) in
HEALTHBOT_DIGEST_TZ, and the period each digest covers. Pure (no store, no engine): settings validate a
schedule with it at start, and the digest and its scheduler import it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Period:
    key: str  # "2026-W49" / "2026-12-03": the period's identity, posted once
    start: float
    end: float
    label: str  # "week of 23–30 Nov 2026"


@dataclass(frozen=True, slots=True)
class Schedule:
    day: int | None  # 0 = Monday; None: daily
    hour: int
    minute: int
    tz: ZoneInfo

    @staticmethod
    def parse(text: str, tz: str = "UTC") -> Schedule:
        """ValueError naming what is wrong."""
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"HEALTHBOT_DIGEST_TZ: {tz!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
        parts = text.strip().lower().split()
        if len(parts) != 2 or (parts[0] not in DAYS and parts[0] != "daily"):
            raise ValueError(f"HEALTHBOT_DIGEST: expected '<day> <HH:MM>' like 'mon 09:00' or 'daily 09:00', not {text!r}")
        hour, _, minute = parts[1].partition(":")
        if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
            raise ValueError(f"HEALTHBOT_DIGEST: {parts[1]!r} is not a time like 09:00")
        return Schedule(None if parts[0] == "daily" else DAYS.index(parts[0]), int(hour), int(minute), zone)

    def until_now(self, now: float) -> Period:
        """The period that ends now (`healthbot digest`, `/healthbot digest`): the last week, or day."""
        length = timedelta(days=1 if self.day is None else 7)
        end = datetime.fromtimestamp(now, self.tz)
        start = end - length
        kind = "day" if self.day is None else "week"
        return Period(f"now-{int(now)}", start.timestamp(), now, f"{kind} {start:%d %b} – {end:%d %b %Y}")

    def latest(self, now: float) -> Period:
        """The period whose digest is due most recently at or before `now`."""
        local = datetime.fromtimestamp(now, self.tz)
        due = local.replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
        if self.day is None:
            if due > local:
                due -= timedelta(days=1)
            start = due - timedelta(days=1)
            return Period(f"{due:%Y-%m-%d}", start.timestamp(), due.timestamp(), f"day {start:%d %b} – {due:%d %b %Y}")
        due -= timedelta(days=(due.weekday() - self.day) % 7)
        if due > local:
            due -= timedelta(days=7)
        start = due - timedelta(days=7)
        year, week, _ = due.isocalendar()
        return Period(f"{year}-W{week:02d}", start.timestamp(), due.timestamp(), f"week {start:%d %b} – {due:%d %b %Y}")


def on_demand_period(digest: str | None, tz: str, now: float) -> Period:
    """The period `healthbot digest` and `/healthbot digest` report: the configured schedule's length
    (a week, or a day when `daily`; a week when no digest is scheduled) ending now."""
    return Schedule.parse(digest or "mon 09:00", tz).until_now(now)
