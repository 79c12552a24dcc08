"""What a question names, checked against the data: a job, a principal, a securable, a breakdown.

Routing by the first keyword that matched gave "is the nightly ETL slower than last week?" the
slow-queries report. A name counts only when the dataset has it (the jobs, the principals of the audit
log, the schemas and tables); a job-like name the data does not have is said to be unknown, never
answered with another job.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

WORD = re.compile(r"[a-z0-9]+")  # runs of lowercase letters and digits (the router counts them too)
# Words of job names too common to name one job alone ("daily", "model"): they count only beside another.
GENERIC = frozenset({"daily", "model", "batch", "data", "job", "jobs", "run", "tests", "silver", "bronze", "events",
                     "customer", "orders", "dev", "ml"})
JOBLIKE = re.compile(r"\b(job|jobs|pipeline|pipelines|etl|runs?|ran|slow\w*|fast\w*|longe?\w*|duration|durations|took|take)\b", re.I)
SNAKE_NAME = re.compile(r"`?\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b`?")
DIMENSIONS = {"workspace": "workspace", "sku": "sku", "skus": "sku", "job": "job", "jobs": "job", "warehouse": "warehouse",
              "warehouses": "warehouse", "user": "user", "users": "user", "who": "user", "person": "user", "people": "user"}
ACCESS_WORDS = re.compile(r"\b(permission|grant|revok|privilege|acl|admin rights|access to|login|logins|log in)\w*", re.I)


@dataclass(frozen=True)
class Known:
    """The names the dataset holds, read from it once per build."""

    jobs: tuple[str, ...] = ()
    principals: tuple[str, ...] = ()  # emails in the audit log
    objects: tuple[str, ...] = ()  # schema and table names: main.finance, main.finance.revenue_daily, ...

    @classmethod
    def read(cls, db: sqlite3.Connection) -> Known:
        tables = [name for (name,) in db.execute("SELECT table_name FROM table_freshness")]
        securables = [params.split("securable=", 1)[1].split(" changes=", 1)[0].split(" ", 1)[-1] for (params,) in
                      db.execute("SELECT request_params FROM access_audit WHERE request_params LIKE 'securable=%'")]
        schemas = {".".join(name.split(".")[:2]) for name in [*tables, *securables] if name.count(".") >= 1}
        return cls(tuple(name for (name,) in db.execute("SELECT name FROM jobs ORDER BY name")),
                   tuple(email for (email,) in db.execute("SELECT DISTINCT user_email FROM access_audit ORDER BY 1")),
                   tuple(sorted({*tables, *securables, *schemas})))


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def named_job(question: str, known: Known) -> str | None:
    """The job a question names: its whole name, two of its words ("the nightly ETL" has one, "churn model
    training" three), or one word no other job has, in a question about jobs."""
    said = set(words(question))
    lowered = question.lower()
    best: tuple[int, str] | None = None
    for job in known.jobs:
        parts = job.split("_")
        if job in lowered:
            return job
        hits = [p for p in parts if p in said]
        unique = [p for p in hits if p not in GENERIC and all(p not in other.split("_") for other in known.jobs if other != job)]
        if len(hits) >= 2 or (unique and JOBLIKE.search(question)):
            score = len(hits) * 2 + len(unique)
            if best is None or score > best[0]:
                best = (score, job)
    return best[1] if best else None


def unknown_job(question: str, known: Known) -> str | None:
    """A job-like name (snake_case, as Databricks job names are) that is neither a job nor a table."""
    for match in SNAKE_NAME.finditer(question):
        name = match.group(1)
        if name not in known.jobs and not any(name in obj for obj in known.objects):
            return name
    return None


def principal(question: str, known: Known) -> str | None:
    """A principal of the audit log, by email or by a name in it ("jane", "gus berg")."""
    lowered, said = question.lower(), set(words(question))
    for email in known.principals:
        local = email.split("@", 1)[0]
        if email in lowered or local in lowered or any(len(p) >= 3 and p in said for p in re.split(r"[.\-_]", local)
                                                       if p not in ("sp", "exec", "dashboard", "contractor")):
            return email
    return None


def securable(question: str, known: Known) -> str | None:
    """A schema or table the question names ("the finance catalog" names main.finance): the word matched."""
    said = set(words(question))
    parts = {part for obj in known.objects for part in obj.split(".")[1:]}
    for part in sorted(parts, key=len, reverse=True):  # a word, or a snake_case name within the text
        if part in said or ("_" in part and part in question.lower()):
            return part
    return None


def dimension(question: str) -> str | None:
    """The breakdown a cost question asks for: by workspace, SKU, job, warehouse or user."""
    for word in words(question):
        if word in DIMENSIONS:
            return DIMENSIONS[word]
    return None


def asks_about_access(question: str) -> bool:
    return bool(ACCESS_WORDS.search(question))
