"""Activities per second through POST /api/messages, against a stock botbuilder CloudAdapter app
with an empty handler and a bare aiohttp server, measured in the same run; also the empty app with
healthbot's botbuilder fixes (adapters/teams/perf.py), to show what they alone are worth.

The server under test runs in a child process; this process sends personal-chat message
activities (emulator mode: loopback, no JWT) and plays the Bot Connector they are answered on.
Run: python -m bench.teams_activities [--activities N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from bench.common import child_server, post_all
from tests.fakes.connector import FakeConnector, fixture


def child(kind: str, port: int) -> None:
    from aiohttp import web

    os.environ.update({"HEALTHBOT_USER_RATE_PER_MIN": "1000000", "HEALTHBOT_GLOBAL_RATE_PER_MIN": "1000000",
                       "HEALTHBOT_TEAMS_EMULATOR": "on"})  # a local connector, no credentials
    if kind == "aiohttp":
        async def messages(request: web.Request) -> web.Response:
            await request.json()
            return web.Response(status=201)

        app = web.Application()
        app.router.add_post("/api/messages", messages)
    elif kind in ("stock", "fixed"):
        from botbuilder.core import ActivityHandler, TurnContext
        from botbuilder.integration.aiohttp import (
            CloudAdapter,
            ConfigurationBotFrameworkAuthentication,
        )

        class Empty(ActivityHandler):
            async def on_message_activity(self, turn_context: TurnContext) -> None:
                return None

        class Config:
            APP_ID = ""
            APP_PASSWORD = ""

        auth = ConfigurationBotFrameworkAuthentication(Config())
        if kind == "fixed":  # the same empty app with healthbot's two botbuilder fixes
            from adapters.teams.perf import PooledConnectors, speed_up_msrest

            speed_up_msrest()
            auth = PooledConnectors(auth)
        adapter, bot = CloudAdapter(auth), Empty()

        async def stock(request: web.Request) -> web.Response:
            return await adapter.process(request, bot) or web.Response(status=201)

        app = web.Application()
        app.router.add_post("/api/messages", stock)
    else:
        from bench.handler import InstantEngine
        from bot.config import load_settings
        from adapters.host.server import create_app
        from bot.store import SqliteStore

        app = create_app(load_settings(), store=SqliteStore(Path(tempfile.mkdtemp()) / "bench.db"), engine=InstantEngine())
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def activity(i: int, service_url: str) -> bytes:
    body = fixture("message_personal.json")
    body.update(id=f"17599{i:08d}", serviceUrl=service_url, text=f"question {i}")
    return json.dumps(body).encode()


async def measure(kind: str, connector: FakeConnector, count: int, concurrency: int) -> tuple[float, float]:
    async with child_server("bench.teams_activities", kind) as port:
        url = f"http://127.0.0.1:{port}/api/messages"
        service = connector.url + "/"
        await post_all(url, [activity(90_000_000 + i, service) for i in range(30)], concurrency)  # warm-up
        await asyncio.sleep(1.0)
        connector.sent.clear()
        started = time.perf_counter()
        await post_all(url, [activity(i, service) for i in range(count)], concurrency)
        acked = time.perf_counter() - started
        answered = acked
        if kind == "healthbot":
            deadline = time.monotonic() + 300
            while len(connector.cards()) < count and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            answered = time.perf_counter() - started
        return count / acked, count / answered


async def main_async(count: int, concurrency: int) -> None:
    connector = FakeConnector()
    await connector.start()
    try:
        bare, _ = await measure("aiohttp", connector, count * 5, concurrency)
        stock, _ = await measure("stock", connector, max(100, count // 5), concurrency)
        fixed, _ = await measure("fixed", connector, count, concurrency)
        acked, answered = await measure("healthbot", connector, count, concurrency)
    finally:
        await connector.stop()
    print(f"bare aiohttp                  : {bare:>8,.0f} activities/s (baseline)")
    print(f"stock botbuilder CloudAdapter : {stock:>8,.0f} activities/s = {stock / bare:.3f} x aiohttp")
    print(f"same, with healthbot's fixes  : {fixed:>8,.0f} activities/s = {fixed / bare:.3f} x aiohttp = {fixed / stock:.1f} x stock")
    print(f"healthbot, acknowledged       : {acked:>8,.0f} activities/s = {acked / bare:.3f} x aiohttp = {acked / stock:.1f} x stock")
    print(f"healthbot, answered           : {answered:>8,.0f} activities/s = {answered / bare:.3f} x aiohttp = {answered / stock:.1f} x stock")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--child")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.port)
    else:
        asyncio.run(main_async(args.activities, args.concurrency))


if __name__ == "__main__":
    main()
