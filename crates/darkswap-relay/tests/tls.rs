//! TLS on the public port: the real `darkswap-relay` binary serving a
//! certificate made by `deploy/generate-certs.sh`, reached by the native
//! signaling client (`wss://`, with the generated CA among its roots), by
//! an HTTPS client (`/auth/*`), and by clients that must not get through: a
//! wrong CA, an expired certificate, plain text, a TLS handshake that never
//! comes or stalls. Then renewed certificates, taken without a restart.
#![cfg(feature = "server")]

use std::{
    net::SocketAddr,
    process::Command,
    time::{Duration, Instant},
};

use darkswap_proto::signaling::close_code;
use darkswap_testkit::RelayProcess;
use darkswap_webrtc::{
    ConnectionState, Keypair, ReconnectPolicy, RelayAuth, SignalingError, SignalingOptions,
    TlsRoots, WebRtcSignalingClient,
};
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::{Connector, tungstenite::Message};

use support::*;

#[path = "support/tls.rs"]
mod support;

const HOSTS: [&str; 2] = ["--hosts", "localhost 127.0.0.1"];

fn client(roots: TlsRoots) -> WebRtcSignalingClient {
    let options = SignalingOptions::default()
        .with_reconnect(ReconnectPolicy::never())
        .with_tls_roots(roots);
    WebRtcSignalingClient::with_options(Keypair::generate_ed25519(), options)
}

fn trusting(certs: &Certs) -> WebRtcSignalingClient {
    client(TlsRoots::with_extra_pem(&certs.ca_pem()).unwrap())
}

fn url(relay: &RelayProcess, host: &str) -> String {
    let port = relay.signaling.expect("signaling on").port();
    format!("wss://{host}:{port}/signaling")
}

/// Connects `client` and expects a refusal of the relay's certificate
/// whose message contains `reason`.
async fn refused(client: &WebRtcSignalingClient, url: &str, reason: &str) {
    match client.connect(url).await {
        Err(SignalingError::Connection(message)) => {
            assert!(message.contains(reason), "{message}")
        }
        other => panic!("expected a certificate refusal, got {other:?}"),
    }
    assert_eq!(client.state(), ConnectionState::Failed);
}

