"""Identities: whose token a question is asked with, and how a person connects and disconnects.

The path of one question in `user` mode: `token_for` finds the person's access token (memory, then the
store), renews it when it is about to expire, and returns None when they have no working connection
— then the adapter sends them, alone, the link from `connect_url`. The callback route calls
`complete`, which checks the token's user is the chat user, stores the tokens sealed and hands the
waiting question back to its adapter (a `Resumer`) to answer without asking again.

Access tokens are kept in memory for at most `REVALIDATE_S`, so a disconnect on another replica
takes effect within that; renewals run one at a time per person, and a refused renewal re-reads the
row first, because another replica may have just used the (single-use) refresh token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bot.background import TaskSet
from bot.identity.oauth import SignInFailed, Tokens, WorkspaceOAuth
from bot.identity.vault import Sealer, Unreadable
from bot.models import Incoming
from bot.store.identity import IdentityStore, PendingSignIn, StoredTokens
from bot.store.retry import with_retries

log = logging.getLogger(__name__)

CONNECT_WITHIN_S = 600.0  # a sign-in link works once, for ten minutes
RENEW_BEFORE_S = 60.0  # renew an access token this long before it expires
REVALIDATE_S = 30.0  # how long an access token is used from memory before the store is read again
STILL_VALID_S = 10.0  # another replica's fresh token is used while it has this long left
RENEWAL_RECHECKS, RECHECK_EVERY_S = 4, 0.5  # a refused renewal: how long to look for another replica's
Resumer = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]


class SignInUnavailable(Exception):
    """The workspace's token endpoint could not renew a sign-in now; the person should try again later."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the callback page says: a title and one paragraph, never a token."""

    ok: bool
    title: str
    words: str
    status: int = 400  # the callback page's HTTP status (200 when connected)


def user_key(message: Incoming) -> str:
    return f"{message.platform.value}:{message.user_id}"


def waiting_question(waiting: dict[str, Any], **changes: Any) -> Incoming:
    """The question that waited for a sign-in, under a new event id: the first one was answered with
    the connect prompt, and the handler answers each event id once."""
    message = Incoming.model_validate(waiting["incoming"])
    return message.model_copy(update={"event_id": f"{message.event_id}:connected", **changes})


