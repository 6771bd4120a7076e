//! The engine against the real server (in-process, on a loopback port) with real SQLite files:
//! whole consultations, offline queues, lost acks, restarts, expiring tokens.

#[path = "../../server/tests/common/mod.rs"]
#[allow(unused_imports)]
mod server;

use server::TestServer;
use std::path::Path;
use std::time::Duration;
use tara_core::{Client, ClientConfig, ConnectionState, Event, LocalMessage, MessageStatus};
use tara_protocol::auth::UserType;
use tara_protocol::consultations::{ConsultationEvent, ConsultationStatus};
use tara_protocol::{ConsultationId, UserId};
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(45);

/// One person on one device.
struct Party {
    client: Client,
    events: UnboundedReceiver<Event>,
    id: UserId,
}

impl Party {
    async fn open(server_url: &str, dir: &Path) -> Party {
        let (client, events) = Client::start(ClientConfig::new(server_url, dir))
            .await
            .expect("client starts");
        let id = client.identity().map(|i| i.user_id).unwrap_or(UserId(0));
        Party { client, events, id }
    }

    async fn login(server_url: &str, dir: &Path, phone: &str, t: UserType) -> Party {
        let mut p = Party::open(server_url, dir).await;
        let sent = p
            .client
            .request_otp("+91", phone, t)
            .await
            .expect("code sent");
        let who = p
            .client
            .verify_otp(
                "+91",
                phone,
                t,
                &sent.request_id,
                sent.dev_otp.as_deref().expect("dev server"),
            )
            .await
            .expect("logged in");
        p.id = who.user_id;
        p.until(|e| {
            matches!(
                e,
                Event::Connection {
                    state: ConnectionState::Online
                }
            )
        })
        .await;
        p
    }

    /// Waits for an event matching `pred`, skipping others.
    async fn until(&mut self, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) if pred(&e) => return e,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the event stream ended"),
                Err(_) => panic!("the awaited event did not come"),
            }
        }
    }

    /// Collects messages from others added in `id` until `n` have arrived.
    async fn receive(&mut self, id: &ConsultationId, n: usize) -> Vec<LocalMessage> {
        let mut got = Vec::new();
        let me = self.id;
        while got.len() < n {
            if let Event::MessageAdded { message } = self
                .until(|e| matches!(e, Event::MessageAdded { message } if &message.consultation_id == id && message.sender_id != me && message.kind != tara_protocol::messages::MessageKind::System))
                .await
            {
                got.push(message);
            }
        }
        got
    }

    /// Waits until the outbox is empty.
    async fn drained(&self) {
        let report = self.client.sync(WAIT).await.expect("sync");
        assert_eq!(report.queued, 0, "everything queued went out");
    }
}

fn url(s: &TestServer) -> String {
    format!("http://{}", s.addr)
}

/// A customer and a guide in an in-progress consultation, both through the engine.
async fn consultation(server: &TestServer, root: &Path) -> (Party, Party, ConsultationId) {
    server.add_guide("+919000000001", "Asha").await;
    let mut guide = Party::login(
        &url(server),
        &root.join("guide"),
        "9000000001",
        UserType::Guide,
    )
    .await;
    guide.client.set_status(true).await.expect("online");
    let mut customer = Party::login(
        &url(server),
        &root.join("customer"),
        "9876543210",
        UserType::Customer,
    )
    .await;
    let paid = customer
        .client
        .recharge(1000, None)
        .await
        .expect("a dev server captures a recharge at once");
    assert_eq!(paid.wallet.map(|w| w.balance), Some(1000));
    customer
        .until(|e| matches!(e, Event::Wallet { balance: 1000, .. }))
        .await;
    let c = customer
        .client
        .request(guide.id, None)
        .await
        .expect("request");
    let id = c.consultation_id.clone();
    guide
        .until(|e| {
            matches!(
                e,
                Event::Consultation {
                    event: ConsultationEvent::Requested,
                    ..
                }
            )
        })
        .await;
    guide.client.accept(&id).await.expect("accept");
    customer
        .until(|e| {
            matches!(
                e,
                Event::Consultation {
                    event: ConsultationEvent::Accepted,
                    ..
                }
            )
        })
        .await;
    customer.client.join(&id).await.expect("join");
    let joined = guide.client.join(&id).await.expect("join");
    assert_eq!(joined.consultation.status, ConsultationStatus::InProgress);
    (customer, guide, id)
}