/// Waits (bounded) until the sample `name` of `relay`'s metrics is `value`:
/// the server counts a connection's end just after closing it.
async fn wait_sample(relay: &RelayProcess, name: &str, value: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = sample(&metrics(relay).await, name);
        if now == value {
            return;
        }
        assert!(Instant::now() < deadline, "{name} is {now}, not {value}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_the_generated_ca_registers_over_wss_and_earns_its_token_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(&dir.path().join("certs"), &HOSTS);
    // A closed relay: registering takes a token, earned over https://.
    let relay = start_tls_relay(
        &dir.path().join("relay"),
        &certs,
        &[("DARKSWAP_RELAY_AUTH__ANONYMOUS_ROLE", "guest")],
    );
    let auto = |c: &Certs| {
        let options = SignalingOptions::default()
            .with_auth(RelayAuth::Auto)
            .with_tls_roots(TlsRoots::with_extra_pem(&c.ca_pem()).unwrap());
        WebRtcSignalingClient::with_options(Keypair::generate_ed25519(), options)
    };
    // By name and by address: the certificate has both.
    let a = auto(&certs);
    a.connect(&url(&relay, "localhost")).await.unwrap();
    assert!(a.token().is_some(), "earned over https://");
    let b = auto(&certs);
    let peers = b.connect(&url(&relay, "127.0.0.1")).await.unwrap();
    assert_eq!(peers, vec![a.local_peer_id()], "b sees a");
    assert_eq!(b.relay_url().unwrap().split_once("://").unwrap().0, "wss");

    // The token service itself, to an HTTPS client trusting the CA.
    let ca = reqwest::Certificate::from_pem(&certs.ca_pem()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_merge([ca])
        .build()
        .unwrap();
    let port = relay.signaling.unwrap().port();
    let answer = http
        .post(format!("https://localhost:{port}/auth/challenge"))
        .json(&serde_json::json!({ "peer_id": a.local_peer_id().to_string() }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["relay_peer_id"], relay.peer_id.to_string());
    assert!(body["challenge"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_do_not_trust_the_ca_are_refused_and_the_relay_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(&dir.path().join("certs"), &HOSTS);
    let relay = start_tls_relay(&dir.path().join("relay"), &certs, &[]);
    let url = url(&relay, "localhost");

    // The system's roots only: the relay's CA is none of them.
    refused(&client(TlsRoots::system()), &url, "certificate").await;
    // Another private CA: the wrong one.
    let other = Certs::generate(&dir.path().join("other"), &HOSTS);
    refused(&trusting(&other), &url, "certificate").await;
    let port = relay.signaling.unwrap().port();
    let plain = reqwest::Client::new()
        .post(format!("https://localhost:{port}/auth/challenge"))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");

    // Each refusal was the client's alert in the handshake; the relay
    // counts it and serves the next client.
    wait_sample(
        &relay,
        "darkswap_relay_tls_handshake_failures_total{reason=\"error\"}",
        3.0,
    )
    .await;
    trusting(&certs).connect(&url).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused_by_a_client_trusting_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(&dir.path().join("certs"), &HOSTS);
    let expired = certs.another(
        &dir.path().join("expired"),
        &["--hosts", "localhost 127.0.0.1", "--days", "-1"],
    );
    let relay = start_tls_relay(&dir.path().join("relay"), &expired, &[]);
    refused(&trusting(&certs), &url(&relay, "localhost"), "xpired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_ws_and_http_on_the_tls_port_get_a_400_and_tls_clients_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(&dir.path().join("certs"), &HOSTS);
    let relay = start_tls_relay(&dir.path().join("relay"), &certs, &[]);
    let addr = relay.signaling.unwrap();

    match tokio_tungstenite::connect_async(format!("ws://{addr}/signaling")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(answer)) => {
            assert_eq!(answer.status(), 400)
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    let answer = reqwest::Client::new()
        .post(format!("http://{addr}/auth/challenge"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "this port speaks TLS: use https:// or wss://"
    );

    let a = trusting(&certs);
    a.connect(&url(&relay, "localhost")).await.unwrap();
    let b = trusting(&certs);
    assert_eq!(
        b.connect(&url(&relay, "localhost")).await.unwrap(),
        vec![a.local_peer_id()]
    );
    let plaintext = "darkswap_relay_tls_handshake_failures_total{reason=\"plaintext\"}";
    wait_sample(&relay, plaintext, 2.0).await;
}

/// Reads until the server closes; returns how long that took.
async fn closed_after(mut stream: tokio::net::TcpStream, start: Instant) -> Duration {
    let mut sink = [0u8; 256];
    let read = tokio::time::timeout(WAIT, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    assert!(read.is_ok(), "the server did not close within {WAIT:?}");
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_or_stalled_tls_handshake_is_cut_at_the_head_deadline_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(&dir.path().join("certs"), &HOSTS);
    let relay = start_tls_relay(
        &dir.path().join("relay"),
        &certs,
        &[("DARKSWAP_RELAY_SIGNALING__REQUEST_HEAD_TIMEOUT_SECS", "2")],
    );
    let addr = relay.signaling.unwrap();
    let a = trusting(&certs);
    a.connect(&url(&relay, "localhost")).await.unwrap();

    let start = Instant::now();
    // Opens TCP and never sends a ClientHello.
    let silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Starts a ClientHello (a record header announcing 512 bytes, then one)
    // and stalls.
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    // Meanwhile the relay serves others.
    let b = trusting(&certs);
    assert_eq!(
        b.connect(&url(&relay, "127.0.0.1")).await.unwrap(),
        vec![a.local_peer_id()]
    );
    let (silent, stalled) = tokio::join!(closed_after(silent, start), closed_after(stalled, start));
    for (what, after) in [("silent", silent), ("stalled", stalled)] {
        assert!(
            after >= Duration::from_millis(1900) && after < Duration::from_secs(6),
            "{what} closed after {after:?}, not at the 2 s deadline"
        );
    }
    wait_sample(
        &relay,
        "darkswap_relay_tls_handshake_failures_total{reason=\"timeout\"}",
        2.0,
    )
    .await;
    // Their sockets are given back: only a's and b's are open.
    wait_sample(&relay, "darkswap_relay_public_connections", 2.0).await;
    let page = a.list_peers_page(None, None).await.unwrap();
    assert_eq!(page.peers, vec![b.local_peer_id()], "a is still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_address_limit_a_tls_client_gets_1013_and_a_silent_one_is_counted_as_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(&dir.path().join("certs"), &HOSTS);
    let relay = start_tls_relay(
        &dir.path().join("relay"),
        &certs,
        &[
            ("DARKSWAP_RELAY_LIMITS__MAX_CONNECTIONS_PER_IP", "2"),
            ("DARKSWAP_RELAY_SIGNALING__REQUEST_HEAD_TIMEOUT_SECS", "10"),
        ],
    );
    let addr = relay.signaling.unwrap();
    let a = trusting(&certs);
    a.connect(&url(&relay, "127.0.0.1")).await.unwrap();
    // The address's second and last place, held silently until its deadline.
    let _holder = tokio::net::TcpStream::connect(addr).await.unwrap();
    wait_sample(&relay, "darkswap_relay_public_connections", 2.0).await;

    // Over the limit: a silent connection is let go within the refusal's
    // bound, counted as never heard from.
    let start = Instant::now();
    let silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let after = closed_after(silent, start).await;
    assert!(after < Duration::from_secs(5), "{after:?}");
    wait_sample(
        &relay,
        "darkswap_relay_rate_limited_total{plane=\"tcp\",limit=\"max_connections_per_ip\"}",
        1.0,
    )
    .await;

    // A TLS client over the limit completes its handshake and upgrade and
    // is told to come back later, as a plain one would be.
    let connector = Connector::Rustls(client_config(&certs.ca_pem()));
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        url(&relay, "localhost"),
        None,
        false,
        Some(connector),
    )
    .await
    .unwrap();
    let frame = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    match frame {
        Some(Ok(Message::Close(Some(close)))) => {
            assert_eq!(u16::from(close.code), close_code::TRY_AGAIN_LATER)
        }
        other => panic!("expected close 1013, got {other:?}"),
    }
    wait_sample(
        &relay,
        "darkswap_relay_rate_limited_total{plane=\"ws\",limit=\"max_connections_per_ip\"}",
        1.0,
    )
    .await;
    assert_eq!(a.state(), ConnectionState::Connected);
}

fn sighup(relay: &RelayProcess) {
    let status = Command::new("kill")
        .args(["-HUP", &relay.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The address of `relay`'s libp2p `/tls/ws` listener.
fn libp2p_wss(relay: &RelayProcess) -> SocketAddr {
    let addr = relay.wss_addr.as_ref().expect("a /tls/ws listener");
    let port = addr
        .iter()
        .find_map(|p| match p {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let first = Certs::generate(&dir.path().join("first"), &HOSTS);
    let renewed = first.another(&dir.path().join("renewed"), &HOSTS);
    // The files the relay reads, replaced whole as a renewal does.
    let live = first.another(&dir.path().join("live"), &HOSTS);
    live.replace_with(&first);
    let ca = first.ca_pem();
    let relay = start_tls_relay(
        &dir.path().join("relay"),
        &live,
        &[("DARKSWAP_RELAY_TLS__RELOAD_INTERVAL_SECS", "0")],
    );
    let (public, libp2p) = (relay.signaling.unwrap(), libp2p_wss(&relay));
    assert_eq!(served_leaf(public, "localhost", &ca).await, first.leaf());
    assert_eq!(served_leaf(libp2p, "127.0.0.1", &ca).await, first.leaf());

    // SIGHUP: both listeners take the renewed pair.
    live.replace_with(&renewed);
    sighup(&relay);
    wait_log(&relay, "SIGHUP: TLS certificate reloaded");
    assert_eq!(served_leaf(public, "localhost", &ca).await, renewed.leaf());
    assert_eq!(served_leaf(libp2p, "127.0.0.1", &ca).await, renewed.leaf());
    // A client registered before and after.
    trusting(&first)
        .connect(&url(&relay, "localhost"))
        .await
        .unwrap();

    // A broken key: logged, and the renewed pair stays in use everywhere.
    std::fs::write(live.key(), b"not a key").unwrap();
    sighup(&relay);
    let error = wait_log(
        &relay,
        "SIGHUP: TLS certificate not reloaded; the one in use stays",
    );
    assert!(
        error["error"].as_str().unwrap().contains("relay-key.pem"),
        "{error}"
    );
    assert_eq!(served_leaf(public, "localhost", &ca).await, renewed.leaf());
    assert_eq!(served_leaf(libp2p, "127.0.0.1", &ca).await, renewed.leaf());
    let text = metrics(&relay).await;
    assert_eq!(
        sample(&text, "darkswap_relay_tls_reloads_total{result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "darkswap_relay_tls_reloads_total{result=\"error\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_files_are_picked_up_at_the_next_check() {
    let dir = tempfile::tempdir().unwrap();
    let first = Certs::generate(&dir.path().join("first"), &HOSTS);
    let renewed = first.another(&dir.path().join("renewed"), &HOSTS);
    let live = first.another(&dir.path().join("live"), &HOSTS);
    live.replace_with(&first);
    let ca = first.ca_pem();
    let relay = start_tls_relay(
        &dir.path().join("relay"),
        &live,
        &[("DARKSWAP_RELAY_TLS__RELOAD_INTERVAL_SECS", "1")],
    );
    assert_eq!(
        served_leaf(relay.signaling.unwrap(), "localhost", &ca).await,
        first.leaf()
    );
    live.replace_with(&renewed);
    let loaded = wait_log(&relay, "TLS certificate loaded");
    assert!(loaded["not_after"].as_i64().unwrap() > 0);
    assert_eq!(
        served_leaf(relay.signaling.unwrap(), "localhost", &ca).await,
        renewed.leaf()
    );
    let text = metrics(&relay).await;
    let expiry = sample(
        &text,
        "darkswap_relay_tls_certificate_expiry_timestamp_seconds",
    );
    assert_eq!(expiry, loaded["not_after"].as_i64().unwrap() as f64);
}
