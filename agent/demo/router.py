"""Which report a question asks for, read from the conversation, not only the last message.

Like the orchestrator it stands in for, context comes from the history the handler sends:
"which job was it?" after a costs answer means the job behind the spike, and "what about
yesterday?" repeats the previous question for another day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from agent.base import ChatMessage
from agent.demo import entities
from agent.demo.entities import Known

INTENT_STEMS: dict[str, tuple[str, ...]] = {
    "costs": ("cost", "spend", "spent", "spike", "bill", "dbu", "expens", "price", "money", "budget", "dollar"),
    "jobs": ("job", "fail", "pipeline", "run", "broke", "crash"),
    "performance": ("slow", "quer", "latenc", "perform", "warehouse", "durat", "speed"),
    "security": ("secur", "access", "login", "suspic", "permiss", "audit", "token", "breach", "admin", "hack", "threat"),
    "data_quality": ("fresh", "stale", "quality", "table", "outdated"),
    "health": ("health", "overview", "status", "summar", "everything", "overall"),
}
INTENTS = tuple(INTENT_STEMS)  # also the tie-break order
FOLLOW_UP_VIEWS = frozenset({("costs", "month"), ("costs", "trend"), ("costs", "week"), ("jobs", "trend"), ("jobs", "most"), ("jobs", "week")})

FOLLOW_UPS: dict[str, re.Pattern[str]] = {
    "costs": re.compile(r"\b(which|what|who)\b.*\b(job|one|driver|workspace|sku|cluster|it)\b|\bwhy\b|\bmore\b|\bdetail", re.I),
    "jobs": re.compile(r"\bwhy\b|\berror|\bdetail|\bmore\b|\bwhat happened|\bcause", re.I),
    "performance": re.compile(r"\b(what|which|who)\b|\bdetail|\bmore\b|\btext\b|\bwhy\b", re.I),
}
_DAYS_AGO = re.compile(r"\b(\d{1,2}) days? ago\b", re.I)
# The obvious next questions, whatever the topic: (view, pattern), first match wins.
VIEWS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("month", re.compile(r"\b(this|the) month\b|\bmonth[- ]to[- ]date\b|\bmtd\b|\bso far this month\b", re.I)),
    ("trend", re.compile(r"\btrend|\bover time\b|\bday by day\b|\bhistory\b|\bchart\b|\bgraph\b", re.I)),
    ("most", re.compile(r"\b(which|what)\b.*\b(most|worst|often)\b|\bmost\b.*\bfail", re.I)),
    ("week", re.compile(r"\b(last|this|past) week\b|\b7 days\b", re.I)),
)
# Not questions about the platform: a reply of a line, never a report (a bare "thanks" used to be read
# as a short follow-up and re-posted the whole previous report).
SMALL_TALK = re.compile(
    r"^\W*(thanks?( you)?|thx|ty|cheers|great|perfect|nice|cool|ok(ay)?|got it|hi|hello|hey|"
    r"good (morning|afternoon|evening))( (healthbot|so much|a lot|very much|there))?\W*$", re.I)
# Questions the demo's reports cannot answer although their words match one (checked after `lookup`, which
# answers what names something in the data): answering them with the nearest report (yesterday's spike for
# "last quarter", security findings for "the hr catalog") would be a bluff at high confidence. They get the
# list of what it can answer instead.
BEYOND_THE_PERIOD = re.compile(  # the data holds 30 days: checked first, whatever the question names
    r"\b(last|previous|past) (month|quarter|year)\b|\bquarter|\bytd\b|\byear[- ]to[- ]date\b|\bannual", re.I)
BEYOND_THE_DATA = re.compile(r"\b(catalog|schema|metastore|volume|notebook|dashboard|lineage)s?\b", re.I)
SHOW_SQL = re.compile(r"\bsql\b", re.I)  # "show me the SQL", "what SQL is that from?"
PERMISSIONS = re.compile(r"\b(permission|grant|revok|privilege|acl)\w*|\badmin rights\b|\bwho (changed|gave|added)\b",
                         re.I)
SPIKE = re.compile(r"\b(spike|jump|rise|rose|increase|why)\b", re.I)  # the day's spike report, not a breakdown
_COSTLY = r"(expensive|costl\w*|pricie\w*|cost(s|ed)? the most|cost most)"
EXPENSIVE_QUERIES = re.compile(rf"\b{_COSTLY}\b.*\bquer|\bquer\w*\b.*\b{_COSTLY}", re.I)  # "which queries cost the most?"
JOB_DURATIONS = re.compile(r"\b(jobs?|pipelines?|etl)\b.*\b(slow|fast|long|short|duration|took|take)\w*"
                           r"|\b(slow|fast|long|short|duration)\w*\b.*\b(jobs?|pipelines?)\b", re.I)
PERIODS = (("month", re.compile(r"\b(this|the) month\b|\bmonth[- ]to[- ]date\b|\bmtd\b", re.I)),
           ("wtd", re.compile(r"\bthis week\b|\bweek[- ]to[- ]date\b", re.I)),
           ("week", re.compile(r"\b(last|past) (7 days|week)\b|\b7 days\b", re.I)))


@dataclass(frozen=True)
class Route:
    intent: str | None  # None: out of scope; "small_talk"; "show_sql": the previous answer's SQL
    detail: bool = False
    day: date | None = None
    view: str = ""  # "month", "trend", "most", "week": a follow-up view of the topic (agent/demo/reports_followups.py)
    entity: str = ""  # the job, principal or securable the question names (checked against the data)
    dimension: str = ""  # a cost breakdown asked for: workspace, sku, job, warehouse, user
    period: str = ""  # "day", "week", "wtd", "month" (report_kit.Scope.window)


def scores(text: str) -> dict[str, int]:
    words = entities.words(text)
    return {intent: sum(1 for word in words for stem in stems if word.startswith(stem)) for intent, stems in INTENT_STEMS.items()}


def classify(text: str) -> str | None:
    found = scores(text)
    best = max(INTENTS, key=lambda intent: (found[intent], -INTENTS.index(intent)))
    return best if found[best] > 0 else None


def named_day(text: str, today: date) -> date | None:
    lowered = text.lower()
    if "day before yesterday" in lowered:
        return today - timedelta(days=2)
    if "yesterday" in lowered or "last night" in lowered:
        return today - timedelta(days=1)
    if "today" in lowered or "this morning" in lowered:
        return today
    match = _DAYS_AGO.search(lowered)
    return today - timedelta(days=int(match.group(1))) if match else None


def previous_intent(history: list[ChatMessage]) -> str | None:
    """The topic of the conversation so far: the last earlier question (or the alert context a thread
    started with, sent as a system message) that had one."""
    for message in reversed(history):
        if message.role in ("user", "system"):
            intent = classify(message.content)
            if intent is not None:
                return intent
    return None


def named_period(text: str, day: date | None) -> str:
    found = next((name for name, pattern in PERIODS if pattern.search(text)), "")
    return found or ("day" if day is not None else "")


def lookup(question: str, today: date, known: Known) -> Route | None:
    """A question about something it names, or a breakdown, checked against the data before the topic
    keywords: "is the nightly ETL slower than last week?" is about that job, not about slow queries."""
    day = named_day(question, today)
    period = named_period(question, day)
    who, what = entities.principal(question, known), entities.securable(question, known)
    if PERMISSIONS.search(question) or (who and entities.asks_about_access(question)):
        return Route("access", entity=who or what or "")
    job = entities.named_job(question, known)
    if job:
        return Route("job_history", entity=job, day=day, period=period)
    missing = entities.unknown_job(question, known)
    if missing:
        return Route("unknown_job", entity=missing)
    if EXPENSIVE_QUERIES.search(question):
        return Route("expensive_queries", day=day, period=period)
    dimension = entities.dimension(question) or ("user" if who else None)  # "what did ben spend?": by user
    if dimension and scores(question)["costs"] and not SPIKE.search(question):
        return Route("cost_by", dimension=dimension, day=day, period=period)
    if JOB_DURATIONS.search(question):
        return Route("job_durations", day=day, period=period)
    return None


def route(messages: list[ChatMessage], today: date, known: Known = Known()) -> Route:
    user_turns = [i for i, m in enumerate(messages) if m.role == "user"]
    if not user_turns:
        return Route(None)
    question = messages[user_turns[-1]].content
    if SMALL_TALK.match(question):
        return Route("small_talk")
    earlier = previous_intent(messages[: user_turns[-1]])
    if SHOW_SQL.search(question) and len(entities.WORD.findall(question)) <= 8 and classify(question) is None:
        return Route("show_sql")
    if BEYOND_THE_PERIOD.search(question):
        return Route(None)
    looked_up = lookup(question, today, known)
    if looked_up is not None:
        return looked_up
    if BEYOND_THE_DATA.search(question):
        return Route(None)
    view = next((name for name, pattern in VIEWS if pattern.search(question)), "")
    if view:
        topic = classify(question) or earlier
        if topic is not None and (topic, view) in FOLLOW_UP_VIEWS:
            return Route(topic, view=view)
        if view == "month":  # only costs have a month-to-date report
            return Route(None)
    day = named_day(question, today)
    found = scores(question)
    short = len(entities.words(question)) <= 7
    pattern = FOLLOW_UPS.get(earlier or "")
    if earlier and pattern and short and max(found.values()) <= 1 and pattern.search(question) and day is None:
        return Route(earlier, detail=True)
    intent = classify(question)
    if intent is not None:
        return Route(intent, day=day)
    if earlier and (day is not None or short):
        return Route(earlier, day=day)
    return Route(None)
