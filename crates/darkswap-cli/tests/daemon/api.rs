//! The API and the CLI at their edges: bad requests are refused with the
//! documented errors, and a command with no daemon says so.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use serde_json::Value;

use crate::support::{cli, cli_json, metric, post_order, start_daemon};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_bad_requests_and_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(dir.path(), &[]);
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/orders", d.api);
    let post = |body: String| {
        http.post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let r = post("{not json".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_request");

    let r =
        post(r#"{"base":"BTC","quote":"rune:1:0","amount":1,"price":1,"expires_in":60}"#.into())
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("side"),
        "{v}"
    );

    for (body, field) in [
        (
            r#"{"side":"buy","base":"DOGE","quote":"BTC","amount":1,"price":1,"expires_in":60}"#,
            "base",
        ),
        (
            r#"{"side":"buy","base":"BTC","quote":"rune:1:0","amount":-5,"price":1,"expires_in":60}"#,
            "amount",
        ),
        (
            r#"{"side":"buy","base":"BTC","quote":"rune:1:0","amount":0,"price":1,"expires_in":60}"#,
            "amount",
        ),
        (
            r#"{"side":"hold","base":"BTC","quote":"rune:1:0","amount":1,"price":1,"expires_in":60}"#,
            "side",
        ),
    ] {
        let r = post(body.into()).await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }

    let r = post(format!("{{\"pad\":\"{}\"}}", "x".repeat(200_000)))
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // The server closes a connection whose body it refused: use a fresh one.
    let http = reqwest::Client::new();
    let r = http
        .delete(format!("http://{}/v1/orders/zz", d.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .get(format!("http://{}/v1/nope", d.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // WebRTC is off without `--webrtc`: the status says so, calls are 409.
    let webrtc = cli_json(d.api, &["webrtc", "status"]);
    assert_eq!(
        webrtc,
        serde_json::json!({ "enabled": false, "signaling": [], "channels": [] })
    );
    let peer = darkswap_p2p::PeerId::random().to_string();
    let r = http
        .post(format!("http://{}/v1/webrtc/channels", d.api))
        .json(&serde_json::json!({ "peer_id": peer }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "webrtc_disabled");

    // Still serving.
    assert!(cli_json(d.api, &["status"])["peer_id"].is_string());
}

/// A plain HTTP/1.1 client that writes its whole 10 MB body before it reads
/// (as blocking clients do) gets the 413 the API answered after 64 KiB, not
/// a reset: the daemon reads and discards the rest before it closes.
#[test]
fn a_client_still_sending_a_refused_body_gets_the_413() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(dir.path(), &[]);
    let mut stream = TcpStream::connect(d.api).unwrap();
    // Deadlines on every read and write.
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = vec![b'x'; 10_000_000];
    write!(
        stream,
        "POST /v1/orders HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        d.api,
        body.len()
    )
    .unwrap();
    stream
        .write_all(&body)
        .expect("the whole body is taken, refused or not");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the answer, then a clean close");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    let (_, json) = answer.split_once("\r\n\r\n").unwrap();
    let v: Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");

    // Still serving.
    assert!(cli_json(d.api, &["status"])["peer_id"].is_string());
}

/// The same with an HTTP client library (the one the CLI uses): a 10 MB
/// body sent in one request gets the 413 and its error, not a connection
/// error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_client_sending_10_mb_gets_the_413_not_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(dir.path(), &[]);
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
        .post(format!("http://{}/v1/orders", d.api))
        .header("content-type", "application/json")
        .body(vec![b'x'; 10_000_000])
        .send()
        .await
        .expect("an answer, not a reset");
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");
}

#[test]
fn commands_without_a_daemon_say_so_in_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = cli(port, &["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no darkswap daemon is running"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_at_a_limit_name_the_limit() {
    // The default cap: a maker's 1,001st order is refused, naming the limit.
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(dir.path(), &[]);
    let http = reqwest::Client::new();
    let create = |nonce: u64| post_order(&http, d.api, "buy", 1 + nonce);
    for n in 0..1_000 {
        assert_eq!(create(n).await.unwrap().status(), 201, "order {n}");
    }
    let r = create(1_000).await.unwrap();
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "maker_limit", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000 orders per maker"),
        "{v}"
    );
    assert_eq!(
        metric(
            d.api,
            r#"darkswap_orders_rejected_total{source="api",reason="maker_limit"}"#
        )
        .await,
        1.0
    );
    assert!(d.sigterm());

    // Raising the cap with the flag admits it, the thousand kept across the
    // restart.
    let d = start_daemon(
        dir.path(),
        &["--max-orders-per-maker", "1001"].map(String::from),
    );
    let http = reqwest::Client::new();
    let r = post_order(&http, d.api, "buy", 1_001).await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        cli_json(d.api, &["order", "list"])
            .as_array()
            .unwrap()
            .len(),
        1_001
    );
    drop(d);

    // The book's own limit is another name.
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(dir.path(), &["--max-orders", "2"].map(String::from));
    let http = reqwest::Client::new();
    let create = |nonce: u64| post_order(&http, d.api, "sell", 1 + nonce);
    for n in 0..2 {
        assert_eq!(create(n).await.unwrap().status(), 201);
    }
    let r = create(2).await.unwrap();
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "book_full", "{v}");
    assert_eq!(
        metric(
            d.api,
            r#"darkswap_orders_rejected_total{source="api",reason="book_full"}"#
        )
        .await,
        1.0
    );
}
