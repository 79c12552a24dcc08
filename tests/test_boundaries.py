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

    code = ("import sys, bot.cli, bot.server, bot.engines, adapters.console, agent.serving, agent.demo; "
            "print(sorted(m for m in ('databricks.sdk', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"
