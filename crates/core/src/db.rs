//! The local store: one SQLite file (WAL) owned by its own thread, reached through [`Db::call`].
//!
//! It holds consultations, messages (by seq once stored, by client_msg_id before), and the
//! outbox. Every outbox transition is one transaction, so a message is never half-queued,
//! half-sent or lost when the process dies.

use crate::error::{Error, Result};
use crate::events::{LocalMessage, MessageStatus};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::Path;
use tara_protocol::consultations::Consultation;
use tara_protocol::media::MediaInfo;
use tara_protocol::messages::{Message, MessageKind, SenderType};
use tara_protocol::{ConsultationId, Timestamp, UserId};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A handle to the store's thread.
#[derive(Clone)]
pub struct Db {
    jobs: std::sync::mpsc::Sender<Job>,
}

const SCHEMA: &[&str] = &[r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE consultations (
        consultation_id  TEXT PRIMARY KEY,
        body             TEXT NOT NULL,
        status           TEXT NOT NULL,
        activity_at      INTEGER NOT NULL,
        contiguous_seq   INTEGER NOT NULL DEFAULT 0,
        peer_delivered   INTEGER NOT NULL DEFAULT 0,
        peer_read        INTEGER NOT NULL DEFAULT 0,
        my_read          INTEGER NOT NULL DEFAULT 0,
        unread_count     INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
        consultation_id  TEXT    NOT NULL,
        sender_id        INTEGER NOT NULL,
        client_msg_id    TEXT    NOT NULL,
        message_id       TEXT,
        seq              INTEGER,
        sender_type      TEXT    NOT NULL,
        kind             TEXT    NOT NULL,
        content          TEXT    NOT NULL,
        media            TEXT,
        local_path       TEXT,
        sent_at          INTEGER,
        created_at       INTEGER NOT NULL,
        status           TEXT    NOT NULL,
        error            TEXT,
        PRIMARY KEY (consultation_id, sender_id, client_msg_id)
    );
    CREATE UNIQUE INDEX messages_by_seq ON messages (consultation_id, seq) WHERE seq IS NOT NULL;
    CREATE INDEX messages_by_sender ON messages (sender_id, client_msg_id);
    CREATE TABLE outbox (
        position         INTEGER PRIMARY KEY AUTOINCREMENT,
        client_msg_id    TEXT    NOT NULL UNIQUE,
        consultation_id  TEXT    NOT NULL,
        kind             TEXT    NOT NULL,
        content          TEXT    NOT NULL,
        upload_path      TEXT,
        media            TEXT,
        state            TEXT    NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT,
        created_at       INTEGER NOT NULL
    );
    CREATE INDEX outbox_queued ON outbox (state, position);
"#];

/// One queued message.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// Queue order.
    pub position: i64,
    /// The idempotency id.
    pub client_msg_id: String,
    /// Where.
    pub consultation_id: ConsultationId,
    /// Text or image.
    pub kind: MessageKind,
    /// Text or caption.
    pub content: String,
    /// The compressed image to upload.
    pub upload_path: Option<String>,
    /// The upload, once done.
    pub media: Option<MediaInfo>,
    /// `queued` or `failed`.
    pub state: String,
    /// Send attempts so far.
    pub attempts: i64,
    /// The last refusal.
    pub last_error: Option<String>,
}

impl Db {
    /// Opens (creating) `tara-client.db` in `dir` on a thread of its own.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut conn = Connection::open(dir.join("tara-client.db"))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
        )?;
        migrate(&mut conn)?;
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("tara-client-db".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })?;
        Ok(Self { jobs: tx })
    }

    /// Runs `f` on the store's thread.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |c| {
                let _ = tx.send(f(c));
            }))
            .map_err(|_| Error::storage("the local store has stopped"))?;
        rx.await
            .map_err(|_| Error::storage("the local store dropped a call"))?
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in SCHEMA.iter().enumerate().skip(v as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}

// ---- meta

