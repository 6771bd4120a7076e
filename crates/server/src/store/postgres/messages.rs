//! Messages (seq assignment, idempotency, history, receipts) and media records.
//!
//! Appends come to [`append_run`] as a run of jobs that the writer found queued together. The
//! run is stored with a few statements whatever its length: lock the consultations it writes
//! to (in id order, so servers sharing the database cannot deadlock on them), look up every
//! `(sender, client_msg_id)` at once, decide each message in order in memory (duplicate,
//! refused, or the next seq of its consultation), then one insert of every new row and one
//! update of every consultation's counters.

use super::rows::{self, MEDIA_COLS, MESSAGE_SELECT};
use super::{execute, query, query_one, query_opt, AppendJob, Conn, Finisher};
use crate::error::{Error, Result};
use crate::store::{Appended, Committed, HistoryRange, Mark, MediaRow, Progress};
use std::collections::HashMap;
use tara_protocol::consultations::{Consultation, ConsultationStatus};
use tara_protocol::media::MediaInfo;
use tara_protocol::messages::{Message, MessageKind, SenderType};
use tara_protocol::{ClientMsgId, ConsultationId, MediaId, UserId};
use tara_protocol::{MessageId, Timestamp};

/// A participant's unread count, in a query joining participants `p` and consultations `k`.
pub const UNREAD: &str =
    "CASE WHEN p.user_id = k.customer_id THEN k.customer_unread ELSE k.guide_unread END";

async fn by_seq(c: &Conn, id: &str, seq: i64) -> Result<Option<Message>> {
    query_opt(
        c,
        &format!("{MESSAGE_SELECT} WHERE m.consultation_id = $1 AND m.seq = $2"),
        &[&id, &seq],
    )
    .await?
    .map(|r| rows::message(&r))
    .transpose()
}

pub async fn last_message(c: &Conn, cons: &Consultation) -> Result<Option<Message>> {
    if cons.head_seq == 0 {
        return Ok(None);
    }
    by_seq(c, cons.consultation_id.as_str(), cons.head_seq).await
}

/// Appends a system line with the next seq (the consultation is locked by the caller), and
/// records it for fan-out. System lines count as unread for nobody.
pub async fn insert_system(
    c: &Conn,
    cons: &Consultation,
    client_msg_id: &str,
    text: &str,
    now: i64,
    committed: &mut Vec<Committed>,
) -> Result<Message> {
    let id = cons.consultation_id.as_str();
    let seq: i64 = query_one(
        c,
        "UPDATE consultations SET head_seq = head_seq + 1, total_messages = total_messages + 1,
         last_message_at = $2 WHERE consultation_id = $1 RETURNING head_seq",
        &[&id, &now],
    )
    .await?
    .try_get(0)?;
    let message_id = uuid::Uuid::now_v7().to_string();
    execute(
        c,
        "INSERT INTO messages (consultation_id, seq, message_id, client_msg_id, sender_id, sender_type, kind, content,
         media_id, sent_at) VALUES ($1, $2, $3, $4, 0, 'system', 'system', $5, NULL, $6)",
        &[&id, &seq, &message_id, &client_msg_id, &text, &now],
    )
    .await?;
    let message = Message {
        message_id: MessageId(message_id),
        consultation_id: cons.consultation_id.clone(),
        seq,
        client_msg_id: ClientMsgId(client_msg_id.to_owned()),
        sender_id: UserId(0),
        sender_type: SenderType::System,
        kind: MessageKind::System,
        content: text.to_owned(),
        media: None,
        sent_at: Timestamp::from_millis(now),
        is_deleted: false,
    };
    committed.push(Committed {
        message: message.clone(),
        customer_id: cons.customer_id,
        guide_id: cons.guide_id,
        unread: None,
    });
    Ok(message)
}

/// A consultation as a run of appends sees it, locked.
struct Head {
    customer: UserId,
    guide: UserId,
    status: ConsultationStatus,
    /// The seq of the newest message, counting those of this run decided so far.
    seq: i64,
    customer_unread: i64,
    guide_unread: i64,
    /// Messages of this run for it.
    added: i64,
    last_at: i64,
}

/// What one job of a run came to.
enum Outcome {
    /// Stored before this run: answered at once (after the commit, like everything).
    Answer(Box<Result<Appended>>),
    /// New in this run: the index of its row.
    New(usize),
    /// The same `(sender, client_msg_id)` as a new row earlier in this run.
    SameAs(usize),
}

