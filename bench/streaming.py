"""Streamed answers: healthbot's own delay before text shows, and how often it touches the platform.

A fake Model Serving endpoint (in this process) streams a ChatAgent answer: the first chunk after
300 ms, then 40 chunks every 50 ms. healthbot runs in a child process against it and against the
fake Slack Web API / Bot Connector (also here), answering 200+ questions at concurrency 10. The
clocks compare across processes (CLOCK_MONOTONIC is system-wide). Reported per platform:
- overhead: from the endpoint writing its first chunk to the platform receiving the first text
  (chat.startStream / the first `streaming` typing activity), p50 / p99 — target p99 < 100 ms;
- platform calls per answer, and calls per second of streaming beyond start and stop — target ≤ 1.
Run: python -m bench.streaming [--answers N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import tempfile
import time
from typing import Any

from aiohttp import web

from bench.common import child_server, post_all
from tests.fakes.base import serve
from tests.fakes.connector import FakeConnector
from tests.fakes.connector import fixture as teams_fixture
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, fixture, sign

TOKEN = "bench-token"
FIRST_S, CHUNKS, EVERY_S = 0.3, 40, 0.05
MARK = re.compile(r"\[q(\d+)\]")


class StreamingEndpoint:
    """Streams `[q<i>] word word …` for the question "question <i>"; notes when chunk one was written."""

    def __init__(self) -> None:
        self.first_chunk: dict[int, float] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/databricks-config", lambda _: web.json_response({"workspace_id": "1"}))
        app.router.add_post("/serving-endpoints/{name}/invocations", self.invoke)
        return app

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        number = int(MARK.sub("", body["messages"][-1]["content"]).split()[-1])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await asyncio.sleep(FIRST_S)
        for index in range(CHUNKS):
            text = f"[q{number}] Costs " if index == 0 else f"rose {index}% on a job. "
            await response.write(f"data: {json.dumps({'delta': {'role': 'assistant', 'content': text, 'id': 'm'}})}\n\n".encode())
            if index == 0:
                self.first_chunk[number] = time.monotonic()
            await asyncio.sleep(EVERY_S)
        last = {"delta": {"role": "assistant", "content": "", "id": "m"}, "finish_reason": "stop",
                "custom_outputs": {"sources": ["system.billing.usage"], "confidence": 0.9}}
        await response.write(f"data: {json.dumps(last)}\n\n".encode())
        await response.write_eof()
        return response


def child(kind: str, port: int, host: str, slack_url: str) -> None:
    os.environ.update({"DATABRICKS_HOST": host, "DATABRICKS_TOKEN": TOKEN, "HEALTHBOT_ENDPOINT_FORMAT": "chat_agent",
                       "HEALTHBOT_USER_RATE_PER_MIN": "1000000", "HEALTHBOT_GLOBAL_RATE_PER_MIN": "1000000",
                       "HEALTHBOT_DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/bench.db",
                       "HEALTHBOT_TEAMS_EMULATOR": "on"})  # Teams runs: a local connector, no credentials
    if kind == "slack":
        os.environ.update({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack_url})
    from bot.config import load_settings
    from adapters.host.server import create_app

    web.run_app(create_app(load_settings()), host="127.0.0.1", port=port, print=None, access_log=None)


def slack_event(i: int) -> bytes:
    body = fixture("event_app_mention_channel.json")
    ts = f"{1712345678 + i}.{i:06d}"
    body["event"].update(ts=ts, event_ts=ts, user=f"U0USER{i % 50:04d}", text=f"<@U0BOT12345> question {i}")
    body["event_id"] = f"EvStream{i}"
    return json.dumps(body).encode()


def teams_activity(i: int, service_url: str) -> bytes:
    body = teams_fixture("message_personal.json")
    body.update(id=f"17599{i:08d}", serviceUrl=service_url, text=f"question {i}")
    return json.dumps(body).encode()


def first_texts(kind: str, slack: FakeSlack, connector: FakeConnector) -> tuple[dict[int, float], dict[int, int]]:
    """When each answer's first text reached the platform, and how many calls each answer made."""
    first: dict[int, float] = {}
    calls: dict[int, int] = {}
    if kind == "slack":
        by_ts: dict[str, int] = {}  # the streamed message → its question
        for call in slack.api:
            if call.method == "chat.startStream" and (m := MARK.search(call.params.get("markdown_text", ""))):
                by_ts[call.params["_ts"]] = int(m.group(1))
                first.setdefault(int(m.group(1)), call.at)
            number = by_ts.get(str(call.params.get("_ts") or call.params.get("ts")))
            if number is not None:
                calls[number] = calls.get(number, 0) + 1
    else:
        for sent in connector.sent:
            if m := MARK.search(str(sent.activity.get("text", ""))):
                number = int(m.group(1))
                calls[number] = calls.get(number, 0) + 1
                if sent.activity["type"] == "typing":
                    first.setdefault(number, sent.at)
        calls = {number: count + 1 for number, count in calls.items()}  # and the final card (it has no text)
    return first, calls


async def measure(kind: str, answers: int, concurrency: int) -> dict[str, float]:
    endpoint, slack, connector = StreamingEndpoint(), FakeSlack(), FakeConnector()
    runner, host = await serve(endpoint.app())
    await slack.start()
    await connector.start()
    try:
        async with child_server("bench.streaming", kind, "--host", host, "--slack-url", slack.api_url) as port:
            if kind == "slack":
                url, bodies = f"http://127.0.0.1:{port}/slack/events", [slack_event(i) for i in range(answers)]
                headers: Any = lambda body: {"Content-Type": "application/json", **sign(body)}  # noqa: E731
                done = lambda: len(slack.called("chat.stopStream")) >= answers  # noqa: E731
            else:
                url, bodies = f"http://127.0.0.1:{port}/api/messages", [teams_activity(i, connector.url + "/")
                                                                         for i in range(answers)]
                headers = lambda body: {"Content-Type": "application/json"}  # noqa: E731
                done = lambda: len(connector.messages()) >= answers  # noqa: E731
            started = time.monotonic()
            await post_all(url, bodies, concurrency, headers)
            while not done() and time.monotonic() - started < 300:
                await asyncio.sleep(0.05)
    finally:
        await slack.stop()
        await connector.stop()
        await runner.cleanup()
    first, calls = first_texts(kind, slack, connector)
    overhead = sorted((first[i] - endpoint.first_chunk[i]) * 1000 for i in first if i in endpoint.first_chunk)
    streaming_s = CHUNKS * EVERY_S
    per_answer = statistics.mean(calls.values()) if calls else 0.0
    return {"answers": len(overhead), "p50": statistics.median(overhead), "p99": overhead[int(len(overhead) * 0.99) - 1],
            "calls": per_answer, "per_second": (per_answer - 2) / streaming_s}


async def main_async(answers: int, concurrency: int) -> None:
    for kind in ("slack", "teams"):
        figures = await measure(kind, answers, concurrency)
        print(f"{kind:<6}: {figures['answers']:.0f} answers; first chunk → first text on the platform p50 "
              f"{figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms (target p99 < 100 ms); "
              f"{figures['calls']:.1f} platform calls per answer = {figures['per_second']:.2f}/s while streaming "
              f"besides start and stop (target <= 1)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--child")
    parser.add_argument("--port", type=int)
    parser.add_argument("--host")
    parser.add_argument("--slack-url")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.port, args.host, args.slack_url)
    else:
        asyncio.run(main_async(args.answers, args.concurrency))


if __name__ == "__main__":
    main()
