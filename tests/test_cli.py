"""The `healthbot` console script end to end, as a person (or an outside test) runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HEALTHBOT = str(Path(sys.executable).parent / "healthbot")


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    temp = {"TMPDIR": str(cwd)} if cwd is not None else {}  # chart files from `ask` land in the test's directory
    return subprocess.run([HEALTHBOT, *args], input=stdin, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **temp, **(env or {})}, cwd=cwd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[str], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


@pytest.fixture
def demo_env(demo_data_dir: Path) -> dict[str, str]:
    return {"HEALTHBOT_DEMO_DATA_DIR": str(demo_data_dir)}


@pytest.fixture
def demo_endpoint(demo_env: dict[str, str], tmp_path: Path) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([HEALTHBOT, "demo-endpoint", "--port", str(port), "--token", "t0ken"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **demo_env}, cwd=tmp_path)
    try:
        wait_for_port(port, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_ask_answers_offline_with_sources_and_confidence(demo_env: dict[str, str], tmp_path: Path) -> None:
    result = run("ask", "Which jobs failed today?", env=demo_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "job(s) failed in the last 24 h" in result.stdout and "daily_revenue_rollup" in result.stdout
    assert "Sources:" in result.stdout and "system.lakeflow.job_run_timeline" in result.stdout
    assert "confidence 93%" in result.stdout
    # the embedded default store lives in the state directory ($XDG_STATE_HOME), not where healthbot ran
    assert (tmp_path / "state" / "healthbot" / "healthbot.db").exists()
    assert not (tmp_path / "healthbot.db").exists()


def test_ask_through_the_demo_endpoint_gives_the_same_answer(demo_endpoint: int, demo_env: dict[str, str], tmp_path: Path) -> None:
    direct = run("ask", "Why did costs spike yesterday?", env=demo_env, cwd=tmp_path)
    served = run("ask", "Why did costs spike yesterday?", cwd=tmp_path, env={
        **demo_env, "DATABRICKS_HOST": f"http://127.0.0.1:{demo_endpoint}", "DATABRICKS_TOKEN": "t0ken"})
    assert served.returncode == 0, served.stderr

    def answer(stdout: str) -> tuple[str, int]:  # the text, and how many chart files were written (new paths)
        lines = stdout.splitlines()
        return "\n".join(line for line in lines if not line.startswith("chart: ")), sum(
            line.startswith("chart: ") for line in lines)

    assert answer(served.stdout) == answer(direct.stdout) and "nightly_customer_etl" in served.stdout
    assert answer(served.stdout)[1] == 1  # the cost chart came through the endpoint's custom_outputs too


@pytest.mark.parametrize("fmt", ["chat_agent", "responses", "chat_completions", "auto"])
def test_every_format_through_the_demo_endpoint(demo_endpoint: int, demo_env: dict[str, str], tmp_path: Path, fmt: str) -> None:
    served = run("ask", "Any security concerns?", cwd=tmp_path, env={
        **demo_env, "DATABRICKS_HOST": f"http://127.0.0.1:{demo_endpoint}", "DATABRICKS_TOKEN": "t0ken",
        "HEALTHBOT_ENDPOINT_FORMAT": fmt})
    assert served.returncode == 0, served.stderr
    assert "failed logins" in served.stdout


def test_ask_with_a_bad_token_says_so_without_a_traceback(demo_endpoint: int, demo_env: dict[str, str], tmp_path: Path) -> None:
    result = run("ask", "costs", cwd=tmp_path, env={
        **demo_env, "DATABRICKS_HOST": f"http://127.0.0.1:{demo_endpoint}", "DATABRICKS_TOKEN": "wrong-secret-value"})
    assert result.returncode == 1
    assert "no working Databricks credentials" in result.stdout and "request id" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "wrong-secret-value" not in result.stdout + result.stderr


def test_chat_keeps_context_and_new_starts_over(demo_env: dict[str, str], tmp_path: Path) -> None:
    script = "/costs\nwhich job was it?\n/new\nwhich job was it?\n/bogus\n"
    result = run("chat", env=demo_env, stdin=script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "you> Why did costs spike yesterday?" in out
    first, second = out.split("Started a new conversation.")
    assert "It was **nightly_customer_etl**" in first
    assert "It was **" not in second and "job(s) failed in the last 24 h" in second  # no costs context any more
    assert "Unknown command /bogus" in second


def test_bad_configuration_exits_2_naming_the_variable(tmp_path: Path) -> None:
    result = run("ask", "hi", env={"HEALTHBOT_ENDPOINT_FORMAT": "soap"}, cwd=tmp_path)
    assert result.returncode == 2 and "HEALTHBOT_ENDPOINT_FORMAT" in result.stderr and "Traceback" not in result.stderr


def test_serve_answers_health(demo_env: dict[str, str], tmp_path: Path) -> None:
    import json
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([HEALTHBOT, "serve", "--host", "127.0.0.1", "--port", str(port)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **demo_env}, cwd=tmp_path)
    try:
        wait_for_port(port, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            body = json.loads(resp.read())
        assert resp.status == 200 and body["status"] == "healthy"
        assert body["checks"]["store"]["ok"] and body["checks"]["endpoint"]["ok"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`healthbot ask … | head -1`: the reader goes away after one line; no BrokenPipe traceback."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "HEALTHBOT_DEMO_PACE": "0"}
    pipeline = f"'{HEALTHBOT}' ask 'why did costs spike yesterday?' | head -1; echo \"ask=${{PIPESTATUS[0]}}\""
    done = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert done.stdout.splitlines()[-1] == "ask=0" and "Costs rose" in done.stdout


def test_a_busy_port_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = run("serve", "--host", "127.0.0.1", "--port", str(port), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "serving on" not in done.stderr


def test_ask_against_an_unreachable_endpoint_fails_within_the_timeout_for_a_one_shot(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    done = run("ask", "costs", cwd=tmp_path, env={"DATABRICKS_HOST": f"http://127.0.0.1:{port}", "DATABRICKS_TOKEN": "x",
                                                   "HEALTHBOT_ENDPOINT_TIMEOUT": "4"})
    assert time.monotonic() - started < 15 and done.returncode == 1
    assert "no answer within 4 s" in done.stderr and "type 'retry'" not in done.stdout + done.stderr


def test_the_manifest_header_fits_how_it_was_made() -> None:
    given = run("slack-manifest", "--url", "https://healthbot.example.com")
    assert "replace the placeholder host" not in given.stdout and "--url https://healthbot.example.com" in given.stdout
    assert "replace the placeholder host" in run("slack-manifest").stdout


def test_digest_preview_carries_the_overview_and_writes_its_chart(tmp_path: Path) -> None:
    done = run("digest", "--preview", cwd=tmp_path, env={"HEALTHBOT_DEMO_PACE": "0"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("🌙 Quiet") and "Platform health overview" in done.stdout  # quiet: alerts only
    [chart] = [line.removeprefix("chart: ") for line in done.stdout.splitlines() if line.startswith("chart: ")]
    assert Path(chart).read_bytes().startswith(b"\x89PNG")