/// Stores a run of appends in the writer's transaction, inside one savepoint: if a statement
/// fails (say another server stored the same message a moment ago), the run is undone and
/// each of its jobs answered with the error; the rest of the group goes on.
pub(super) async fn append_run(
    c: &Conn,
    run: Vec<AppendJob>,
    committed: &mut Vec<Committed>,
) -> (Vec<Finisher>, bool) {
    let mut jobs = Vec::with_capacity(run.len());
    let mut replies = Vec::with_capacity(run.len());
    for j in run {
        replies.push((j.reply, j.link));
        jobs.push((j.new, j.now_ms, Some(j.admit)));
    }
    let mut broke = false;
    let outcome = match c.batch_execute("SAVEPOINT run").await {
        Err(e) => {
            broke = true;
            Err(Error::from(e))
        }
        Ok(()) => match store_run(c, &mut jobs).await {
            Ok(v) => match c.batch_execute("RELEASE run").await {
                Ok(()) => Ok(v),
                Err(e) => {
                    broke = true;
                    Err(e.into())
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, messages = jobs.len(), "a run of messages was refused");
                if let Err(undo) = c.batch_execute("ROLLBACK TO run; RELEASE run").await {
                    tracing::error!(error = %undo, "could not undo a run of messages");
                    broke = true;
                }
                Err(e)
            }
        },
    };
    let mut finishers: Vec<Finisher> = Vec::with_capacity(replies.len());
    match outcome {
        Err(e) => {
            let cause = e.to_string();
            for (reply, link) in replies {
                let answer = Err(Error::internal(cause.clone()));
                // Broken now: a later run of this group must not store what came after these.
                link.note(&answer);
                finishers.push(Box::new(move |_| {
                    link.settle(&answer);
                    let _ = reply.send(answer);
                }));
            }
        }
        Ok((outcomes, stored)) => {
            committed.extend(stored.iter().cloned());
            for ((reply, link), outcome) in replies.into_iter().zip(outcomes) {
                let answer = match outcome {
                    Outcome::Answer(a) => *a,
                    Outcome::New(i) => Ok(Appended {
                        message: stored[i].message.clone(),
                        duplicate: false,
                    }),
                    Outcome::SameAs(i) => Ok(Appended {
                        message: stored[i].message.clone(),
                        duplicate: true,
                    }),
                };
                finishers.push(Box::new(move |ok| {
                    let answer = match answer {
                        Ok(_) if !ok => Err(Error::internal("the database could not commit")),
                        other => other,
                    };
                    link.settle(&answer);
                    let _ = reply.send(answer);
                }));
            }
        }
    }
    (finishers, broke)
}

fn refuse(e: Error) -> Outcome {
    Outcome::Answer(Box::new(Err(e)))
}

type Job = (
    crate::store::NewMessage,
    i64,
    Option<crate::store::Admission>,
);

