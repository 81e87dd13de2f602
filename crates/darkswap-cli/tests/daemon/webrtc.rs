//! WebRTC data channels through the daemon: two daemons registered on a
//! real relay's signaling server (one naming its public port, one deriving
//! it from its `--relay`) open a channel and exchange text and binary
//! messages through the API and the CLI, then close it; bad requests get
//! their documented errors.

use serde_json::{Value, json};

use crate::support::{cli, cli_json, relay, start_daemon};

const REGISTERED: &str = "registered for WebRTC data channels";

async fn post(api: std::net::SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{api}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_exchange_messages_over_a_webrtc_channel_by_api_and_cli() {
    let (relay, _relay_dir) = relay();
    let port = relay.signaling.unwrap().port().to_string();
    let public_port = format!("/ip4/127.0.0.1/tcp/{port}/ws");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = start_daemon(
        dir_a.path(),
        &["--webrtc", "--webrtc-signaling", &public_port].map(String::from),
    );
    let mut b = start_daemon(
        dir_b.path(),
        &[
            "--relay",
            &relay.tcp_addr.to_string(),
            "--webrtc",
            "--webrtc-signaling-port",
            &port,
        ]
        .map(String::from),
    );
    a.wait_for_log(REGISTERED);
    b.wait_for_log(REGISTERED);
    let id = |api| {
        cli_json(api, &["status"])["peer_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (a_id, b_id) = (id(a.api), id(b.api));

    let status = cli_json(a.api, &["webrtc", "status"]);
    assert_eq!(status["enabled"], true);
    assert_eq!(
        status["signaling"],
        json!([{ "url": format!("ws://127.0.0.1:{port}/signaling"), "state": "connected" }])
    );
    assert_eq!(status["channels"], json!([]));

    // A opens with the CLI; both see the channel.
    let open = cli_json(a.api, &["webrtc", "open", &b_id]);
    assert_eq!(open, json!({ "peer_id": b_id, "path": "direct" }));
    let channels = cli_json(b.api, &["webrtc", "status"])["channels"].clone();
    assert_eq!(channels, json!([{ "peer_id": a_id, "path": "direct" }]));

    // Text from A's CLI to B's API, bytes from B's API to A's CLI.
    cli_json(a.api, &["webrtc", "send", &b_id, "hello over WebRTC"]);
    let receive = format!("/v1/webrtc/channels/{a_id}/receive");
    let (code, got) = post(b.api, &receive, json!({ "wait_ms": 20_000 })).await;
    assert_eq!((code, got), (200, json!({ "text": "hello over WebRTC" })));
    let (code, _) = post(
        b.api,
        &format!("/v1/webrtc/channels/{a_id}/messages"),
        json!({ "hex": "00ff10" }),
    )
    .await;
    assert_eq!(code, 204);
    let got = cli_json(a.api, &["webrtc", "receive", &b_id, "--wait", "20s"]);
    assert_eq!(got, json!({ "hex": "00ff10" }));
    // Nothing more: a short wait ends empty (`null`, and no line for people).
    let got = cli_json(a.api, &["webrtc", "receive", &b_id, "--wait", "100ms"]);
    assert_eq!(got, Value::Null);
    let out = cli(a.api, &["webrtc", "receive", &b_id, "--wait", "0s"]);
    assert!(out.status.success() && out.stdout.is_empty());

    // Bad requests, each with its error and the channel untouched.
    let messages = format!("/v1/webrtc/channels/{b_id}/messages");
    for (path, body, status, code) in [
        (
            &messages,
            json!({ "text": "a", "hex": "00" }),
            400,
            "invalid_request",
        ),
        (&messages, json!({}), 400, "invalid_request"),
        (&messages, json!({ "hex": "zz" }), 400, "invalid_request"),
        (&messages, json!({ "txt": "a" }), 400, "invalid_request"),
        (
            &"/v1/webrtc/channels/not-a-peer/messages".to_owned(),
            json!({ "text": "a" }),
            400,
            "invalid_request",
        ),
        (
            &format!("/v1/webrtc/channels/{b_id}/receive"),
            json!({ "wait_ms": 60_001 }),
            400,
            "invalid_request",
        ),
    ] {
        let (got, v) = post(a.api, path, body.clone()).await;
        assert_eq!(
            (got, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {v}"
        );
    }
    // A peer no signaling relay knows.
    let stranger = darkswap_p2p::PeerId::random().to_string();
    let (code, v) = post(a.api, "/v1/webrtc/channels", json!({ "peer_id": stranger })).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (404, Some("unknown_peer")),
        "{v}"
    );

    // Closing on A ends B's side: B reads that the channel closed.
    let closed = cli_json(a.api, &["webrtc", "close", &b_id]);
    assert_eq!(closed, json!({ "closed": b_id }));
    assert_eq!(
        cli_json(a.api, &["webrtc", "status"])["channels"],
        json!([])
    );
    let (code, v) = post(b.api, &receive, json!({ "wait_ms": 20_000 })).await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (404, Some("channel_closed")),
        "{v}"
    );
    let out = cli(a.api, &["webrtc", "close", &b_id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no open WebRTC channel"));
}
