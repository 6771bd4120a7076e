//! `tara-cli chat ID`: one person in one open chat window, driven line by line from stdin, as
//! a script (or the chaos driver) would type. It holds the connection, marks what it shows as
//! delivered (the engine does) and, on `read`, as read; it prints what it queued and, on
//! `report`, everything it shows.
//!
//! Commands, one per line:
//! - `say TEXT`: queue TEXT; prints `{"queued":{"client_msg_id","text"}}` once it is in the
//!   outbox (on disk), so whoever reads stdout knows it must arrive.
//! - `typing`: tell the other side this person is typing (the server ends it after 6 s).
//! - `read`: the person has looked at everything shown.
//! - `report`: prints `{"report":{…}}`: the messages shown, oldest first, with their seq and
//!   status; the outbox; the link; the unread count the server gives; the receipts heard; what
//!   the server holds of both sides (unread, delivered and read seqs, typing); and whether a
//!   typing indicator is shown.
//!
//! The typing indicator shown follows the server alone: on with its `typing` true, off with
//! its `typing` false or a message from that person, and off when the link drops (nobody can
//! say it ended while we cannot hear). Stuck "typing…" therefore shows up here as a server
//! that never said it ended; the app also hides it 6 s after the last `true`.

use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tara_core::{Client, ConnectionState, Event};
use tara_protocol::{ConsultationId, UserId};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc::UnboundedReceiver;

#[derive(Default)]
struct Seen {
    /// Who is shown typing.
    typing: HashMap<UserId, bool>,
    /// The other side's progress, as last heard: (delivered_seq, read_seq).
    receipts: HashMap<UserId, (i64, i64)>,
    /// The unread count last pushed.
    unread: Option<i64>,
}

pub async fn run(
    client: Client,
    mut events: UnboundedReceiver<Event>,
    id: ConsultationId,
) -> anyhow::Result<i32> {
    let me = client.identity().map(|i| i.user_id);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watched = id.clone();
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            let mut s = match sink.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            match e {
                Event::Typing {
                    consultation_id,
                    user_id,
                    is_typing,
                } if consultation_id == watched && Some(user_id) != me => {
                    s.typing.insert(user_id, is_typing);
                }
                Event::MessageAdded { message } if message.consultation_id == watched => {
                    s.typing.insert(message.sender_id, false);
                }
                Event::Receipt {
                    consultation_id,
                    user_id,
                    delivered_seq,
                    read_seq,
                } if consultation_id == watched => {
                    s.receipts.insert(user_id, (delivered_seq, read_seq));
                }
                Event::Unread {
                    consultation_id,
                    unread_count,
                } if consultation_id == watched => s.unread = Some(unread_count),
                Event::Connection { state } if state != ConnectionState::Online => {
                    s.typing.clear();
                }
                _ => {}
            }
        }
    });
    // Know the consultation (the engine follows what it knows), then hold the link.
    let _ = client.consultation(&id).await;
    client.follow(&id);
    client.connect();

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let line = line.trim_end();
        let (cmd, arg) = line.split_once(' ').unwrap_or((line, ""));
        match cmd {
            "say" => match client.send_text(&id, arg).await {
                Ok(m) => {
                    crate::print(json!({"queued": {"client_msg_id": m.client_msg_id, "text": arg}}))
                }
                Err(e) => crate::print(json!({"error": {"code": e.code, "message": e.message}})),
            },
            "typing" => client.typing(&id, true),
            "read" => {
                let shown = client.history(&id, None, 1_000_000).await?;
                if let Some(top) = shown.iter().filter_map(|m| m.seq).max() {
                    client.mark_read(&id, top).await?;
                }
            }
            "report" => report(&client, &id, &seen).await?,
            "" => {}
            other => crate::print(
                json!({"error": {"code": "CLI", "message": format!("unknown command {other:?}")}}),
            ),
        }
    }
    client.disconnect();
    Ok(0)
}

async fn report(client: &Client, id: &ConsultationId, seen: &Mutex<Seen>) -> anyhow::Result<()> {
    let shown = client.history(id, None, 1_000_000).await?;
    let outbox = client.outbox().await?;
    // The server's count, when it answers; the pushed one otherwise.
    let listed = match client.chat_list().await {
        Ok(items) => items
            .into_iter()
            .find(|i| &i.consultation.consultation_id == id)
            .map(|i| i.unread_count),
        Err(_) => None,
    };
    // What the server holds of each side, as the app reads it on opening the chat (joining a
    // running consultation again changes nothing).
    let server: Option<Vec<_>> = client.join(id).await.ok().map(|j| {
        j.participants
            .iter()
            .map(|p| {
                json!({"user_id": p.user_id, "unread_count": p.unread_count,
                       "delivered_seq": p.delivered_seq, "read_seq": p.read_seq,
                       "is_typing": p.is_typing})
            })
            .collect()
    });
    let messages: Vec<_> = shown
        .iter()
        .map(|m| {
            json!({"seq": m.seq, "client_msg_id": m.client_msg_id, "sender_id": m.sender_id,
                   "kind": m.kind, "content": m.content, "status": m.status})
        })
        .collect();
    let s = match seen.lock() {
        Ok(s) => s,
        Err(p) => p.into_inner(),
    };
    let receipts: Vec<_> = s
        .receipts
        .iter()
        .map(|(u, (d, r))| json!({"user_id": u, "delivered_seq": d, "read_seq": r}))
        .collect();
    crate::print(json!({"report": {
        "messages": messages,
        "outbox": {
            "queued": outbox.iter().filter(|i| i.state == "queued").count(),
            "failed": outbox.iter().filter(|i| i.state == "failed").count(),
        },
        "connection": *client.connection().borrow(),
        "unread_listed": listed,
        "unread_pushed": s.unread,
        "receipts": receipts,
        "server": server,
        "typing_shown": s.typing.values().any(|t| *t),
    }}));
    Ok(())
}