/// Decides and writes a run; each job's outcome, and the new rows in order.
async fn store_run(c: &Conn, jobs: &mut [Job]) -> Result<(Vec<Outcome>, Vec<Committed>)> {
    // 1. Lock every consultation the run writes to, in id order.
    let mut ids: Vec<&str> = jobs.iter().map(|j| j.0.consultation_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let locked = query(
        c,
        "SELECT consultation_id, customer_id, guide_id, status, head_seq, customer_unread, guide_unread
         FROM consultations WHERE consultation_id = ANY($1) ORDER BY consultation_id FOR UPDATE",
        &[&ids],
    )
    .await?;
    let mut heads: HashMap<String, Head> = HashMap::with_capacity(locked.len());
    for r in &locked {
        let status: String = r.try_get(3)?;
        heads.insert(
            r.try_get(0)?,
            Head {
                customer: UserId(r.try_get(1)?),
                guide: UserId(r.try_get(2)?),
                status: ConsultationStatus::parse(&status).unwrap_or(ConsultationStatus::Cancelled),
                seq: r.try_get(4)?,
                customer_unread: r.try_get(5)?,
                guide_unread: r.try_get(6)?,
                added: 0,
                last_at: 0,
            },
        );
    }
    // 2. Every message stored before under these (sender, client_msg_id).
    let cmids: Vec<&str> = jobs.iter().map(|j| j.0.client_msg_id.as_str()).collect();
    let senders: Vec<i64> = jobs.iter().map(|j| j.0.sender_id.0).collect();
    let found = query(
        c,
        &format!(
            "{MESSAGE_SELECT} WHERE (m.client_msg_id, m.sender_id) IN
             (SELECT * FROM unnest($1::TEXT[], $2::BIGINT[]))"
        ),
        &[&cmids, &senders],
    )
    .await?;
    let mut before: HashMap<(i64, String), Message> = HashMap::with_capacity(found.len());
    for r in &found {
        let m = rows::message(r)?;
        before.insert((m.sender_id.0, m.client_msg_id.0.clone()), m);
    }
    // 3. The images named.
    let media_ids: Vec<&str> = jobs
        .iter()
        .filter_map(|j| j.0.media_id.as_ref().map(|m| m.as_str()))
        .collect();
    let mut media: HashMap<String, MediaRow> = HashMap::new();
    if !media_ids.is_empty() {
        let list = query(
            c,
            &format!("SELECT {MEDIA_COLS} FROM media WHERE media_id = ANY($1)"),
            &[&media_ids],
        )
        .await?;
        for r in &list {
            let m = rows::media(r)?;
            media.insert(m.media_id.0.clone(), m);
        }
    }
    // 4. Each message in order, as the SQLite writer would decide it one by one.
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut stored: Vec<Committed> = Vec::new();
    let mut new_keys: HashMap<(i64, String), usize> = HashMap::new();
    for (new, now, admit) in jobs.iter_mut() {
        let key = (new.sender_id.0, new.client_msg_id.0.clone());
        let earlier = before
            .get(&key)
            .cloned()
            .or_else(|| new_keys.get(&key).map(|&i| stored[i].message.clone()));
        if let Some(existing) = earlier {
            let outcome = if existing.consultation_id != new.consultation_id {
                refuse(Error::validation(
                    "this client_msg_id was used in another consultation",
                ))
            } else if let Some(&i) = new_keys.get(&key) {
                Outcome::SameAs(i)
            } else {
                Outcome::Answer(Box::new(Ok(Appended {
                    message: existing,
                    duplicate: true,
                })))
            };
            outcomes.push(outcome);
            continue;
        }
        let Some(head) = heads.get_mut(new.consultation_id.as_str()) else {
            outcomes.push(refuse(Error::consultation_not_found()));
            continue;
        };
        let sender_type = if new.sender_id == head.customer {
            SenderType::Customer
        } else if new.sender_id == head.guide {
            SenderType::Guide
        } else {
            outcomes.push(refuse(Error::forbidden(
                "you are not part of this consultation",
            )));
            continue;
        };
        if !head.status.accepts_messages() {
            outcomes.push(refuse(Error::closed_for_messages(head.status)));
            continue;
        }
        if let Some(admit) = admit.take() {
            if let Err(e) = admit() {
                if let Some(chain) = &new.chain {
                    chain.break_with(&e);
                }
                outcomes.push(refuse(e));
                continue;
            }
        }
        let image = match &new.media_id {
            Some(media_id) => match media.get(media_id.as_str()) {
                Some(m)
                    if m.consultation_id == new.consultation_id
                        && m.uploader_id == new.sender_id =>
                {
                    Some(m)
                }
                _ => {
                    outcomes.push(refuse(Error::validation(
                        "media_id names no image you uploaded to this consultation",
                    )));
                    continue;
                }
            },
            None => None,
        };
        head.seq += 1;
        head.added += 1;
        head.last_at = *now;
        // A person's message is unread for the other person.
        let unread = if sender_type == SenderType::Customer {
            head.guide_unread += 1;
            (head.guide, head.guide_unread)
        } else {
            head.customer_unread += 1;
            (head.customer, head.customer_unread)
        };
        let message = Message {
            message_id: MessageId(uuid::Uuid::now_v7().to_string()),
            consultation_id: new.consultation_id.clone(),
            seq: head.seq,
            client_msg_id: new.client_msg_id.clone(),
            sender_id: new.sender_id,
            sender_type,
            kind: new.kind,
            content: new.content.clone(),
            media: image.map(|m| MediaInfo {
                media_id: m.media_id.clone(),
                url: rows::media_url(m.media_id.as_str()),
                width: m.width,
                height: m.height,
                bytes: m.bytes,
                content_type: m.content_type.clone(),
            }),
            sent_at: Timestamp::from_millis(*now),
            is_deleted: false,
        };
        new_keys.insert(key, stored.len());
        outcomes.push(Outcome::New(stored.len()));
        stored.push(Committed {
            message,
            customer_id: head.customer,
            guide_id: head.guide,
            unread: Some(unread),
        });
    }
    if stored.is_empty() {
        return Ok((outcomes, stored));
    }
    // 5. One insert for every new row, one update for every consultation written to.
    let n = stored.len();
    let msgs: Vec<&Message> = stored.iter().map(|s| &s.message).collect();
    let ids: Vec<&str> = msgs.iter().map(|m| m.consultation_id.as_str()).collect();
    let seqs: Vec<i64> = msgs.iter().map(|m| m.seq).collect();
    let message_ids: Vec<&str> = msgs.iter().map(|m| m.message_id.as_str()).collect();
    let cmids: Vec<&str> = msgs.iter().map(|m| m.client_msg_id.as_str()).collect();
    let senders: Vec<i64> = msgs.iter().map(|m| m.sender_id.0).collect();
    let types: Vec<&str> = msgs.iter().map(|m| m.sender_type.as_str()).collect();
    let kinds: Vec<&str> = msgs.iter().map(|m| m.kind.as_str()).collect();
    let contents: Vec<&str> = msgs.iter().map(|m| m.content.as_str()).collect();
    let media_ids: Vec<Option<&str>> = msgs
        .iter()
        .map(|m| m.media.as_ref().map(|i| i.media_id.as_str()))
        .collect();
    let sent: Vec<i64> = msgs.iter().map(|m| m.sent_at.millis()).collect();
    let inserted = execute(
        c,
        "INSERT INTO messages (consultation_id, seq, message_id, client_msg_id, sender_id, sender_type, kind,
         content, media_id, sent_at)
         SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::TEXT[],
                              $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BIGINT[])",
        &[
            &ids,
            &seqs,
            &message_ids,
            &cmids,
            &senders,
            &types,
            &kinds,
            &contents,
            &media_ids,
            &sent,
        ],
    )
    .await?;
    if inserted as usize != n {
        return Err(Error::internal("not every message of the run was stored"));
    }
    let mut ids = Vec::new();
    let mut seqs = Vec::new();
    let mut added = Vec::new();
    let mut last = Vec::new();
    let mut cu = Vec::new();
    let mut gu = Vec::new();
    for (id, h) in heads.iter().filter(|(_, h)| h.added > 0) {
        ids.push(id.as_str());
        seqs.push(h.seq);
        added.push(h.added);
        last.push(h.last_at);
        cu.push(h.customer_unread);
        gu.push(h.guide_unread);
    }
    execute(
        c,
        "UPDATE consultations k SET head_seq = v.seq, total_messages = k.total_messages + v.added,
             last_message_at = v.last, last_active_at = v.last,
             customer_unread = v.cu, guide_unread = v.gu
         FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[])
              AS v(id, seq, added, last, cu, gu)
         WHERE k.consultation_id = v.id",
        &[&ids, &seqs, &added, &last, &cu, &gu],
    )
    .await?;
    Ok((outcomes, stored))
}