/// A stored setting.
pub fn meta_get(c: &Connection, key: &str) -> Result<Option<String>> {
    Ok(
        c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?,
    )
}

/// Stores a setting.
pub fn meta_set(c: &Connection, key: &str, value: &str) -> Result<()> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
        params![key, value],
    )?;
    Ok(())
}

/// Forgets everything of the signed-in user but queued messages' files.
pub fn clear_user_data(c: &mut Connection) -> Result<()> {
    let tx = c.transaction()?;
    tx.execute_batch(
        "DELETE FROM meta; DELETE FROM outbox; DELETE FROM messages; DELETE FROM consultations;",
    )?;
    tx.commit()?;
    Ok(())
}

// ---- consultations

/// Stores the newest copy of a consultation.
pub fn upsert_consultation(c: &Connection, k: &Consultation) -> Result<()> {
    let activity = k.last_message_at.unwrap_or(k.created_at).millis();
    c.execute(
        "INSERT INTO consultations (consultation_id, body, status, activity_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (consultation_id) DO UPDATE SET body = ?2, status = ?3, activity_at = MAX(activity_at, ?4)",
        params![k.consultation_id.as_str(), serde_json::to_string(k)?, k.status.as_str(), activity],
    )?;
    Ok(())
}

/// One consultation.
pub fn consultation(c: &Connection, id: &str) -> Result<Option<Consultation>> {
    let body: Option<String> = c
        .query_row(
            "SELECT body FROM consultations WHERE consultation_id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
}

/// Whether the device knows the consultation.
pub fn has_consultation(c: &Connection, id: &str) -> Result<bool> {
    Ok(
        c.prepare_cached("SELECT 1 FROM consultations WHERE consultation_id = ?1")?
            .exists([id])?,
    )
}

/// Consultations to follow on (re)connect, with the highest contiguous seq held: the active
/// ones and any with queued messages.
pub fn to_follow(c: &Connection) -> Result<Vec<(ConsultationId, i64)>> {
    let mut st = c.prepare(
        "SELECT consultation_id, contiguous_seq FROM consultations
         WHERE status IN ('requested', 'accepted', 'in_progress')
            OR consultation_id IN (SELECT consultation_id FROM outbox WHERE state = 'queued')",
    )?;
    let rows = st
        .query_map([], |r| Ok((ConsultationId(r.get(0)?), r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// The highest seq below which this device holds every message.
pub fn contiguous_seq(c: &Connection, id: &str) -> Result<i64> {
    Ok(c.query_row(
        "SELECT contiguous_seq FROM consultations WHERE consultation_id = ?1",
        [id],
        |r| r.get(0),
    )
    .optional()?
    .unwrap_or(0))
}

fn advance_contiguous(c: &Connection, id: &str) -> Result<i64> {
    let mut seq = contiguous_seq(c, id)?;
    let mut st =
        c.prepare_cached("SELECT 1 FROM messages WHERE consultation_id = ?1 AND seq = ?2")?;
    while st.exists(params![id, seq + 1])? {
        seq += 1;
    }
    c.execute(
        "UPDATE consultations SET contiguous_seq = ?1 WHERE consultation_id = ?2",
        params![seq, id],
    )?;
    Ok(seq)
}

/// Records the other side's progress; returns our messages whose ticks changed.
pub fn set_peer_marks(
    c: &Connection,
    id: &str,
    delivered: i64,
    read: i64,
) -> Result<Vec<LocalMessage>> {
    let (old_d, old_r): (i64, i64) = c
        .query_row(
            "SELECT peer_delivered, peer_read FROM consultations WHERE consultation_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((0, 0));
    let (d, r) = (old_d.max(delivered).max(read), old_r.max(read));
    c.execute(
        "UPDATE consultations SET peer_delivered = ?1, peer_read = ?2 WHERE consultation_id = ?3",
        params![d, r, id],
    )?;
    // Only our messages whose tick moved: newly delivered, or newly read.
    let mut st = c.prepare_cached(&format!(
        "{MESSAGE_SELECT} WHERE m.consultation_id = ?1 AND m.status = 'sent'
         AND ((m.seq > ?2 AND m.seq <= ?3) OR (m.seq > ?4 AND m.seq <= ?5)) ORDER BY m.seq"
    ))?;
    let changed = st
        .query_map(params![id, old_d, d, old_r, r], message)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(changed)
}

/// Our own read mark, to avoid telling the server the same thing twice.
pub fn set_my_read(c: &Connection, id: &str, up_to: i64) -> Result<bool> {
    let n = c.execute(
        "UPDATE consultations SET my_read = ?1 WHERE consultation_id = ?2 AND my_read < ?1",
        params![up_to, id],
    )?;
    Ok(n > 0)
}

/// Records the unread count the server reported.
pub fn set_unread(c: &Connection, id: &str, count: i64) -> Result<()> {
    c.execute(
        "UPDATE consultations SET unread_count = ?1 WHERE consultation_id = ?2",
        params![count, id],
    )?;
    Ok(())
}

// ---- messages

const MESSAGE_SELECT: &str = "SELECT m.consultation_id, m.sender_id, m.client_msg_id, m.message_id, m.seq,
        m.sender_type, m.kind, m.content, m.media, m.local_path, m.sent_at, m.created_at, m.status, m.error,
        COALESCE(k.peer_delivered, 0), COALESCE(k.peer_read, 0)
    FROM messages m LEFT JOIN consultations k ON k.consultation_id = m.consultation_id";

fn message(r: &Row<'_>) -> rusqlite::Result<LocalMessage> {
    let seq: Option<i64> = r.get(4)?;
    let sender_type: String = r.get(5)?;
    let kind: String = r.get(6)?;
    let media: Option<String> = r.get(8)?;
    let sent_at: Option<i64> = r.get(10)?;
    let status: String = r.get(12)?;
    let (peer_delivered, peer_read): (i64, i64) = (r.get(14)?, r.get(15)?);
    let mut status = MessageStatus::parse(&status);
    if status == MessageStatus::Sent {
        if let Some(s) = seq {
            if s <= peer_read {
                status = MessageStatus::Read;
            } else if s <= peer_delivered {
                status = MessageStatus::Delivered;
            }
        }
    }
    Ok(LocalMessage {
        consultation_id: ConsultationId(r.get(0)?),
        sender_id: UserId(r.get(1)?),
        client_msg_id: r.get(2)?,
        message_id: r.get(3)?,
        seq,
        sender_type: SenderType::parse(&sender_type).unwrap_or(SenderType::System),
        kind: MessageKind::parse(&kind).unwrap_or(MessageKind::Text),
        content: r.get(7)?,
        media: media.and_then(|m| serde_json::from_str(&m).ok()),
        local_path: r.get(9)?,
        sent_at: sent_at.map(Timestamp::from_millis),
        created_at: Timestamp::from_millis(r.get(11)?),
        status,
        error: r.get(13)?,
    })
}

fn load_message(c: &Connection, id: &str, sender: i64, cmid: &str) -> Result<LocalMessage> {
    c.prepare_cached(&format!(
        "{MESSAGE_SELECT} WHERE m.consultation_id = ?1 AND m.sender_id = ?2 AND m.client_msg_id = ?3"
    ))?
    .query_row(params![id, sender, cmid], message)
    .optional()?
    .ok_or_else(|| Error::storage("message vanished"))
}

/// Finds one of our messages by its idempotency id.
pub fn own_message(c: &Connection, me: UserId, cmid: &str) -> Result<Option<LocalMessage>> {
    Ok(c.prepare_cached(&format!(
        "{MESSAGE_SELECT} WHERE m.sender_id = ?1 AND m.client_msg_id = ?2"
    ))?
    .query_row(params![me.0, cmid], message)
    .optional()?)
}

/// Finds a message of a consultation by its idempotency id, whoever sent it.
pub fn message_by_cmid(c: &Connection, id: &str, cmid: &str) -> Result<Option<LocalMessage>> {
    Ok(c.query_row(
        &format!("{MESSAGE_SELECT} WHERE m.consultation_id = ?1 AND m.client_msg_id = ?2"),
        params![id, cmid],
        message,
    )
    .optional()?)
}

/// Remembers where a downloaded image lives on this device.
pub fn set_local_path(c: &Connection, id: &str, cmid: &str, path: &str) -> Result<()> {
    c.execute(
        "UPDATE messages SET local_path = ?3 WHERE consultation_id = ?1 AND client_msg_id = ?2",
        params![id, cmid, path],
    )?;
    Ok(())
}

/// Writes a new message of ours and its outbox item in one transaction.
#[allow(clippy::too_many_arguments)]
pub fn queue(
    c: &mut Connection,
    id: &ConsultationId,
    me: UserId,
    sender_type: SenderType,
    kind: MessageKind,
    content: &str,
    upload_path: Option<&str>,
    cmid: &str,
) -> Result<LocalMessage> {
    let now = Timestamp::now().millis();
    let tx = c.transaction()?;
    tx.prepare_cached(
        "INSERT INTO messages (consultation_id, sender_id, client_msg_id, sender_type, kind, content, local_path, created_at, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'sending')",
    )?
    .execute(params![id.as_str(), me.0, cmid, sender_type.as_str(), kind.as_str(), content, upload_path, now])?;
    tx.prepare_cached(
        "INSERT INTO outbox (client_msg_id, consultation_id, kind, content, upload_path, state, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)",
    )?
    .execute(params![cmid, id.as_str(), kind.as_str(), content, upload_path, now])?;
    tx.prepare_cached(
        "UPDATE consultations SET activity_at = MAX(activity_at, ?1) WHERE consultation_id = ?2",
    )?
    .execute(params![now, id.as_str()])?;
    let m = load_message(&tx, id.as_str(), me.0, cmid)?;
    tx.commit()?;
    Ok(m)
}

fn outbox_row(r: &Row<'_>) -> rusqlite::Result<OutboxItem> {
    let kind: String = r.get(3)?;
    let media: Option<String> = r.get(6)?;
    Ok(OutboxItem {
        position: r.get(0)?,
        client_msg_id: r.get(1)?,
        consultation_id: ConsultationId(r.get(2)?),
        kind: MessageKind::parse(&kind).unwrap_or(MessageKind::Text),
        content: r.get(4)?,
        upload_path: r.get(5)?,
        media: media.and_then(|m| serde_json::from_str(&m).ok()),
        state: r.get(7)?,
        attempts: r.get(8)?,
        last_error: r.get(9)?,
    })
}

const OUTBOX_COLS: &str =
    "position, client_msg_id, consultation_id, kind, content, upload_path, media, state, attempts, last_error";

/// The first queued item.
pub fn next_queued(c: &Connection) -> Result<Option<OutboxItem>> {
    Ok(c.query_row(
        &format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE state = 'queued' ORDER BY position LIMIT 1"
        ),
        [],
        outbox_row,
    )
    .optional()?)
}

/// Up to `limit` queued items after outbox position `after`, in order.
pub fn queued_after(c: &Connection, after: i64, limit: usize) -> Result<Vec<OutboxItem>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {OUTBOX_COLS} FROM outbox WHERE state = 'queued' AND position > ?1 ORDER BY position LIMIT ?2"
    ))?;
    let rows = st
        .query_map(params![after, limit as i64], outbox_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Every item, queued and failed, in order.
pub fn outbox(c: &Connection) -> Result<Vec<OutboxItem>> {
    let mut st = c.prepare(&format!(
        "SELECT {OUTBOX_COLS} FROM outbox ORDER BY position"
    ))?;
    let rows = st
        .query_map([], outbox_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// How many wait to be sent.
pub fn queued_count(c: &Connection) -> Result<i64> {
    Ok(
        c.prepare_cached("SELECT COUNT(*) FROM outbox WHERE state = 'queued'")?
            .query_row([], |r| r.get(0))?,
    )
}

/// Counts a send attempt of each, in one transaction.
pub fn count_attempts(c: &mut Connection, cmids: &[String]) -> Result<()> {
    let tx = c.transaction()?;
    {
        let mut st = tx
            .prepare_cached("UPDATE outbox SET attempts = attempts + 1 WHERE client_msg_id = ?1")?;
        for cmid in cmids {
            st.execute([cmid])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Records a finished upload on the outbox item and its message.
pub fn set_uploaded(c: &mut Connection, me: UserId, cmid: &str, media: &MediaInfo) -> Result<()> {
    let json = serde_json::to_string(media)?;
    let tx = c.transaction()?;
    tx.execute(
        "UPDATE outbox SET media = ?1 WHERE client_msg_id = ?2",
        params![json, cmid],
    )?;
    tx.execute(
        "UPDATE messages SET media = ?1 WHERE sender_id = ?2 AND client_msg_id = ?3",
        params![json, me.0, cmid],
    )?;
    tx.commit()?;
    Ok(())
}

/// The server stored one of ours (a full message frame): drop it from the outbox, give it its
/// seq. Idempotent.
pub fn acked(c: &mut Connection, me: UserId, stored: &Message) -> Result<LocalMessage> {
    let tx = c.transaction()?;
    let m = acked_in(&tx, me, stored)?;
    advance_contiguous(&tx, stored.consultation_id.as_str())?;
    tx.commit()?;
    Ok(m)
}

/// [`acked`] inside the caller's transaction, leaving the contiguous seq to the caller.
fn acked_in(tx: &Connection, me: UserId, stored: &Message) -> Result<LocalMessage> {
    let media = stored
        .media
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    let updated = mark_acked(
        tx,
        me,
        stored.client_msg_id.as_str(),
        stored.seq,
        stored.message_id.as_str(),
        stored.sent_at.millis(),
        media.as_deref(),
    )?;
    if !updated {
        insert_remote(tx, stored, MessageStatus::Sent)?;
    }
    load_message(
        tx,
        stored.consultation_id.as_str(),
        me.0,
        stored.client_msg_id.as_str(),
    )
}

/// One `ack` frame's contents.
#[derive(Debug, Clone)]
pub struct AckRow {
    /// Ours.
    pub client_msg_id: String,
    /// Its seq.
    pub seq: i64,
    /// The server's id.
    pub message_id: String,
    /// When the server stored it, ms.
    pub sent_at: i64,
}

/// Many acks in one transaction; the messages this device holds, in order.
pub fn ack_many(c: &mut Connection, me: UserId, acks: &[AckRow]) -> Result<Vec<LocalMessage>> {
    let tx = c.transaction()?;
    let mut out = Vec::with_capacity(acks.len());
    let mut touched: Vec<String> = Vec::new();
    for a in acks {
        if !mark_acked(
            &tx,
            me,
            &a.client_msg_id,
            a.seq,
            &a.message_id,
            a.sent_at,
            None,
        )? {
            continue;
        }
        if let Some(m) = own_message(&tx, me, &a.client_msg_id)? {
            if !touched.contains(&m.consultation_id.0) {
                touched.push(m.consultation_id.0.clone());
            }
            out.push(m);
        }
    }
    for id in &touched {
        advance_contiguous(&tx, id)?;
    }
    tx.commit()?;
    Ok(out)
}

/// The server acked one of ours (an `ack` frame or a REST answer). None if this device does
/// not hold it. Idempotent.
pub fn ack(
    c: &mut Connection,
    me: UserId,
    cmid: &str,
    seq: i64,
    message_id: &str,
    sent_at: i64,
) -> Result<Option<LocalMessage>> {
    let tx = c.transaction()?;
    if !mark_acked(&tx, me, cmid, seq, message_id, sent_at, None)? {
        return Ok(None);
    }
    let m = own_message(&tx, me, cmid)?;
    if let Some(m) = &m {
        advance_contiguous(&tx, m.consultation_id.as_str())?;
    }
    tx.commit()?;
    Ok(m)
}

fn mark_acked(
    c: &Connection,
    me: UserId,
    cmid: &str,
    seq: i64,
    message_id: &str,
    sent_at: i64,
    media: Option<&str>,
) -> Result<bool> {
    c.prepare_cached("DELETE FROM outbox WHERE client_msg_id = ?1")?
        .execute([cmid])?;
    let n = c
        .prepare_cached(
            "UPDATE messages SET seq = ?1, message_id = ?2, sent_at = ?3, status = 'sent', error = NULL,
                 media = COALESCE(?4, media)
             WHERE sender_id = ?5 AND client_msg_id = ?6",
        )?
        .execute(params![seq, message_id, sent_at, media, me.0, cmid])?;
    Ok(n > 0)
}

/// The server refused one of ours for good.
pub fn failed(
    c: &mut Connection,
    me: UserId,
    cmid: &str,
    reason: &str,
) -> Result<Option<LocalMessage>> {
    let tx = c.transaction()?;
    tx.execute(
        "UPDATE outbox SET state = 'failed', last_error = ?1 WHERE client_msg_id = ?2",
        params![reason, cmid],
    )?;
    tx.execute(
        "UPDATE messages SET status = 'failed', error = ?1 WHERE sender_id = ?2 AND client_msg_id = ?3 AND seq IS NULL",
        params![reason, me.0, cmid],
    )?;
    let m = own_message(&tx, me, cmid)?;
    tx.commit()?;
    Ok(m)
}

/// Puts a failed message back at the end of the queue, with the same client_msg_id.
pub fn requeue(c: &mut Connection, me: UserId, cmid: &str) -> Result<Option<LocalMessage>> {
    let tx = c.transaction()?;
    let item: Option<OutboxItem> = tx
        .query_row(
            &format!("SELECT {OUTBOX_COLS} FROM outbox WHERE client_msg_id = ?1"),
            [cmid],
            outbox_row,
        )
        .optional()?;
    let Some(item) = item else {
        return Ok(None);
    };
    let now = Timestamp::now().millis();
    tx.execute("DELETE FROM outbox WHERE client_msg_id = ?1", [cmid])?;
    tx.execute(
        "INSERT INTO outbox (client_msg_id, consultation_id, kind, content, upload_path, media, state, attempts, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', 0, ?7)",
        params![
            cmid,
            item.consultation_id.as_str(),
            item.kind.as_str(),
            item.content,
            item.upload_path,
            item.media.as_ref().map(serde_json::to_string).transpose()?,
            now
        ],
    )?;
    tx.execute(
        "UPDATE messages SET status = 'sending', error = NULL WHERE sender_id = ?1 AND client_msg_id = ?2",
        params![me.0, cmid],
    )?;
    let m = own_message(&tx, me, cmid)?;
    tx.commit()?;
    Ok(m)
}

fn insert_remote(c: &Connection, m: &Message, status: MessageStatus) -> Result<()> {
    c.execute(
        "INSERT INTO messages (consultation_id, sender_id, client_msg_id, message_id, seq, sender_type, kind, content,
             media, sent_at, created_at, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)
         ON CONFLICT (consultation_id, sender_id, client_msg_id) DO UPDATE SET seq = ?5, message_id = ?4, sent_at = ?10",
        params![
            m.consultation_id.as_str(),
            m.sender_id.0,
            m.client_msg_id.as_str(),
            m.message_id.as_str(),
            m.seq,
            m.sender_type.as_str(),
            m.kind.as_str(),
            m.content,
            m.media.as_ref().map(serde_json::to_string).transpose()?,
            m.sent_at.millis(),
            status.as_str()
        ],
    )?;
    Ok(())
}

/// What storing a server message did.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// New on this device.
    Added(LocalMessage),
    /// One of ours, now known stored (the message frame beat its ack).
    Acked(LocalMessage),
    /// Already held.
    Known,
}

/// Stores a message from the server (history, replay, live).
pub fn store_remote(c: &mut Connection, me: UserId, m: &Message) -> Result<Stored> {
    let tx = c.transaction()?;
    let stored = store_remote_in(&tx, me, m)?;
    if stored != Stored::Known {
        advance_contiguous(&tx, m.consultation_id.as_str())?;
    }
    tx.commit()?;
    Ok(stored)
}

/// Many server messages in one transaction, each as [`store_remote`] would.
pub fn store_remote_many(c: &mut Connection, me: UserId, ms: &[Message]) -> Result<Vec<Stored>> {
    let tx = c.transaction()?;
    let mut out = Vec::with_capacity(ms.len());
    let mut touched: Vec<&str> = Vec::new();
    for m in ms {
        let stored = store_remote_in(&tx, me, m)?;
        if stored != Stored::Known && !touched.contains(&m.consultation_id.as_str()) {
            touched.push(m.consultation_id.as_str());
        }
        out.push(stored);
    }
    for id in touched {
        advance_contiguous(&tx, id)?;
    }
    tx.commit()?;
    Ok(out)
}

/// [`store_remote`] inside the caller's transaction, leaving the contiguous seq to the caller.
fn store_remote_in(tx: &Connection, me: UserId, m: &Message) -> Result<Stored> {
    let known: Option<Option<i64>> = tx
        .prepare_cached(
            "SELECT seq FROM messages WHERE consultation_id = ?1 AND sender_id = ?2 AND client_msg_id = ?3",
        )?
        .query_row(
            params![m.consultation_id.as_str(), m.sender_id.0, m.client_msg_id.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    match known {
        Some(Some(_)) => Ok(Stored::Known),
        Some(None) if m.sender_id == me => Ok(Stored::Acked(acked_in(tx, me, m)?)),
        _ => {
            let status = if m.sender_id == me {
                MessageStatus::Sent
            } else {
                MessageStatus::Received
            };
            insert_remote(tx, m, status)?;
            tx.prepare_cached(
                "UPDATE consultations SET activity_at = MAX(activity_at, ?1) WHERE consultation_id = ?2",
            )?
            .execute(params![m.sent_at.millis(), m.consultation_id.as_str()])?;
            let local = load_message(
                tx,
                m.consultation_id.as_str(),
                m.sender_id.0,
                m.client_msg_id.as_str(),
            )?;
            Ok(Stored::Added(local))
        }
    }
}

/// A page of history, ascending: stored messages below `before_seq` (or the newest), then,
/// for the newest page, messages still on their way.
pub fn history(
    c: &Connection,
    id: &str,
    before_seq: Option<i64>,
    limit: usize,
) -> Result<Vec<LocalMessage>> {
    let mut st = c.prepare(&format!(
        "{MESSAGE_SELECT} WHERE m.consultation_id = ?1 AND m.seq IS NOT NULL AND m.seq < ?2 ORDER BY m.seq DESC LIMIT ?3"
    ))?;
    let mut page: Vec<LocalMessage> = st
        .query_map(
            params![id, before_seq.unwrap_or(i64::MAX), limit as i64],
            message,
        )?
        .collect::<rusqlite::Result<_>>()?;
    page.reverse();
    if before_seq.is_none() {
        let mut st = c.prepare(&format!(
            "{MESSAGE_SELECT} WHERE m.consultation_id = ?1 AND m.seq IS NULL ORDER BY m.created_at, m.rowid"
        ))?;
        let pending: Vec<LocalMessage> = st
            .query_map([id], message)?
            .collect::<rusqlite::Result<_>>()?;
        page.extend(pending);
    }
    Ok(page)
}
