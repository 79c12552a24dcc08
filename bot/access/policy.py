"""`HEALTHBOT_ACCESS_POLICY`: who may see which answers, read once at start.

```yaml
require_databricks_user: true          # the asker's email must be an active workspace user
domains:                               # answer domain -> Databricks groups whose members may see it
  security: [platform-admins]
  costs: [finops, platform-admins]
```
Domains not listed are open. A mistake fails at start with the line at fault: a typo in a policy
must never quietly open what it was meant to close.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

DOMAINS = ("costs", "jobs", "security", "performance", "data_quality")
TOP_KEYS = ("require_databricks_user", "domains", "deployers")
_SPELLINGS = {"cost": "costs", "job": "jobs", "data quality": "data_quality", "data-quality": "data_quality",
              "dataquality": "data_quality", "performances": "performance"}


class PolicyError(ValueError):
    """A policy file healthbot will not start with; the message names the file and line."""


def domain_name(text: str) -> str | None:
    """The canonical domain for an answer's or a policy's spelling (case-insensitive, singular or
    plural: "Security", "cost", "Data Quality"); None for a domain healthbot does not know."""
    word = " ".join(text.strip().lower().replace("_", " ").split())
    word = _SPELLINGS.get(word, word).replace(" ", "_")
    if word in DOMAINS:
        return word
    singular = word[:-1] if word.endswith("s") else word
    return singular if singular in DOMAINS else (word + "s" if word + "s" in DOMAINS else None)


@dataclass(frozen=True)
class AccessPolicy:
    require_databricks_user: bool = False
    domains: dict[str, tuple[str, ...]] = field(default_factory=dict)  # canonical domain -> groups
    deployers: tuple[str, ...] = ()  # groups whose members may roll the endpoint back
    source: str = ""

    @property
    def needs_identity(self) -> bool:
        """Whether answers or actions depend on who the asker is in Databricks (SCIM lookups needed)."""
        return self.require_databricks_user or bool(self.domains) or bool(self.deployers)

    @property
    def groups(self) -> list[str]:
        return sorted({group for groups in self.domains.values() for group in groups} | set(self.deployers))

    def restricted(self, answer_domains: list[str]) -> dict[str, tuple[str, ...]]:
        """The answer's domains that the policy limits, with the groups allowed to see each."""
        limited = {}
        for raw in answer_domains:
            name = domain_name(raw)
            if name is not None and name in self.domains:
                limited[name] = self.domains[name]
        return limited

    def describe(self) -> list[str]:
        """One line per rule, for `healthbot doctor` and the start-up log."""
        lines = [f"require_databricks_user: {'yes' if self.require_databricks_user else 'no'}"]
        lines += [f"{domain}: only {', '.join(groups)}" for domain, groups in sorted(self.domains.items())]
        lines.append(f"rollback: {', '.join(self.deployers)}" if self.deployers else "rollback: nobody (no deployers)")
        open_domains = [d for d in DOMAINS if d not in self.domains]
        if open_domains:
            lines.append(f"open to every member: {', '.join(open_domains)}")
        return lines


def parse_policy(text: str, *, source: str = "policy") -> AccessPolicy:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise PolicyError(f"{source}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if root is None:
        return AccessPolicy(source=source)
    if not isinstance(root, yaml.MappingNode):
        raise PolicyError(f"{source} line {root.start_mark.line + 1}: expected a mapping with "
                          f"{' and/or '.join(TOP_KEYS)}")
    require, domains = False, {}
    deployers: tuple[str, ...] = ()
    for key_node, value_node in root.value:
        key, where = str(key_node.value), f"{source} line {key_node.start_mark.line + 1}"
        if key == "require_databricks_user":
            value = _scalar(value_node)
            if not isinstance(value, bool):
                raise PolicyError(f"{where}: require_databricks_user must be true or false, not {value_node.value!r}")
            require = value
        elif key == "domains":
            domains = _domains(value_node, source)
        elif key == "deployers":
            deployers = _groups(value_node, f"{where}: deployers")
        else:
            raise PolicyError(f"{where}: unknown key {key!r}; allowed: {', '.join(TOP_KEYS)}")
    return AccessPolicy(require_databricks_user=require, domains=domains, deployers=deployers, source=source)


def _scalar(node: yaml.Node) -> object:
    """A YAML scalar as its Python value (so `true`, `yes` and `"true"` are told apart)."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _domains(node: yaml.Node, source: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(node, yaml.MappingNode):
        raise PolicyError(f"{source} line {node.start_mark.line + 1}: domains must be a mapping like "
                          "{security: [platform-admins]}")
    domains: dict[str, tuple[str, ...]] = {}
    for key_node, value_node in node.value:
        where = f"{source} line {key_node.start_mark.line + 1}"
        name = domain_name(str(key_node.value))
        if name is None:
            raise PolicyError(f"{where}: unknown domain {key_node.value!r}; known: {', '.join(DOMAINS)}")
        if name in domains:
            raise PolicyError(f"{where}: domain {name} is listed twice")
        domains[name] = _groups(value_node, f"{where}: {name}")
    return domains


def _groups(node: yaml.Node, what: str) -> tuple[str, ...]:
    groups = _scalar(node)
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list) or not groups or not all(isinstance(g, str) and g.strip() for g in groups):
        raise PolicyError(f"{what} must name one or more Databricks groups, like [platform-admins]")
    return tuple(g.strip() for g in groups)


def load_policy(path: str | None) -> AccessPolicy | None:
    if not path:
        return None
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise PolicyError(f"HEALTHBOT_ACCESS_POLICY: cannot read {path}: {exc.strerror}") from None
    return parse_policy(text, source=f"HEALTHBOT_ACCESS_POLICY {path}")
