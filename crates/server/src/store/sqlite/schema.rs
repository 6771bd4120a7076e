//! The SQLite schema, as an append-only list of migrations keyed by `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema one version forward. Never edit a shipped entry; add one.
const MIGRATIONS: &[&str] = &[
    // 1: everything of the v1 contract but billing.
    r#"
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        user_type     TEXT    NOT NULL,
        phone         TEXT    NOT NULL,
        display_name  TEXT    NOT NULL,
        avatar_url    TEXT,
        created_at    INTEGER NOT NULL,
        last_seen_at  INTEGER,
        UNIQUE (phone, user_type)
    );
    CREATE TABLE guides (
        user_id          INTEGER PRIMARY KEY REFERENCES users(id),
        rate_per_minute  INTEGER NOT NULL,
        skills           TEXT    NOT NULL DEFAULT '[]',
        languages        TEXT    NOT NULL DEFAULT '[]',
        available        INTEGER NOT NULL DEFAULT 0,
        rating_sum       INTEGER NOT NULL DEFAULT 0,
        rating_count     INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE otp_requests (
        request_id  TEXT    PRIMARY KEY,
        phone       TEXT    NOT NULL,
        user_type   TEXT    NOT NULL,
        code_hash   BLOB    NOT NULL,
        created_at  INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        state       TEXT    NOT NULL DEFAULT 'open'
    );
    CREATE INDEX otp_by_phone ON otp_requests (phone, created_at);
    CREATE TABLE sessions (
        session_id    TEXT    PRIMARY KEY,
        user_id       INTEGER NOT NULL REFERENCES users(id),
        device_info   TEXT    NOT NULL,
        created_at    INTEGER NOT NULL,
        last_used_at  INTEGER NOT NULL,
        revoked_at    INTEGER
    );
    CREATE INDEX sessions_by_user ON sessions (user_id, last_used_at);
    CREATE TABLE refresh_tokens (
        token_hash  BLOB    PRIMARY KEY,
        session_id  TEXT    NOT NULL REFERENCES sessions(session_id),
        created_at  INTEGER NOT NULL,
        used_at     INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE customer_profiles (
        profile_id          INTEGER PRIMARY KEY AUTOINCREMENT,
        customer_id         INTEGER NOT NULL REFERENCES users(id),
        is_primary          INTEGER NOT NULL,
        name                TEXT    NOT NULL,
        date_of_birth       TEXT    NOT NULL,
        time_of_birth       TEXT    NOT NULL,
        birth_city          TEXT    NOT NULL,
        birth_country       TEXT    NOT NULL,
        preferred_language  TEXT    NOT NULL,
        zodiac_sign         TEXT,
        gender              TEXT,
        created_at          INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX one_primary_profile ON customer_profiles (customer_id) WHERE is_primary = 1;
    CREATE TABLE consultations (
        consultation_id  TEXT    PRIMARY KEY,
        customer_id      INTEGER NOT NULL REFERENCES users(id),
        guide_id         INTEGER NOT NULL REFERENCES users(id),
        mode             TEXT    NOT NULL,
        status           TEXT    NOT NULL,
        created_at       INTEGER NOT NULL,
        accepted_at      INTEGER,
        started_at       INTEGER,
        ended_at         INTEGER,
        ended_by         TEXT,
        end_reason       TEXT,
        rate_per_minute  INTEGER NOT NULL,
        intake           TEXT,
        head_seq         INTEGER NOT NULL DEFAULT 0,
        total_messages   INTEGER NOT NULL DEFAULT 0,
        last_message_at  INTEGER,
        activity_at      INTEGER NOT NULL,
        customer_unread  INTEGER NOT NULL DEFAULT 0,
        guide_unread     INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX one_active_per_customer ON consultations (customer_id)
        WHERE status IN ('requested', 'accepted', 'in_progress');
    CREATE UNIQUE INDEX one_active_per_guide ON consultations (guide_id)
        WHERE status IN ('accepted', 'in_progress');
    CREATE INDEX consultations_by_customer ON consultations (customer_id, activity_at);
    CREATE INDEX consultations_by_guide ON consultations (guide_id, activity_at);
    CREATE INDEX consultations_by_status ON consultations (status, guide_id);
    CREATE TABLE participants (
        consultation_id  TEXT    NOT NULL REFERENCES consultations(consultation_id),
        user_id          INTEGER NOT NULL REFERENCES users(id),
        joined_at        INTEGER,
        delivered_seq    INTEGER NOT NULL DEFAULT 0,
        read_seq         INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (consultation_id, user_id)
    ) WITHOUT ROWID;
    CREATE TABLE media (
        media_id         TEXT    PRIMARY KEY,
        consultation_id  TEXT    NOT NULL REFERENCES consultations(consultation_id),
        uploader_id      INTEGER NOT NULL REFERENCES users(id),
        idempotency_key  TEXT,
        content_type     TEXT    NOT NULL,
        width            INTEGER NOT NULL,
        height           INTEGER NOT NULL,
        bytes            INTEGER NOT NULL,
        created_at       INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX media_idempotency ON media (uploader_id, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE TABLE messages (
        consultation_id  TEXT    NOT NULL REFERENCES consultations(consultation_id),
        seq              INTEGER NOT NULL,
        message_id       TEXT    NOT NULL,
        client_msg_id    TEXT    NOT NULL,
        sender_id        INTEGER NOT NULL,
        sender_type      TEXT    NOT NULL,
        kind             TEXT    NOT NULL,
        content          TEXT    NOT NULL,
        media_id         TEXT    REFERENCES media(media_id),
        sent_at          INTEGER NOT NULL,
        is_deleted       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (consultation_id, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX messages_idempotency ON messages (sender_id, client_msg_id);
    CREATE TABLE feedback (
        feedback_id      TEXT    PRIMARY KEY,
        consultation_id  TEXT    NOT NULL UNIQUE REFERENCES consultations(consultation_id),
        customer_id      INTEGER NOT NULL,
        guide_id         INTEGER NOT NULL,
        rating           INTEGER NOT NULL,
        feedback_text    TEXT,
        issues           TEXT,
        submitted_at     INTEGER NOT NULL
    );
    "#,
    // 2: a guide's ratings, newest first (`GET /guide/ratings`).
    r#"
    CREATE INDEX feedback_by_guide ON feedback (guide_id, submitted_at, consultation_id);
    "#,
    // 3: the idempotency index keyed by the client id first. Client ids are UUIDv7 (time
    // first), so new entries land at the right edge of the index instead of in one leaf page
    // per sender; a group commit then writes a handful of index pages instead of hundreds.
    // Lookups give both columns, so they use it the same way.
    r#"
    DROP INDEX messages_idempotency;
    CREATE UNIQUE INDEX messages_idempotency ON messages (client_msg_id, sender_id);
    "#,
    // 4: wallets and billing. A double-entry ledger: every movement is one row per account it
    // touches (user 0 is the platform), written in the transaction that causes it; a wallet's
    // balance is the sum of its rows, cached on the wallet row. The unique indexes make a
    // consultation charge once and a payment credit once, whatever races or retries.
    r#"
    CREATE TABLE wallets (
        user_id     INTEGER PRIMARY KEY,
        balance     INTEGER NOT NULL DEFAULT 0,
        currency    TEXT    NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE ledger (
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,
        entry_id         TEXT    NOT NULL UNIQUE,
        user_id          INTEGER NOT NULL,
        kind             TEXT    NOT NULL,
        amount           INTEGER NOT NULL,
        balance_after    INTEGER NOT NULL,
        consultation_id  TEXT,
        payment_id       TEXT,
        note             TEXT,
        created_at       INTEGER NOT NULL
    );
    CREATE INDEX ledger_by_user ON ledger (user_id, seq);
    CREATE INDEX ledger_by_kind ON ledger (user_id, kind, seq);
    CREATE UNIQUE INDEX ledger_once_per_consultation ON ledger (consultation_id, user_id, kind)
        WHERE consultation_id IS NOT NULL;
    CREATE UNIQUE INDEX ledger_once_per_payment ON ledger (payment_id, user_id)
        WHERE payment_id IS NOT NULL;
    CREATE TABLE payments (
        payment_id       TEXT    PRIMARY KEY,
        user_id          INTEGER NOT NULL REFERENCES users(id),
        amount           INTEGER NOT NULL,
        currency         TEXT    NOT NULL,
        provider         TEXT    NOT NULL,
        status           TEXT    NOT NULL,
        idempotency_key  TEXT    NOT NULL,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        UNIQUE (user_id, idempotency_key)
    ) WITHOUT ROWID;
    CREATE TABLE wallet_notices (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id     INTEGER NOT NULL,
        created_at  INTEGER NOT NULL
    );
    ALTER TABLE consultations ADD COLUMN amount_charged INTEGER;
    ALTER TABLE consultations ADD COLUMN minute_ms INTEGER NOT NULL DEFAULT 60000;
    "#,
    // 5: push tokens, one per device session (`POST /devices/push-token`). A token lives on
    // one session at a time: a phone that signs in again, or changes hands, takes it along.
    r#"
    CREATE TABLE push_tokens (
        session_id        TEXT    PRIMARY KEY REFERENCES sessions(session_id),
        user_id           INTEGER NOT NULL REFERENCES users(id),
        platform          TEXT    NOT NULL,
        token             TEXT    NOT NULL UNIQUE,
        private_previews  INTEGER NOT NULL DEFAULT 0,
        updated_at        INTEGER NOT NULL
    );
    CREATE INDEX push_tokens_by_user ON push_tokens (user_id);
    "#,
    // 6: silent consultations. A running consultation's last activity (a message, a read, typing)
    // and since when its guide's connections are all gone: a chat ended for silence is charged
    // up to the first, and nothing after the second is charged.
    r#"
    ALTER TABLE consultations ADD COLUMN last_active_at INTEGER;
    ALTER TABLE consultations ADD COLUMN guide_away_at INTEGER;
    "#,
    // 7: a refresh retried after its answer was lost. The key the client sent with a token's
    // first use (hashed) and the successor it was given, so that the same token and key again,
    // soon, while that successor is unused, rotate again instead of revoking the session.
    r#"
    ALTER TABLE refresh_tokens ADD COLUMN retry_key BLOB;
    ALTER TABLE refresh_tokens ADD COLUMN successor BLOB;
    "#,
];

/// Brings a database to the newest schema, one transaction per step.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}

/// Settings every connection gets.
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16384;",
    )
}

/// The writer's extra settings: a cache big enough that a group never spills pages before its
/// commit, and no checkpoints in its commits (a background thread runs them; see `checkpointer`).
pub fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA cache_size = -131072; PRAGMA wal_autocheckpoint = 0;")
}
