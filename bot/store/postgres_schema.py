"""The shared store's schema, versioned in `healthbot_schema` (bot/store/postgres.py applies it under
an advisory lock, so replicas starting together migrate once)."""

from __future__ import annotations

# Each entry moves the schema from version i to i + 1; never edit one that has shipped.
MIGRATION_LOCK = 0x6865616C  # "heal": the advisory lock id for schema changes
MIGRATIONS: list[str] = [
    """
    CREATE TABLE sessions (thread_key TEXT PRIMARY KEY, session_id TEXT NOT NULL,
                           created_at DOUBLE PRECISION NOT NULL, last_active DOUBLE PRECISION NOT NULL);
    CREATE TABLE messages (id BIGSERIAL PRIMARY KEY, session_id TEXT NOT NULL, role TEXT NOT NULL,
                           content TEXT NOT NULL, request_id TEXT NOT NULL DEFAULT '', created_at DOUBLE PRECISION NOT NULL);
    CREATE INDEX messages_by_session ON messages (session_id, id);
    CREATE TABLE processed_events (event_id TEXT PRIMARY KEY, expires_at DOUBLE PRECISION NOT NULL);
    CREATE INDEX processed_events_expiry ON processed_events (expires_at);
    CREATE TABLE request_log (
        request_id TEXT PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, platform TEXT NOT NULL, workspace TEXT NOT NULL,
        channel TEXT NOT NULL, thread TEXT NOT NULL, session_id TEXT NOT NULL, user_id TEXT NOT NULL,
        question TEXT NOT NULL, answer TEXT NOT NULL, sources TEXT NOT NULL, confidence DOUBLE PRECISION,
        domains TEXT NOT NULL, latency_ms DOUBLE PRECISION NOT NULL, endpoint_latency_ms DOUBLE PRECISION,
        error TEXT, cached BOOLEAN NOT NULL DEFAULT FALSE, trace_id TEXT NOT NULL DEFAULT '');
    CREATE INDEX request_log_by_ts ON request_log (ts);
    CREATE TABLE feedback (request_id TEXT NOT NULL, user_id TEXT NOT NULL, value INTEGER NOT NULL,
                           comment TEXT NOT NULL DEFAULT '', ts DOUBLE PRECISION NOT NULL, PRIMARY KEY (request_id, user_id));
    CREATE TABLE conversation_refs (platform TEXT NOT NULL, channel TEXT NOT NULL, reference TEXT NOT NULL,
                                    updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (platform, channel));
    CREATE TABLE alert_events (id BIGSERIAL PRIMARY KEY, alert_key TEXT NOT NULL, alert TEXT NOT NULL,
                               received_at DOUBLE PRECISION NOT NULL);
    CREATE TABLE alert_outbox (
        id BIGSERIAL PRIMARY KEY, event_id BIGINT NOT NULL, alert_key TEXT NOT NULL, target TEXT NOT NULL,
        investigate BOOLEAN NOT NULL DEFAULT FALSE, status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at DOUBLE PRECISION NOT NULL,
        lease_until DOUBLE PRECISION NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '',
        created_at DOUBLE PRECISION NOT NULL, done_at DOUBLE PRECISION);
    CREATE INDEX alert_outbox_due ON alert_outbox (status, next_attempt_at);
    CREATE INDEX alert_outbox_by_thread ON alert_outbox (alert_key, target, status);
    CREATE TABLE alert_threads (
        alert_key TEXT NOT NULL, target TEXT NOT NULL, thread_ref TEXT NOT NULL, state TEXT NOT NULL,
        state_since DOUBLE PRECISION NOT NULL, first_seen DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL,
        count INTEGER NOT NULL, acknowledged_by TEXT NOT NULL DEFAULT '', digest BOOLEAN NOT NULL DEFAULT FALSE,
        alert TEXT NOT NULL, PRIMARY KEY (alert_key, target));
    CREATE INDEX alert_threads_by_target ON alert_threads (target, first_seen);
    """,
    # 2: pulled alerts — what the poller last saw of each alert, job and run, and the poller's lease
    """
    CREATE TABLE alert_observations (key TEXT PRIMARY KEY, state TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
    CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, token BIGINT NOT NULL,
                         expires_at DOUBLE PRECISION NOT NULL);
    """,
    # 3: fenced outbox leases, fleet-wide pacing per channel and request limits per user
    """
    ALTER TABLE alert_outbox ADD COLUMN lease_token TEXT NOT NULL DEFAULT '';
    CREATE TABLE channel_pacing (target TEXT PRIMARY KEY, next_at DOUBLE PRECISION NOT NULL);
    CREATE TABLE rate_windows (key TEXT NOT NULL, window_start BIGINT NOT NULL, count INTEGER NOT NULL,
                               PRIMARY KEY (key, window_start));
    """,
    # 4: time to first visible text (streamed answers)
    """
    ALTER TABLE request_log ADD COLUMN first_text_ms DOUBLE PRECISION;
    """,
    # 5: which served version answered (Deployments)
    """
    ALTER TABLE request_log ADD COLUMN served_version TEXT NOT NULL DEFAULT '';
    """,
    # 6: rollbacks asked for in the chat (Deployments): the audit trail and the confirmation guard
    """
    CREATE TABLE rollbacks (id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, asker TEXT NOT NULL, asker_name TEXT NOT NULL,
                            from_version TEXT NOT NULL, to_version TEXT NOT NULL, status TEXT NOT NULL,
                            detail TEXT NOT NULL DEFAULT '', place TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
                            expires_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL);
    CREATE INDEX rollbacks_by_status ON rollbacks (status, created_at);
    """,
    # 7: what people do with an alert thread (snooze, reminders, flapping: bot/alerts/care.py)
    """
    ALTER TABLE alert_threads ADD COLUMN care TEXT NOT NULL DEFAULT '{}';
    """,
    # 8: each asker's own identity: sign-ins under way and people's sealed tokens (bot/store/identity.py)
    """
    CREATE TABLE oauth_states (state TEXT PRIMARY KEY, user_key TEXT NOT NULL, email TEXT NOT NULL, sealed TEXT NOT NULL,
                               resume TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL);
    CREATE TABLE user_tokens (user_key TEXT PRIMARY KEY, email TEXT NOT NULL, sealed TEXT NOT NULL,
                              updated_at DOUBLE PRECISION NOT NULL);
    """,
    # 9: exact request limits across replicas: one row per admitted request, counted under a lock per key
    #    (rate_windows' minute buckets overshot when requests straddled two minutes; it is left for replicas
    #    of the version before during a rolling upgrade, and emptied by retention)
    """
    CREATE TABLE rate_admissions (key TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
    CREATE INDEX rate_admissions_by_key ON rate_admissions (key, at);
    CREATE FUNCTION healthbot_admit(keys TEXT[], caps INTEGER[], window_s DOUBLE PRECISION)
    RETURNS DOUBLE PRECISION LANGUAGE plpgsql VOLATILE AS $fn$
    DECLARE
        i INTEGER;
        n INTEGER := coalesce(array_length(keys, 1), 0);
        now_s DOUBLE PRECISION;
        used INTEGER;
        oldest DOUBLE PRECISION;
        wait DOUBLE PRECISION := 0;
    BEGIN
        -- One key at a time, always in the order given (the user's, then the fleet's): no deadlock.
        FOR i IN 1 .. n LOOP
            PERFORM pg_advisory_xact_lock(hashtextextended('healthbot-rate:' || keys[i], 0));
        END LOOP;
        -- Read after the locks: each statement here sees what the previous holder committed.
        now_s := extract(epoch FROM clock_timestamp());
        FOR i IN 1 .. n LOOP
            DELETE FROM rate_admissions WHERE key = keys[i] AND at <= now_s - window_s;
            SELECT count(*), min(at) INTO used, oldest FROM rate_admissions WHERE key = keys[i];
            IF used >= caps[i] THEN
                wait := greatest(wait, oldest + window_s - now_s, 1);
            END IF;
        END LOOP;
        IF wait > 0 THEN
            RETURN wait;
        END IF;
        INSERT INTO rate_admissions (key, at) SELECT k, now_s FROM unnest(keys) AS k;
        RETURN 0;
    END
    $fn$;
    """,
]