pub async fn history(
    c: &Conn,
    id: &ConsultationId,
    range: HistoryRange,
    limit: usize,
) -> Result<(Vec<Message>, bool)> {
    let fetch = (limit + 1) as i64;
    let cid = id.as_str();
    let (order, a, b, descending) = match range {
        HistoryRange::Latest => ("DESC", 0, i64::MAX, true),
        HistoryRange::Before(n) => ("DESC", 0, n, true),
        HistoryRange::After(n) => ("ASC", n, i64::MAX, false),
        HistoryRange::Between(lo, hi) => ("ASC", lo, hi, false),
    };
    let list = query(
        c,
        &format!(
            "{MESSAGE_SELECT} WHERE m.consultation_id = $1 AND m.seq > $2 AND m.seq < $3
             ORDER BY m.seq {order} LIMIT $4"
        ),
        &[&cid, &a, &b, &fetch],
    )
    .await?;
    let mut list = rows::all(list, rows::message)?;
    let has_more = list.len() > limit;
    list.truncate(limit);
    if descending {
        list.reverse();
    }
    Ok((list, has_more))
}

pub async fn mark(
    c: &Conn,
    id: &ConsultationId,
    user: UserId,
    mark: Mark,
    up_to: i64,
) -> Result<Progress> {
    if !rows::lock_consultation(c, id.as_str()).await? {
        return Err(Error::consultation_not_found());
    }
    let cons = rows::require_consultation(c, id.as_str()).await?;
    if user != cons.customer_id && user != cons.guide_id {
        return Err(Error::forbidden("you are not part of this consultation"));
    }
    let up_to = up_to.clamp(0, cons.head_seq);
    let r = query_one(
        c,
        &format!(
            "SELECT p.delivered_seq, p.read_seq, {UNREAD} FROM participants p
             JOIN consultations k ON k.consultation_id = p.consultation_id
             WHERE p.consultation_id = $1 AND p.user_id = $2"
        ),
        &[&id.as_str(), &user.0],
    )
    .await?;
    let (delivered, read, unread): (i64, i64, i64) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
    let (new_delivered, new_read) = match mark {
        Mark::Delivered => (delivered.max(up_to), read),
        // Whatever was read was also delivered.
        Mark::Read => (delivered.max(up_to), read.max(up_to)),
    };
    if (new_delivered, new_read) == (delivered, read) {
        return Ok(Progress {
            delivered_seq: delivered,
            read_seq: read,
            unread_count: unread,
            changed: false,
        });
    }
    let new_unread = if new_read != read {
        query_one(
            c,
            "SELECT COUNT(*) FROM messages WHERE consultation_id = $1 AND seq > $2 AND sender_id != $3
             AND sender_type != 'system'",
            &[&id.as_str(), &new_read, &user.0],
        )
        .await?
        .try_get(0)?
    } else {
        unread
    };
    execute(
        c,
        "UPDATE participants SET delivered_seq = $1, read_seq = $2 WHERE consultation_id = $3 AND user_id = $4",
        &[&new_delivered, &new_read, &id.as_str(), &user.0],
    )
    .await?;
    let sql = if user == cons.customer_id {
        "UPDATE consultations SET customer_unread = $1 WHERE consultation_id = $2"
    } else {
        "UPDATE consultations SET guide_unread = $1 WHERE consultation_id = $2"
    };
    execute(c, sql, &[&new_unread, &id.as_str()]).await?;
    Ok(Progress {
        delivered_seq: new_delivered,
        read_seq: new_read,
        unread_count: new_unread,
        changed: true,
    })
}

