"""Alert routing: `HEALTHBOT_ALERT_ROUTES` YAML rules, first match wins unless `continue: true`.

```yaml
routes:
  - match: {name: "High*", source: sql_alert, state: [TRIGGERED, OK], severity: high, domain: costs}
    targets: [slack:C0123ABCD, teams:19:abc@thread.tacv2]
    investigate: true      # post an explanation from the endpoint when it fires
    oncall: [U0123ABCD, S0456EFGH]   # reminders name them (Slack users / user groups, Teams user ids)
    continue: false        # keep looking for more matching rules
  - match: {name_regex: "^job "}
    targets: [slack:C0JOBS]
```
Unmatched alerts go to `HEALTHBOT_ALERT_CHANNELS`. A bad file fails at start naming the line.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.alerts.model import Alert
from bot.targets import ChannelTarget, parse_target

MATCH_KEYS = {"name", "name_regex", "source", "state", "severity", "domain", "workspace"}
RULE_KEYS = {"match", "targets", "continue", "investigate", "oncall"}
ONCALL_ID = re.compile(r"^(?:[UWS][A-Z0-9]{2,20}|[0-9a-fA-F-]{36}|29:[\w.:-]{1,200})$")  # Slack users / user groups, Teams users


class RoutesError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    line: int
    match: dict[str, Any]
    targets: list[ChannelTarget]
    keep_going: bool = False
    investigate: bool = False
    oncall: tuple[str, ...] = ()  # who reminders name: Slack user (U…/W…) or user-group (S…) ids, Teams user ids

    def matches(self, alert: Alert) -> bool:
        for key, wanted in self.match.items():
            if key == "name":
                if not any(fnmatch.fnmatchcase(alert.name.lower(), str(w).lower()) for w in _list(wanted)):
                    return False
            elif key == "name_regex":
                if not re.search(wanted, alert.name):
                    return False
            else:
                actual = str(getattr(alert, key, "") or "").lower()
                if actual not in {str(w).lower() for w in _list(wanted)}:
                    return False
        return True


@dataclass(frozen=True)
class Route:
    targets: list[ChannelTarget]
    investigate: bool = False


@dataclass
class Router:
    rules: list[Rule] = field(default_factory=list)
    default: list[ChannelTarget] = field(default_factory=list)

    def oncall(self, alert: Alert, target: ChannelTarget) -> list[str]:
        """Who a reminder names for this alert in this channel: the `oncall:` of the matching rules
        that send it there."""
        names: list[str] = []
        for rule in self.rules:
            if rule.matches(alert):
                if target in rule.targets:
                    names += [n for n in rule.oncall if n not in names]
                if not rule.keep_going:
                    break
        return names

    def route(self, alert: Alert) -> Route:
        targets: list[ChannelTarget] = []
        investigate = False
        for rule in self.rules:
            if rule.matches(alert):
                targets += [t for t in rule.targets if t not in targets]
                investigate = investigate or rule.investigate
                if not rule.keep_going:
                    break
        return Route(targets or list(self.default), investigate)

    @property
    def all_targets(self) -> list[ChannelTarget]:
        seen: list[ChannelTarget] = list(self.default)
        for rule in self.rules:
            seen += [t for t in rule.targets if t not in seen]
        return seen


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class _LineLoader(yaml.SafeLoader):
    """Remembers the line of each mapping, so errors can point at the rule at fault."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def parse_routes(text: str, *, source: str = "routes", default: list[ChannelTarget] | None = None) -> Router:
    try:
        document = yaml.load(text, Loader=_LineLoader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RoutesError(f"{source}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    rules_data = document.get("routes") if isinstance(document, dict) else None
    if not isinstance(rules_data, list):
        raise RoutesError(f"{source} line 1: expected a top-level 'routes:' list")
    rules = [_rule(item, source) for item in rules_data]
    return Router(rules, list(default or []))


def _rule(item: Any, source: str) -> Rule:
    if not isinstance(item, dict):
        raise RoutesError(f"{source}: each route must be a mapping with match and targets")
    line = item.pop("__line__", 0)
    where = f"{source} line {line}"
    unknown = set(item) - RULE_KEYS
    if unknown:
        raise RoutesError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(RULE_KEYS))}")
    match = item.get("match") or {}
    if not isinstance(match, dict):
        raise RoutesError(f"{where}: match must be a mapping")
    match.pop("__line__", None)
    bad = set(match) - MATCH_KEYS
    if bad:
        raise RoutesError(f"{where}: unknown match key(s) {', '.join(sorted(bad))}; allowed: {', '.join(sorted(MATCH_KEYS))}")
    if "name_regex" in match:
        try:
            re.compile(str(match["name_regex"]))
        except re.error as exc:
            raise RoutesError(f"{where}: name_regex is not a valid regular expression ({exc})") from None
    targets_data = item.get("targets")
    if not isinstance(targets_data, list) or not targets_data:
        raise RoutesError(f"{where}: targets must be a non-empty list like [slack:C0123ABCD]")
    try:
        targets = [parse_target(str(target)) for target in targets_data]
    except ValueError as exc:
        raise RoutesError(f"{where}: {exc}") from None
    oncall = item.get("oncall") or []
    oncall = [oncall] if isinstance(oncall, str) else oncall
    if not isinstance(oncall, list) or not all(isinstance(o, str) and ONCALL_ID.match(o) for o in oncall):
        raise RoutesError(f"{where}: oncall must list Slack user or user-group ids (U…, S…) or Teams user ids")
    return Rule(line, match, targets, bool(item.get("continue", False)), bool(item.get("investigate", False)),
                tuple(oncall))


def load_router(path: str | None, default: list[ChannelTarget]) -> Router:
    if not path:
        return Router([], default)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise RoutesError(f"HEALTHBOT_ALERT_ROUTES: cannot read {path}: {exc.strerror}") from None
    return parse_routes(text, source=f"HEALTHBOT_ALERT_ROUTES {path}", default=default)
