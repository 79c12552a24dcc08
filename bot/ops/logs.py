"""Logging: JSON lines when stderr is not a terminal (log shippers), readable text when it is.

A redaction filter masks anything shaped like a token (Slack xox*/xapp, Databricks dapi, bearer
headers, Basic credentials) in every record, as a last line of defence: no code here logs secrets
on purpose, and none should reach a log line by accident either.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone

from bot.store.base import RequestLogRow


def outcome_of(row: RequestLogRow) -> str:
    if row.error == "throttled":
        return "throttled"
    if row.refused:
        return "refused"
    if row.error:
        return "error"
    return "cached" if row.cached else "answered"

SECRET = re.compile(r"(xox[abposr]-[\w-]+|xapp-[\w-]+|dapi[0-9a-f]{16,}|(?i:bearer|basic)\s+[\w.~+/=-]{8,})")
FIELDS = ("request_id", "platform", "latency_ms", "outcome", "channel", "error")

request_log = logging.getLogger("healthbot.requests")


def redact(text: str) -> str:
    return SECRET.sub("[redacted]", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        entry.update({name: getattr(record, name) for name in FIELDS if hasattr(record, name)})
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def setup_logging(level: int, *, json_lines: bool | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    use_json = (not sys.stderr.isatty()) if json_lines is None else json_lines
    handler.setFormatter(JsonFormatter() if use_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def log_request(row: RequestLogRow) -> None:
    """One line per handled message: the handler calls this as an observer."""
    outcome = outcome_of(row)
    request_log.info("%s %s message in %.0f ms: %s", row.platform, outcome, row.latency_ms, row.request_id,
                     extra={"request_id": row.request_id, "platform": row.platform, "latency_ms": round(row.latency_ms, 1),
                            "outcome": outcome, "channel": row.channel, "error": row.error})
