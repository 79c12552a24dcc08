"""Endpoint configs as Databricks may describe them — missing fields, unknown states, several served
entities, foundation and external models — are read as what they are and never crash the readers
(the version lookup, the rollout watcher's comparison, the checklist). Hypothesis mutates the real
fixtures field by field."""

from __future__ import annotations

import copy
import time
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.endpoint_config import read_app, read_endpoint
from bot.deploy.rollout import Seen, rollout_change
from tests.fakes.serving import fixture

DEPLOYED = fixture("serving_endpoint_get_deployed.json")
UPDATING = fixture("serving_endpoint_get_update_in_progress.json")
APP = fixture("apps_get_running.json")

junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The fixture with one field replaced by anything, or removed."""
    def apply(path: tuple[Any, ...], value: Any, remove: bool) -> dict[str, Any]:
        data = copy.deepcopy(base)
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        if remove and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = value
        return data

    return st.builds(apply, st.sampled_from(paths(base)), junk, st.booleans())


def test_the_fixtures_read_as_documented() -> None:
    view = read_endpoint(DEPLOYED)
    assert (view.ready, view.config.version, view.config.split(), view.updating) == ("READY", "7", "v7", False)
    assert view.versions() == {"health_monitor_orchestrator-7": "7"}
    updating = read_endpoint(UPDATING)
    assert updating.updating and updating.pending is not None and updating.pending.split() == "v8"
    app = read_app(APP)
    assert app.config.version == APP["active_deployment"]["deployment_id"] and app.ready == "READY"


def test_several_entities_foundation_and_external_models_show_as_what_they_are() -> None:
    data = copy.deepcopy(DEPLOYED)
    data["config"]["served_entities"] = [
        {"name": "a", "entity_name": "main.m.orchestrator", "entity_version": "7"},
        {"name": "b", "foundation_model": {"name": "databricks-claude-sonnet-4"}},
        {"name": "c", "external_model": {"name": "gpt-5", "provider": "openai"}}]
    data["config"]["traffic_config"] = {"routes": [{"served_entity_name": "a", "traffic_percentage": 80},
                                                   {"served_entity_name": "b", "traffic_percentage": 15},
                                                   {"served_entity_name": "c", "traffic_percentage": 5}]}
    view = read_endpoint(data)
    assert view.config.split() == "v7 80 % / databricks-claude-sonnet-4 15 % / gpt-5 5 %"
    assert view.versions() == {"a": "7", "b": "", "c": ""}


@given(mutated(DEPLOYED), mutated(UPDATING))
def test_any_mutation_of_a_config_reads_and_compares_without_raising(before: dict[str, Any],
                                                                      after: dict[str, Any]) -> None:
    now = time.time()
    seen, _ = rollout_change("ep", None, read_endpoint(before), now)
    again = Seen.loads(seen.dumps())
    assert again == seen
    _, alert = rollout_change("ep", again, read_endpoint(after), now + 60)
    if alert is not None:
        assert alert.key.startswith("deploy:ep:") and alert.name


@given(mutated(APP))
def test_any_mutation_of_an_app_reads_without_raising(app: dict[str, Any]) -> None:
    view = read_app(app)
    view.config.split()
    view.versions()


def test_an_unreadable_cursor_is_a_first_look() -> None:
    assert Seen.loads("not json") is None and Seen.loads('{"unknown": 1}') is None
