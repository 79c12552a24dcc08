"""People's connected Databricks accounts and the sign-ins under way (HEALTHBOT_IDENTITY=user).

`oauth_states` holds a sign-in from the moment the link is sent: the state (the primary key), whose
it is, its PKCE verifier (sealed), the question to answer once connected, and when it expires.
`take_state` deletes and returns it in one statement, so a state works once, on whichever replica
the browser lands. `user_tokens` holds one sealed token set per person; `updated_at` lets a replica
whose refresh was refused see that another replica already renewed (refresh tokens may be single-use).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.store.postgres import PostgresStore

STATE_COLUMNS = "state, user_key, email, sealed, resume, expires_at"
TOKEN_COLUMNS = "user_key, email, sealed, updated_at"


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    state: str
    user_key: str  # platform:user id — the chat user this sign-in is bound to
    email: str  # their email in the chat platform: the token's user must have it
    sealed: str = field(repr=False)  # {"verifier": …}, sealed
    resume: str  # JSON: the question to answer once connected ("" when there is none)
    expires_at: float


@dataclass(frozen=True, slots=True)
class StoredTokens:
    user_key: str
    email: str
    sealed: str = field(repr=False)  # Tokens.as_dict(), sealed
    updated_at: float


class IdentityStore(Protocol):
    async def save_state(self, pending: PendingSignIn) -> None: ...
    async def take_state(self, state: str) -> PendingSignIn | None:
        """The sign-in, removed in the same statement: None when unknown or already used."""
        ...
    async def save_tokens(self, tokens: StoredTokens) -> None: ...
    async def tokens(self, user_key: str) -> StoredTokens | None: ...
    async def delete_tokens(self, user_key: str) -> bool: ...
    async def connected(self) -> int: ...


class SqliteIdentities:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    async def save_state(self, pending: PendingSignIn) -> None:
        self._db.execute("DELETE FROM oauth_states WHERE expires_at < ?", (time.time() - 3600,))
        self._db.execute(f"INSERT INTO oauth_states ({STATE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                         (pending.state, pending.user_key, pending.email, pending.sealed, pending.resume,
                          pending.expires_at))

    async def take_state(self, state: str) -> PendingSignIn | None:
        rows = self._db.execute(f"DELETE FROM oauth_states WHERE state = ? RETURNING {STATE_COLUMNS}", (state,)).fetchall()
        return PendingSignIn(*rows[0]) if rows else None  # fetched whole: the statement ends, its lock too

    async def save_tokens(self, tokens: StoredTokens) -> None:
        self._db.execute(f"INSERT INTO user_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?) ON CONFLICT (user_key) DO "
                         "UPDATE SET email = excluded.email, sealed = excluded.sealed, updated_at = excluded.updated_at",
                         (tokens.user_key, tokens.email, tokens.sealed, tokens.updated_at))

    async def tokens(self, user_key: str) -> StoredTokens | None:
        row = self._db.execute(f"SELECT {TOKEN_COLUMNS} FROM user_tokens WHERE user_key = ?", (user_key,)).fetchone()
        return StoredTokens(*row) if row is not None else None

    async def delete_tokens(self, user_key: str) -> bool:
        return self._db.execute("DELETE FROM user_tokens WHERE user_key = ?", (user_key,)).rowcount > 0

    async def connected(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM user_tokens").fetchone()[0])


class PostgresIdentities:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def save_state(self, pending: PendingSignIn) -> None:
        pool = await self.store.pool()
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute("DELETE FROM oauth_states WHERE expires_at < $1", time.time() - 3600)
            await connection.execute(f"INSERT INTO oauth_states ({STATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)",
                                     pending.state, pending.user_key, pending.email, pending.sealed, pending.resume,
                                     pending.expires_at)

    async def take_state(self, state: str) -> PendingSignIn | None:
        pool = await self.store.pool()
        row = await pool.fetchrow(f"DELETE FROM oauth_states WHERE state = $1 RETURNING {STATE_COLUMNS}", state)
        return PendingSignIn(*row.values()) if row is not None else None

    async def save_tokens(self, tokens: StoredTokens) -> None:
        pool = await self.store.pool()
        await pool.execute(f"INSERT INTO user_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4) ON CONFLICT (user_key) "
                           "DO UPDATE SET email = excluded.email, sealed = excluded.sealed, updated_at = excluded.updated_at",
                           tokens.user_key, tokens.email, tokens.sealed, tokens.updated_at)

    async def tokens(self, user_key: str) -> StoredTokens | None:
        pool = await self.store.pool()
        row = await pool.fetchrow(f"SELECT {TOKEN_COLUMNS} FROM user_tokens WHERE user_key = $1", user_key)
        return StoredTokens(*row.values()) if row is not None else None

    async def delete_tokens(self, user_key: str) -> bool:
        pool = await self.store.pool()
        return str(await pool.execute("DELETE FROM user_tokens WHERE user_key = $1", user_key)) != "DELETE 0"

    async def connected(self) -> int:
        pool = await self.store.pool()
        return int(await pool.fetchval("SELECT COUNT(*) FROM user_tokens"))
