"""Alert webhooks accepted per second, request latency, and time to deliver a burst, against a bare
aiohttp handler measured in the same run. Nothing may be lost: every accepted alert must reach the
fake Slack Web API (as a thread root, or an update of the storm digest).

The server runs in a child process; this process sends the burst and plays Slack. Per-channel
pacing is set to 0 here to measure healthbot's own pipeline (production paces ~1 message/s per
channel, so a real burst to one channel drains at Slack's speed, grouped into a digest).
With PostgreSQL reachable (HEALTHBOT_TEST_POSTGRES_DSN, default the local server), the same burst
also goes to two replicas sharing one throw-away schema, half to each: its drain time, and that every
alert still reaches Slack (exactly once each: the fleet shares one outbox).
Run: python -m bench.alerts [--alerts N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import POSTGRES_DSN, child_server, pg_schema, post_all
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack

TOKEN = "bench-alert-token"


def child(kind: str, port: int, slack_url: str, schema: str | None) -> None:
    from aiohttp import web

    if kind == "aiohttp":
        async def accept(request: web.Request) -> web.Response:
            await request.json()
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/alerts/databricks", accept)
    else:
        os.environ.update({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack_url,
                           "HEALTHBOT_ALERT_TOKEN": TOKEN, "HEALTHBOT_ALERT_CHANNELS": "slack:C0PLATFORM1",
                           "HEALTHBOT_ALERT_PACE_SECONDS": "0"})
        from bench.handler import InstantEngine
        from bot.config import load_settings
        from adapters.host.server import create_app
        from bot.store import SqliteStore
        from bot.store.postgres import PostgresStore

        store = PostgresStore(POSTGRES_DSN, schema=schema) if schema else SqliteStore(Path(tempfile.mkdtemp()) / "bench.db")
        app = create_app(load_settings(), store=store, engine=InstantEngine())
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def alert_body(i: int) -> bytes:
    return json.dumps({"name": f"Bench alert {i}", "state": "TRIGGERED", "severity": "high", "value": i,
                       "threshold": 100, "key": f"bench-{time.time_ns()}-{i}"}).encode()


def with_token(body: bytes) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


async def measure(kind: str, slack: FakeSlack, count: int, concurrency: int, *, schema: str | None = None,
                  replicas: int = 1) -> dict[str, float]:
    extra = ("--schema", schema) if schema else ()
    async with contextlib.AsyncExitStack() as stack:
        ports = [await stack.enter_async_context(child_server("bench.alerts", kind, "--slack-url", slack.api_url, *extra))
                 for _ in range(replicas)]
        urls = [f"http://127.0.0.1:{port}/alerts/databricks" for port in ports]
        slack.api.clear()
        bodies = [alert_body(i) for i in range(count)]
        started = time.perf_counter()
        parts = await asyncio.gather(*(post_all(url, bodies[n::replicas], concurrency // replicas, with_token)
                                       for n, url in enumerate(urls)))
        latencies = sorted(latency for part in parts for latency in part)
        accepted = time.perf_counter() - started
        delivered_s = 0.0
        if kind == "healthbot":
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                sent = len([c for c in slack.api if c.method in ("chat.postMessage", "chat.update")])
                if sent >= count:
                    break
                await asyncio.sleep(0.02)
            delivered_s = time.perf_counter() - started
            await asyncio.sleep(1.0)  # anything posted twice would arrive now
        return {"per_s": count / accepted, "p50_ms": statistics.median(latencies) * 1000,
                "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000, "delivered_s": delivered_s,
                "slack_calls": len([c for c in slack.api if c.method in ("chat.postMessage", "chat.update")])}


async def main_async(count: int, concurrency: int) -> None:
    slack = FakeSlack()
    await slack.start()
    try:
        bare = await measure("aiohttp", slack, count, concurrency)
        bot = await measure("healthbot", slack, count, concurrency)
        fleet = None
        made = await pg_schema(POSTGRES_DSN)
        if made is not None:
            schema, drop = made
            try:
                fleet = await measure("healthbot", slack, count, concurrency, schema=schema, replicas=2)
            finally:
                await drop()
    finally:
        await slack.stop()
    print(f"bare aiohttp handler   : {bare['per_s']:>7,.0f} webhooks/s, p50 {bare['p50_ms']:.1f} ms, p99 {bare['p99_ms']:.1f} ms (baseline)")
    print(f"healthbot, accepted    : {bot['per_s']:>7,.0f} webhooks/s = {bot['per_s'] / bare['per_s']:.2f} x bare,"
          f" p50 {bot['p50_ms']:.1f} ms, p99 {bot['p99_ms']:.1f} ms (target p99 < 100 ms)")
    print(f"burst of {count} delivered in {bot['delivered_s']:.1f} s ({bot['slack_calls']:.0f} Slack calls for {count} alerts:"
          f" {'none lost' if bot['slack_calls'] >= count else 'LOST SOME'})")
    if fleet is not None:
        print(f"two replicas on PostgreSQL: {fleet['per_s']:>7,.0f} webhooks/s accepted, p99 {fleet['p99_ms']:.1f} ms; burst "
              f"delivered in {fleet['delivered_s']:.1f} s = {fleet['delivered_s'] / bot['delivered_s']:.2f} x one replica on"
              f" SQLite ({fleet['slack_calls']:.0f} Slack calls for {count} alerts:"
              f" {'none lost, none twice' if fleet['slack_calls'] == bot['slack_calls'] else 'DIFFERENT from one replica'})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--child")
    parser.add_argument("--port", type=int)
    parser.add_argument("--slack-url")
    parser.add_argument("--schema")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.port, args.slack_url, args.schema)
    else:
        asyncio.run(main_async(args.alerts, args.concurrency))


if __name__ == "__main__":
    main()
