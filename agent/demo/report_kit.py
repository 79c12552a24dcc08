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

    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def since_24h(self) -> str:
        return (self.now - timedelta(hours=24)).strftime(FMT)

    def on(self, day: date) -> Scope:
        return Scope(self.now, day)

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
