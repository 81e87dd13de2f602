//! The public port under attack: slow clients in every phase of a request,
//! one address trying to take every socket, and malformed WebSocket
//! traffic. Each attacker has honest clients working beside it, on a real
//! server on 127.0.0.1 port 0 with real TCP and WebSocket clients.
#![cfg(feature = "server")]

use std::time::Duration;

use darkswap_proto::signaling::close_code;
use futures::SinkExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    },
};

use support::*;

#[path = "support/signaling.rs"]
mod support;

/// Deadlines short enough for a test, and how late past one a close may
/// come (scheduling on a loaded machine, not the server's slack).
const DEADLINE: Duration = Duration::from_secs(1);
const SLACK: Duration = Duration::from_secs(2);

async fn with_short_deadlines() -> Server {
    Server::start(|s, _| {
        s.request_head_timeout = DEADLINE;
        s.request_body_timeout = DEADLINE;
    })
    .await
}

fn status_line(answer: &[u8]) -> String {
    String::from_utf8_lossy(answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn one_byte_without_a_newline_is_closed_at_the_head_deadline() {
    let server = with_short_deadlines().await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    let mut one_byte = tcp_from("127.0.0.1", &server).await;
    one_byte.write_all(b"G").await.unwrap();
    still_routing(&mut a, &mut b).await;
    let answer = closed_within(one_byte, DEADLINE + SLACK, "one byte").await;
    assert_eq!(status_line(&answer), "HTTP/1.1 408 Request Timeout");
    still_routing(&mut b, &mut a).await;
    server.stop().await;
}

#[tokio::test]
async fn an_upgrade_request_trickled_byte_by_byte_is_closed_at_the_head_deadline() {
    let server = with_short_deadlines().await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    let (reader, writer) = tcp_from("127.0.0.1", &server).await.into_split();
    // ~140 bytes at 10 a second: 14 s for the whole head, never done in time.
    let head = upgrade_request("/signaling", &[]).into_bytes();
    let writing = trickle(writer, head, Duration::from_millis(100));
    still_routing(&mut a, &mut b).await;
    closed_within(reader, DEADLINE + SLACK, "trickled upgrade").await;
    writing.abort();
    still_routing(&mut b, &mut a).await;
    server.stop().await;
}

#[tokio::test]
async fn an_http_body_trickled_byte_by_byte_gets_408_at_the_body_deadline() {
    let server = with_short_deadlines().await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    let (reader, mut writer) = tcp_from("127.0.0.1", &server).await.into_split();
    let head = "POST /auth/challenge HTTP/1.1\r\nHost: relay.test\r\n\
                Content-Type: application/json\r\nContent-Length: 64\r\n\r\n";
    writer.write_all(head.as_bytes()).await.unwrap();
    let writing = trickle(writer, vec![b' '; 64], Duration::from_millis(100));
    still_routing(&mut a, &mut b).await;
    let answer = closed_within(reader, DEADLINE + SLACK, "trickled body").await;
    assert_eq!(status_line(&answer), "HTTP/1.1 408 Request Timeout");
    writing.abort();
    still_routing(&mut b, &mut a).await;
    server.stop().await;
}

#[tokio::test]
async fn a_kept_alive_http_connection_that_falls_silent_is_closed_at_the_head_deadline() {
    let server = with_short_deadlines().await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    let mut conn = tcp_from("127.0.0.1", &server).await;
    let body = json!({"peer_id": libp2p::PeerId::random().to_string()}).to_string();
    let request = format!(
        "POST /auth/challenge HTTP/1.1\r\nHost: relay.test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    // The answer, then nothing more from the client.
    let mut answer = [0u8; 12];
    tokio::time::timeout(WAIT, conn.read_exact(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    closed_within(conn, DEADLINE + SLACK, "idle keep-alive").await;
    still_routing(&mut a, &mut b).await;
    server.stop().await;
}

#[tokio::test]
async fn one_address_cannot_take_the_last_sockets_and_past_the_ceiling_others_get_1013() {
    // max_peers + 2 × max_circuits + 64 spare = 69 sockets in all; one
    // address may hold 64 of them.
    let server = Server::start_with(|c| {
        c.signaling.max_peers = 3;
        c.ws_circuit.max_circuits = 1;
        c.signaling.request_head_timeout = Duration::from_secs(60);
    })
    .await;
    // 200 silent TCP connections from one address, far past its 64; the
    // server may reset refused ones before their connect returns.
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(tcp_attempt_from("127.0.0.1", &server).await);
    }
    // Other addresses still get in: the flood holds only its own share.
    let mut honest = Vec::new();
    for n in 2..=4 {
        let mut c = connect_from(&format!("127.0.0.{n}"), &server, "/signaling")
            .await
            .unwrap_or_else(|e| panic!("127.0.0.{n} is served: {e}"));
        assert_eq!(c.register().await["type"], "registered");
        honest.push(c);
    }
    let (first, rest) = honest.split_at_mut(1);
    still_routing(&mut first[0], &mut rest[0]).await;
    // The refused part of the flood was let go at once, not held: counted.
    server
        .wait_metric(
            "darkswap_relay_rate_limited_total{plane=\"tcp\",limit=\"max_connections_per_ip\"}",
            136.0,
        )
        .await;
    // Two more silent sockets from two more addresses fill the ceiling...
    let _full = [
        tcp_from("127.0.0.5", &server).await,
        tcp_from("127.0.0.6", &server).await,
    ];
    server
        .wait_metric("darkswap_relay_public_connections", 69.0)
        .await;
    // ...and past it a fresh address gets the documented answers.
    let mut late = connect_from("127.0.0.7", &server, "/signaling")
        .await
        .expect("an upgrade, then a close");
    assert_eq!(late.closed().await.0, close_code::TRY_AGAIN_LATER);
    let mut http = tcp_from("127.0.0.8", &server).await;
    http.write_all(
        b"POST /auth/challenge HTTP/1.1\r\nHost: relay.test\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await
    .unwrap();
    let answer = closed_within(http, WAIT, "refused http").await;
    assert_eq!(status_line(&answer), "HTTP/1.1 429 Too Many Requests");
    assert!(String::from_utf8_lossy(&answer).contains("retry-after: 1"));
    assert_eq!(
        server.metric("darkswap_relay_rate_limited_total{plane=\"ws\",limit=\"max_sockets\"}"),
        1.0
    );
    still_routing(&mut rest[0], &mut first[0]).await;
    drop(flood);
    server.stop().await;
}

/// Sends `head` on a raw connection; returns the status line of the answer,
/// which must come, and the connection close, within bounds.
async fn answer_to(server: &Server, head: &str) -> String {
    let mut conn = tcp_from("127.0.0.1", server).await;
    conn.write_all(head.as_bytes()).await.unwrap();
    status_line(&closed_within(conn, WAIT, head).await)
}

#[tokio::test]
async fn an_upgrade_with_a_bad_version_gets_426_and_one_without_a_key_gets_400() {
    let server = Server::start(|_, _| {}).await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    let bad_version = upgrade_request("/signaling", &["Sec-WebSocket-Version: 8"]);
    assert_eq!(
        answer_to(&server, &bad_version).await,
        "HTTP/1.1 426 Upgrade Required"
    );
    let no_key = upgrade_request("/relay", &["Sec-WebSocket-Key:"]);
    assert_eq!(
        answer_to(&server, &no_key).await,
        "HTTP/1.1 400 Bad Request"
    );
    let not_an_upgrade = "GET /signaling HTTP/1.1\r\nHost: relay.test\r\n\r\n";
    assert_eq!(
        answer_to(&server, not_an_upgrade).await,
        "HTTP/1.1 426 Upgrade Required"
    );
    still_routing(&mut a, &mut b).await;
    server.stop().await;
}

/// A registered client sends `frame`; the server closes it with `code`,
/// counts the close by its code, and `a` and `b` keep routing.
async fn closed_with(frame: Message, code: u16) {
    let server = Server::start(|_, _| {}).await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    let mut bad = Client::registered(&server).await;
    bad.ws.send(frame).await.unwrap();
    assert_eq!(bad.closed().await.0, code);
    server
        .wait_metric(
            &format!("darkswap_relay_ws_closes_total{{code=\"{code}\"}}"),
            1.0,
        )
        .await;
    still_routing(&mut a, &mut b).await;
    server.stop().await;
}

#[tokio::test]
async fn a_text_frame_with_invalid_utf8_is_closed_with_1007_and_counted() {
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    closed_with(Message::Frame(frame), 1007).await;
}

#[tokio::test]
async fn an_oversized_frame_is_closed_with_1009_and_counted() {
    let frame = Message::text("x".repeat(65 * 1024));
    closed_with(frame, close_code::TOO_BIG).await;
}

#[tokio::test]
async fn a_frame_with_reserved_bits_is_closed_with_1002_and_counted() {
    let mut frame = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Text), true);
    frame.header_mut().rsv1 = true;
    closed_with(Message::Frame(frame), 1002).await;
}

#[tokio::test]
async fn a_binary_frame_on_signaling_is_closed_with_1003_and_counted() {
    closed_with(
        Message::binary(vec![1u8, 2, 3]),
        close_code::UNSUPPORTED_DATA,
    )
    .await;
}

#[tokio::test]
async fn per_socket_rate_refusals_are_counted_in_rate_limited_total() {
    let server = Server::start(|s, _| {
        s.messages_per_second = 1.try_into().unwrap();
        s.message_burst = 2.try_into().unwrap();
    })
    .await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    let mut flooder = Client::registered(&server).await;
    // Registering spent one of the burst of two, so one of these passes
    // and the others are refused, but for one a refill (one a second) may
    // let through. The honest clients have one message left to route.
    for n in 0..5 {
        flooder.send(json!({"type":"ping","id":n})).await;
    }
    let mut refused = 0;
    for _ in 0..5 {
        let reply = flooder.recv().await;
        if reply["type"] == "error" {
            assert_eq!(reply["code"], "rate_limited", "{reply}");
            refused += 1;
        }
    }
    assert!(refused >= 3, "{refused}");
    assert_eq!(
        server.metric(
            "darkswap_relay_rate_limited_total{plane=\"ws\",limit=\"messages_per_socket\"}"
        ),
        f64::from(refused)
    );
    still_routing(&mut a, &mut b).await;
    server.stop().await;
}
