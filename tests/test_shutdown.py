"""Graceful shutdown (issue 10): on SIGTERM `healthbot serve` stops taking work, gives the answers in
flight a few seconds, tells the threads it could not answer to ask again, and exits within 10 s."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import aiohttp

from tests.fakes.serving import FakeServing, Scripted, answer_body
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, sign
from tests.test_cli import HEALTHBOT, free_port, wait_for_port
from tests.test_slack import mention


async def test_sigterm_exits_within_10_s_and_says_so_in_the_thread(tmp_path: Path, fake_serving: FakeServing) -> None:
    slack = FakeSlack()
    await slack.start()
    fake_serving.default = Scripted(200, answer_body(), delay_s=60)  # an answer that will not come in time
    port = free_port()
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_API_URL": slack.api_url, "DATABRICKS_HOST": fake_serving.url, "DATABRICKS_TOKEN": fake_serving.token,
           "HEALTHBOT_BACKEND": "serving"}
    proc = subprocess.Popen([HEALTHBOT, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        await asyncio.to_thread(wait_for_port, port, proc)
        body = json.dumps(mention()).encode()
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{port}/slack/events", data=body,
                headers={"Content-Type": "application/json", **sign(body)}) as resp:
            assert resp.status == 200
        await fake_serving.wait_for(lambda: fake_serving.in_flight == 1, timeout=20)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 15)
        took = time.monotonic() - sent
        assert took < 10.0, took
        assert code == 0, proc.stderr.read() if proc.stderr else ""
        assert any("ask again" in str(p.get("text")) for p in slack.called("chat.postMessage") + slack.called("chat.update"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await slack.stop()