fn lifted(c: &mut tara_server::Config) {
    c.message_burst = 10_000;
    c.messages_per_minute = 100_000;
}

#[tokio::test]
async fn two_clients_hold_a_whole_consultation_through_the_engine() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().expect("tempdir");
    let (mut customer, mut guide, id) = consultation(&server, root.path()).await;

    let queued = customer
        .client
        .send_text(&id, "Will I travel this year?")
        .await
        .expect("queued");
    assert_eq!(
        queued.status,
        MessageStatus::Sending,
        "the bubble shows at once"
    );
    let sent = customer
        .until(|e| matches!(e, Event::MessageUpdated { message } if message.client_msg_id == queued.client_msg_id && message.status == MessageStatus::Sent))
        .await;
    let Event::MessageUpdated { message: sent } = sent else {
        unreachable!()
    };
    let got = guide.receive(&id, 1).await;
    assert_eq!(
        (got[0].content.as_str(), got[0].seq),
        ("Will I travel this year?", sent.seq)
    );
    assert_eq!(got[0].status, MessageStatus::Received);

    // The guide's device stored it: the customer's tick moves to delivered; reading moves it to read.
    customer
        .until(|e| matches!(e, Event::MessageUpdated { message } if message.client_msg_id == queued.client_msg_id && message.status == MessageStatus::Delivered))
        .await;
    guide
        .client
        .mark_read(&id, sent.seq.expect("seq"))
        .await
        .expect("read");
    customer
        .until(|e| matches!(e, Event::MessageUpdated { message } if message.client_msg_id == queued.client_msg_id && message.status == MessageStatus::Read))
        .await;

    guide.client.typing(&id, true);
    customer
        .until(|e| {
            matches!(
                e,
                Event::Typing {
                    is_typing: true,
                    ..
                }
            )
        })
        .await;
    guide
        .client
        .send_text(&id, "Yes, in autumn.")
        .await
        .expect("queued");
    let reply = customer.receive(&id, 1).await;
    assert_eq!(reply[0].content, "Yes, in autumn.");
    customer
        .until(|e| matches!(e, Event::Notice { .. }) || matches!(e, Event::Unread { .. }))
        .await;

    let history = customer
        .client
        .history(&id, None, 50)
        .await
        .expect("history");
    let texts: Vec<&str> = history
        .iter()
        .filter(|m| m.kind != tara_protocol::messages::MessageKind::System)
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(texts, ["Will I travel this year?", "Yes, in autumn."]);

    // The chat runs on the balance: 1000 at 20 a minute ends 50 minutes after the start.
    let running = customer
        .client
        .consultation(&id)
        .await
        .expect("consultation");
    let (started, ends) = (
        running.started_at.expect("started").millis(),
        running.ends_at.expect("ends_at").millis(),
    );
    assert_eq!(ends - started, 50 * 60_000);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let done = customer.client.complete(&id, None).await.expect("complete");
    assert_eq!(done.status, ConsultationStatus::Completed);
    assert_eq!(done.amount_charged, Some(20), "a started minute");
    customer
        .until(|e| matches!(e, Event::Wallet { balance: 980, .. }))
        .await;
    guide
        .until(|e| {
            matches!(
                e,
                Event::Consultation {
                    event: ConsultationEvent::Completed,
                    ..
                }
            )
        })
        .await;
    guide
        .until(|e| matches!(e, Event::Wallet { balance: 14, .. }))
        .await;
    let ledger = customer.client.ledger(10, None).await.expect("ledger");
    assert_eq!(
        ledger.items.iter().map(|e| e.amount).collect::<Vec<_>>(),
        [-20, 1000]
    );
    let earned = guide.client.earnings(10, None).await.expect("earnings");
    assert_eq!((earned.total, earned.today), (14, 14));
    assert_eq!(earned.items[0].consultation_id, id);
    assert!(
        customer.client.earnings(10, None).await.is_err(),
        "customers earn nothing"
    );
    let rated = customer
        .client
        .rate(&id, 5, Some("Spot on".into()), None)
        .await
        .expect("rate");
    assert_eq!(rated.rating, 5);
    let late = customer
        .client
        .send_text(&id, "one more thing")
        .await
        .expect("queued");
    let failed = customer
        .until(|e| matches!(e, Event::MessageUpdated { message } if message.client_msg_id == late.client_msg_id && message.status == MessageStatus::Failed))
        .await;
    let Event::MessageUpdated { message } = failed else {
        unreachable!()
    };
    assert!(message.error.is_some(), "a refused message says why");
}

