"""Layering rules from DESIGN.md, checked on the source so they stay true."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLATFORM_SDKS = ("slack_bolt", "slack_sdk", "botbuilder", "botframework")


def imports(package: str) -> dict[Path, set[str]]:
    found: dict[Path, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[path] = names
    return found


def test_platform_sdks_only_in_adapters() -> None:
    for package in ("bot", "agent"):
        for path, names in imports(package).items():
            leaks = [n for n in names if n.split(".")[0] in PLATFORM_SDKS]
            assert not leaks, f"{path.relative_to(ROOT)} imports {leaks}"


def test_agent_knows_nothing_of_chat_platforms() -> None:
    for path, names in imports("agent").items():
        assert not [n for n in names if n.split(".")[0] in ("bot", "adapters")], path


def test_slack_and_teams_sdks_stay_in_their_own_adapter() -> None:
    for path, names in imports("adapters").items():
        rel = path.relative_to(ROOT / "adapters").parts
        for name in names:
            top = name.split(".")[0]
            if top in ("slack_bolt", "slack_sdk"):
                assert rel[0] == "slack", path
            if top in ("botbuilder", "botframework"):
                assert rel[0] == "teams", path


def test_heavy_sdks_are_not_imported_at_module_level_of_the_cli_path() -> None:
    """databricks-sdk (~2 s) and mlflow (~1 s) must not load for `healthbot ask` on the demo engine."""
    import subprocess
    import sys

    code = ("import sys, adapters.host.cli, adapters.host.server, bot.core, bot.engines, adapters.console, agent.serving, "
            "agent.demo; "
            "print(sorted(m for m in ('databricks.sdk', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"


def module_graph() -> dict[str, set[str]]:
    """Every import between healthbot's own modules that runs (function-level ones included; those
    under TYPE_CHECKING are for annotations and never run)."""
    modules: dict[str, Path] = {}
    for top in ("bot", "agent", "adapters"):
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
        """Every node but those under `if TYPE_CHECKING:` (annotations only: never imported at run time)."""
        found, todo = [], [tree]
        while todo:
            node = todo.pop()
            found.append(node)
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                todo.extend(node.orelse)
                continue
            todo.extend(ast.iter_child_nodes(node))
        return found

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in runtime_nodes(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:  # a submodule, else the module
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                           for alias in node.names]
            graph[name] |= {found for target in targets if (found := resolve(target)) and found != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_nothing_in_bot_or_agent_imports_adapters() -> None:
    """adapters → bot → agent, never back: the composition root (adapters/host) names the platforms."""
    graph = module_graph()
    back = {name: sorted(t for t in targets if t.startswith("adapters"))
            for name, targets in graph.items() if name.startswith(("bot", "agent"))}
    assert not {name: targets for name, targets in back.items() if targets}


def test_no_import_cycle_crosses_a_top_level_folder() -> None:
    """The 51-module circle across adapters/ and bot/ is gone; and no package has a circle of its own
    (the ones it had went through settings → digest schedule → digest → handler → settings)."""
    found = cycles(module_graph())
    assert not [sorted(c) for c in found if len({name.split(".")[0] for name in c}) > 1]
    assert not [sorted(c) for c in found]
