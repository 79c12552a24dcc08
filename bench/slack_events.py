"""Signed app_mention events per second through POST /slack/events, against a bare slack-bolt app.

The server under test runs in a child process (one core); this process plays Slack: it sends
signed events and serves the fake Web API that answers are posted to. Reported, as ratios measured
in the same run:
- bare bolt (empty listener) events/s — the baseline for acknowledging;
- bare bolt whose listener posts one chat_postMessage reply in the thread (what anyone would write
  first) — the baseline for answering;
- healthbot events/s acknowledged, and answered (posted to the fake Web API), with dedupe,
  sessions, history and the request log on SQLite and an engine that answers instantly
  (target: answered >= 0.8 x the answering bolt app);
- ack latency p50/p99 while every answer takes 5 s;
- healthbot answering with a native chart in each answer (a data_visualization block in the answer's own
  message) against the same answers without, in alternating runs: the server process's own CPU time per
  answer (os.times in the child), so the fake Slack does not count; that A/B is within this machine's
  noise, so the chart's own cost is also measured in-process (bench.charts) and set against the CPU an
  answered event costs in this run (target <= 1.05 x).
Run: python -m bench.slack_events [--events N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import child_server, post_all
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, fixture, sign

# -- the child: one server under test -------------------------------------------------------


def child(kind: str, port: int, slack_url: str, answer_delay: float) -> None:
    from aiohttp import web

    os.environ.update({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack_url,
                       "HEALTHBOT_USER_RATE_PER_MIN": "1000000", "HEALTHBOT_GLOBAL_RATE_PER_MIN": "1000000"})
    if kind in ("bolt", "bolt-answer"):
        from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
        from slack_bolt.app.async_app import AsyncApp
        from slack_sdk.web.async_client import AsyncWebClient

        bolt = AsyncApp(client=AsyncWebClient(token=BOT_TOKEN, base_url=slack_url), signing_secret=SIGNING_SECRET)

        if kind == "bolt":
            @bolt.event("app_mention")
            async def empty() -> None:
                return None
        else:
            @bolt.event("app_mention")
            async def reply(event: dict, client: AsyncWebClient) -> None:  # type: ignore[type-arg]
                await client.chat_postMessage(channel=event["channel"], thread_ts=event["ts"], text="an answer")

        async def events(request: web.Request) -> web.Response:
            return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

        app = web.Application()
        app.router.add_post("/slack/events", events)
    else:
        from bench.handler import InstantEngine
        from bot.config import load_settings
        from adapters.host.server import create_app
        from bot.store import SqliteStore

        class SlowEngine(InstantEngine):
            async def answer(self, request, *, on_progress=None):  # type: ignore[no-untyped-def]
                await asyncio.sleep(answer_delay)
                return await super().answer(request)

        class ChartEngine(InstantEngine):
            async def answer(self, request, *, on_progress=None):  # type: ignore[no-untyped-def]
                answer = await super().answer(request)
                answer.charts = [CHART]
                return answer

        tmp = tempfile.mkdtemp()
        engine = SlowEngine() if answer_delay else ChartEngine() if kind == "healthbot-chart" else InstantEngine()
        app = create_app(load_settings(), store=SqliteStore(Path(tmp) / "bench.db"), engine=engine)

        async def cpu(request: web.Request) -> web.Response:  # the child's own CPU seconds: its cost, not the machine's
            times = os.times()
            return web.json_response({"cpu_s": times.user + times.system})

        app.router.add_get("/bench/cpu", cpu)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


CHART = {"type": "bar", "title": "Cost on Wednesdays, the last 4 weeks and yesterday",  # the demo's cost chart
         "x": ["2026-11-04", "2026-11-11", "2026-11-18", "2026-11-25", "2026-12-02"],
         "series": [{"name": "cost", "values": [1331.5, 1329.1, 1301.0, 1350.2, 1978.0]}], "unit": "USD",
         "threshold": 1331.66, "threshold_label": "average Wednesday", "x_label": "Wednesday"}

# -- the parent: Slack ----------------------------------------------------------------------


def event_body(i: int) -> bytes:
    body = fixture("event_app_mention_channel.json")
    ts = f"{1712345678 + i}.{i:06d}"
    body["event"].update(ts=ts, event_ts=ts, user=f"U0USER{i % 20:04d}")
    body["event_id"] = f"EvBench{i}"
    return json.dumps(body).encode()


async def child_cpu(port: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/bench/cpu") as response:
        return float((await response.json())["cpu_s"])


def signed(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", **sign(body)}


async def measure(kind: str, slack: FakeSlack, events: int, concurrency: int, answer_delay: float = 0.0) -> dict[str, float]:
    async with child_server("bench.slack_events", kind, "--slack-url", slack.api_url,
                            "--answer-delay", str(answer_delay)) as port:
        url = f"http://127.0.0.1:{port}/slack/events"
        await post_all(url, [event_body(10_000_000 + i) for i in range(50)], concurrency, signed)  # warm-up
        await asyncio.sleep(0.5 + answer_delay)
        slack.api.clear()
        bodies = [event_body(i) for i in range(events)]
        cpu_before = await child_cpu(port) if kind.startswith("healthbot") else 0.0
        started = time.perf_counter()
        latencies = await post_all(url, bodies, concurrency, signed)
        acked = time.perf_counter() - started
        answered = acked
        if kind != "bolt" and not answer_delay:  # answers posted, for healthbot and the answering bolt app
            deadline = time.monotonic() + 120
            while len(slack.called("chat.postMessage")) < events and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            answered = time.perf_counter() - started
        cpu_us = (await child_cpu(port) - cpu_before) / events * 1e6 if kind.startswith("healthbot") else 0.0
        return {"acked_per_s": events / acked, "answered_per_s": events / answered, "cpu_us": cpu_us,
                "p50_ms": statistics.median(latencies) * 1000, "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
                "posted": len(slack.called("chat.postMessage"))}


class BenchSlack(FakeSlack):
    """The fake Web API without its block checks (the tests' job): this process's own work stays the same
    whether answers carry charts or not, so it weighs the same on the machine the child shares."""

    def _refused_blocks(self, blocks: list[dict[str, object]]) -> str:
        return ""


async def main_async(events: int, concurrency: int) -> None:
    slack = BenchSlack()
    await slack.start()
    try:
        bolt = await measure("bolt", slack, events, concurrency)
        answering = await measure("bolt-answer", slack, events, concurrency)
        bot = await measure("healthbot", slack, events, concurrency)
        slow = await measure("healthbot", slack, min(events, 400), concurrency, answer_delay=5.0)
        plain, charted = [], []
        for round_ in range(3):  # alternating, the order too: this machine's speed drifts within minutes
            for kind in ("healthbot", "healthbot-chart")[:: 1 if round_ % 2 else -1]:
                (plain if kind == "healthbot" else charted).append((await measure(kind, slack, events, concurrency))["cpu_us"])
                posted = json.dumps(slack.called("chat.postMessage")[-1])
                assert ("data_visualization" in posted) == (kind == "healthbot-chart")  # the chart went natively
        from bench.charts import _native

        await _native(500)  # warm-up
        wire_off, wire_on, _ = await _native(5000)  # the chart's own cost, measured precisely in-process
    finally:
        await slack.stop()
    print(f"bare slack-bolt, empty listener : {bolt['acked_per_s']:>7,.0f} events/s (baseline)")
    print(f"healthbot, acknowledged         : {bot['acked_per_s']:>7,.0f} events/s = {bot['acked_per_s'] / bolt['acked_per_s']:.2f} x bolt")
    print(f"bare slack-bolt, posting a reply: {answering['answered_per_s']:>7,.0f} events/s answered (answering baseline)")
    print(f"healthbot, answered end to end  : {bot['answered_per_s']:>7,.0f} events/s = {bot['answered_per_s'] / bolt['acked_per_s']:.2f} x bolt"
          f" = {bot['answered_per_s'] / answering['answered_per_s']:.2f} x the answering bolt app (target >= 0.9)"
          f" ({bot['posted']:.0f}/{events} answers posted)")
    print(f"ack latency, answers taking 5 s : p50 {slow['p50_ms']:.1f} ms, p99 {slow['p99_ms']:.1f} ms"
          f" (bare bolt p50 {bolt['p50_ms']:.1f} ms, p99 {bolt['p99_ms']:.1f} ms)")
    print(f"answers with a native chart     : {sum(charted) / 3:>7,.0f} µs of healthbot's CPU an answer against "
          f"{sum(plain) / 3:,.0f} without = {sum(charted) / sum(plain):.3f} x, A/B end to end (runs "
          + ", ".join(f"{c / p:.3f}" for c, p in zip(charted, plain)) + "; this machine's noise is ±10 %)")
    delta = wire_on - wire_off
    print(f"  the chart's own cost           : +{delta:.0f} µs an answer (its message built and serialised, in-process) "
          f"= {(sum(plain) / 3 + delta) / (sum(plain) / 3):.3f} x an answer's CPU above (target <= 1.05)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--child")
    parser.add_argument("--port", type=int)
    parser.add_argument("--slack-url")
    parser.add_argument("--answer-delay", type=float, default=0.0)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.port, args.slack_url, args.answer_delay)
    else:
        asyncio.run(main_async(args.events, args.concurrency))


if __name__ == "__main__":
    main()
