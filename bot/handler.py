"""ConversationHandler: the platform-neutral path from one user message to one Reply.

dedupe → rate limit → session per thread → history → (cache) → engine → history + request log.
Every adapter (Slack, Teams, console) calls `handle`; none of this knows which one it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from agent.base import AgentRequest, Answer, ChatMessage, Engine, ProgressCallback
from agent.errors import EngineError, ErrorKind
from bot.access import AccessGate, Refusal
from bot.cache import TTLCache
from bot.failures import describe_error
from bot.handler_options import HandlerOptions
from bot.ids import new_request_id
from bot.identity.service import Identities, SignInUnavailable, user_key
from bot.models import Incoming, Membership, Reply, ThreadKey
from bot.ports import StreamSink
from bot.quick import quick_question
from bot.ratelimit import RateLimiter
from bot.store import RequestLogRow, Store
from bot.store.base import Limits
from bot.store.retry import StoreUnavailable, with_retries
from bot.ops.tracing import Tracer

log = logging.getLogger(__name__)

RETRY_WORDS = frozenset({"retry", "try again"})
NOT_CONNECTED = Refusal("not_connected", "healthbot asks the Health Monitor as you, with your own Databricks permissions. "
                                         "Connect your Databricks account once (the link is yours alone and works for "
                                         "10 minutes); your question is answered right after.")


Observer = Callable[[RequestLogRow], None]

class ConversationHandler:
    def __init__(self, *, store: Store, engine: Engine, options: HandlerOptions | None = None,
                 tracer: Tracer | None = None, access: AccessGate | None = None,
                 identity: Identities | None = None) -> None:
        self.store = store
        self.identity = identity  # HEALTHBOT_IDENTITY=user: questions are asked with the asker's own token
        self.access = access or AccessGate()  # members only, even when nobody configured anything
        self.engine = engine
        self.options = options or HandlerOptions()
        self.tracer = tracer or Tracer()
        self.observers: list[Observer] = []  # metrics and the per-message log line
        self._limiter = None if store.shared_limits else RateLimiter(
            per_user=self.options.user_rate_per_min, overall=self.options.global_rate_per_min
        )  # a shared store (PostgreSQL) keeps the limits, so they hold across replicas
        self._engine_slots = asyncio.Semaphore(self.options.max_concurrency)
        self._cache: TTLCache[Answer] = TTLCache(ttl_s=self.options.cache_ttl_s, max_entries=self.options.cache_size)

    async def handle(self, msg: Incoming, *, on_progress: ProgressCallback | None = None,
                     sink: StreamSink | None = None) -> Reply | None:
        """Answer one message; None when it is a redelivery that was already answered. With a `sink`,
        a streaming engine's stages and text are shown as they come; the Reply is still the whole answer."""
        try:
            return await self._traced(msg, on_progress, sink)
        except StoreUnavailable as exc:
            log.error("store unavailable while handling a %s message: %s", msg.platform.value, exc)
            return Reply(content=describe_error(ErrorKind.STORE, endpoint="", timeout_s=0), error=ErrorKind.STORE,
                         request_id=new_request_id(), question=msg.text.strip())

    async def _traced(self, msg: Incoming, on_progress: ProgressCallback | None, sink: StreamSink | None) -> Reply | None:
        """One MLflow trace per message (DESIGN.md "Traces"): the root span holds the question and the
        answer or error text; a failed answer is an ERROR trace (a refusal is OK, tagged `refused`)."""
        if not self.tracer.enabled:
            return await self._handle(msg, on_progress, sink)
        with self.tracer.span(f"{msg.platform.value}.message", "CHAIN", channel=msg.key.channel) as root:
            assert root is not None  # tracing is on here
            root.set_inputs({"question": msg.text})
            with self.tracer.span("handler", "CHAIN"):
                reply = await self._handle(msg, on_progress, sink)
            if reply is not None:
                root.set_outputs({"answer": reply.content} if reply.error is None else
                                 {"answer": reply.content, "error": reply.error.value})
                self.tracer.metadata({"mlflow.trace.user": msg.asker, "mlflow.trace.session": reply.session_id})
                self.tracer.tag(platform=msg.platform.value, session_id=reply.session_id, request_id=reply.request_id,
                                domains=",".join(reply.domains) or None, served_version=reply.served_version or None,
                                stream="on" if sink is not None else "off", error=reply.error)
                if reply.error is not None and reply.error is not ErrorKind.REFUSED:
                    root.status = "ERROR"
                    root.set_attributes({"error_kind": reply.error.value, "request_id": reply.request_id})
            return reply

    async def refusal_for(self, msg: Incoming) -> Reply | None:
        """For adapters that act before a question reaches `handle` (a slash command's visible question,
        an alert button): the refusal, logged like any other, or None when the asker may go on. A refused
        person over the request limit gets a Reply with no content: show nothing (one log line was written)."""
        refusal = await self.access.admit(msg)
        if refusal is None:
            return None
        if await self._over_limit(msg):
            return Reply(content="", request_id=new_request_id(), error=ErrorKind.REFUSED, question=msg.text.strip())
        return await self._refuse(self._row(msg, new_request_id(), "", msg.text.strip()), time.perf_counter(), refusal)

    async def record_feedback(self, request_id: str, *, user_id: str, value: int, comment: str = "",
                              voter: str = "") -> bool:
        """A 👍 / 👎 from any adapter (with the person's words, where the platform asks for them): in the
        request log (one per platform user), and on the answer's trace as that person's one assessment,
        named as the request log names askers (`voter`: their email when visible, else `user_id`)."""
        if not await self.store.record_feedback(request_id, user_id=user_id, value=value, comment=comment[:2000]):
            return False
        self.tracer.log_feedback(request_id, value=value, user_id=voter or user_id, comment=comment[:2000])
        return True

    async def _handle(self, msg: Incoming, on_progress: ProgressCallback | None, sink: StreamSink | None) -> Reply | None:
        started = time.perf_counter()
        idle = self.options.dm_idle_s if not msg.key.thread else None
        opened = await with_retries(lambda: self.store.open_turn(
            msg.key, event_id=msg.event_id, idle_after_s=idle, history_limit=self.options.history_limit))
        if opened is None:
            log.info("duplicate event dropped", extra={"event_id": msg.event_id})
            return None
        request_id = new_request_id()
        session, history = opened.session, opened.history
        question, turn = msg.text.strip(), None
        if question.lower() in RETRY_WORDS and history and history[-1].role == "user":
            question = history[-1].content  # re-ask the unanswered question, in the same session
        else:
            turn = ChatMessage("user", question)
            history = [*history, turn][-self.options.history_limit :]
        refusal = await self.access.admit(msg)
        if refusal is not None:  # before anything is kept, and nothing reaches the endpoint
            if await self._over_limit(msg):
                return None  # a flood of refusals posts nothing: one log line each
            return await self._refuse(self._row(msg, request_id, session.session_id, question), started, refusal)
        token = ""
        if self.identity is not None and msg.membership is not Membership.OPERATOR:  # alerts stay the bot's own
            try:
                token = await self.identity.token_for(msg) or ""
            except SignInUnavailable as exc:
                log.warning("renewing the sign-in of %s failed: %s", user_key(msg), exc)
                row = self._row(msg, request_id, session.session_id, question)
                return await self._fail(row, started, ErrorKind.SIGN_IN, retry_after=None)
            if not token:  # nothing reaches the endpoint until they connect
                row = self._row(msg, request_id, session.session_id, question)
                return (await self._refuse(row, started, NOT_CONNECTED)).model_copy(update={"connect": True})
        limits = self._limits(msg) if self._limiter is None else None
        wait = await with_retries(lambda: self.store.add_question(session.session_id, turn, request_id=request_id,
                                                                   limits=limits))

        row = self._row(msg, request_id, session.session_id, question)
        if self._limiter is not None:  # one process per store (SQLite): the limits live here
            wait = self._limiter.acquire(msg.user_id)
        if wait > 0:
            return await self._fail(row, started, ErrorKind.THROTTLED, retry_after=wait)

        # An answer for that channel, or one asked as that person, is theirs alone.
        cache_key = None if msg.viewing_channel else self._cache_key(question, history, user_key(msg) if token else "")
        answer = self._cache.get(cache_key) if cache_key else None
        row.cached = answer is not None
        if answer is None:
            request = AgentRequest(history, user_id=msg.asker, session_id=session.session_id, request_id=request_id,
                                   viewing_channel=msg.viewing_channel, token=token)
            # Text streams only where no domain rule could still withhold the answer it belongs to.
            shown = sink if sink is not None and self.access.streams_freely(msg) else None
            try:
                async with self._engine_slots:
                    with self.tracer.span("endpoint", "LLM", engine=self.engine.name) as span:
                        answer, first_text = await self._ask_engine(request, on_progress, sink, shown, span)
                        if span is not None:
                            span.set_attributes({"status": "ok", "latency_ms": answer.endpoint_latency_ms or 0.0})
            except EngineError as exc:
                log.warning("engine error %s (request %s): %s", exc.kind.value, request_id, exc.detail)
                row.served_version = exc.served_version
                if token and exc.kind == ErrorKind.AUTH and self.identity is not None:
                    self.identity.forget(msg)  # revoked at the workspace, perhaps: read the store next time
                return await self._fail(row, started, exc.kind, retry_after=exc.retry_after, detail=exc.detail,
                                        as_user=bool(token))
            if first_text is not None:
                row.first_text_ms = (first_text - started) * 1000
        row.endpoint_latency_ms = None if row.cached else answer.endpoint_latency_ms
        withheld = await self.access.withheld(msg, answer.domains)
        if withheld is not None:  # the endpoint decided the domains: the check runs on the answer
            row.domains = answer.domains
            return await self._refuse(row, started, withheld, session_id=session.session_id)
        if cache_key and not row.cached:
            self._cache.put(cache_key, answer)

        row.answer, row.sources, row.confidence, row.domains, row.served_version = (
            answer.content, answer.sources, answer.confidence, answer.domains, answer.served_version,
        )
        row.latency_ms = (time.perf_counter() - started) * 1000
        if row.first_text_ms is None:  # answered whole: the answer is the first text anyone sees
            row.first_text_ms = row.latency_ms
        await with_retries(lambda: self.store.record_answer(session.session_id, ChatMessage("assistant", answer.content), row))
        self._observe(row)
        return Reply(
            content=answer.content, sources=answer.sources, confidence=answer.confidence,
            domains=answer.domains, request_id=request_id, session_id=session.session_id,
            question=question, cached=row.cached, charts=answer.charts, served_version=answer.served_version or "",
        )

    def _limits(self, msg: Incoming) -> Limits:
        return Limits(f"user:{msg.platform.value}:{msg.user_id}", self.options.user_rate_per_min,
                      self.options.global_rate_per_min)

    async def _over_limit(self, msg: Incoming) -> bool:
        """Count a refused person's message like a question (DESIGN.md "Who may ask"): past the limit
        it is dropped with one log line, so a flood of refusals never turns into a flood of posts."""
        if self._limiter is not None:
            wait = self._limiter.acquire(msg.user_id)
        else:
            wait = await with_retries(lambda: self.store.take_slot(self._limits(msg)))
        if wait > 0:
            log.info("dropped a refused message from %s on %s: over the request limit", msg.asker, msg.platform.value)
        return wait > 0

    def _row(self, msg: Incoming, request_id: str, session_id: str, question: str) -> RequestLogRow:
        return RequestLogRow(
            request_id=request_id, ts=time.time(), platform=msg.platform.value, workspace=msg.key.workspace,
            channel=msg.key.channel, thread=msg.key.thread, session_id=session_id,
            user_id=msg.asker, question=question,
        )

    async def _refuse(self, row: RequestLogRow, started: float, refusal: Refusal, *, session_id: str = "") -> Reply:
        """A refusal is answered in one line and kept in the request log with its reason (the audit
        trail); a withheld answer leaves the line, not the answer, in the conversation's history."""
        log.info("refused %s on %s: %s", row.user_id, row.platform, refusal.reason)
        self.tracer.tag(refused=refusal.reason)
        row.error, row.answer = f"refused:{refusal.reason}", refusal.message
        row.latency_ms = (time.perf_counter() - started) * 1000
        if session_id:
            await with_retries(lambda: self.store.record_answer(session_id, ChatMessage("assistant", refusal.message), row))
        else:
            await with_retries(lambda: self.store.log_request(row))
        self._observe(row)
        return Reply(content=refusal.message, request_id=row.request_id, session_id=row.session_id,
                     error=ErrorKind.REFUSED, question=row.question)

    async def _ask_engine(self, request: AgentRequest, on_progress: ProgressCallback | None, sink: StreamSink | None,
                          shown: StreamSink | None, span: Any) -> tuple[Answer, float | None]:
        """The engine's answer; streamed through `sink` when the engine streams and the adapter can
        show it (stages always, text only to `shown`). Also when the first text was shown."""
        stream = getattr(self.engine, "stream", None)
        if sink is None or stream is None:
            return await self.engine.answer(request, on_progress=on_progress), None
        first_text: float | None = None
        stage = None  # each streamed stage is a child span of the endpoint's, until the next event
        try:
            async for chunk in stream(request, on_progress=on_progress):
                if stage is not None and (chunk.stage or chunk.text or chunk.answer is not None):
                    stage.end()
                    stage = None
                if chunk.answer is not None:
                    return chunk.answer, first_text
                if chunk.stage:
                    stage = self.tracer.child(chunk.stage, "TOOL")
                    await sink.stage(chunk.stage)
                elif chunk.text and shown is not None:
                    if first_text is None:
                        first_text = time.perf_counter()
                        if span is not None:
                            span.add_event("first_token")
                    await shown.text(chunk.text)
        finally:
            if stage is not None:
                stage.end()
        raise EngineError(ErrorKind.BAD_RESPONSE, "the stream ended without an answer")

    async def close(self) -> None:
        """For commands that own everything the handler uses (`ask`, `chat`): traces exported first."""
        await asyncio.to_thread(self.tracer.close)
        await self.engine.close()
        await self.store.close()

    async def takes_part_in(self, key: ThreadKey) -> bool:
        """Whether healthbot is part of this thread's conversation (it has a session there): the one rule
        for a reply in a thread that does not mention healthbot — answered if so, ignored if not."""
        return await self.store.has_session(key)

    async def new_session(self, key: ThreadKey) -> str:
        """Start over in this place (`/new`, `/healthbot new`, "new" in Teams personal chat)."""
        return (await self.store.new_session(key)).session_id

    def _observe(self, row: RequestLogRow) -> None:
        for observer in self.observers:
            try:
                observer(row)
            except Exception:  # an observer must never cost a user their answer
                log.exception("request observer failed")

    def _cache_key(self, question: str, history: list[ChatMessage], person: str) -> str | None:
        """Only a first-turn quick question is cached: later turns depend on the conversation. Asked
        with a person's own token, the answer is theirs (`person`): never served to anyone else."""
        if len(history) != 1:
            return None
        canonical = quick_question(question)
        return f"{self.engine.name}|{person}|{canonical}" if canonical else None

    async def _fail(self, row: RequestLogRow, started: float, kind: ErrorKind, *, retry_after: float | None,
                    detail: str = "", as_user: bool = False) -> Reply:
        content = describe_error(
            kind, endpoint=self.options.endpoint_name, timeout_s=self.options.endpoint_timeout_s,
            retry_after=retry_after, detail=detail, as_user=as_user,
        )
        row.error = kind.value
        row.latency_ms = (time.perf_counter() - started) * 1000
        await with_retries(lambda: self.store.log_request(row))
        self._observe(row)
        return Reply(
            content=content, request_id=row.request_id, session_id=row.session_id, error=kind,
            question=row.question, served_version=row.served_version or "",
        )
