"""The embedded store's schema, versioned with `PRAGMA user_version` (bot/store/sqlite.py applies it)."""

from __future__ import annotations

# Each entry moves the schema from version i to i + 1; never edit one that has shipped.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE sessions (
        thread_key TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_active REAL NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        request_id TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    CREATE INDEX messages_by_session ON messages (session_id, id);
    CREATE TABLE processed_events (
        event_id TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    );
    CREATE INDEX processed_events_expiry ON processed_events (expires_at);
    CREATE TABLE request_log (
        request_id TEXT PRIMARY KEY,
        ts REAL NOT NULL,
        platform TEXT NOT NULL,
        workspace TEXT NOT NULL,
        channel TEXT NOT NULL,
        thread TEXT NOT NULL,
        session_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        question TEXT NOT NULL,
        answer TEXT NOT NULL,
        sources TEXT NOT NULL,
        confidence REAL,
        domains TEXT NOT NULL,
        latency_ms REAL NOT NULL,
        endpoint_latency_ms REAL,
        error TEXT,
        cached INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX request_log_by_ts ON request_log (ts);
    CREATE TABLE feedback (
        request_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        value INTEGER NOT NULL,
        comment TEXT NOT NULL DEFAULT '',
        ts REAL NOT NULL,
        PRIMARY KEY (request_id, user_id)
    );
    CREATE TABLE conversation_refs (
        platform TEXT NOT NULL,
        channel TEXT NOT NULL,
        reference TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (platform, channel)
    );
    """,
    # 2: alert threads — accepted alerts, the delivery outbox, and which thread each alert lives in
    """
    CREATE TABLE alert_events (
        id INTEGER PRIMARY KEY,
        alert_key TEXT NOT NULL,
        alert TEXT NOT NULL,
        received_at REAL NOT NULL
    );
    CREATE TABLE alert_outbox (
        id INTEGER PRIMARY KEY,
        event_id INTEGER NOT NULL,
        alert_key TEXT NOT NULL,
        target TEXT NOT NULL,
        investigate INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        lease_until REAL NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        done_at REAL
    );
    CREATE INDEX alert_outbox_due ON alert_outbox (status, next_attempt_at);
    CREATE INDEX alert_outbox_by_thread ON alert_outbox (alert_key, target, status);
    CREATE TABLE alert_threads (
        alert_key TEXT NOT NULL,
        target TEXT NOT NULL,
        thread_ref TEXT NOT NULL,
        state TEXT NOT NULL,
        state_since REAL NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        count INTEGER NOT NULL,
        acknowledged_by TEXT NOT NULL DEFAULT '',
        digest INTEGER NOT NULL DEFAULT 0,
        alert TEXT NOT NULL,
        PRIMARY KEY (alert_key, target)
    );
    CREATE INDEX alert_threads_by_target ON alert_threads (target, first_seen);
    """,
    # 3: the MLflow trace of each request, so feedback can be attached to it
    """
    ALTER TABLE request_log ADD COLUMN trace_id TEXT NOT NULL DEFAULT ''
    """,
    # 4: pulled alerts — what the poller last saw of each alert, job and run, and the poller's lease
    """
    CREATE TABLE alert_observations (
        key TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        token INTEGER NOT NULL,
        expires_at REAL NOT NULL
    )
    """,
    # 5: fenced outbox leases, fleet-wide pacing per channel and request limits per user
    """
    ALTER TABLE alert_outbox ADD COLUMN lease_token TEXT NOT NULL DEFAULT '';
    CREATE TABLE channel_pacing (
        target TEXT PRIMARY KEY,
        next_at REAL NOT NULL
    );
    CREATE TABLE rate_windows (
        key TEXT NOT NULL,
        window_start INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (key, window_start)
    )
    """,
    # 6: time to first visible text (streamed answers)
    """
    ALTER TABLE request_log ADD COLUMN first_text_ms REAL
    """,
    # 7: which served version answered (Deployments)
    """
    ALTER TABLE request_log ADD COLUMN served_version TEXT NOT NULL DEFAULT ''
    """,
    # 8: rollbacks asked for in the chat (Deployments): the audit trail and the confirmation guard
    """
    CREATE TABLE rollbacks (
        id TEXT PRIMARY KEY,
        endpoint TEXT NOT NULL,
        asker TEXT NOT NULL,
        asker_name TEXT NOT NULL,
        from_version TEXT NOT NULL,
        to_version TEXT NOT NULL,
        status TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        place TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX rollbacks_by_status ON rollbacks (status, created_at)
    """,
    # 9: what people do with an alert thread (snooze, reminders, flapping: bot/alerts/care.py)
    """
    ALTER TABLE alert_threads ADD COLUMN care TEXT NOT NULL DEFAULT '{}'
    """,
    # 10: each asker's own identity: sign-ins under way and people's sealed tokens (bot/store/identity.py)
    """
    CREATE TABLE oauth_states (
        state TEXT PRIMARY KEY,
        user_key TEXT NOT NULL,
        email TEXT NOT NULL,
        sealed TEXT NOT NULL,
        resume TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE user_tokens (
        user_key TEXT PRIMARY KEY,
        email TEXT NOT NULL,
        sealed TEXT NOT NULL,
        updated_at REAL NOT NULL
    )
    """,
    # 11: the two tables every message writes before it is answered, keyed by their primary key alone
    # (WITHOUT ROWID): a claim writes two B-tree pages instead of three and a new session one instead of
    # two, and each page is a WAL frame that commit writes (bench/README.md, "The Slack answer path")
    """
    CREATE TABLE processed_events_by_key (
        event_id TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO processed_events_by_key SELECT event_id, expires_at FROM processed_events;
    DROP TABLE processed_events;
    ALTER TABLE processed_events_by_key RENAME TO processed_events;
    CREATE INDEX processed_events_expiry ON processed_events (expires_at);
    CREATE TABLE sessions_by_key (
        thread_key TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_active REAL NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO sessions_by_key SELECT thread_key, session_id, created_at, last_active FROM sessions;
    DROP TABLE sessions;
    ALTER TABLE sessions_by_key RENAME TO sessions
    """,
]
