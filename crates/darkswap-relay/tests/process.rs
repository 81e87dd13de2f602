//! The real `darkswap-relay` binary, run as a process on 127.0.0.1 with
//! ports chosen by the OS, driven by real `darkswap-p2p` nodes.
#![cfg(feature = "server")]

use std::{path::Path, process::Command, time::Duration};

use darkswap_p2p::{Identity, Keypair, Network, NetworkEvent, ORDERBOOK_TOPIC, PerfError};
use darkswap_testkit::{
    EVENT_TIMEOUT, RelayProcess, order_message, test_config, wait_for, wait_message,
    wait_subscribed,
};
use libp2p::multiaddr::Protocol;

const BIN: &str = env!("CARGO_BIN_EXE_darkswap-relay");

type Relay = RelayProcess;

fn base_args(data_dir: &Path) -> Vec<String> {
    RelayProcess::loopback_args(data_dir)
}

fn start(args: &[String], env: &[(&str, &str)]) -> Relay {
    RelayProcess::start(Path::new(BIN), args, env)
}

async fn get(relay: &Relay, path: &str) -> (u16, String) {
    let metrics = relay.metrics.expect("metrics enabled");
    let resp = reqwest::get(format!("http://{metrics}{path}"))
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

async fn relayed_pair(relay: &Relay, perf: bool) -> (Network, Network, Keypair, Keypair) {
    let key_b = Keypair::generate_ed25519();
    let mut b = Network::new(
        test_config()
            .with_relay_peers(vec![relay.tcp_addr.clone()])
            .with_identity(Identity::Keypair(key_b.clone()))
            .with_perf(perf),
    )
    .await
    .unwrap();
    wait_for(&mut b, "RelayReserved", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::RelayReserved { relay_peer_id, .. } if *relay_peer_id == relay.peer_id).then_some(())
    })
    .await;
    // a listens nowhere either: the circuit is the only path between them.
    // It only dials through the relay (no auto-relay reservation of its
    // own, so the relay's counts are b's).
    let key_a = Keypair::generate_ed25519();
    let a = Network::new(
        test_config()
            .with_auto_relay(false)
            .with_perf(perf)
            .with_identity(Identity::Keypair(key_a.clone())),
    )
    .await
    .unwrap();
    let circuit = relay
        .tcp_addr
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(b.local_peer_id()));
    assert_eq!(a.dial(circuit).await.unwrap(), b.local_peer_id());
    (a, b, key_b, key_a)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_without_config_answers_health_and_keeps_its_peer_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = start(&base_args(dir.path()), &[]);
    let (code, body) = get(&relay, "/health").await;
    assert_eq!(code, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["peer_id"], relay.peer_id.to_string());
    for key in ["uptime_seconds", "reservations", "circuits", "connections"] {
        assert!(health[key].is_number(), "{key} in {body}");
    }
    let first = relay.peer_id;
    relay.sigterm();
    assert!(relay.wait_exit(Duration::from_secs(5)).0.success());

    let relay = start(&base_args(dir.path()), &[]);
    assert_eq!(relay.peer_id, first, "same key after restart");
    drop(relay);
    let (code, out, _) = run_to_end(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--print-peer-id",
        ],
        &[],
    );
    assert_eq!((code, out.trim()), (0, first.to_string().as_str()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("identity.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_reserve_meet_through_the_relay_and_gossip() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(&base_args(dir.path()), &[]);
    let (mut a, mut b, key_b, key_a) = relayed_pair(&relay, false).await;
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    wait_for(&mut a, "ConnectedThroughRelay", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::ConnectedThroughRelay { dst_peer_id, .. } if *dst_peer_id == b_id)
            .then_some(())
    })
    .await;
    wait_subscribed(&mut a, b_id).await;
    let msg = order_message(&key_b, 1);
    b.publish(ORDERBOOK_TOPIC, &msg).await.unwrap();
    assert_eq!(wait_message(&mut a, b_id, ORDERBOOK_TOPIC).await, msg);
    // And the other way.
    wait_subscribed(&mut b, a_id).await;
    let msg = order_message(&key_a, 2);
    a.publish(ORDERBOOK_TOPIC, &msg).await.unwrap();
    assert_eq!(wait_message(&mut b, a_id, ORDERBOOK_TOPIC).await, msg);

    let (_, text) = get(&relay, "/metrics").await;
    assert_eq!(metric(&text, "darkswap_relay_reservations_total"), 1.0);
    assert_eq!(metric(&text, "darkswap_relay_reservations_active"), 1.0);
    assert!(metric(&text, "darkswap_relay_circuits_total") >= 1.0);
    assert!(metric(&text, "darkswap_relay_circuits_active") >= 1.0);
    assert!(
        text.contains("darkswap_relay_connections_total{transport=\"tcp\"}"),
        "{text}"
    );
    assert!(
        text.contains("libp2p_relay_events"),
        "libp2p's own relay metrics: {text}"
    );
    let (_, health) = get(&relay, "/health").await;
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["reservations"], 1);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_carries_a_mebibyte_each_way_with_default_limits() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(&base_args(dir.path()), &[]);
    let (a, b, _, _) = relayed_pair(&relay, true).await;
    let report = a.perf(b.local_peer_id(), 1 << 20, 1 << 20).await.unwrap();
    assert_eq!((report.uploaded, report.downloaded), (1 << 20, 1 << 20));
    // Every byte went through the relay process.
    let (_, text) = get(&relay, "/metrics").await;
    assert!(
        metric(&text, "darkswap_relay_bytes_relayed_total") >= 2.0 * (1 << 20) as f64,
        "{text}"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_is_closed_at_its_configured_byte_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, "[relay]\nmax_circuit_bytes = 65536\n").unwrap();
    let mut args = base_args(dir.path());
    args.extend(["--config".to_owned(), config.to_str().unwrap().to_owned()]);
    let relay = start(&args, &[]);
    let (a, b, _, _) = relayed_pair(&relay, true).await;
    let result = a.perf(b.local_peer_id(), 1 << 20, 1 << 20).await;
    assert!(
        matches!(
            result,
            Err(PerfError::Open(_) | PerfError::Io(_) | PerfError::WrongLength { .. })
        ),
        "{result:?}"
    );
    let (_, text) = get(&relay, "/metrics").await;
    let relayed = metric(&text, "darkswap_relay_bytes_relayed_total");
    assert!(
        relayed > 0.0 && relayed < (1 << 20) as f64,
        "cut off early: {relayed}"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_active_circuit_exits_zero_within_five_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = start(&base_args(dir.path()), &[]);
    let (a, b, _, _) = relayed_pair(&relay, false).await;
    let (_, text) = get(&relay, "/metrics").await;
    assert!(metric(&text, "darkswap_relay_circuits_active") >= 1.0);
    relay.sigterm();
    let (status, took) = relay.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[test]
fn toml_and_env_overrides_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, "[relay]\nmax_circuits = 7\nmax_reservations = 8\n").unwrap();
    let (code, out, err) = run_to_end(
        &[
            "--config",
            config.to_str().unwrap(),
            "--check-config",
            "--metrics-listen",
            "127.0.0.1:7777",
        ],
        &[
            ("DARKSWAP_RELAY_RELAY__MAX_RESERVATIONS", "9"),
            ("DARKSWAP_RELAY_LOG__FORMAT", "json"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let effective: toml::Value = toml::from_str(&out).unwrap();
    assert_eq!(
        effective["relay"]["max_circuits"].as_integer(),
        Some(7),
        "TOML"
    );
    assert_eq!(
        effective["relay"]["max_reservations"].as_integer(),
        Some(9),
        "env beats TOML"
    );
    assert_eq!(effective["log"]["format"].as_str(), Some("json"), "env");
    assert_eq!(
        effective["metrics"]["listen"].as_str(),
        Some("127.0.0.1:7777"),
        "flag"
    );
    assert_eq!(
        effective["relay"]["max_circuits_per_peer"].as_integer(),
        Some(16),
        "default"
    );
}

#[test]
fn bad_configuration_is_refused_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "[relay]\nmax_circuitz = 3\n").unwrap();
    let (code, _, err) = run_to_end(
        &["--config", unknown.to_str().unwrap(), "--check-config"],
        &[],
    );
    assert_eq!(code, 2);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("relay.max_circuitz"), "{err}");

    let bad_port = dir.path().join("port.toml");
    std::fs::write(&bad_port, "[metrics]\nlisten = \"127.0.0.1:70000\"\n").unwrap();
    let (code, _, err) = run_to_end(&["--config", bad_port.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("metrics.listen"), "{err}");

    let (code, _, err) = run_to_end(
        &["--check-config"],
        &[(
            "DARKSWAP_RELAY_NETWORK__LISTEN_ADDRESSES",
            "[\"/ip4/0.0.0.0/tcp/99999\"]",
        )],
    );
    assert_eq!(code, 2);
    assert!(err.contains("network.listen_addresses"), "{err}");
}