#[tokio::test]
async fn a_hundred_messages_written_offline_arrive_once_in_order_after_a_restart() {
    let mut server = TestServer::start_with(lifted).await;
    let root = tempfile::tempdir().expect("tempdir");
    let (customer, mut guide, id) = consultation(&server, root.path()).await;
    let addr = server.addr.to_string();
    let data = server.stop().await.expect("the server's data dir");

    for i in 0..100 {
        customer
            .client
            .send_text(&id, &format!("offline {i}"))
            .await
            .expect("queued while offline");
    }
    assert_eq!(customer.client.outbox().await.expect("outbox").len(), 100);
    let customer_dir = root.path().join("customer");
    drop(customer);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let customer = Party::open(&format!("http://{addr}"), &customer_dir).await;
    assert_eq!(
        customer.client.outbox().await.expect("outbox").len(),
        100,
        "the queue survived the process"
    );
    let server = TestServer::start_at(data.path(), &addr, lifted).await;
    customer.drained().await;

    let got = guide.receive(&id, 100).await;
    let texts: Vec<String> = got.iter().map(|m| m.content.clone()).collect();
    let expected: Vec<String> = (0..100).map(|i| format!("offline {i}")).collect();
    assert_eq!(texts, expected, "once each, in the order written");
    let seqs: Vec<i64> = got.iter().map(|m| m.seq.expect("seq")).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gapless: {seqs:?}"
    );
    let history = guide.client.history(&id, None, 200).await.expect("history");
    let stored: Vec<&LocalMessage> = history
        .iter()
        .filter(|m| m.content.starts_with("offline "))
        .collect();
    assert_eq!(
        stored.len(),
        100,
        "stored once each on the guide's device too"
    );
    drop(server);
}

/// A TCP proxy that can cut every link the moment the server sends bytes containing a marker
/// (so a message is stored but its answer never reaches the client).
struct CuttingProxy {
    addr: std::net::SocketAddr,
    marker: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CuttingProxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let marker: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
        let cuts: std::sync::Arc<std::sync::atomic::AtomicUsize> = Default::default();
        let (m, k) = (marker.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let (m, k) = (m.clone(), k.clone());
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let hit = {
                            let mut guard = m.lock().expect("marker");
                            let hit = guard.as_ref().is_some_and(|mk| {
                                String::from_utf8_lossy(&buf[..n]).contains(mk.as_str())
                            });
                            if hit {
                                *guard = None;
                            }
                            hit
                        };
                        if hit {
                            k.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            return; // drops both halves: the client never sees the answer
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, marker, cuts }
    }

    fn cut_when(&self, marker: &str) {
        *self.marker.lock().expect("marker") = Some(marker.to_owned());
    }
}

#[tokio::test]
async fn a_message_whose_ack_is_lost_is_stored_once_after_the_reconnect() {
    // The customer logs in on a second device at once; the 30 s resend wait is for people.
    let server = TestServer::start_with(|c| c.otp_resend_after = Duration::ZERO).await;
    let root = tempfile::tempdir().expect("tempdir");
    let (_customer, mut guide, id) = consultation(&server, root.path()).await;
    // A second device of the customer, reaching the server only through the proxy.
    let proxy = CuttingProxy::start(server.addr).await;
    let mut phone = Party::login(
        &format!("http://{}", proxy.addr),
        &root.path().join("phone"),
        "9876543210",
        UserType::Customer,
    )
    .await;
    phone.client.follow(&id);

    // The text is unique; the first server frame carrying it (the fan-out or the ack) is cut.
    proxy.cut_when("the ack of this one is lost");
    let queued = phone
        .client
        .send_text(&id, "the ack of this one is lost")
        .await
        .expect("queued");
    let sent = phone
        .until(|e| matches!(e, Event::MessageUpdated { message } if message.client_msg_id == queued.client_msg_id && message.status == MessageStatus::Sent))
        .await;
    assert_eq!(
        proxy.cuts.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the link was cut once"
    );
    let Event::MessageUpdated { message: sent } = sent else {
        unreachable!()
    };

    let got = guide.receive(&id, 1).await;
    assert_eq!(
        got[0].seq, sent.seq,
        "the resend was answered with the stored seq"
    );
    let history = guide.client.history(&id, None, 50).await.expect("history");
    let copies = history
        .iter()
        .filter(|m| m.content == "the ack of this one is lost")
        .count();
    assert_eq!(copies, 1, "stored once");
}

