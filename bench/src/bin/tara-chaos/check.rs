//! The end of a chaos run: what every participant shows, against what was written.

use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One participant as the driver knows them.
pub struct Person {
    pub name: String,
    pub user_id: i64,
    pub consultation: String,
    /// What the client said it queued (on disk), in order: (client_msg_id, text).
    pub queued: Vec<(String, String)>,
    /// How many texts were written to it (queued or not: a kill can come between).
    pub written: u64,
    /// Its last report.
    pub report: Option<Value>,
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Counts {
    /// Messages stored, over the consultations.
    pub stored: u64,
    /// Queued messages missing on a participant.
    pub lost: u64,
    /// Messages shown twice.
    pub duplicated: u64,
    /// Seq order broken: a gap, a seq twice, the shown order not the seq order, or the two
    /// sides disagreeing on what a seq holds.
    pub order_breaks: u64,
    /// A sender's messages stored out of the order written.
    pub sender_order_breaks: u64,
    /// A state that did not settle: messages pending or failed, a link down, unread or
    /// receipts not what the history says, typing left on, the sides not agreeing.
    pub stuck: u64,
}

/// The number a text carries after its writer's name: `c0#17 …` is c0's 17th.
fn number_of(text: &str) -> Option<(&str, u64)> {
    let (head, _) = text.split_once(' ').unwrap_or((text, ""));
    let (who, n) = head.split_once('#')?;
    Some((who, n.parse().ok()?))
}

/// What the server holds of `of` in this consultation (from the report's join), if it answered.
fn on_server(report: &Value, of: i64) -> Option<&Value> {
    report["server"]
        .as_array()?
        .iter()
        .find(|r| r["user_id"].as_i64() == Some(of))
}

/// Every problem found, as a sentence, and the counts.
pub fn check(people: &[Person]) -> (Vec<String>, Counts) {
    let mut problems = Vec::new();
    let mut n = Counts::default();
    let mut by_consultation: BTreeMap<&str, Vec<&Person>> = BTreeMap::new();
    for p in people {
        by_consultation.entry(&p.consultation).or_default().push(p);
    }
    for (cid, pair) in by_consultation {
        let short = &cid[cid.len().saturating_sub(6)..];
        let reports: Vec<Option<&Value>> = pair.iter().map(|p| p.report.as_ref()).collect();
        if reports.iter().any(Option::is_none) {
            for (p, r) in pair.iter().zip(&reports) {
                if r.is_none() {
                    n.stuck += 1;
                    problems.push(format!("{}: no report", p.name));
                }
            }
            continue;
        }
        let reports: Vec<&Value> = reports.into_iter().flatten().collect();
        // The two participants by name, as texts name their writer (`c0#17 …`).
        let names: HashMap<&str, &Person> = pair.iter().map(|p| (p.name.as_str(), *p)).collect();
        let mut heads = Vec::new();
        let mut views = Vec::new();
        for (p, r) in pair.iter().zip(&reports) {
            let messages = r["messages"].as_array().cloned().unwrap_or_default();
            let mut seen_cmid = HashSet::new();
            let mut seen_text = HashSet::new();
            let mut last_seq = 0;
            let mut last_by_sender: HashMap<String, u64> = HashMap::new();
            let mut view = Vec::new();
            for m in &messages {
                let cmid = m["client_msg_id"].as_str().unwrap_or_default();
                let content = m["content"].as_str().unwrap_or_default();
                let Some(seq) = m["seq"].as_i64() else {
                    n.stuck += 1;
                    problems.push(format!(
                        "{} ({short}): {cmid} still pending: {content:.20}",
                        p.name
                    ));
                    continue;
                };
                if seq != last_seq + 1 {
                    n.order_breaks += 1;
                    problems.push(format!(
                        "{} ({short}): seq {seq} follows {last_seq}",
                        p.name
                    ));
                }
                last_seq = seq;
                view.push((seq, cmid.to_owned(), content.to_owned()));
                if !seen_cmid.insert(cmid.to_owned()) {
                    n.duplicated += 1;
                    problems.push(format!("{} ({short}): {cmid} shown twice", p.name));
                }
                if m["kind"] == "system" {
                    continue;
                }
                if !seen_text.insert(content.to_owned()) {
                    n.duplicated += 1;
                    problems.push(format!("{} ({short}): {content:.24} shown twice", p.name));
                }
                match number_of(content) {
                    Some((who, k)) if names.get(who).is_some_and(|w| k <= w.written) => {
                        let last = last_by_sender.entry(who.to_owned()).or_default();
                        if k <= *last {
                            n.sender_order_breaks += 1;
                            problems.push(format!(
                                "{} ({short}): {who}#{k} stored after {who}#{last}",
                                p.name
                            ));
                        }
                        *last = (*last).max(k);
                    }
                    _ => problems.push(format!(
                        "{} ({short}): a message nobody wrote: {content:.40}",
                        p.name
                    )),
                }
            }
            heads.push(last_seq);
            views.push(view);
            // Every message queued by either side is here, once, with its text.
            for q in &pair {
                for (cmid, text) in &q.queued {
                    match messages
                        .iter()
                        .find(|m| m["client_msg_id"] == cmid.as_str())
                    {
                        None => {
                            n.lost += 1;
                            problems.push(format!(
                                "{} ({short}): {cmid} of {} ({text:.16}) is missing",
                                p.name, q.name
                            ));
                        }
                        Some(m) if m["content"] != text.trim() => problems.push(format!(
                            "{} ({short}): {cmid} holds {} instead of {text:.24}",
                            p.name, m["content"]
                        )),
                        Some(_) => {}
                    }
                }
            }
            let queued = r["outbox"]["queued"].as_u64().unwrap_or(0);
            let failed = r["outbox"]["failed"].as_u64().unwrap_or(0);
            if queued + failed > 0 {
                n.stuck += 1;
                problems.push(format!(
                    "{}: outbox holds {queued} queued, {failed} failed",
                    p.name
                ));
            }
            if r["connection"] != "online" {
                n.stuck += 1;
                problems.push(format!("{}: link {}", p.name, r["connection"]));
            }
            if r["typing_shown"] == true {
                n.stuck += 1;
                problems.push(format!("{}: a typing indicator is left on", p.name));
            }
        }
        if views.len() == 2 {
            if heads[0] != heads[1] {
                n.stuck += 1;
                problems.push(format!(
                    "({short}): {} shows {} messages, {} shows {}",
                    pair[0].name, heads[0], pair[1].name, heads[1]
                ));
            } else {
                for (a, b) in views[0].iter().zip(&views[1]) {
                    if a != b {
                        n.order_breaks += 1;
                        problems.push(format!(
                            "({short}): seq {} is {:?} on {} and {:?} on {}",
                            a.0, a.2, pair[0].name, b.2, pair[1].name
                        ));
                    }
                }
            }
            n.stored += heads[0].max(heads[1]) as u64;
            // Receipts and unread counts: what the server holds of each side, against the
            // history, and what each device shows, against that.
            for (me, other) in [(0, 1), (1, 0)] {
                let (p, r) = (pair[me], reports[me]);
                let o = pair[other];
                let head = heads[me];
                let (Some(mine), Some(theirs)) = (on_server(r, p.user_id), on_server(r, o.user_id))
                else {
                    n.stuck += 1;
                    problems.push(format!("{}: the server did not say who read what", p.name));
                    continue;
                };
                let delivered = theirs["delivered_seq"].as_i64().unwrap_or(0);
                let read = theirs["read_seq"].as_i64().unwrap_or(0);
                let my_read = mine["read_seq"].as_i64().unwrap_or(0);
                if delivered != head {
                    n.stuck += 1;
                    problems.push(format!(
                        "{}: {} has stored up to {delivered} of {head}, says the server",
                        p.name, o.name
                    ));
                }
                for side in [mine, theirs] {
                    if side["is_typing"] == true {
                        n.stuck += 1;
                        problems.push(format!(
                            "{}: the server still has {} typing",
                            p.name, side["user_id"]
                        ));
                    }
                }
                for m in r["messages"].as_array().into_iter().flatten() {
                    if m["sender_id"].as_i64() != Some(p.user_id) {
                        continue;
                    }
                    let seq = m["seq"].as_i64().unwrap_or(i64::MAX);
                    let want = if seq <= read {
                        "read"
                    } else if seq <= delivered {
                        "delivered"
                    } else {
                        "sent"
                    };
                    if m["status"] != want {
                        n.stuck += 1;
                        problems.push(format!(
                            "{}: seq {seq} shows {} where the receipts say {want}",
                            p.name, m["status"]
                        ));
                    }
                }
                let unread = r["messages"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|m| m["sender_id"].as_i64() == Some(o.user_id) && m["kind"] != "system")
                    .filter(|m| m["seq"].as_i64().is_some_and(|s| s > my_read))
                    .count() as i64;
                for (what, got) in [
                    ("listed", &r["unread_listed"]),
                    ("in the chat", &mine["unread_count"]),
                ] {
                    if got.as_i64() != Some(unread) {
                        n.stuck += 1;
                        problems.push(format!(
                            "{}: unread {got} {what} where the history says {unread} (read up to {my_read})",
                            p.name
                        ));
                    }
                }
            }
        }
    }
    (problems, n)
}