class Identities:
    def __init__(self, *, store: IdentityStore, oauth: WorkspaceOAuth, sealer: Sealer) -> None:
        self.store = store
        self.oauth = oauth
        self.sealer = sealer
        self.resumers: dict[str, Resumer] = {}  # platform → its adapter's way to answer a waiting question
        self._memory: dict[str, tuple[str, float, float]] = {}  # user key → (access token, expires at, read at)
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks = TaskSet(what="answering after a sign-in", expected=())

    # -- the question path ------------------------------------------------------------------

    async def token_for(self, message: Incoming) -> str | None:
        """The person's access token; None when they must connect (never connected, disconnected, the
        refresh token revoked or expired, a key no longer configured). Raises SignInUnavailable when
        the workspace cannot renew it right now."""
        key = user_key(message)
        if (token := self._remembered(key)) is not None:
            return token
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if (token := self._remembered(key)) is not None:
                return token
            stored = await with_retries(lambda: self.store.tokens(key))
            tokens = self._opened(stored)
            if stored is None or tokens is None:
                return None
            if tokens.expires_at - RENEW_BEFORE_S <= time.time():
                tokens = await self._renewed(stored, tokens)
                if tokens is None:
                    return None
            self._memory[key] = (tokens.access_token, tokens.expires_at, time.monotonic())
            return tokens.access_token

    def forget(self, message: Incoming) -> None:
        """The endpoint refused this person's token (401): read the store again next time."""
        self._memory.pop(user_key(message), None)

    def _remembered(self, key: str) -> str | None:
        found = self._memory.get(key)
        if found is None:
            return None
        token, expires_at, read_at = found
        if time.monotonic() - read_at > REVALIDATE_S or expires_at - RENEW_BEFORE_S <= time.time():
            self._memory.pop(key, None)
            return None
        return token

    def _opened(self, stored: StoredTokens | None) -> Tokens | None:
        if stored is None:
            return None
        try:
            return Tokens.from_dict(self.sealer.open(stored.sealed))
        except (Unreadable, KeyError, ValueError, TypeError):
            log.warning("stored tokens of %s cannot be opened with HEALTHBOT_TOKEN_KEY: asking them to connect again",
                        stored.user_key)
            return None

    async def _renewed(self, stored: StoredTokens, tokens: Tokens) -> Tokens | None:
        try:
            fresh = await self.oauth.refresh(tokens)
        except SignInFailed as exc:
            if not exc.rejected:
                raise SignInUnavailable(str(exc)) from None
            renewed = await self._renewed_elsewhere(stored)
            if renewed is not None:
                return renewed
            log.info("the refresh token of %s was refused (%s): asking them to connect again", stored.user_key, exc)
            await with_retries(lambda: self.store.delete_tokens(stored.user_key))
            return None
        row = StoredTokens(stored.user_key, stored.email, self.sealer.seal(fresh.as_dict()), time.time())
        await with_retries(lambda: self.store.save_tokens(row))
        return fresh

    async def _renewed_elsewhere(self, stored: StoredTokens) -> Tokens | None:
        """After a refused renewal: another replica may have just used the same single-use refresh
        token, and be saving what it got. Its row is waited for, briefly, before the tokens are dropped."""
        for _ in range(RENEWAL_RECHECKS):
            again = await with_retries(lambda: self.store.tokens(stored.user_key))
            if again is None:
                return None
            if again.updated_at != stored.updated_at:
                tokens = self._opened(again)
                return tokens if tokens is not None and tokens.expires_at > time.time() + STILL_VALID_S else None
            await asyncio.sleep(RECHECK_EVERY_S)
        return None

    # -- connecting -------------------------------------------------------------------------

    async def connect_url(self, message: Incoming, resume: dict[str, Any] | None) -> str:
        """A single-use sign-in link bound to this chat user, valid ten minutes; `resume` is what their
        adapter needs to answer the waiting question afterwards (None: nothing waits)."""
        consent = self.oauth.begin()
        pending = PendingSignIn(
            state=consent.state, user_key=user_key(message), email=message.user_email.lower(),
            sealed=self.sealer.seal({"verifier": consent.verifier}),
            resume=json.dumps({"platform": message.platform.value, **resume}) if resume else "",
            expires_at=time.time() + CONNECT_WITHIN_S)
        await with_retries(lambda: self.store.save_state(pending))
        return consent.url

    async def complete(self, code: str, state: str) -> Outcome:
        """The callback: redeem the code, check whose token it is, store it, answer the waiting question."""
        pending = await with_retries(lambda: self.store.take_state(state))
        if pending is None:
            return Outcome(False, "This sign-in link does not work any more",
                           "It was already used, or it is not one healthbot sent. Ask healthbot your question again "
                           "to get a new link.")
        if pending.expires_at <= time.time():
            return Outcome(False, "This sign-in link expired", "Links work for 10 minutes. Ask healthbot your question "
                                                                "again to get a new one.")
        try:
            verifier = str(self.sealer.open(pending.sealed)["verifier"])
            tokens = await self.oauth.exchange(code, state, verifier)
            emails = await self.oauth.whoami(tokens.access_token)
        except (Unreadable, KeyError):
            return Outcome(False, "This sign-in link cannot be used", "healthbot's key changed since it was sent. "
                                                                       "Ask your question again for a new link.")
        except SignInFailed as exc:
            return Outcome(False, "Databricks sign-in did not complete", f"{exc}. Ask healthbot again for a new link.",
                           status=400 if exc.rejected else 502)
        if not pending.email or pending.email not in emails:
            await self.oauth.revoke(tokens.refresh_token)
            seen = pending.email or "no email visible to healthbot"
            return Outcome(False, "That is a different Databricks account",
                           f"You signed in to Databricks as {', '.join(sorted(emails)) or 'an account without an email'}, "
                           f"but you asked in the chat as {seen}. Nothing was stored. Sign in with your own account.",
                           status=403)
        connected = StoredTokens(pending.user_key, pending.email, self.sealer.seal(tokens.as_dict()), time.time())
        await with_retries(lambda: self.store.save_tokens(connected))
        self._memory.pop(pending.user_key, None)
        log.info("%s connected their Databricks account", pending.user_key)
        waiting = json.loads(pending.resume) if pending.resume else None
        resumer = self.resumers.get(str(waiting.get("platform"))) if isinstance(waiting, dict) else None
        if waiting is not None and resumer is not None:
            self._tasks.spawn(resumer(waiting))
        return Outcome(True, "Your Databricks account is connected",
                       "healthbot now asks the Health Monitor as you" + (": your question is being answered in the chat."
                                                                           if resumer is not None else
                                                                           ". Ask your question again in the chat.")
                       + " You can close this page.", status=200)

    async def disconnect(self, message: Incoming) -> bool:
        """Delete the person's tokens and revoke the refresh token; False when none were stored."""
        key = user_key(message)
        self._memory.pop(key, None)
        stored = await with_retries(lambda: self.store.tokens(key))
        if stored is None:
            return False
        await with_retries(lambda: self.store.delete_tokens(key))
        tokens = self._opened(stored)
        if tokens is not None and tokens.refresh_token:
            await self.oauth.revoke(tokens.refresh_token)
        log.info("%s disconnected their Databricks account", key)
        return True

    async def connected(self) -> int:
        return await with_retries(self.store.connected)

    async def drain(self) -> None:
        await self._tasks.drain(5.0)