#[tokio::test]
async fn after_a_server_restart_the_other_side_gets_exactly_what_it_missed() {
    let mut server = TestServer::start_with(lifted).await;
    let root = tempfile::tempdir().expect("tempdir");
    let (mut customer, mut guide, id) = consultation(&server, root.path()).await;
    customer
        .client
        .send_text(&id, "before")
        .await
        .expect("queued");
    guide.receive(&id, 1).await;

    guide.client.disconnect();
    guide
        .until(|e| {
            matches!(
                e,
                Event::Connection {
                    state: ConnectionState::Idle
                }
            )
        })
        .await;
    for i in 0..20 {
        customer
            .client
            .send_text(&id, &format!("missed {i}"))
            .await
            .expect("queued");
    }
    customer.drained().await;

    let addr = server.addr.to_string();
    let data = server.stop().await.expect("data dir");
    let _server = TestServer::start_at(data.path(), &addr, lifted).await;
    customer
        .until(|e| {
            matches!(
                e,
                Event::Connection {
                    state: ConnectionState::Online
                }
            )
        })
        .await;
    guide.client.connect();
    let got = guide.receive(&id, 20).await;
    let texts: Vec<String> = got.iter().map(|m| m.content.clone()).collect();
    assert_eq!(
        texts,
        (0..20).map(|i| format!("missed {i}")).collect::<Vec<_>>()
    );
    let more = tokio::time::timeout(Duration::from_millis(500), guide.receive(&id, 1)).await;
    assert!(more.is_err(), "nothing is delivered twice");
    drop(data);
}

#[tokio::test]
async fn an_expiring_token_is_renewed_without_dropping_the_link() {
    let server = TestServer::start_with(|c| c.access_ttl = Duration::from_secs(4)).await;
    let root = tempfile::tempdir().expect("tempdir");
    let (mut customer, mut guide, id) = consultation(&server, root.path()).await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    customer
        .client
        .send_text(&id, "still here")
        .await
        .expect("queued");
    let got = guide.receive(&id, 1).await;
    assert_eq!(got[0].content, "still here");
    // Neither link was dropped along the way.
    while let Ok(e) = customer.events.try_recv() {
        assert!(
            !matches!(
                e,
                Event::Connection {
                    state: ConnectionState::Offline
                } | Event::SignedOut { .. }
            ),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn calls_meeting_an_expired_token_at_once_share_one_refresh() {
    let server = TestServer::start_with(|c| c.access_ttl = Duration::from_secs(3)).await;
    let root = tempfile::tempdir().expect("tempdir");
    let customer = Party::login(
        &url(&server),
        &root.path().join("c"),
        "9876543210",
        UserType::Customer,
    )
    .await;
    customer.client.disconnect();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let calls = (0..8).map(|_| customer.client.whoami());
    let results = futures_util::future::join_all(calls).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    // Two refreshes with one token would have been taken for theft and ended the session.
    assert!(
        customer.client.whoami().await.is_ok(),
        "the session is alive"
    );
}

#[tokio::test]
async fn a_refresh_token_used_elsewhere_signs_this_device_out() {
    let server = TestServer::start_with(|c| c.access_ttl = Duration::from_secs(3)).await;
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("c");
    let mut customer = Party::login(&url(&server), &dir, "9876543210", UserType::Customer).await;
    // Someone copies the token file and refreshes first.
    let stolen = std::fs::read_to_string(dir.join("refresh-token")).expect("token file");
    let r = server
        .post(
            "/auth/refresh",
            None,
            serde_json::json!({"refresh_token": stolen.trim()}),
        )
        .await;
    assert_eq!(r.status, 200);
    // When this device renews, its token is dead: the whole session ends here, cleanly.
    customer
        .until(|e| matches!(e, Event::SignedOut { .. }))
        .await;
    assert!(customer.client.identity().is_none());
    assert!(
        !dir.join("refresh-token").exists(),
        "the dead token is forgotten"
    );
}

#[tokio::test]
async fn an_image_written_offline_goes_out_in_order_with_the_texts_around_it() {
    let mut server = TestServer::start().await;
    let root = tempfile::tempdir().expect("tempdir");
    let (customer, mut guide, id) = consultation(&server, root.path()).await;
    let photo = root.path().join("palm.png");
    image::RgbaImage::from_fn(2400, 1600, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 90, 255])
    })
    .save(&photo)
    .expect("png written");
    let broken = root.path().join("broken.jpg");
    std::fs::write(
        &broken,
        [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0, 1],
    )
    .expect("write");

    let addr = server.addr.to_string();
    let data = server.stop().await.expect("data dir");
    customer
        .client
        .send_text(&id, "here is my palm")
        .await
        .expect("queued");
    let image = customer
        .client
        .send_image(&id, &photo)
        .await
        .expect("compressed and queued offline");
    assert_eq!(image.status, MessageStatus::Sending);
    assert!(
        image
            .local_path
            .as_deref()
            .is_some_and(|p| Path::new(p).exists()),
        "kept until sent"
    );
    let refused = customer
        .client
        .send_image(&id, &broken)
        .await
        .expect_err("a broken file is refused");
    assert_eq!(refused.code, "IMAGE_INVALID");
    customer
        .client
        .send_text(&id, "what do you see?")
        .await
        .expect("queued");
    assert_eq!(
        customer.client.outbox().await.expect("outbox").len(),
        3,
        "the failed one took nothing out"
    );

    let _server = TestServer::start_at(data.path(), &addr, |_| {}).await;
    customer.drained().await;
    let got = guide.receive(&id, 3).await;
    let kinds: Vec<_> = got.iter().map(|m| (m.kind, m.content.as_str())).collect();
    use tara_protocol::messages::MessageKind::{Image, Text};
    assert_eq!(
        kinds,
        [
            (Text, "here is my palm"),
            (Image, ""),
            (Text, "what do you see?")
        ]
    );
    let media = got[1]
        .media
        .as_ref()
        .expect("the image message carries its upload");
    assert_eq!(
        (media.width, media.height, media.content_type.as_str()),
        (1200, 800, "image/jpeg")
    );
}

