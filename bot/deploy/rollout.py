"""What a rollout looks like in the chat, as pure functions the watcher calls: the endpoint seen before
and now → at most one rollout alert (one thread per config update, posted through the alert outbox),
and two versions' figures from the request log → the before / after comparison.

States of a rollout thread: IN_PROGRESS (root posted, updated in place as entities deploy), then
SERVING (with how long it took), UPDATE_FAILED (with the deployment state message) or UPDATE_CANCELED.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from agent.endpoint_config import ConfigSnapshot, EndpointView
from bot.alerts.model import Alert, AlertSource
from bot.ops.stats import VersionFigures
from bot.text import inert

ENDED = ("NOT_UPDATING", "UPDATE_FAILED", "UPDATE_CANCELED")
# The Health Monitor's own rules, and what "clearly worse" than the version before means.
MAX_ERROR_RATE, MAX_P95_MS = 0.10, 10_000.0
WORSE_ERROR_POINTS, WORSE_P95_FACTOR = 0.05, 1.5
COMPARE_AFTER_ANSWERS, COMPARE_AFTER_S, COMPARE_MIN_ANSWERS = 30, 3600.0, 5


@dataclass(frozen=True, slots=True)
class Seen:
    """The watcher's cursor for one endpoint (stored as JSON): what it last saw."""

    config: str  # config_version serving
    served: str  # its split, "v7" or "v7 90 % / v8 10 %"
    version: str  # its primary entity's version ("" for a foundation model)
    model: str
    update: str  # state.config_update
    pending: str = ""  # the pending config_version while an update runs
    pending_split: str = ""
    pending_version: str = ""
    started: float = 0.0  # when the pending update started (epoch seconds)
    progress: str = ""  # the pending entities' deployment states and messages

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def loads(text: str | None) -> Seen | None:
        if not text:
            return None
        try:
            return Seen(**json.loads(text))
        except (ValueError, TypeError):
            return None  # an unreadable cursor: treated as a first look (nothing posted)


def _progress(snapshot: ConfigSnapshot | None) -> str:
    if snapshot is None:
        return ""
    parts = [f"{e.label}: {e.deployment or 'state unknown'}" + (f" ({e.message})" if e.message else "")
             for e in snapshot.entities]
    return "; ".join(parts)


def seen_of(view: EndpointView, before: Seen | None, now: float) -> Seen:
    primary = view.config.primary
    pending = view.pending if view.pending is not None and view.updating else None
    started = 0.0
    if pending is not None:
        start_ms = (view.raw.get("pending_config") or {}).get("start_time")
        same = before is not None and before.pending == pending.version and before.started
        started = before.started if same and before is not None else (
            float(start_ms) / 1000 if isinstance(start_ms, (int, float)) and start_ms > 0 else now)
    return Seen(
        config=view.config.version, served=view.config.split(), version=primary.version if primary else "",
        model=primary.model if primary else "", update=view.config_update,
        pending=pending.version if pending else "", pending_split=pending.split() if pending else "",
        pending_version=(pending.primary.version if pending and pending.primary else ""), started=started,
        progress=_progress(view.pending) if view.pending is not None else "",
    )


def rollout_key(endpoint: str, config_version: str) -> str:
    return f"deploy:{endpoint}:{config_version}"


def _alert(endpoint: str, config_version: str, before: str, after: str, state: str, *, model: str, progress: str,
           detail: str) -> Alert:
    return Alert(source=AlertSource.DEPLOYMENT, key=rollout_key(endpoint, config_version),
                 name=f"{endpoint}: {before} → {after}", state=state, severity="info", domain="deployment",
                 description=f"Config update {config_version}" + (f" of {model}" if model else "")
                             + (f". {progress}" if progress else ""),
                 detail=detail)


def rollout_change(endpoint: str, before: Seen | None, view: EndpointView, now: float) -> tuple[Seen, Alert | None]:
    """The new cursor and the rollout alert to post, if any. The first look posts nothing."""
    seen = seen_of(view, before, now)
    if before is None:
        return seen, None
    if seen.pending:  # an update runs
        if seen.pending != before.pending or seen.progress != before.progress:
            return seen, _alert(endpoint, seen.pending, seen.served, seen.pending_split, "IN_PROGRESS",
                                model=seen.model, progress=seen.progress, detail="Updating…")
        return seen, None
    if before.pending and seen.update in ENDED:  # the update we watched has ended
        took = max(0.0, now - before.started) if before.started else 0.0
        minutes = f" (the update took {max(1, round(took / 60))} min)" if took else ""
        frm = before.served  # what served while the update ran
        if seen.update == "NOT_UPDATING" and seen.config == before.pending:
            return seen, _alert(endpoint, before.pending, frm, seen.served, "SERVING", model=seen.model, progress="",
                                detail=f"✅ {seen.served} is serving{minutes}.")
        if seen.update == "UPDATE_FAILED":
            reason = _progress(view.pending) or before.progress or "the endpoint gave no reason"
            return seen, _alert(endpoint, before.pending, frm, before.pending_split, "UPDATE_FAILED", model=seen.model,
                                progress="", detail=f"🔴 The update failed: {reason}. {seen.served} keeps serving.")
        return seen, _alert(endpoint, before.pending, frm, before.pending_split, "UPDATE_CANCELED", model=seen.model,
                            progress="", detail=f"⚪ The update was canceled. {seen.served} keeps serving.")
    if seen.config != before.config and seen.config:  # updated between two looks: announce it served
        return seen, _alert(endpoint, seen.config, before.served, seen.served, "SERVING", model=seen.model,
                            progress="", detail=f"✅ {seen.served} is serving (updated between two checks).")
    return seen, None


