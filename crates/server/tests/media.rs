//! Images: upload with type and size checks, participant-only download, idempotent retries, and
//! image messages that must point at an upload of the sender in the same consultation.
//! The images are built by hand here; the server reads only their headers.

mod common;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// A zlib stream of stored (uncompressed) deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(65_535).collect()
    };
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

fn png_with_pixels(w: u32, h: u32, idat: Vec<u8>) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    png_chunk(&mut v, b"IHDR", &ihdr);
    png_chunk(&mut v, b"IDAT", &idat);
    png_chunk(&mut v, b"IEND", &[]);
    v
}

/// A complete black RGB PNG (keep it small: the pixels are stored uncompressed).
fn png(w: u32, h: u32) -> Vec<u8> {
    let row = 1 + 3 * w as usize;
    png_with_pixels(w, h, zlib_stored(&vec![0u8; row * h as usize]))
}

/// A PNG whose header claims `w`x`h` but whose pixel data is a token stream.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    png_with_pixels(w, h, zlib_stored(&[0, 0, 0, 0]))
}

/// SOI, a JFIF APP0, a baseline SOF0 with the dimensions, EOI.
fn jpeg(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8];
    v.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
    v.extend_from_slice(b"JFIF\0");
    v.extend_from_slice(&[0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00]);
    v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&[0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01]);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        headers,
        body,
    }
}

async fn upload(
    server: &TestServer,
    user: &User,
    consultation_id: &str,
    content_type: &str,
    body: Vec<u8>,
    key: Option<&str>,
) -> Reply {
    let mut req = server
        .http
        .post(server.url(&format!("/media?consultation_id={consultation_id}")))
        .bearer_auth(&user.token)
        .header("content-type", content_type)
        .body(body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    reply(req.send().await.expect("upload")).await
}

/// Status, content type and bytes of a download.
async fn download(server: &TestServer, user: &User, url: &str) -> (u16, String, Vec<u8>) {
    let r = server
        .http
        .get(format!("http://{}{url}", server.addr))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("download");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ct, r.bytes().await.expect("body").to_vec())
}

async fn history(server: &TestServer, user: &User, id: &str) -> Value {
    server
        .get(&format!("/consultation/{id}/messages"), Some(user))
        .await
        .ok()
}

async fn send(server: &TestServer, user: &User, id: &str, body: Value) -> Reply {
    server
        .post(&format!("/consultation/{id}/messages"), Some(user), body)
        .await
}

/// A guide, a customer and an in-progress consultation between them.
async fn setup(server: &TestServer) -> (User, Ws, User, String) {
    let (guide, guide_ws) = server.online_guide("9000000001", "Asha").await;
    let customer = server.customer("9876543201").await;
    let id = server.open_consultation(&customer, &guide).await;
    (guide, guide_ws, customer, id)
}