#[test]
fn a_port_in_use_fails_start_with_a_one_line_reason() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let data = dir.path().to_str().unwrap();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let (code, _, err) = run_to_end(
        &[
            "--data-dir",
            data,
            "--listen",
            &listen,
            "--metrics-listen",
            "127.0.0.1:0",
            "--signaling-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot listen on") && err.contains(&port.to_string()),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    // The metrics port too.
    let metrics = format!("127.0.0.1:{port}");
    let (code, _, err) = run_to_end(
        &[
            "--data-dir",
            data,
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--metrics-listen",
            &metrics,
            "--signaling-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("cannot serve metrics"), "{err}");

    // And the signaling port.
    let (code, _, err) = run_to_end(
        &[
            "--data-dir",
            data,
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--signaling-listen",
            &metrics,
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("cannot serve signaling"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // An unreadable key.
    std::fs::write(dir.path().join("identity.key"), b"garbage").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("identity.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let (code, _, err) = run_to_end(
        &[
            "--data-dir",
            data,
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--signaling-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("identity"), "{err}");
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_signaling_and_counts_it_in_metrics() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let dir = tempfile::tempdir().unwrap();
    let relay = start(&base_args(dir.path()), &[]);
    let addr = relay.signaling.expect("signaling enabled by default");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/signaling"))
        .await
        .unwrap();
    let challenge: serde_json::Value = match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("{other:?}"),
    };
    let key = Keypair::generate_ed25519();
    let register =
        darkswap_proto::signaling::sign_registration(&key, challenge["nonce"].as_str().unwrap())
            .unwrap();
    ws.send(Message::text(register.to_json())).await.unwrap();
    let registered: serde_json::Value = match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(registered["type"], "registered");
    assert_eq!(registered["peer_id"], key.public().to_peer_id().to_string());
    let (_, text) = get(&relay, "/metrics").await;
    assert!(text.contains("darkswap_relay_signaling_peers 1"), "{text}");
}

/// Polls the relay's `/metrics` until `sample` reaches `at_least` (bounded).
async fn wait_metric(relay: &Relay, sample: &str, at_least: f64) {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let (_, text) = get(relay, "/metrics").await;
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if value >= at_least {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sample} stayed below {at_least}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post_json(relay: &Relay, path: &str, bearer: &str, body: &str) -> (u16, String) {
    let addr = relay.signaling.expect("signaling enabled");
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn issue(dir: &Path, peer: &libp2p::PeerId, role: &str, ttl: &str) -> (i32, String, String) {
    let peer = peer.to_string();
    run_to_end(
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "token",
            "issue",
            "--peer",
            &peer,
            "--role",
            role,
            "--ttl",
            ttl,
        ],
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_gate_reservations_and_offline_tokens_and_revocations_survive_restarts() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

    let dir = tempfile::tempdir().unwrap();
    // Tokens minted offline from the relay's key (created by the first command).
    let admin = libp2p::PeerId::random();
    let (code, admin_token, err) = issue(dir.path(), &admin, "admin", "1h");
    assert_eq!(code, 0, "{err}");
    let admin_token = admin_token.trim().to_owned();
    assert!(err.contains("token id"), "{err}");
    let holder = Keypair::generate_ed25519();
    let (code, holder_token, _) = issue(dir.path(), &holder.public().to_peer_id(), "user", "1h");
    assert_eq!(code, 0);
    let (code, _, err) = issue(dir.path(), &admin, "admin", "3d");
    assert_ne!(code, 0);
    assert!(err.contains("max_token_ttl_secs"), "{err}");

    // A closed relay: only listed peers may hold reservations.
    let allowed = Keypair::generate_ed25519();
    let users = format!("[\"{}\"]", allowed.public().to_peer_id());
    let env = [
        ("DARKSWAP_RELAY_AUTH__DEFAULT_ROLE", "guest"),
        ("DARKSWAP_RELAY_AUTH__USERS", users.as_str()),
    ];
    let mut relay = start(&base_args(dir.path()), &env);
    let mut ok = Network::new(
        test_config()
            .with_relay_peers(vec![relay.tcp_addr.clone()])
            .with_identity(Identity::Keypair(allowed)),
    )
    .await
    .unwrap();
    wait_for(&mut ok, "RelayReserved", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::RelayReserved { .. }).then_some(())
    })
    .await;
    let refused = Network::new(test_config().with_relay_peers(vec![relay.tcp_addr.clone()]))
        .await
        .unwrap();
    wait_metric(
        &relay,
        "darkswap_relay_access_denied_total{action=\"reservation\"}",
        1.0,
    )
    .await;
    let status = refused.relay_status().await.unwrap();
    assert!(status.iter().all(|r| !r.reserved), "{status:?}");
    assert!(ok.relay_status().await.unwrap().iter().any(|r| r.reserved));

    // The offline admin token revokes the holder's tokens.
    let body = format!("{{\"peer_id\":\"{}\"}}", holder.public().to_peer_id());
    let (status, text) = post_json(&relay, "/auth/revoke", &admin_token, &body).await;
    assert_eq!(status, 200, "{text}");
    relay.sigterm();
    assert!(relay.wait_exit(Duration::from_secs(5)).0.success());

    // After a restart the revocation holds and the admin token still works.
    // Debug logs on: even they must not carry a token.
    let mut args = base_args(dir.path());
    args.extend(["--log-level".to_owned(), "debug".to_owned()]);
    let mut relay = start(&args, &env);
    let addr = relay.signaling.unwrap();
    let mut request = format!("ws://{addr}/signaling")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("darkswap.v1, darkswap-token.{}", holder_token.trim())
            .parse()
            .unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut saw_error = false;
    let close = loop {
        match tokio::time::timeout(EVENT_TIMEOUT, ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                assert_eq!(v["code"], "unauthorized", "{v}");
                assert!(v["message"].as_str().unwrap().contains("revoked"), "{v}");
                saw_error = true;
            }
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            other => panic!("{other:?}"),
        }
    };
    assert!(saw_error);
    assert_eq!(close, darkswap_proto::signaling::close_code::UNAUTHORIZED);
    let (status, text) = post_json(&relay, "/auth/refresh", &admin_token, "").await;
    assert_eq!(status, 200, "{text}");
    assert!(
        std::fs::read_to_string(dir.path().join("revocations.json"))
            .unwrap()
            .contains(&holder.public().to_peer_id().to_string())
    );
    let log_lines = std::mem::replace(&mut relay.logs, std::sync::mpsc::channel().1);
    drop(relay);
    let mut logs = Vec::new();
    while let Ok(line) = log_lines.recv_timeout(EVENT_TIMEOUT) {
        logs.push(line.to_string());
    }
    for token in [admin_token.as_str(), holder_token.trim()] {
        assert!(
            !logs.iter().any(|l| l.contains(token)),
            "a token in the logs"
        );
    }
    assert!(
        logs.iter().any(|l| l.contains("\"DEBUG\"")),
        "debug lines were read: {logs:?}"
    );
    ok.shutdown().await.unwrap();
    refused.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_limit_libp2p_dials_are_refused_and_connected_peers_keep_gossiping() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(
        &base_args(dir.path()),
        &[("DARKSWAP_RELAY_LIMITS__MAX_ESTABLISHED_CONNECTIONS", "2")],
    );
    let (key_a, key_b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let node =
        |key: &Keypair| Network::new(test_config().with_identity(Identity::Keypair(key.clone())));
    let mut a = node(&key_a).await.unwrap();
    let mut b = node(&key_b).await.unwrap();
    assert_eq!(a.dial(relay.tcp_addr.clone()).await.unwrap(), relay.peer_id);
    assert_eq!(b.dial(relay.tcp_addr.clone()).await.unwrap(), relay.peer_id);

    // A flood of dials past the limit: each refused, none hanging.
    tokio::time::timeout(Duration::from_secs(60), async {
        for _ in 0..10 {
            let mut extra = node(&Keypair::generate_ed25519()).await.unwrap();
            // The relay refuses the connection once Noise has told it who is
            // dialing, so the dialer may see it open and then close at once.
            if extra.dial(relay.tcp_addr.clone()).await.is_ok() {
                wait_for(
                    &mut extra,
                    "the relay drops the connection",
                    EVENT_TIMEOUT,
                    |e| {
                        matches!(e, NetworkEvent::PeerDisconnected(p) if *p == relay.peer_id)
                            .then_some(())
                    },
                )
                .await;
            }
            extra.shutdown().await.unwrap();
        }
    })
    .await
    .expect("refusals come in time");
    // Every one of them was refused by the limit, none admitted.
    wait_metric(
        &relay,
        "darkswap_relay_rate_limited_total{plane=\"libp2p\",limit=\"max_established_connections\"}",
        10.0,
    )
    .await;

    // The two admitted peers still gossip through the relay.
    wait_subscribed(&mut a, relay.peer_id).await;
    wait_subscribed(&mut b, relay.peer_id).await;
    let msg = order_message(&key_b, 7);
    b.publish(ORDERBOOK_TOPIC, &msg).await.unwrap();
    assert_eq!(
        wait_message(&mut a, key_b.public().to_peer_id(), ORDERBOOK_TOPIC).await,
        msg
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
