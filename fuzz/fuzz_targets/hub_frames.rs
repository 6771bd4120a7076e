//! Any sequence of frames on a live realtime connection of the real server: the server never
//! panics, never wedges (a ping after them is answered), and stays healthy.
//! In text, `$C` stands for the running consultation's id and `$G` for the guide's user id, so
//! inputs can reach past "no such consultation".
#![no_main]

use futures_util::{SinkExt, StreamExt};
use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;
use tara_fuzz::{live, pieces, rt, ANSWER_WITHIN};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

static SOCKET: Mutex<Option<Ws>> = Mutex::new(None);
static RUNS: Mutex<u64> = Mutex::new(0);

async fn connect() -> Ws {
    let live = live();
    let mut req = format!("ws://{}/api/v1/realtime", live.addr)
        .into_client_request()
        .expect("a request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", live.customer.token)
            .parse()
            .expect("a header"),
    );
    let (ws, _) = tokio::time::timeout(ANSWER_WITHIN, tokio_tungstenite::connect_async(req))
        .await
        .expect("the server takes a connection in time")
        .expect("the server takes a connection");
    ws
}

/// Sends the frames, then a ping; true if the pong came, false if the server closed the socket
/// (it may, for a frame it will not take); panics if it did neither in time.
async fn exchange(ws: &mut Ws, frames: Vec<Message>) -> bool {
    for f in frames {
        if ws.send(f).await.is_err() {
            return false;
        }
    }
    if ws.send(Message::text(r#"{"type":"ping"}"#)).await.is_err() {
        return false;
    }
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("the server neither answered the ping nor closed the connection"),
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return false,
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains(r#""type":"pong""#) => {
                return true
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let live = live();
    let frames: Vec<Message> = pieces(data, 32)
        .map(|p| match std::str::from_utf8(p) {
            Ok(t) => Message::text(
                t.replace("$C", &live.consultation_id)
                    .replace("$G", &live.guide.id.to_string()),
            ),
            Err(_) => Message::binary(p.to_vec()),
        })
        .collect();
    rt().block_on(async {
        let taken = SOCKET.lock().expect("socket").take();
        let mut ws = match taken {
            Some(ws) => ws,
            None => connect().await,
        };
        if exchange(&mut ws, frames).await {
            *SOCKET.lock().expect("socket") = Some(ws);
        }
        let mut runs = RUNS.lock().expect("runs");
        *runs += 1;
        if *runs % 256 == 0 {
            assert!(live.healthy().await, "the server stopped answering /health");
        }
    });
});