#[tokio::test]
async fn an_uploaded_png_comes_back_to_both_participants_and_to_nobody_else() {
    let server = TestServer::start().await;
    let (guide, _guide_ws, customer, id) = setup(&server).await;
    let stranger = server.customer("9876543209").await;
    let image = png(64, 48);

    let info: Value = upload(&server, &customer, &id, "image/png", image.clone(), None)
        .await
        .created();
    let media_id = info["media_id"].as_str().expect("media_id");
    assert_eq!(
        info,
        json!({
            "media_id": media_id, "url": format!("/api/v1/media/{media_id}"),
            "width": 64, "height": 48, "bytes": image.len(), "content_type": "image/png"
        })
    );
    let url = info["url"].as_str().expect("url");
    for who in [&customer, &guide] {
        let (status, ct, bytes) = download(&server, who, url).await;
        assert_eq!((status, ct.as_str()), (200, "image/png"));
        assert!(bytes == image, "the same bytes come back");
    }
    let (status, _, bytes) = download(&server, &stranger, url).await;
    assert_eq!(status, 403);
    let body: Value = serde_json::from_slice(&bytes).expect("an error body");
    assert_eq!(body["error"]["code"], "FORBIDDEN");

    server
        .get(
            "/media/0190c0de-0000-7000-8000-000000000000",
            Some(&customer),
        )
        .await
        .fails(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_jpeg_upload_reports_its_dimensions_and_type() {
    let server = TestServer::start().await;
    let (guide, _guide_ws, customer, id) = setup(&server).await;
    let image = jpeg(1024, 768);
    // The guide uploads too; the type parameter and case do not matter.
    let info: Value = upload(&server, &guide, &id, "Image/JPEG; q=1", image.clone(), None)
        .await
        .created();
    assert_eq!(
        (
            info["width"].as_u64(),
            info["height"].as_u64(),
            info["bytes"].as_u64(),
            info["content_type"].as_str()
        ),
        (
            Some(1024),
            Some(768),
            Some(image.len() as u64),
            Some("image/jpeg")
        )
    );
    let (status, ct, bytes) =
        download(&server, &customer, info["url"].as_str().expect("url")).await;
    assert_eq!((status, ct.as_str()), (200, "image/jpeg"));
    assert!(bytes == image);
}

#[tokio::test]
async fn an_upload_that_is_not_the_image_it_claims_is_refused_with_415() {
    let server = TestServer::start().await;
    let (_guide, _guide_ws, customer, id) = setup(&server).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("image/jpeg", png(8, 8)),
        ("image/png", jpeg(8, 8)),
        ("text/plain", b"hello there".to_vec()),
        ("text/plain", png(8, 8)),
        ("image/gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec()),
        ("image/png", b"\x89PNG\r\n\x1a\n".to_vec()),
        ("image/png", Vec::new()),
        ("", png(8, 8)),
    ];
    for (ct, body) in cases {
        let r = upload(&server, &customer, &id, ct, body, None).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (415, Some("UNSUPPORTED_MEDIA_TYPE")),
            "declared {ct:?}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn an_image_too_large_in_pixels_or_bytes_is_refused_with_413() {
    let server = TestServer::start().await;
    let (_guide, _guide_ws, customer, id) = setup(&server).await;
    upload(
        &server,
        &customer,
        &id,
        "image/png",
        png_claiming(50_000, 50_000),
        None,
    )
    .await
    .fails(413, "PAYLOAD_TOO_LARGE");
    upload(
        &server,
        &customer,
        &id,
        "image/png",
        png_claiming(7072, 7072),
        None,
    )
    .await
    .fails(413, "PAYLOAD_TOO_LARGE");
    // Just under 50 megapixels is fine.
    upload(
        &server,
        &customer,
        &id,
        "image/png",
        png_claiming(7071, 7071),
        None,
    )
    .await
    .created::<Value>();

    let mut big = png(8, 8);
    big.resize(10 * MIB + 1, 0);
    upload(&server, &customer, &id, "image/png", big, None)
        .await
        .fails(413, "PAYLOAD_TOO_LARGE");
    // Exactly 10 MiB passes (trailing bytes after IEND are not the server's concern).
    let mut limit = png(8, 8);
    limit.resize(10 * MIB, 0);
    let ok: Value = upload(&server, &customer, &id, "image/png", limit, None)
        .await
        .created();
    assert_eq!(ok["bytes"].as_u64(), Some(10 * MIB as u64));
}

#[tokio::test]
async fn a_chunked_upload_without_a_length_is_cut_off_past_10_mib() {
    let server = TestServer::start().await;
    let (_guide, _guide_ws, customer, id) = setup(&server).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/v1/media?consultation_id={id} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: image/png\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.addr, customer.token
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let mut body = png(8, 8);
    body.resize(MIB, 0);
    // Up to 12 MiB; the server may stop reading before all of it is sent.
    for _ in 0..12 {
        let chunk = [format!("{:x}\r\n", body.len()).as_bytes(), &body, b"\r\n"].concat();
        if stream.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "refused as too large: {}",
        answer.lines().next().unwrap_or_default()
    );
    assert!(answer.contains("PAYLOAD_TOO_LARGE"), "{answer}");
}

#[tokio::test]
async fn the_same_idempotency_key_uploads_once() {
    let server = TestServer::start().await;
    let (_guide, _guide_ws, customer, id) = setup(&server).await;
    let first: Value = upload(&server, &customer, &id, "image/png", png(8, 8), Some("k-1"))
        .await
        .created();
    let retry: Value = upload(&server, &customer, &id, "image/png", png(8, 8), Some("k-1"))
        .await
        .created();
    assert_eq!(retry, first, "the retry is answered with the first upload");
    let other: Value = upload(&server, &customer, &id, "image/png", png(8, 8), Some("k-2"))
        .await
        .created();
    assert_ne!(other["media_id"], first["media_id"]);
    let plain: Value = upload(&server, &customer, &id, "image/png", png(8, 8), None)
        .await
        .created();
    assert_ne!(plain["media_id"], first["media_id"]);
}

#[tokio::test]
async fn an_idempotency_key_is_not_answered_with_an_upload_to_another_consultation() {
    let server = TestServer::start().await;
    let (guide, _guide_ws, customer, first) = setup(&server).await;
    let old: Value = upload(
        &server,
        &customer,
        &first,
        "image/png",
        png(8, 8),
        Some("k-1"),
    )
    .await
    .created();
    server.complete(&customer, &first).await;
    let second = server.open_consultation(&customer, &guide).await;
    // Keys belong to the uploader; reusing one elsewhere is a client mistake, not a retry.
    upload(
        &server,
        &customer,
        &second,
        "image/png",
        png(8, 8),
        Some("k-1"),
    )
    .await
    .fails(400, "VALIDATION_FAILED");
    let fresh: Value = upload(
        &server,
        &customer,
        &second,
        "image/png",
        png(8, 8),
        Some("k-2"),
    )
    .await
    .created();
    assert_ne!(fresh["media_id"], old["media_id"]);
}

#[tokio::test]
async fn an_image_message_carries_its_media_over_rest_and_realtime() {
    let server = TestServer::start().await;
    let (guide, mut guide_ws, customer, id) = setup(&server).await;
    let mut customer_ws = Ws::connect(&server, &customer.token).await;
    let (_, head) = guide_ws.subscribe(&id, 0).await;
    customer_ws.subscribe(&id, head).await;

    // REST send by the customer.
    let info: Value = upload(&server, &customer, &id, "image/png", png(32, 16), None)
        .await
        .created();
    let sent: Value = send(
        &server,
        &customer,
        &id,
        json!({"client_msg_id": cmid(), "kind": "image", "content": "my palm", "media_id": info["media_id"]}),
    )
    .await
    .created();
    assert_eq!(sent["kind"], "image");
    assert_eq!(
        sent["media"], info,
        "the message carries the upload's details"
    );
    let live = guide_ws.next_of("message").await;
    assert_eq!(live["message"]["media"], info);

    // Realtime send by the guide.
    let jpg: Value = upload(&server, &guide, &id, "image/jpeg", jpeg(20, 10), None)
        .await
        .created();
    let cm = cmid();
    guide_ws
        .send(
            json!({"type": "send", "client_msg_id": cm, "consultation_id": id, "kind": "image",
                     "content": "", "media_id": jpg["media_id"]}),
        )
        .await;
    let ack = loop {
        let f = guide_ws.next_within(WAIT).await.expect("an answer");
        if f["client_msg_id"] == cm.as_str() || f["ref"] == cm.as_str() {
            break f;
        }
    };
    assert_eq!(ack["type"], "ack", "{ack}");
    let got = loop {
        let m = customer_ws.next_of("message").await;
        if m["message"]["client_msg_id"] == cm.as_str() {
            break m;
        }
    };
    assert_eq!(got["message"]["media"], jpg);

    let page = history(&server, &customer, &id).await;
    let images: Vec<&Value> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["kind"] == "image")
        .collect();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["media"], info);
    assert_eq!(images[1]["media"], jpg);
    let (status, _, bytes) = download(&server, &customer, jpg["url"].as_str().expect("url")).await;
    assert_eq!((status, bytes), (200, jpeg(20, 10)));
}

#[tokio::test]
async fn an_image_message_must_name_the_senders_upload_in_the_same_consultation() {
    let server = TestServer::start().await;
    let (guide, _guide_ws, customer, first) = setup(&server).await;
    let elsewhere: Value = upload(&server, &customer, &first, "image/png", png(8, 8), None)
        .await
        .created();
    server.complete(&customer, &first).await;
    let id = server.open_consultation(&customer, &guide).await;
    let guides: Value = upload(&server, &guide, &id, "image/png", png(8, 8), None)
        .await
        .created();
    let before = history(&server, &customer, &id).await;

    let cm = cmid();
    let attempts = [
        json!({"client_msg_id": cm, "kind": "image", "content": "", "media_id": elsewhere["media_id"]}),
        json!({"client_msg_id": cm, "kind": "image", "content": "", "media_id": guides["media_id"]}),
        json!({"client_msg_id": cm, "kind": "image", "content": "", "media_id": "0190c0de-0000-7000-8000-000000000000"}),
        json!({"client_msg_id": cm, "kind": "image", "content": "no media"}),
        json!({"client_msg_id": cm, "kind": "text", "content": "text", "media_id": guides["media_id"]}),
    ];
    for body in &attempts {
        send(&server, &customer, &id, body.clone())
            .await
            .fails(400, "VALIDATION_FAILED");
    }
    let mut ws = Ws::connect(&server, &customer.token).await;
    for body in &attempts {
        let mut frame = body.clone();
        frame["type"] = json!("send");
        frame["consultation_id"] = json!(id);
        ws.send(frame).await;
        let err = ws.next_of("error").await;
        assert_eq!(
            (err["code"].as_str(), err["ref"].as_str()),
            (Some("VALIDATION_FAILED"), Some(cm.as_str())),
            "{body}"
        );
    }
    assert_eq!(
        history(&server, &customer, &id).await,
        before,
        "nothing was stored"
    );

    // The refused client_msg_id is still free for the right image.
    let mine: Value = upload(&server, &customer, &id, "image/png", png(8, 8), None)
        .await
        .created();
    let sent: Value = send(
        &server,
        &customer,
        &id,
        json!({"client_msg_id": cm, "kind": "image", "content": "", "media_id": mine["media_id"]}),
    )
    .await
    .created();
    assert_eq!(sent["media"]["media_id"], mine["media_id"]);
}

#[tokio::test]
async fn an_image_cannot_be_uploaded_once_the_chat_has_ended_but_a_retry_is_still_answered() {
    let server = TestServer::start().await;
    let (_guide, _guide_ws, customer, id) = setup(&server).await;
    let sent: Value = upload(&server, &customer, &id, "image/png", png(8, 8), Some("k-1"))
        .await
        .created();
    server.complete(&customer, &id).await;
    let late = upload(&server, &customer, &id, "image/png", png(8, 8), Some("k-2")).await;
    late.fails(409, "INVALID_STATE");
    assert_eq!(late.body["error"]["details"]["status"], "completed");
    // The upload that went through before the end is the same upload when its retry comes.
    let retry: Value = upload(&server, &customer, &id, "image/png", png(8, 8), Some("k-1"))
        .await
        .created();
    assert_eq!(retry, sent);
}