pub async fn media(c: &Conn, id: &MediaId) -> Result<Option<MediaRow>> {
    query_opt(
        c,
        &format!("SELECT {MEDIA_COLS} FROM media WHERE media_id = $1"),
        &[&id.as_str()],
    )
    .await?
    .map(|r| rows::media(&r))
    .transpose()
}

pub async fn media_by_key(c: &Conn, uploader: UserId, key: &str) -> Result<Option<MediaRow>> {
    query_opt(
        c,
        &format!("SELECT {MEDIA_COLS} FROM media WHERE uploader_id = $1 AND idempotency_key = $2"),
        &[&uploader.0, &key],
    )
    .await?
    .map(|r| rows::media(&r))
    .transpose()
}

pub async fn insert_media(c: &Conn, m: &MediaRow) -> Result<MediaRow> {
    if let Some(key) = &m.idempotency_key {
        if let Some(existing) = media_by_key(c, m.uploader_id, key).await? {
            return Ok(existing);
        }
    }
    let inserted = execute(
        c,
        &format!(
            "INSERT INTO media ({MEDIA_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (uploader_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
        ),
        &[
            &m.media_id.as_str(),
            &m.consultation_id.as_str(),
            &m.uploader_id.0,
            &m.idempotency_key,
            &m.content_type,
            &i64::from(m.width),
            &i64::from(m.height),
            &(m.bytes as i64),
            &m.created_ms,
        ],
    )
    .await?;
    if inserted == 0 {
        // Another server stored the same upload a moment ago: its record wins.
        if let Some(key) = &m.idempotency_key {
            if let Some(existing) = media_by_key(c, m.uploader_id, key).await? {
                return Ok(existing);
            }
        }
    }
    Ok(m.clone())
}
