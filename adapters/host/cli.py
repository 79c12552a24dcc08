"""The `healthbot` command. Sub-commands import only what they use, so `ask` stays fast.

Start-up matters here: importing databricks-sdk costs ~2 s and mlflow ~1 s on a small machine, so
neither is imported unless the configured backend or feature needs it.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from bot.handler import ConversationHandler

log = logging.getLogger("healthbot")

DEFAULT_PORT = 3978
DEFAULT_DEMO_PORT = 8080
DEFAULT_DEMO_TOKEN = "demo-token"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="healthbot", description="Databricks Health Monitor bot for Slack and Teams.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    commands = parser.add_subparsers(dest="command", required=True)

    ask = commands.add_parser("ask", help="ask one question and print the answer")
    ask.add_argument("question", nargs="+")

    commands.add_parser("chat", help="interactive terminal chat (/new starts a new session)")

    serve = commands.add_parser("serve", help="run the HTTP server (Slack, Teams, alert webhooks)")
    serve.add_argument("--host", default=os.environ.get("HEALTHBOT_HOST", "0.0.0.0"),
                       help="interface to listen on (default: $HEALTHBOT_HOST or 0.0.0.0, every interface)")
    serve.add_argument("--port", type=int, default=int(os.environ.get("DATABRICKS_APP_PORT") or os.environ.get("PORT") or DEFAULT_PORT),
                       help=f"port (default: $DATABRICKS_APP_PORT, $PORT or {DEFAULT_PORT})")

    demo = commands.add_parser("demo-endpoint", help="serve the demo engine with the Model Serving HTTP API")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=DEFAULT_DEMO_PORT)
    demo.add_argument("--token", default=os.environ.get("HEALTHBOT_DEMO_TOKEN", DEFAULT_DEMO_TOKEN),
                      help="bearer token clients must send (default: $HEALTHBOT_DEMO_TOKEN or demo-token)")
    stats = commands.add_parser("stats", help="the monitoring dashboard figures from the request log")
    stats.add_argument("--hours", type=int, default=24)
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.add_argument("--by-version", action="store_true", help="per served version of the endpoint")
    digest = commands.add_parser("digest", help="the weekly digest now: posted, or printed with --preview")
    digest.add_argument("--preview", action="store_true", help="print it instead of posting it")
    checklist = commands.add_parser("checklist", help="the Health Monitor's deployment checklist")
    checklist.add_argument("--json", action="store_true", help="machine-readable output")

    doctor = commands.add_parser("doctor", help="check configuration and every connection")
    doctor.add_argument("--probe", action="store_true", help="also ask the serving endpoint a question")

    manifest = commands.add_parser("slack-manifest", help="print the Slack app manifest for your host")
    manifest.add_argument("--url", default=None, help="public base URL of healthbot, e.g. https://healthbot.example.com")
    manifest.add_argument("--socket-mode", action="store_true", help="no request URLs: connect with SLACK_APP_TOKEN")
    manifest.add_argument("--assistant-view", action="store_true",
                          help="the older assistant split pane instead of the agent messaging experience "
                               "(only for an app created before Slack's change)")
    package = commands.add_parser("teams-package", help="write the sideloadable Teams app package")
    package.add_argument("--app-id", required=True, help="the bot's Microsoft App ID (MICROSOFT_APP_ID)")
    package.add_argument("--out", default="healthbot-teams.zip", help="where the zip is written (default: %(default)s)")
    package.add_argument("--url", default=None, help="public base URL of healthbot (added to validDomains)")
    package.add_argument("--developer-url", default="https://www.databricks.com")
    return parser


def _setup_logging(verbose: bool, default: int) -> None:
    from bot.ops.logs import setup_logging

    setup_logging(logging.DEBUG if verbose else default)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `healthbot ask … | head -1`: the reader has gone; end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail again
        return 0


def _main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "slack-manifest":
        from adapters.slack.manifest import PLACEHOLDER_URL, render_manifest

        print(render_manifest(args.url or PLACEHOLDER_URL, socket_mode=args.socket_mode,
                              assistant_view=args.assistant_view), end="")
        return 0
    if args.command == "teams-package":
        from adapters.teams.package import build_package

        try:
            data = build_package(args.app_id, bot_url=args.url, developer_url=args.developer_url)
        except ValueError as exc:
            print(f"healthbot: {exc}", file=sys.stderr)
            return 2
        with open(args.out, "wb") as out:
            out.write(data)
        print(f"wrote {args.out}: upload it in Teams → Apps → Manage your apps → Upload an app")
        return 0
    quiet = args.command in ("ask", "chat", "stats", "doctor", "checklist", "digest")
    _setup_logging(args.verbose, logging.WARNING if quiet else logging.INFO)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"healthbot: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "ask":
            return asyncio.run(_ask(settings, " ".join(args.question)))
        if args.command == "chat":
            return asyncio.run(_chat(settings))
        if args.command == "serve":
            return _serve(settings, args.host, args.port)
        if args.command == "stats":
            return asyncio.run(_stats(settings, args.hours, args.json, args.by_version))
        if args.command == "digest":
            from adapters.host.digest_command import main as digest_main

            return asyncio.run(digest_main(settings, preview=args.preview))
        if args.command == "checklist":
            from adapters.host.checklist_command import main as checklist_main

            return checklist_main(settings, as_json=args.json)
        if args.command == "doctor":
            from adapters.host.doctor import main as doctor_main

            return doctor_main(settings, probe=args.probe)
        if args.command == "demo-endpoint":
            return _demo_endpoint(settings, args.host, args.port, args.token)
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:  # found while starting (e.g. Lakebase credentials): one line, no traceback
        print(f"healthbot: {exc}", file=sys.stderr)
        return 2
    return 2


def _console_handler(settings: Settings, *, one_shot: bool = False) -> ConversationHandler:
    """The terminal's handler: the same core as `serve` (access gate, identity rules, tracing)."""
    from bot.core import build_core

    return build_core(settings, one_shot=one_shot).handler


