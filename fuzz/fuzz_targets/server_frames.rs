//! tara-core's handling of any frame a server might send: the real client, signed in to the
//! real server through a proxy that slips the fuzzer's frames in between the server's. The
//! client must never panic and must keep reading: a marker frame sent after the input comes out
//! of its event stream in time.
//! In text, `$C` stands for the running consultation's id and `$U` for the client's user id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::Duration;
use tara_core::{Client, ClientConfig, Event};
use tara_fuzz::{live, pieces, rt};
use tara_protocol::auth::UserType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Mutex};

/// The user id the marker frame names; nobody has it.
const MARKER: i64 = 424_242;

struct Rig {
    client: Client,
    events: Mutex<mpsc::UnboundedReceiver<Event>>,
    inject: mpsc::UnboundedSender<String>,
    user_id: i64,
    _dir: tempfile::TempDir,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| rt().block_on(start()))
}

async fn start() -> Rig {
    let live = live();
    let (inject, rx) = mpsc::unbounded_channel();
    let rx = std::sync::Arc::new(Mutex::new(rx));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let proxy = listener.local_addr().expect("an address");
    let upstream = live.addr.clone();
    tokio::spawn(async move {
        while let Ok((down, _)) = listener.accept().await {
            let (upstream, rx) = (upstream.clone(), rx.clone());
            tokio::spawn(async move {
                let _ = relay(down, &upstream, rx).await;
            });
        }
    });
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = ClientConfig::new(format!("http://{proxy}"), dir.path());
    let (client, events) = Client::start(config).await.expect("the client starts");
    let otp = client
        .request_otp("+91", "9800000001", UserType::Customer)
        .await
        .expect("a code");
    let me = client
        .verify_otp(
            "+91",
            "9800000001",
            UserType::Customer,
            &otp.request_id,
            otp.dev_otp.as_deref().expect("dev mode gives the code"),
        )
        .await
        .expect("signed in");
    client.follow(&live.consultation_id.as_str().into());
    Rig {
        client,
        events: Mutex::new(events),
        inject,
        user_id: me.user_id.0,
        _dir: dir,
    }
}

/// Passes bytes both ways; on the realtime connection, writes the fuzzer's frames to the client
/// between whole frames of the server's.
async fn relay(
    mut down: TcpStream,
    upstream: &str,
    inject: std::sync::Arc<Mutex<mpsc::UnboundedReceiver<String>>>,
) -> std::io::Result<()> {
    let mut up = TcpStream::connect(upstream).await?;
    let mut first = vec![0u8; 4096];
    let n = down.read(&mut first).await?;
    first.truncate(n);
    up.write_all(&first).await?;
    if !first.starts_with(b"GET /api/v1/realtime") {
        tokio::io::copy_bidirectional(&mut down, &mut up).await?;
        return Ok(());
    }
    let (mut up_r, mut up_w) = up.into_split();
    let (mut down_r, mut down_w) = down.into_split();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut down_r, &mut up_w).await;
    });
    // The 101 answer, byte by byte to its blank line, then frames.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        up_r.read_exact(&mut b).await?;
        head.push(b[0]);
    }
    down_w.write_all(&head).await?;
    let mut inject = inject.lock().await;
    loop {
        tokio::select! {
            frame = read_frame(&mut up_r) => {
                down_w.write_all(&frame?).await?;
            }
            Some(text) = inject.recv() => {
                down_w.write_all(&text_frame(text.as_bytes())).await?;
            }
        }
    }
}

/// One whole frame from the server (unmasked), header included.
async fn read_frame(r: &mut tokio::net::tcp::OwnedReadHalf) -> std::io::Result<Vec<u8>> {
    let mut frame = vec![0u8; 2];
    r.read_exact(&mut frame).await?;
    let len = match frame[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).await?;
            frame.extend_from_slice(&b);
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).await?;
            frame.extend_from_slice(&b);
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let start = frame.len();
    frame.resize(start + len as usize, 0);
    r.read_exact(&mut frame[start..]).await?;
    Ok(frame)
}

/// A final, unmasked text frame.
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x81];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= u16::MAX as usize => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

fuzz_target!(|data: &[u8]| {
    let live = live();
    let rig = rig();
    for piece in pieces(data, 32) {
        if let Ok(t) = std::str::from_utf8(piece) {
            let t = t
                .replace("$C", &live.consultation_id)
                .replace("$U", &rig.user_id.to_string());
            let _ = rig.inject.send(t);
        }
    }
    let marker = serde_json::json!({
        "type": "typing", "consultation_id": live.consultation_id,
        "user_id": MARKER, "is_typing": true
    })
    .to_string();
    let _ = rig.inject.send(marker);
    rt().block_on(async {
        let mut events = rig.events.lock().await;
        let seen = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(e) = events.recv().await {
                if matches!(e, Event::Typing { user_id, .. } if user_id.0 == MARKER) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            seen,
            Ok(true),
            "the client stopped reading after these frames"
        );
        // Still a working client: its own calls answer.
        rig.client
            .chat_list()
            .await
            .expect("the client still talks to the server");
    });
});
