"""Shared pieces of the demo engine's answers: the scope of a question, a report, formatting.

Every figure in an answer comes from SQL over the synthetic system tables, and each answer names
its tables and SQL as sources, as the Health Monitor's agents do, so a reader (or a test) can check it.
"""

from __future__ import annotations

import sqlite3
from typing import Any
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

FMT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Scope:
    """What a question is about: the day it names, and the dataset's now (where its data ends)."""

    now: datetime
    day: date
    entity: str = ""  # the job, principal or securable named (agent/demo/entities.py)
    dimension: str = ""  # a cost breakdown: workspace, sku, job, warehouse, user
    period: str = ""  # "day" (the day named), "week" (the last 7 days), "wtd" (since Monday), "month" (to date)

    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def since_24h(self) -> str:
        return (self.now - timedelta(hours=24)).strftime(FMT)

    def on(self, day: date) -> Scope:
        return Scope(self.now, day)

    def window(self, default: str = "week") -> tuple[date, date, str]:
        """(first day, last day, words) of the period the question names, else of `default`."""
        period = self.period or default
        if period == "day":
            return self.day, self.day, self.day_word()
        if period == "month":
            return self.today.replace(day=1), self.today, f"in {self.today:%B} 1–{self.today.day} (today so far)"
        if period == "wtd":
            monday = self.today - timedelta(days=self.today.weekday())
            return monday, self.today, f"this week (since Monday {monday.isoformat()}, today so far)"
        return self.today - timedelta(days=6), self.today, "in the last 7 days (today so far)"

    def run_window(self) -> dict[str, str]:
        """Job runs a question about its day means, by end time: for today the last 24 hours (at 00:10
        a calendar "today" holds ten minutes), for another day that calendar day."""
        if self.day == self.today:
            return {"since": self.since_24h, "until": self.now.strftime(FMT)}
        start = datetime.combine(self.day, datetime.min.time())
        return {"since": start.strftime(FMT), "until": (start + timedelta(days=1)).strftime(FMT)}

    def run_window_words(self) -> str:
        return "in the last 24 h" if self.day == self.today else self.day_word()

    def day_word(self) -> str:
        if self.day == self.today:
            return "today"
        if self.day == self.today - timedelta(days=1):
            return "yesterday"
        return f"on {self.day.isoformat()}"


@dataclass
class Report:
    content: str
    tables: list[str]
    sql: list[str] = field(default_factory=list)
    confidence: float = 0.9
    domains: list[str] = field(default_factory=list)
    charts: list[dict[str, Any]] = field(default_factory=list)  # as an agent's custom_outputs.charts

    @property
    def sources(self) -> list[str]:
        return [*self.tables, *(f"SQL: {' '.join(query.split())}" for query in self.sql)]


def usd(value: float) -> str:
    return f"-${-value:,.0f}" if value < 0 else f"${value:,.0f}"


def signed_usd(value: float) -> str:
    return ("+" if value >= 0 else "") + usd(value)


def duration(ms: float) -> str:
    seconds = ms / 1000
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.1f} s"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


ReportFn = Callable[[sqlite3.Connection, Scope], Report]
