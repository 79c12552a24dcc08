"""DemoEngine: the offline stand-in for the Health Monitor orchestrator.

Deterministic: the same conversation on the same day gets the same answer, computed by SQL over
the synthetic dataset (see dataset.py), so `healthbot ask` is useful and testable on a laptop.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

from agent.base import AgentRequest, Answer, ChatMessage, Chunk, ProgressCallback
from agent.demo import reports_followups, reports_lookup, reports_ops, reports_periods, reports_usage
from agent.demo.dataset import data_hour, ensure_dataset
from agent.demo.entities import Known
from agent.demo.report_kit import Report, ReportFn, Scope
from agent.demo.router import Route, route

DEFAULT_DAY = {"costs": 1, "jobs": 0}  # days back when a question names none

REPORTS: dict[tuple[str, bool], ReportFn] = {
    ("costs", False): reports_usage.costs,
    ("costs", True): reports_usage.cost_driver_detail,
    ("jobs", False): reports_usage.failed_jobs,
    ("jobs", True): reports_usage.failed_job_detail,
    ("performance", False): reports_ops.slow_queries,
    ("performance", True): reports_ops.slow_query_detail,
    ("security", False): reports_ops.security,
    ("data_quality", False): reports_ops.data_quality,
    ("health", False): reports_ops.overview,
    ("access", False): reports_lookup.access_changes,
    ("job_history", False): reports_lookup.job_history,
    ("job_durations", False): reports_lookup.job_durations,
    ("unknown_job", False): reports_lookup.no_such_job,
    ("expensive_queries", False): reports_lookup.expensive_queries,
    ("cost_by", False): reports_lookup.cost_by,
}

VIEW_REPORTS: dict[tuple[str, str], ReportFn] = {
    ("costs", "month"): reports_periods.cost_month,
    ("costs", "trend"): reports_followups.cost_trend,
    ("costs", "week"): reports_followups.cost_week,
    ("jobs", "trend"): reports_followups.job_trend,
    ("jobs", "most"): reports_followups.job_most,
    ("jobs", "week"): reports_followups.job_week,
}

OUT_OF_SCOPE = (
    "I can answer questions about your Databricks platform's **costs**, **jobs**, **query performance**, "
    "**security** and **data quality**. Try one of these:\n\n"
    "- Why did costs spike yesterday?\n- Which jobs failed today?\n- Show me slow queries\n"
    "- Any security concerns?\n- Platform health overview"
)

GREETING = ("Hi! Ask me about your platform's costs, jobs, query performance, security or data quality, "
            "e.g. *Which jobs failed today?*")
THANKS = "You're welcome. Ask a follow-up here any time."
NO_SQL = "There is no earlier answer in this conversation to show the SQL of. Ask a question first, e.g. *Why did costs spike yesterday?*"


class DemoEngine:
    name = "demo"

    def __init__(self, *, data_dir: str | Path | None = None, clock: Callable[[], datetime] = data_hour,
                 pace_s: float = 0.0) -> None:
        self._data_dir = data_dir
        self.pace_s = pace_s  # seconds between streamed pieces (HEALTHBOT_DEMO_PACE): visible in `healthbot chat`
        self._clock = clock  # the moment of the answer; the data ends at the start of its UTC hour
        self._db: sqlite3.Connection | None = None
        self._db_hour: datetime | None = None
        self._known = Known()

    def database(self, now: datetime) -> sqlite3.Connection:
        """A read-only connection to the dataset ending at `now`'s hour, built on first use."""
        if self._db is None or self._db_hour != now:
            if self._db is not None:
                self._db.close()
            path = ensure_dataset(now, self._data_dir)
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db_hour = now
            self._known = Known.read(self._db)
        return self._db

    def known(self, now: datetime) -> Known:
        """The names in the data ending at `now`: what a question may name (agent/demo/entities.py)."""
        self.database(now)
        return self._known

    def respond(self, request: AgentRequest) -> Answer:
        """Synchronous core of `answer`, shared with the demo endpoint."""
        started = time.perf_counter()
        answer = self._reply(request.messages, data_hour(self._clock()))
        answer.endpoint_latency_ms = (time.perf_counter() - started) * 1000
        return answer

    def _reply(self, messages: list[ChatMessage], now: datetime) -> Answer:
        chosen: Route = route(messages, now.date(), self.known(now))
        if chosen.intent == "small_talk":
            greeting = re.match(r"\W*(hi|hello|hey|good)\b", messages[-1].content, re.I)
            return Answer(GREETING if greeting else THANKS)
        if chosen.intent == "show_sql":
            return self._previous_sql(messages, now)
        if chosen.intent is None:
            return Answer(OUT_OF_SCOPE, confidence=0.2)
        report = self._report(chosen, now)
        return Answer(content=report.content, sources=report.sources, confidence=report.confidence,
                      domains=report.domains, charts=report.charts)

    def _report(self, chosen: Route, now: datetime) -> Report:
        assert chosen.intent is not None
        day = chosen.day or now.date() - timedelta(days=DEFAULT_DAY.get(chosen.intent, 0))
        make = (VIEW_REPORTS.get((chosen.intent, chosen.view)) or REPORTS.get((chosen.intent, chosen.detail))
                or REPORTS[(chosen.intent, False)])
        return make(self.database(now), Scope(now=now, day=day, entity=chosen.entity, dimension=chosen.dimension,
                                              period=chosen.period))

    def _previous_sql(self, messages: list[ChatMessage], now: datetime) -> Answer:
        """The SQL behind the conversation's latest report: its route is recomputed from the turns before
        (the engine is deterministic, so this is the very report that was shown)."""
        earlier = list(messages)
        while any(m.role == "user" for m in earlier[:-1]):
            earlier = earlier[: max(i for i, m in enumerate(earlier[:-1]) if m.role == "user") + 1]
            chosen = route(earlier, now.date(), self.known(now))
            if chosen.intent not in (None, "small_talk", "show_sql"):
                report = self._report(chosen, now)
                blocks = "\n\n".join(f"```sql\n{query.strip()}\n```" for query in report.sql)
                return Answer(f"The SQL behind that answer, over {', '.join(report.tables)}:\n\n{blocks}",
                              sources=report.sources, confidence=report.confidence, domains=report.domains)
        return Answer(NO_SQL, confidence=0.2)

    async def answer(self, request: AgentRequest, *, on_progress: ProgressCallback | None = None) -> Answer:
        return self.respond(request)

    async def stream(self, request: AgentRequest, *, on_progress: ProgressCallback | None = None) -> AsyncIterator[Chunk]:
        """As the Health Monitor's agents stream: a stage per data source read, then the answer in
        pieces of a few words (never splitting a table row), then the whole answer."""
        answer = self.respond(request)
        for table in [s for s in answer.sources if not s.startswith("SQL:")]:
            yield Chunk(stage=f"reading {table}…")
            await asyncio.sleep(self.pace_s)
        for piece in pieces(answer.content):
            yield Chunk(text=piece)
            await asyncio.sleep(self.pace_s)
        yield Chunk(answer=answer)

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def pieces(text: str, words: int = 4) -> list[str]:
    """The text in pieces of a few words; table rows whole (a renderer never sees half a row)."""
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("|"):
            out.append(line)
            continue
        tokens = re.findall(r"\S+\s*|\s+", line)
        out += ["".join(tokens[i:i + words]) for i in range(0, len(tokens), words)]
    return out
