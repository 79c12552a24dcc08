"""The terminal adapter behind `healthbot ask` and `healthbot chat`.

It goes through the same ConversationHandler as Slack and Teams, so it doubles as a harness
(errbot ships its text backend in the core for the same reason).
"""

from __future__ import annotations

import asyncio
import threading
import getpass
import socket
import sys
import uuid
from typing import Any
from collections.abc import Awaitable, Callable

from agent.base import Progress
from bot.handler import ConversationHandler
from bot.models import Incoming, Membership, Platform, Reply, ThreadKey
from bot.quick import QUICK_QUESTIONS, quick_question

Write = Callable[[str], None]
ReadLine = Callable[[str], Awaitable[str | None]]

HELP = "\n".join(
    ["Ask anything about costs, jobs, queries, security or data quality. Commands:"]
    + [f"  /{name:<9} {question}" for name, question in QUICK_QUESTIONS.items()]
    + ["  /new      start a new conversation", "  /help     this list", "  Ctrl-D    quit"]
)


def render(reply: Reply, *, streamed: bool = False, one_shot: bool = False) -> str:
    """Terminal form of a Reply: the markdown as is (unless it was already printed as it streamed),
    then sources and confidence. `one_shot` (`healthbot ask`): there is no conversation to type
    'retry' into, so an error says to run the command again."""
    lines = [] if streamed and reply.error is None else [reply.content.rstrip()]
    if reply.error is not None:
        again = "run the command again" if one_shot else "type 'retry' to ask again"
        lines.append(f"(request id {reply.request_id}; {again})" if reply.retryable
                     else f"(request id {reply.request_id})")
        return "\n".join(lines)
    if reply.sources:
        lines += ["", "Sources:"] + [f"  - {source}" for source in reply.sources]
    details = []
    if reply.confidence is not None:
        details.append(f"confidence {reply.confidence:.0%}")
    if reply.domains:
        details.append("domains: " + ", ".join(reply.domains))
    if details:
        lines += ["", " · ".join(details)]
    return "\n".join(lines)


async def read_stdin(prompt: str) -> str | None:
    """A line from the terminal (None at end of input), read in a daemon thread: Ctrl-C quits at once
    instead of waiting for Enter (asyncio's executor would wait for its blocked `input()` at exit)."""
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str | None] = loop.create_future()

    def read() -> None:
        try:
            text: str | None = input(prompt)
        except (EOFError, OSError):
            text = None
        loop.call_soon_threadsafe(lambda: None if line.done() else line.set_result(text))

    threading.Thread(target=read, name="healthbot-stdin", daemon=True).start()
    return await line


class LiveText:
    """A streamed answer in the terminal: text on stdout as it arrives, stages on stderr (dimmed on a
    terminal), so `healthbot ask … > answer.md` still captures just the answer."""

    def __init__(self) -> None:
        self.streamed = False
        self._dim = sys.stderr.isatty()

    async def stage(self, words: str) -> None:
        sys.stderr.write(f"\033[2m· {words}\033[0m\n" if self._dim else f"· {words}\n")
        sys.stderr.flush()

    async def text(self, delta: str) -> None:
        self.streamed = True
        sys.stdout.write(delta)
        sys.stdout.flush()


class ConsoleChat:
    """One terminal conversation; `/new` starts another session. `live`: answers print as they stream."""

    def __init__(self, handler: ConversationHandler, *, write: Write | None = None, user_id: str | None = None,
                 live: bool = False) -> None:
        self.handler = handler
        self.live = live
        self.streamed = False  # whether the last answer was printed as it came
        self.write = write or (lambda text: print(text, flush=True))
        self.user_id = user_id or getpass.getuser()
        self.workspace = socket.gethostname()
        self.key = self._fresh_key()

    def _fresh_key(self) -> ThreadKey:
        return ThreadKey(platform=Platform.CONSOLE, workspace=self.workspace, channel="terminal", thread=uuid.uuid4().hex)

    async def _progress(self, stage: Progress) -> None:
        if stage == "waking_up":
            self.write("Waking up the Health Monitor endpoint (scale-to-zero), this can take a few minutes…")

    async def ask(self, text: str) -> Reply:
        message = Incoming(key=self.key, user_id=self.user_id, user_name=self.user_id, text=text, is_dm=True,
                           membership=Membership.OPERATOR)  # whoever runs the console runs healthbot
        sink = LiveText() if self.live else None
        reply = await self.handler.handle(message, on_progress=self._progress, sink=sink)
        assert reply is not None  # console messages carry no event id, so they are never duplicates
        self.streamed = sink is not None and sink.streamed
        return reply

    async def run(self, read_line: ReadLine = read_stdin) -> None:
        self.write("healthbot — ask about your Databricks platform. /help for commands, Ctrl-D to quit.")
        while True:
            line = await read_line("you> ")
            if line is None:
                self.write("")
                return
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                return
            if text == "/help":
                self.write(HELP)
                continue
            if text == "/new":
                self.key = self._fresh_key()
                await self.handler.new_session(self.key)
                self.write("Started a new conversation.")
                continue
            if text.startswith("/"):
                question = quick_question(text)
                if question is None:
                    self.write(f"Unknown command {text}. /help lists them.")
                    continue
                self.write(f"you> {question}")
                text = question
            if self.live:
                self.write("")
            reply = await self.ask(text)
            self.write("\n" + render(reply, streamed=self.streamed) + "\n")


async def write_charts(charts: list[Any], *, what: str) -> list[str]:
    """The answer's charts as PNG files in a new temporary directory (the terminal cannot show them)."""
    import tempfile
    from pathlib import Path

    from bot.charts import render_all

    drawn = await render_all(charts, what=what)
    if not drawn:
        return []
    folder = Path(tempfile.mkdtemp(prefix="healthbot-charts-"))
    paths = []
    for index, (_, png) in enumerate(drawn, start=1):
        path = folder / f"chart-{index}.png"
        path.write_bytes(png)
        paths.append(str(path))
    return paths