/// An HTTP proxy that refuses WebSocket upgrades (as some corporate proxies do) while `block`
/// is set, and passes everything else through.
struct UpgradeBlockingProxy {
    addr: std::net::SocketAddr,
    block: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl UpgradeBlockingProxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let block = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let b = block.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let b = b.clone();
                tokio::spawn(async move {
                    // Read the first request head to see whether it asks for an upgrade.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match client.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let upgrade = String::from_utf8_lossy(&head)
                        .to_ascii_lowercase()
                        .contains("upgrade: websocket");
                    if upgrade && b.load(std::sync::atomic::Ordering::SeqCst) {
                        let _ = client
                            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    if server.write_all(&head).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Self { addr, block }
    }
}

#[tokio::test]
async fn where_upgrades_are_blocked_the_engine_polls_and_returns_to_the_socket_when_it_can() {
    let server = TestServer::start_with(|c| c.otp_resend_after = Duration::ZERO).await;
    let root = tempfile::tempdir().expect("tempdir");
    let (_customer, mut guide, id) = consultation(&server, root.path()).await;
    let proxy = UpgradeBlockingProxy::start(server.addr).await;
    // The customer's laptop sits behind the proxy.
    let mut laptop = Party::open(
        &format!("http://{}", proxy.addr),
        &root.path().join("laptop"),
    )
    .await;
    let sent = laptop
        .client
        .request_otp("+91", "9876543210", UserType::Customer)
        .await
        .expect("code");
    let who = laptop
        .client
        .verify_otp(
            "+91",
            "9876543210",
            UserType::Customer,
            &sent.request_id,
            sent.dev_otp.as_deref().expect("dev"),
        )
        .await
        .expect("login");
    laptop.id = who.user_id;
    laptop
        .until(|e| {
            matches!(
                e,
                Event::Connection {
                    state: ConnectionState::Polling
                }
            )
        })
        .await;
    laptop.client.follow(&id);
    laptop.client.consultation(&id).await.expect("known");

    // Sending goes over REST; receiving over long polls.
    laptop
        .client
        .send_text(&id, "sent without a socket")
        .await
        .expect("queued");
    let got = guide.receive(&id, 1).await;
    assert_eq!(got[0].content, "sent without a socket");
    guide
        .client
        .send_text(&id, "received by long poll")
        .await
        .expect("queued");
    let reply = laptop.receive(&id, 1).await;
    assert_eq!(reply[0].content, "received by long poll");

    // The proxy lets upgrades through again: within a retry period the socket is back.
    proxy
        .block
        .store(false, std::sync::atomic::Ordering::SeqCst);
    laptop
        .until(|e| {
            matches!(
                e,
                Event::Connection {
                    state: ConnectionState::Online
                }
            )
        })
        .await;
    guide
        .client
        .send_text(&id, "and now over the socket")
        .await
        .expect("queued");
    assert_eq!(
        laptop.receive(&id, 1).await[0].content,
        "and now over the socket"
    );
}

#[tokio::test]
async fn guide_presence_asked_for_before_the_link_is_up_still_arrives() {
    let server = TestServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let guide_id = server.add_guide("+919000000001", "Asha").await;
    let mut customer = Party::login(
        &url(&server),
        &tmp.path().join("customer"),
        "9811111111",
        UserType::Customer,
    )
    .await;
    // The guide list asks for presence while the link is down (an app opening offline).
    customer.client.disconnect();
    customer
        .until(|e| {
            matches!(
                e,
                Event::Connection {
                    state: ConnectionState::Idle
                }
            )
        })
        .await;
    customer.client.watch_guides();
    customer.client.connect();

    let guide = Party::login(
        &url(&server),
        &tmp.path().join("guide"),
        "9000000001",
        UserType::Guide,
    )
    .await;
    guide.client.set_status(true).await.expect("online");
    customer
        .until(|e| {
            matches!(e, Event::Presence { user_id, status: tara_protocol::guides::PresenceStatus::Online, .. } if user_id.0 == guide_id)
        })
        .await;
}

/// What the other side's device holds of `prefix`-texts, in seq order: the texts and seqs.
async fn held(p: &Party, id: &ConsultationId, prefix: &str) -> (Vec<String>, Vec<i64>) {
    let history = p.client.history(id, None, 50_000).await.expect("history");
    let mut mine: Vec<&LocalMessage> = history
        .iter()
        .filter(|m| m.content.starts_with(prefix))
        .collect();
    mine.sort_by_key(|m| m.seq);
    (
        mine.iter().map(|m| m.content.clone()).collect(),
        mine.iter().map(|m| m.seq.expect("stored")).collect(),
    )
}

/// Asserts `got` is `n` texts `prefix{i:05}` in order, on consecutive seqs.
fn once_each_in_order(got: &[LocalMessage], prefix: &str, n: usize) {
    let texts: Vec<String> = got.iter().map(|m| m.content.clone()).collect();
    let expected: Vec<String> = (0..n).map(|i| format!("{prefix}{i:05}")).collect();
    assert_eq!(texts.len(), n, "as many arrived as were written");
    if let Some(at) = (0..n).find(|&i| texts[i] != expected[i]) {
        panic!(
            "out of order or repeated at {at}: {:?}",
            &texts[at.saturating_sub(2)..(at + 3).min(n)]
        );
    }
    let seqs: Vec<i64> = got.iter().map(|m| m.seq.expect("seq")).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "one gapless order"
    );
}

/// Queues the texts `{prefix}{i:05}` for i in 0..n, in order.
async fn write_numbered(p: &Party, id: &ConsultationId, prefix: &str, n: usize) {
    for i in 0..n {
        p.client
            .send_text(id, &format!("{prefix}{i:05}"))
            .await
            .expect("queued");
    }
}

/// A consultation whose customer wrote numbered texts while the server was down, with the
/// server started again on the same data and address.
struct WrittenWhileDown {
    customer: Party,
    guide: Party,
    id: ConsultationId,
    _server: TestServer,
    _data: tempfile::TempDir,
    _root: tempfile::TempDir,
}

/// Opens a consultation on a server configured by `tweak`, stops the server, queues `n`
/// numbered texts on the customer's device, and starts the server again.
async fn written_while_down(
    tweak: fn(&mut tara_server::Config),
    prefix: &str,
    n: usize,
) -> WrittenWhileDown {
    let mut server = TestServer::start_with(tweak).await;
    let root = tempfile::tempdir().expect("tempdir");
    let (customer, guide, id) = consultation(&server, root.path()).await;
    let addr = server.addr.to_string();
    let data = server.stop().await.expect("the server's data dir");
    write_numbered(&customer, &id, prefix, n).await;
    assert_eq!(customer.client.outbox().await.expect("outbox").len(), n);
    let server = TestServer::start_at(data.path(), &addr, tweak).await;
    WrittenWhileDown {
        customer,
        guide,
        id,
        _server: server,
        _data: data,
        _root: root,
    }
}

#[tokio::test]
async fn ten_thousand_messages_written_offline_go_out_pipelined_once_each_in_order() {
    const N: usize = 10_000;
    // Named bindings keep the server and its folders alive to the end of the test.
    let WrittenWhileDown {
        customer,
        mut guide,
        id,
        _server,
        _data,
        _root,
    } = written_while_down(lifted, "queued ", N).await;
    let report = customer
        .client
        .sync(Duration::from_secs(300))
        .await
        .expect("sync");
    assert_eq!((report.queued, report.failed), (0, 0), "every one acked");

    let got = guide.receive(&id, N).await;
    once_each_in_order(&got, "queued ", N);
    let (texts, seqs) = held(&guide, &id, "queued ").await;
    assert_eq!(texts.len(), N, "the other device holds each once");
    assert_eq!(seqs, got.iter().filter_map(|m| m.seq).collect::<Vec<_>>());
    // The sender's own bubbles carry the same seqs, in the order written.
    let (own, own_seqs) = held(&customer, &id, "queued ").await;
    assert_eq!((own, own_seqs), (texts, seqs), "the sender's view agrees");
}

#[tokio::test]
async fn a_link_cut_in_the_middle_of_a_drain_loses_nothing_and_lets_nothing_overtake() {
    let server = TestServer::start_with(|c| {
        c.otp_resend_after = Duration::ZERO;
        lifted(c);
    })
    .await;
    let root = tempfile::tempdir().expect("tempdir");
    let (_customer, mut guide, id) = consultation(&server, root.path()).await;
    let proxy = CuttingProxy::start(server.addr).await;
    let mut phone = Party::login(
        &format!("http://{}", proxy.addr),
        &root.path().join("phone"),
        "9876543210",
        UserType::Customer,
    )
    .await;
    phone.client.follow(&id);
    phone.client.disconnect();
    phone
        .until(|e| {
            matches!(
                e,
                Event::Connection {
                    state: ConnectionState::Idle
                }
            )
        })
        .await;

    const N: usize = 2_000;
    write_numbered(&phone, &id, "cut ", N).await;
    // The link drops as the 700th comes back to the phone, with hundreds more in flight.
    proxy.cut_when("cut 00700");
    phone.client.connect();
    let report = phone
        .client
        .sync(Duration::from_secs(120))
        .await
        .expect("sync");
    assert_eq!((report.queued, report.failed), (0, 0), "every one acked");
    assert_eq!(
        proxy.cuts.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the link was cut mid-drain"
    );
    let got = guide.receive(&id, N).await;
    once_each_in_order(&got, "cut ", N);
    let (texts, _) = held(&guide, &id, "cut ").await;
    assert_eq!(texts.len(), N, "stored once each");
}

#[tokio::test]
async fn a_rate_limit_met_in_the_middle_of_a_drain_lets_nothing_overtake() {
    // Ten at once, then ten a second: a drain of 60 meets the limit again and again.
    const N: usize = 60;
    // Named bindings keep the server and its folders alive to the end of the test.
    let WrittenWhileDown {
        customer,
        mut guide,
        id,
        _server,
        _data,
        _root,
    } = written_while_down(
        |c| {
            c.message_burst = 10;
            c.messages_per_minute = 600;
        },
        "paced ",
        N,
    )
    .await;
    let report = customer
        .client
        .sync(Duration::from_secs(120))
        .await
        .expect("sync");
    assert_eq!(
        (report.queued, report.failed),
        (0, 0),
        "a rate limit delays, it does not fail a message"
    );
    let got = guide.receive(&id, N).await;
    once_each_in_order(&got, "paced ", N);
    let (texts, _) = held(&guide, &id, "paced ").await;
    assert_eq!(texts.len(), N, "stored once each");
}