async def _ask(settings: Settings, question: str) -> int:
    from adapters.console import ConsoleChat, render

    handler = _console_handler(settings, one_shot=True)
    try:
        chat = ConsoleChat(handler, live=True)
        try:  # one bound for the whole command: retries and a cold start included
            reply = await asyncio.wait_for(chat.ask(question), settings.endpoint_timeout_s)
        except asyncio.TimeoutError:
            print(f"healthbot: no answer within {settings.endpoint_timeout_s:g} s (HEALTHBOT_ENDPOINT_TIMEOUT): the "
                  f"endpoint {settings.endpoint_name} is unreachable or still waking up; `healthbot doctor` says "
                  "which", file=sys.stderr)
            await handler.close()
            sys.stdout.flush()
            sys.stderr.flush()
            # databricks-sdk may still be waiting in a worker thread (its host-metadata lookup takes 20 s to
            # give up), and the interpreter would wait for that thread at exit: a one-shot ends now.
            os._exit(1)
    finally:
        await handler.close()
    print(("\n" if chat.streamed else "") + render(reply, streamed=chat.streamed, one_shot=True))
    if reply.charts:
        from adapters.console import write_charts

        for path in await write_charts(reply.charts, what=reply.request_id):
            print(f"chart: {path}")
    return 1 if reply.error else 0


async def _chat(settings: Settings) -> int:
    from adapters.console import ConsoleChat

    handler = _console_handler(settings)
    try:
        await ConsoleChat(handler, live=True).run()
    finally:
        await handler.close()
    return 0


async def _stats(settings: Settings, hours: int, as_json: bool, per_version: bool) -> int:
    from bot.ops.stats import collect, render, render_by_version
    from bot.store import open_store_for

    store = open_store_for(settings)
    try:
        stats = await collect(store, hours)
    finally:
        await store.close()
    print(stats.as_json() if as_json else render_by_version(stats) if per_version else render(stats))
    return 0


def _serve(settings: Settings, host: str, port: int) -> int:
    from aiohttp import web

    from adapters.host.server import create_app

    app = create_app(settings)
    where = f"http://{host}:{port}" + (" (all interfaces)" if host in ("0.0.0.0", "::", "") else "")
    backend = "serving" if settings.use_serving else "demo"

    def listening(_: str) -> None:  # aiohttp calls it once the socket is bound, not before
        log.info("healthbot serving on %s (%s backend)", where, backend)

    # SIGTERM: stop accepting, give in-flight requests 2 s, then the app's own shutdown (answers get
    # SHUTDOWN_GRACE_S, leases are handed back): gone within 10 s.
    try:
        web.run_app(app, host=host, port=port, print=listening, access_log=None, shutdown_timeout=2.0)
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        print(f"healthbot: cannot listen on {host}:{port}: {exc.strerror} (another healthbot running? choose "
              "another with --port)", file=sys.stderr)
        return 2
    return 0


def _demo_endpoint(settings: Settings, host: str, port: int, token: str) -> int:
    from aiohttp import web

    from agent.demo import DemoEngine
    from agent.demo.endpoint import create_demo_endpoint_app

    app = create_demo_endpoint_app(DemoEngine(data_dir=settings.demo_data_dir), endpoint_name=settings.endpoint_name, token=token)
    print(
        f"Demo Model Serving endpoint '{settings.endpoint_name}' on http://{host}:{port}\n"
        f"  try: DATABRICKS_HOST=http://{host}:{port} DATABRICKS_TOKEN=<the token> healthbot ask 'Platform health overview'",
        flush=True,
    )
    # SIGTERM: stop accepting, give in-flight requests 2 s, then the app's own shutdown (answers get
    # SHUTDOWN_GRACE_S, leases are handed back): gone within 10 s.
    web.run_app(app, host=host, port=port, print=None, access_log=None, shutdown_timeout=2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