def transition_line(alert: Alert, minutes: int) -> str:
    """The thread reply when a rollout's state changes: the watcher wrote it into `detail`."""
    return alert.detail or f"{alert.name} is {alert.state} ({minutes} min)."


# -- before / after --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comparison:
    old: str
    new: str
    since: float  # when the new version started serving
    key: str  # the rollout thread

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def loads(text: str | None) -> Comparison | None:
        try:
            return Comparison(**json.loads(text)) if text and text != "done" else None
        except (ValueError, TypeError):
            return None


def rollout_alert_note(endpoint: str, owed: Comparison, markdown: str, *, rollback_to: str,
                       chart: dict[str, Any] | None = None) -> Alert:
    """The comparison, delivered into the rollout's thread (its state stays SERVING), with its chart."""
    return Alert(source=AlertSource.DEPLOYMENT, key=owed.key, name=f"{endpoint}: v{owed.old} → v{owed.new}",
                 state="SERVING", severity="info", domain="deployment", note=markdown, rollback_to=rollback_to,
                 chart=chart or {})


def comparison_chart(old: VersionFigures, new: VersionFigures) -> dict[str, Any]:
    """Is the new version failing more than the old? Error rate side by side, the 10 % rule drawn."""
    return {"type": "bar", "title": f"Error rate: v{old.version} before, v{new.version} after",
            "x": [f"v{old.version} ({old.requests} answers)", f"v{new.version} ({new.requests} answers)"],
            "series": [{"name": "error rate", "values": [round(old.error_rate * 100, 1), round(new.error_rate * 100, 1)]}],
            "unit": "%", "threshold": MAX_ERROR_RATE * 100, "threshold_label": "Health Monitor rule",
            "colors": ["#0072B2", "#D55E00" if verdict(old, new) else "#009E73"]}


def due(new: VersionFigures, since: float, now: float) -> bool:
    return new.requests >= COMPARE_AFTER_ANSWERS or (now - since >= COMPARE_AFTER_S and new.requests >= COMPARE_MIN_ANSWERS)


def verdict(old: VersionFigures, new: VersionFigures) -> list[str]:
    """Why the new version is worse, in words; empty when it is not."""
    reasons = []
    if new.error_rate > MAX_ERROR_RATE:
        reasons.append(f"error rate {new.error_rate:.1%} breaks the Health Monitor's {MAX_ERROR_RATE:.0%} rule")
    elif old.requests and new.error_rate >= old.error_rate + WORSE_ERROR_POINTS:
        reasons.append(f"error rate {new.error_rate:.1%} vs {old.error_rate:.1%} before")
    if new.p95_latency_ms is not None and new.p95_latency_ms > MAX_P95_MS:
        reasons.append(f"p95 latency {new.p95_latency_ms / 1000:.1f} s breaks the {MAX_P95_MS / 1000:.0f} s rule")
    elif old.p95_latency_ms and new.p95_latency_ms is not None and new.p95_latency_ms >= WORSE_P95_FACTOR * old.p95_latency_ms:
        reasons.append(f"p95 latency {new.p95_latency_ms / 1000:.1f} s vs {old.p95_latency_ms / 1000:.1f} s before")
    return reasons


def _cell(value: float | None, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def _feedback(f: VersionFigures) -> str:
    total = f.feedback_up + f.feedback_down
    return f"{f.feedback_up / total:.0%} ({f.feedback_up}/{total})" if total else "—"


def comparison_markdown(old: VersionFigures, new: VersionFigures, reasons: list[str]) -> str:
    """The before / after reply; version names come from the endpoint, so they are shown inert."""
    old, new = replace(old, version=inert(old.version)), replace(new, version=inert(new.version))
    if reasons:
        head = f"⚠️ v{new.version} is worse than v{old.version}: " + "; ".join(reasons) + "."
    else:
        head = f"✅ v{new.version} compares well with v{old.version} after {new.requests} answers."
    rows = [
        ("answers", str(old.requests), str(new.requests)),
        ("error rate", f"{old.error_rate:.1%}" if old.requests else "—", f"{new.error_rate:.1%}"),
        ("p95 latency", _cell(old.p95_latency_ms and old.p95_latency_ms / 1000, "{:.1f} s"),
         _cell(new.p95_latency_ms and new.p95_latency_ms / 1000, "{:.1f} s")),
        ("avg confidence", _cell(old.avg_confidence, "{:.2f}"), _cell(new.avg_confidence, "{:.2f}")),
        ("👍 rate", _feedback(old), _feedback(new)),
    ]
    table = [f"| | v{old.version} (before) | v{new.version} (after) |", "|---|---|---|"]
    table += [f"| {name} | {a} | {b} |" for name, a, b in rows]
    return head + "\n\n" + "\n".join(table)
