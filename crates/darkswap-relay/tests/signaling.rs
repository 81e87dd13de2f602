//! The signaling server and relayed circuits, on 127.0.0.1 port 0, driven
//! by real WebSocket clients: every documented error and close code, and
//! proof that one misbehaving client does not disturb the others.
#![cfg(feature = "server")]

use std::{sync::Arc, time::Duration};

use darkswap_proto::{
    relay_auth::{Role, sign_token_request},
    signaling::{close_code, sign_registration},
};
use darkswap_relay::{
    SignalingServer,
    config::{RateLimit, RelayConfig, SignalingConfig, WsCircuitConfig},
    metrics::SecurityMetrics,
    token_authority::TokenAuthority,
};
use futures::{SinkExt, StreamExt};
use libp2p::identity::Keypair;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

struct Server {
    server: Option<SignalingServer>,
    cancel: CancellationToken,
    registry: Registry,
    authority: Arc<TokenAuthority>,
}

impl Server {
    async fn start(tune: impl FnOnce(&mut SignalingConfig, &mut WsCircuitConfig)) -> Self {
        Self::start_with(|c| tune(&mut c.signaling, &mut c.ws_circuit)).await
    }

    async fn start_with(tune: impl FnOnce(&mut RelayConfig)) -> Self {
        let mut config = RelayConfig::default();
        config.signaling.listen = "127.0.0.1:0".parse().unwrap();
        tune(&mut config);
        let cancel = CancellationToken::new();
        let mut registry = Registry::default();
        let authority = Arc::new(
            TokenAuthority::new(
                &Keypair::generate_ed25519(),
                config.tokens.clone(),
                None,
                Arc::new(SecurityMetrics::register(&mut registry)),
            )
            .unwrap(),
        );
        let server =
            SignalingServer::bind(&config, authority.clone(), &mut registry, cancel.clone())
                .await
                .unwrap();
        Server {
            server: Some(server),
            cancel,
            registry,
            authority,
        }
    }

    fn url(&self, path: &str) -> String {
        let addr = self.server.as_ref().unwrap().local_addr();
        format!("ws://{addr}{path}")
    }

    fn metric(&self, sample: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    async fn stop(mut self) {
        self.cancel.cancel();
        tokio::time::timeout(WAIT, self.server.take().unwrap().stopped())
            .await
            .expect("server stopped");
    }
}

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client speaking raw frames, so tests can send anything.
struct Client {
    ws: Socket,
    key: Keypair,
}

impl Client {
    async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Client {
            ws,
            key: Keypair::generate_ed25519(),
        }
    }

    /// Connects to `/signaling` and registers with a fresh key.
    async fn registered(server: &Server) -> Self {
        let mut c = Client::connect(&server.url("/signaling")).await;
        let challenge = c.recv().await;
        let register = sign_registration(&c.key, challenge["nonce"].as_str().unwrap()).unwrap();
        c.send_text(&register.to_json()).await;
        let reply = c.recv().await;
        assert_eq!(reply["type"], "registered", "{reply}");
        c
    }

    fn id(&self) -> String {
        self.key.public().to_peer_id().to_string()
    }

    async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    async fn send(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// The next JSON message; panics on close or timeout.
    async fn recv(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message in time")
                .expect("socket open")
                .expect("frame");
            match frame {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }

    /// The next JSON message whose type is `kind`, skipping peer_joined/left.
    async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == kind {
                return v;
            }
            assert!(
                v["type"] == "peer_joined" || v["type"] == "peer_left",
                "expected {kind}, got {v}"
            );
        }
    }

    async fn recv_binary(&mut self) -> Vec<u8> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("socket open")
                .expect("frame");
            match frame {
                Message::Binary(b) => return b.to_vec(),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }

    /// Reads until the server closes; returns the close code and reason.
    async fn closed(&mut self) -> (u16, String) {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close in time");
            match frame {
                Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
                Some(Ok(Message::Close(None))) | None => return (1005, String::new()),
                Some(Err(e)) => panic!("closed without a close frame: {e}"),
                Some(Ok(_)) => {}
            }
        }
    }

    async fn expect_error(&mut self, code: &str) -> Value {
        let v = self.recv_type("error").await;
        assert_eq!(v["code"], code, "{v}");
        v
    }
}

/// `a` and `b` can still talk: an offer from `a` reaches `b`, stamped.
async fn still_routing(a: &mut Client, b: &mut Client) {
    let sdp = format!("v=0 check {}", rand_suffix());
    a.send(json!({"type":"offer","to":b.id(),"sdp":sdp})).await;
    let got = b.recv_type("offer").await;
    assert_eq!((&got["from"], &got["sdp"]), (&json!(a.id()), &json!(sdp)));
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test]
async fn peers_register_see_each_other_and_exchange_offers_answers_and_candidates() {
    let server = Server::start(|_, _| {}).await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::connect(&server.url("/signaling")).await;
    let challenge = b.recv().await;
    let register = sign_registration(&b.key, challenge["nonce"].as_str().unwrap()).unwrap();
    b.send_text(&register.to_json()).await;
    let registered = b.recv().await;
    assert_eq!(registered["peers"], json!([a.id()]));
    assert_eq!(
        a.recv().await,
        json!({"type":"peer_joined","peer_id":b.id()})
    );

    a.send(json!({"type":"offer","to":b.id(),"sdp":"v=0 offer","session":"s1"}))
        .await;
    assert_eq!(
        b.recv().await,
        json!({"type":"offer","from":a.id(),"sdp":"v=0 offer","session":"s1"})
    );
    b.send(json!({"type":"answer","to":a.id(),"sdp":"v=0 answer","session":"s1"}))
        .await;
    assert_eq!(
        a.recv().await,
        json!({"type":"answer","from":b.id(),"sdp":"v=0 answer","session":"s1"})
    );
    let candidate = json!({"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0});
    b.send(json!({"type":"candidate","to":a.id(),"candidate":candidate}))
        .await;
    assert_eq!(
        a.recv().await,
        json!({"type":"candidate","from":b.id(),"candidate":candidate})
    );
    a.send(json!({"type":"list_peers"})).await;
    assert_eq!(a.recv().await, json!({"type":"peers","peers":[b.id()]}));
    a.send(json!({"type":"ping","id":42})).await;
    assert_eq!(a.recv().await, json!({"type":"pong","id":42}));

    drop(b);
    assert_eq!(
        a.recv().await,
        json!({"type":"peer_left","peer_id":registered["peer_id"]})
    );
    assert_eq!(
        server.metric("darkswap_relay_signaling_messages_total{type=\"offer\"}"),
        1.0
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_its_documented_error_and_other_clients_are_unaffected() {
    let server = Server::start(|_, _| {}).await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    let mut x = Client::registered(&server).await;

    x.send_text("{not json").await;
    x.expect_error("invalid_json").await;
    x.send_text("[1,2,3]").await;
    x.expect_error("invalid_json").await;
    x.send(json!({"type":"teleport","to":a.id()})).await;
    let e = x.expect_error("unknown_type").await;
    assert_eq!(e["in_reply_to"], "teleport");
    x.send(json!({"type":"offer","sdp":"v=0"})).await;
    let e = x.expect_error("invalid_message").await;
    assert!(e["message"].as_str().unwrap().contains("to"), "{e}");
    let stranger = Keypair::generate_ed25519()
        .public()
        .to_peer_id()
        .to_string();
    x.send(json!({"type":"offer","to":stranger,"sdp":"v=0"}))
        .await;
    x.expect_error("unknown_peer").await;
    x.send(json!({"type":"offer","to":"not a peer id","sdp":"v=0"}))
        .await;
    x.expect_error("unknown_peer").await;
    // x pretends to be a when writing to b: b gets nothing of it.
    x.send(json!({"type":"offer","to":b.id(),"from":a.id(),"sdp":"v=0 spoof"}))
        .await;
    x.expect_error("spoofed_sender").await;
    x.send(json!({"type":"circuit_accept","circuit_id":"deadbeef"}))
        .await;
    x.expect_error("unknown_circuit").await;
    // Still served after all that.
    still_routing(&mut x, &mut b).await;
    still_routing(&mut a, &mut b).await;

    // An oversized frame closes x's socket with 1009, and only x's.
    x.send_text(&json!({"type":"ping","id":"x".repeat(70_000)}).to_string())
        .await;
    assert_eq!(x.closed().await.0, close_code::TOO_BIG);
    // Binary frames are not signaling.
    let mut y = Client::registered(&server).await;
    y.ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(y.closed().await.0, close_code::UNSUPPORTED_DATA);
    still_routing(&mut b, &mut a).await;

    assert!(server.metric("darkswap_relay_signaling_errors_total{code=\"spoofed_sender\"}") >= 1.0);
    server.stop().await;
}

#[tokio::test]
async fn a_stolen_or_taken_peer_id_is_refused_and_its_owner_keeps_it() {
    let server = Server::start(|_, _| {}).await;
    let mut owner = Client::registered(&server).await;
    let mut other = Client::registered(&server).await;

    // A thief claims the owner's id but can only sign with its own key.
    let mut thief = Client::connect(&server.url("/signaling")).await;
    let challenge = thief.recv().await;
    let signed = sign_registration(&thief.key, challenge["nonce"].as_str().unwrap()).unwrap();
    let mut forged: Value = serde_json::from_str(&signed.to_json()).unwrap();
    forged["peer_id"] = json!(owner.id());
    thief.send(forged).await;
    thief.expect_error("bad_signature").await;
    assert_eq!(thief.closed().await.0, close_code::REGISTER_REFUSED);

    // Replaying the owner's answer to another challenge does not work either.
    let mut replayer = Client::connect(&server.url("/signaling")).await;
    replayer.recv().await;
    let stale =
        sign_registration(&owner.key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    replayer.send_text(&stale.to_json()).await;
    replayer.expect_error("bad_signature").await;
    assert_eq!(replayer.closed().await.0, close_code::REGISTER_REFUSED);

    // The owner's own key on a second socket: taken.
    let mut twin = Client::connect(&server.url("/signaling")).await;
    twin.key = owner.key.clone();
    let challenge = twin.recv().await;
    let register = sign_registration(&twin.key, challenge["nonce"].as_str().unwrap()).unwrap();
    twin.send_text(&register.to_json()).await;
    twin.expect_error("already_registered").await;
    assert_eq!(twin.closed().await.0, close_code::REGISTER_REFUSED);

    // Before registering, nothing but ping.
    let mut fresh = Client::connect(&server.url("/signaling")).await;
    fresh.recv().await;
    fresh
        .send(json!({"type":"offer","to":owner.id(),"sdp":"v=0"}))
        .await;
    fresh.expect_error("not_registered").await;

    still_routing(&mut other, &mut owner).await;
    still_routing(&mut owner, &mut other).await;
    server.stop().await;
}

#[tokio::test]
async fn a_flood_is_dropped_then_closed_and_others_are_unaffected() {
    let server = Server::start(|s, _| {
        s.messages_per_second = 5.try_into().unwrap();
        s.message_burst = 5.try_into().unwrap();
        s.max_rate_violations = 20;
    })
    .await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    let mut flooder = Client::registered(&server).await;
    for n in 0..200 {
        // The server may close the socket mid-flood: stop sending then.
        if flooder
            .ws
            .send(Message::text(json!({"type":"ping","id":n}).to_string()))
            .await
            .is_err()
        {
            break;
        }
    }
    let (mut pongs, mut limited) = (0, 0);
    let code = loop {
        let frame = tokio::time::timeout(WAIT, flooder.ws.next())
            .await
            .expect("flood answered in time");
        match frame {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                match v["type"].as_str() {
                    Some("pong") => pongs += 1,
                    Some("error") => {
                        assert_eq!(v["code"], "rate_limited", "{v}");
                        limited += 1;
                    }
                    _ => {}
                }
            }
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, close_code::POLICY);
    // Pongs come back through the hub and may be cut off by the close.
    assert!(pongs < 200, "{pongs} pongs");
    // Each dropped message is answered; a message that the refilling bucket
    // lets through mid-flood resets the count, so there may be more.
    assert!(limited >= 20, "{limited} rate_limited errors");
    still_routing(&mut a, &mut b).await;
    still_routing(&mut b, &mut a).await;
    server.stop().await;
}

#[tokio::test]
async fn silent_sockets_are_closed_by_the_registration_and_idle_timeouts() {
    let server = Server::start(|s, _| {
        s.register_timeout = Duration::from_secs(1);
        s.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut lurker = Client::connect(&server.url("/signaling")).await;
    assert_eq!(lurker.recv().await["type"], "challenge");
    assert_eq!(lurker.closed().await.0, close_code::REGISTER_TIMEOUT);

    // A registered socket that stops reading answers no ping: after the
    // idle timeout it is closed. (Waiting out the timeout is the point.)
    let mut sleeper = Client::registered(&server).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(sleeper.closed().await.0, close_code::IDLE_TIMEOUT);
    server.stop().await;
}

/// Opens a circuit from `a` to `b`; returns its id and both `/relay` sockets,
/// after both got `open`.
async fn open_circuit(server: &Server, a: &mut Client, b: &mut Client) -> (String, Client, Client) {
    a.send(json!({"type":"circuit_request","to":b.id()})).await;
    let pending = a.recv_type("circuit_pending").await;
    let request = b.recv_type("circuit_request").await;
    let id = request["circuit_id"].as_str().unwrap().to_owned();
    assert_eq!(
        (&pending["circuit_id"], &request["from"]),
        (&json!(id), &json!(a.id()))
    );
    b.send(json!({"type":"circuit_accept","circuit_id":id}))
        .await;
    let ready_a = a.recv_type("circuit_ready").await;
    let ready_b = b.recv_type("circuit_ready").await;
    assert_eq!(
        (&ready_a["peer"], &ready_b["peer"]),
        (&json!(b.id()), &json!(a.id()))
    );
    let mut ra = Client::connect(&server.url("/relay")).await;
    let mut rb = Client::connect(&server.url("/relay")).await;
    ra.send(json!({"type":"attach","circuit_id":id,"token":ready_a["token"]}))
        .await;
    assert_eq!(ra.recv().await, json!({"type":"attached","circuit_id":id}));
    // Frames sent before the circuit opens are refused, not queued.
    ra.ws.send(Message::binary(vec![0u8; 4])).await.unwrap();
    ra.expect_error("circuit_not_open").await;
    rb.send(json!({"type":"attach","circuit_id":id,"token":ready_b["token"]}))
        .await;
    assert_eq!(rb.recv().await, json!({"type":"attached","circuit_id":id}));
    assert_eq!(rb.recv().await, json!({"type":"open","circuit_id":id}));
    assert_eq!(ra.recv().await, json!({"type":"open","circuit_id":id}));
    (id, ra, rb)
}

#[tokio::test]
async fn a_relayed_circuit_carries_frames_both_ways_and_closes_with_either_side() {
    let server = Server::start(|_, _| {}).await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    let (id, mut ra, mut rb) = open_circuit(&server, &mut a, &mut b).await;

    for n in 0u32..50 {
        let frame: Vec<u8> = n.to_be_bytes().iter().cycle().take(1000).copied().collect();
        ra.ws.send(Message::binary(frame.clone())).await.unwrap();
        assert_eq!(rb.recv_binary().await, frame);
        rb.ws
            .send(Message::binary(frame[..10].to_vec()))
            .await
            .unwrap();
        assert_eq!(ra.recv_binary().await, &frame[..10]);
    }
    assert_eq!(
        server.metric("darkswap_relay_ws_bytes_forwarded_total"),
        50.0 * 1010.0
    );
    assert_eq!(server.metric("darkswap_relay_ws_circuits_active"), 1.0);

    // Text after attach is a protocol error on /relay.
    rb.send(json!({"type":"ping"})).await;
    assert_eq!(rb.closed().await.0, close_code::UNSUPPORTED_DATA);
    // b's socket leaving closes the circuit for both.
    assert_eq!(
        a.recv_type("circuit_closed").await,
        json!({"type":"circuit_closed","circuit_id":id,"reason":"closed"})
    );
    assert_eq!(b.recv_type("circuit_closed").await["reason"], "closed");
    assert_eq!(
        ra.closed().await,
        (close_code::CIRCUIT_CLOSED, "closed".to_owned())
    );
    assert_eq!(server.metric("darkswap_relay_ws_circuits_active"), 0.0);

    // A client closing its /relay socket gets the close handshake completed.
    let (id, mut ra, mut rb) = open_circuit(&server, &mut a, &mut b).await;
    ra.ws.close(None).await.unwrap();
    let reply = tokio::time::timeout(WAIT, ra.ws.next()).await.unwrap();
    assert!(
        matches!(reply, Some(Ok(Message::Close(_))) | None),
        "{reply:?}"
    );
    assert_eq!(
        rb.closed().await,
        (close_code::CIRCUIT_CLOSED, "closed".to_owned())
    );
    assert_eq!(a.recv_type("circuit_closed").await["circuit_id"], json!(id));
    b.recv_type("circuit_closed").await;

    // A new circuit ends when a peer leaves signaling.
    let (id, mut ra, _rb) = open_circuit(&server, &mut a, &mut b).await;
    drop(b);
    assert_eq!(
        a.recv_type("circuit_closed").await,
        json!({"type":"circuit_closed","circuit_id":id,"reason":"peer_left"})
    );
    assert_eq!(ra.closed().await.1, "peer_left");
    server.stop().await;
}

#[tokio::test]
async fn circuit_limits_bytes_idle_rejection_and_wrong_tokens() {
    let server = Server::start(|_, r| {
        r.max_circuits_per_peer = 1;
        r.max_circuit_bytes = 10_000;
        r.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    let mut c = Client::registered(&server).await;

    let (id, mut ra, mut rb) = open_circuit(&server, &mut a, &mut b).await;
    // One circuit per peer: a is busy.
    c.send(json!({"type":"circuit_request","to":a.id()})).await;
    c.expect_error("circuit_limit").await;
    // The byte limit: 4 KiB frames, the third crosses 10 000 bytes.
    for _ in 0..2 {
        ra.ws.send(Message::binary(vec![7u8; 4096])).await.unwrap();
        assert_eq!(rb.recv_binary().await.len(), 4096);
    }
    ra.ws.send(Message::binary(vec![7u8; 4096])).await.unwrap();
    assert_eq!(
        a.recv_type("circuit_closed").await,
        json!({"type":"circuit_closed","circuit_id":id,"reason":"byte_limit"})
    );
    assert_eq!(
        rb.closed().await,
        (close_code::CIRCUIT_CLOSED, "byte_limit".to_owned())
    );
    assert_eq!(b.recv_type("circuit_closed").await["reason"], "byte_limit");

    // Idle: nothing sent for a second.
    let (id, _ra, _rb) = open_circuit(&server, &mut a, &mut b).await;
    assert_eq!(
        b.recv_type("circuit_closed").await,
        json!({"type":"circuit_closed","circuit_id":id,"reason":"idle_timeout"})
    );
    a.recv_type("circuit_closed").await;

    // A refusal reaches the requester.
    c.send(json!({"type":"circuit_request","to":a.id()})).await;
    c.recv_type("circuit_pending").await;
    let request = a.recv_type("circuit_request").await;
    a.send(json!({"type":"circuit_reject","circuit_id":request["circuit_id"],"reason":"busy"}))
        .await;
    let rejected = c.recv_type("circuit_rejected").await;
    assert_eq!(
        (&rejected["peer"], &rejected["reason"]),
        (&json!(a.id()), &json!("busy"))
    );

    // A made-up token on /relay.
    let mut r = Client::connect(&server.url("/relay")).await;
    r.send(json!({"type":"attach","circuit_id":request["circuit_id"],"token":"AAAAAAAAAAAAAAAAAAAAAA=="}))
        .await;
    r.expect_error("unknown_circuit").await;
    assert_eq!(r.closed().await.0, close_code::CIRCUIT_CLOSED);
    assert_eq!(
        server.metric("darkswap_relay_ws_circuits_closed_total{reason=\"byte_limit\"}"),
        1.0
    );
    assert_eq!(
        server.metric("darkswap_relay_ws_circuits_denied_total{reason=\"limit\"}"),
        1.0
    );
    server.stop().await;
}

/// Sends 1 MiB in 64 KiB frames over a fresh circuit; checks every frame
/// arrives intact and in order; returns how long it took.
async fn send_a_mebibyte(server: &Server) -> Duration {
    let mut a = Client::registered(server).await;
    let mut b = Client::registered(server).await;
    let (_, ra, mut rb) = open_circuit(server, &mut a, &mut b).await;
    let start = std::time::Instant::now();
    let (mut sink, _) = ra.ws.split();
    let sender = tokio::spawn(async move {
        for n in 0u8..16 {
            sink.send(Message::binary(vec![n; 64 * 1024]))
                .await
                .unwrap();
        }
        sink
    });
    for n in 0u8..16 {
        assert_eq!(rb.recv_binary().await, vec![n; 64 * 1024]);
    }
    let elapsed = start.elapsed();
    drop(sender.await.unwrap());
    elapsed
}

#[tokio::test]
async fn bandwidth_limits_slow_a_circuit_down_without_losing_frames() {
    let server = Server::start(|_, r| {
        r.bandwidth_per_circuit = 256 * 1024;
        r.max_frame_size = 64 * 1024;
    })
    .await;
    // 1 MiB at 256 KiB/s with a 256 KiB burst takes about three seconds.
    let elapsed = send_a_mebibyte(&server).await;
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    server.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_refused_and_shutdown_closes_sockets_with_1001() {
    let server = Server::start(|_, _| {}).await;
    assert!(
        tokio_tungstenite::connect_async(server.url("/nope"))
            .await
            .is_err()
    );
    let mut a = Client::registered(&server).await;
    server.cancel.cancel();
    assert_eq!(a.closed().await.0, close_code::GOING_AWAY);
    server.stop().await;
}

#[tokio::test]
async fn the_signaling_server_example_serves_registrations() {
    let bin = darkswap_testkit::target_binary("examples/signaling_server");
    let mut child = tokio::process::Command::new(bin)
        .arg("127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = first.strip_prefix("signaling: ").expect(&first).to_owned();
    let mut c = Client::connect(&url).await;
    let challenge = c.recv().await;
    let register = sign_registration(&c.key, challenge["nonce"].as_str().unwrap()).unwrap();
    c.send_text(&register.to_json()).await;
    assert_eq!(c.recv().await["type"], "registered");
}

// ---- Tokens, roles and connection limits --------------------------------

impl Server {
    fn http_url(&self, path: &str) -> String {
        let addr = self.server.as_ref().unwrap().local_addr();
        format!("http://{addr}{path}")
    }

    /// POSTs JSON; returns status, `Retry-After`/`WWW-Authenticate` and body.
    async fn post(&self, path: &str, bearer: Option<&str>, body: &str) -> Reply {
        let mut request = reqwest::Client::new()
            .post(self.http_url(path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (retry_after, www_authenticate) = (header("retry-after"), header("www-authenticate"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        Reply {
            status,
            retry_after,
            www_authenticate,
            body: serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text:?}")),
        }
    }

    /// Runs the challenge → token exchange for `key`.
    async fn token_for(&self, key: &Keypair) -> String {
        let peer = key.public().to_peer_id().to_string();
        let challenge = self
            .post(
                "/auth/challenge",
                None,
                &json!({"peer_id": peer}).to_string(),
            )
            .await;
        assert_eq!(challenge.status, 200, "{:?}", challenge.body);
        let relay: libp2p::PeerId = challenge.body["relay_peer_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let request =
            sign_token_request(key, &relay, challenge.body["challenge"].as_str().unwrap()).unwrap();
        let reply = self
            .post(
                "/auth/token",
                None,
                &serde_json::to_string(&request).unwrap(),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.body["token"].as_str().unwrap().to_owned()
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    retry_after: Option<String>,
    www_authenticate: Option<String>,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Client {
    /// Connects offering a token the way browsers can: as a subprotocol
    /// beside `darkswap.v1`.
    async fn with_token(url: &str, key: Keypair, token: &str) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            format!("darkswap.v1, darkswap-token.{token}")
                .parse()
                .unwrap(),
        );
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "darkswap.v1",
            "the server selects darkswap.v1 and never echoes the token"
        );
        Client { ws, key }
    }

    /// Answers the challenge with this client's key; returns the reply.
    async fn register(&mut self) -> Value {
        let challenge = self.recv().await;
        let register = sign_registration(&self.key, challenge["nonce"].as_str().unwrap()).unwrap();
        self.send_text(&register.to_json()).await;
        self.recv().await
    }
}

fn closed_relay(tune: impl FnOnce(&mut RelayConfig)) -> impl FnOnce(&mut RelayConfig) {
    move |c: &mut RelayConfig| {
        c.tokens.anonymous_role = Role::Guest;
        tune(c);
    }
}

#[tokio::test]
async fn on_a_closed_relay_only_a_token_holder_registers_and_only_as_itself() {
    let server = Server::start_with(closed_relay(|_| {})).await;
    let url = server.url("/signaling");

    // No token: refused at registration with 4004.
    let mut anonymous = Client::connect(&url).await;
    let reply = anonymous.register().await;
    assert_eq!(
        (&reply["type"], &reply["code"]),
        (&json!("error"), &json!("unauthorized"))
    );
    assert_eq!(anonymous.closed().await.0, close_code::UNAUTHORIZED);

    // A token from /auth/token opens it.
    let key = Keypair::generate_ed25519();
    let token = server.token_for(&key).await;
    let mut honest = Client::with_token(&url, key.clone(), &token).await;
    assert_eq!(honest.register().await["type"], "registered");

    // The same token with another key: refused, the honest one unaffected.
    let mut thief = Client::with_token(&url, Keypair::generate_ed25519(), &token).await;
    let reply = thief.register().await;
    assert_eq!(reply["code"], "unauthorized", "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("another peer"),
        "{reply}"
    );
    assert_eq!(thief.closed().await.0, close_code::UNAUTHORIZED);

    // Bad tokens are refused at once, each naming why.
    let other_relay = TokenAuthority::new(
        &Keypair::generate_ed25519(),
        Default::default(),
        None,
        Arc::new(SecurityMetrics::default()),
    )
    .unwrap();
    let peer = Keypair::generate_ed25519();
    let (foreign, _) = other_relay
        .issue(
            &peer.public().to_peer_id(),
            Role::Admin,
            Duration::from_secs(60),
        )
        .unwrap();
    for (bad, why) in [("not-a-jwt", "malformed"), (foreign.as_str(), "signature")] {
        let mut c = Client::with_token(&url, peer.clone(), bad).await;
        let reply = c.expect_error("unauthorized").await;
        assert!(
            reply["message"].as_str().unwrap().contains(why),
            "{why}: {reply}"
        );
        assert_eq!(
            c.closed().await,
            (close_code::UNAUTHORIZED, "invalid token".to_owned())
        );
    }
    // Authorization: Bearer works for native clients too.
    {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let key = Keypair::generate_ed25519();
        let token = server.token_for(&key).await;
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut native = Client { ws, key };
        assert_eq!(native.register().await["type"], "registered");
    }
    let mut second = Client::with_token(&url, peer.clone(), &server.token_for(&peer).await).await;
    assert_eq!(second.register().await["type"], "registered");
    still_routing(&mut honest, &mut second).await;
    assert!(server.metric("darkswap_relay_auth_rejected_total{reason=\"malformed\"}") >= 1.0);
    assert!(server.metric("darkswap_relay_auth_rejected_total{reason=\"bad_signature\"}") >= 1.0);
    assert_eq!(
        server.metric("darkswap_relay_access_denied_total{action=\"signaling\"}"),
        1.0
    );
    server.stop().await;
}

#[tokio::test]
async fn the_token_service_refuses_bad_requests_refreshes_and_revokes() {
    let admin = Keypair::generate_ed25519();
    let admin_id = admin.public().to_peer_id();
    let server = Server::start_with(|c| c.tokens.admins = vec![admin_id]).await;
    let key = Keypair::generate_ed25519();
    let peer = key.public().to_peer_id().to_string();

    // Malformed bodies and ids.
    for (body, status) in [
        ("{", 400),
        (r#"{"peer_id": 5}"#, 400),
        (r#"{"peer_id": "x", "extra": 1}"#, 400),
        (r#"{"peer_id": "not-a-peer"}"#, 400),
    ] {
        let reply = server.post("/auth/challenge", None, body).await;
        assert_eq!(reply.status, status, "{body}: {:?}", reply.body);
        assert!(
            !reply.code().is_empty(),
            "{body}: a JSON error {:?}",
            reply.body
        );
    }
    assert_eq!(server.post("/auth/nothing", None, "{}").await.status, 404);
    // Pages of other origins may call it (CORS preflight answered).
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, server.http_url("/auth/challenge"))
        .header("origin", "http://page.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");

    // A proof for another relay, and a replayed challenge.
    let challenge = server
        .post(
            "/auth/challenge",
            None,
            &json!({"peer_id": peer}).to_string(),
        )
        .await;
    let c = challenge.body["challenge"].as_str().unwrap();
    let wrong = sign_token_request(&key, &libp2p::PeerId::random(), c).unwrap();
    let wrong = serde_json::to_string(&wrong).unwrap();
    let reply = server.post("/auth/token", None, &wrong).await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "bad_proof"),
        "{:?}",
        reply.body
    );
    // The challenge was used up by that attempt.
    let right = sign_token_request(&key, &server.authority.relay(), c).unwrap();
    let reply = server
        .post("/auth/token", None, &serde_json::to_string(&right).unwrap())
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "unknown_challenge"),
        "{:?}",
        reply.body
    );
    let token = server.token_for(&key).await;

    // Refresh: needs a bearer token; gives a new one and retires the old.
    let reply = server.post("/auth/refresh", None, "").await;
    assert_eq!((reply.status, reply.code()), (401, "missing_token"));
    assert!(reply.www_authenticate.unwrap().starts_with("Bearer"));
    let reply = server.post("/auth/refresh", Some(&token), "").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let fresh = reply.body["token"].as_str().unwrap().to_owned();
    let reply = server.post("/auth/refresh", Some(&token), "").await;
    assert_eq!((reply.status, reply.code()), (401, "revoked"));

    // Revoke: admins only.
    let body = json!({"peer_id": peer}).to_string();
    let reply = server.post("/auth/revoke", Some(&fresh), &body).await;
    assert_eq!((reply.status, reply.code()), (403, "forbidden"));
    let admin_token = server.token_for(&admin).await;
    let reply = server
        .post("/auth/revoke", Some(&admin_token), r#"{}"#)
        .await;
    assert_eq!((reply.status, reply.code()), (400, "invalid_request"));

    // A socket holding the token is closed when it is revoked.
    let mut holder = Client::with_token(&server.url("/signaling"), key.clone(), &fresh).await;
    assert_eq!(holder.register().await["type"], "registered");
    let reply = server.post("/auth/revoke", Some(&admin_token), &body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        holder.closed().await,
        (close_code::UNAUTHORIZED, "token revoked".to_owned())
    );
    let reply = server.post("/auth/refresh", Some(&fresh), "").await;
    assert_eq!((reply.status, reply.code()), (401, "revoked"));

    // The admin's own token still works.
    let reply = server.post("/auth/refresh", Some(&admin_token), "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["role"], "admin");
    assert_eq!(
        server.metric("darkswap_relay_auth_revocations_total{action=\"peer\"}"),
        1.0
    );
    assert_eq!(
        server.metric("darkswap_relay_access_denied_total{action=\"revoke\"}"),
        1.0
    );
    server.stop().await;
}

#[tokio::test]
async fn a_refresh_keeps_the_open_socket_and_retires_the_old_token() {
    let server = Server::start_with(closed_relay(|_| {})).await;
    let url = server.url("/signaling");
    let key = Keypair::generate_ed25519();
    let old = server.token_for(&key).await;
    let mut c = Client::with_token(&url, key.clone(), &old).await;
    assert_eq!(c.register().await["type"], "registered");
    let reply = server.post("/auth/refresh", Some(&old), "").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let new = reply.body["token"].as_str().unwrap().to_owned();

    // The socket opened with the old token is still served...
    let mut other = Client::with_token(
        &url,
        Keypair::generate_ed25519(),
        &server.token_for(&Keypair::generate_ed25519()).await,
    )
    .await;
    let reply = other.register().await;
    assert_eq!(
        reply["code"], "unauthorized",
        "a token of another peer: {reply}"
    );
    let peer = Keypair::generate_ed25519();
    let mut peer_socket =
        Client::with_token(&url, peer.clone(), &server.token_for(&peer).await).await;
    assert_eq!(peer_socket.register().await["type"], "registered");
    still_routing(&mut c, &mut peer_socket).await;

    // ...but the old token opens nothing new; the new one does.
    let mut again = Client::with_token(&url, key.clone(), &old).await;
    let reply = again.expect_error("unauthorized").await;
    assert!(
        reply["message"].as_str().unwrap().contains("revoked"),
        "{reply}"
    );
    drop(c);
    let mut renewed = Client::with_token(&url, key, &new).await;
    assert_eq!(renewed.register().await["type"], "registered");
    server.stop().await;
}

#[tokio::test]
async fn circuits_need_the_circuit_role() {
    let server = Server::start_with(|c| c.tokens.circuit_role = Role::Admin).await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    a.send(json!({"type":"circuit_request","to":b.id()})).await;
    let reply = a.expect_error("forbidden").await;
    assert!(
        reply["message"].as_str().unwrap().contains("admin"),
        "{reply}"
    );
    still_routing(&mut a, &mut b).await;
    assert_eq!(
        server.metric("darkswap_relay_access_denied_total{action=\"circuit\"}"),
        1.0
    );
    server.stop().await;
}

/// A TCP connection from `source` (another loopback address than the
/// flooder's 127.0.0.1, so per-address limits tell them apart).
async fn connect_from(source: &str, server: &Server, path: &str) -> Result<Client, String> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let addr = server.server.as_ref().unwrap().local_addr();
    let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
    let stream = MaybeTlsStream::Plain(stream);
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}{path}"), stream)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Client {
        ws,
        key: Keypair::generate_ed25519(),
    })
}

#[tokio::test]
async fn a_connection_flood_from_one_address_is_refused_and_others_are_served() {
    let server = Server::start_with(|c| {
        c.limits.max_connections_per_ip = 4;
    })
    .await;
    let url = server.url("/signaling");
    // Four sockets fill 127.0.0.1's allowance...
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = Client::connect(&url).await;
        assert_eq!(c.register().await["type"], "registered");
        held.push(c);
    }
    // ...so a burst of 40 more is refused with 1013, each, within bounds.
    let flood = tokio::time::timeout(Duration::from_secs(30), async {
        let mut refused = 0;
        for _ in 0..40 {
            let mut c = Client::connect(&url).await;
            if c.closed().await.0 == close_code::TRY_AGAIN_LATER {
                refused += 1;
            }
        }
        refused
    })
    .await
    .expect("the flood is answered in time");
    assert_eq!(flood, 40);
    // HTTP from the same address: 429 with Retry-After.
    let reply = server.post("/auth/challenge", None, "{}").await;
    assert_eq!((reply.status, reply.code()), (429, "rate_limited"));
    assert!(reply.retry_after.unwrap().parse::<u64>().unwrap() >= 1);

    // Another address is served, and the held sockets still route.
    let mut other = connect_from("127.0.0.2", &server, "/signaling")
        .await
        .unwrap();
    assert_eq!(other.register().await["type"], "registered");
    let (first, rest) = held.split_at_mut(1);
    still_routing(&mut first[0], &mut rest[0]).await;
    still_routing(&mut other, &mut first[0]).await;
    assert_eq!(
        server.metric(
            "darkswap_relay_rate_limited_total{plane=\"ws\",limit=\"max_connections_per_ip\"}"
        ),
        40.0
    );
    assert_eq!(
        server.metric(
            "darkswap_relay_rate_limited_total{plane=\"http\",limit=\"max_connections_per_ip\"}"
        ),
        1.0
    );
    server.stop().await;
}

#[tokio::test]
async fn the_http_request_rate_per_address_answers_429_with_retry_after() {
    let server = Server::start_with(|c| {
        c.limits.http_rate_per_ip = RateLimit {
            limit: 3.try_into().unwrap(),
            interval: Duration::from_secs(60),
        };
    })
    .await;
    let peer = libp2p::PeerId::random().to_string();
    let body = json!({"peer_id": peer}).to_string();
    for _ in 0..3 {
        assert_eq!(
            server.post("/auth/challenge", None, &body).await.status,
            200
        );
    }
    let reply = server.post("/auth/challenge", None, &body).await;
    assert_eq!((reply.status, reply.code()), (429, "rate_limited"));
    let retry: u64 = reply.retry_after.unwrap().parse().unwrap();
    assert!(
        (1..=20).contains(&retry),
        "about one refill interval (20 s): {retry}"
    );
    assert_eq!(
        server
            .metric("darkswap_relay_rate_limited_total{plane=\"http\",limit=\"http_rate_per_ip\"}"),
        1.0
    );
    // WebSocket clients from the same address are not affected by the HTTP limit.
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    still_routing(&mut a, &mut b).await;
    server.stop().await;
}

#[tokio::test]
async fn the_global_bandwidth_ceiling_slows_circuits_down_without_losing_frames() {
    let server = Server::start_with(|c| {
        // Per circuit and per peer far above it: only the global ceiling bites.
        c.limits.bandwidth_global = 256 * 1024;
        c.ws_circuit.max_frame_size = 64 * 1024;
    })
    .await;
    // 1 MiB at 256 KiB/s with a 256 KiB burst cannot take less than ~3 s.
    let elapsed = send_a_mebibyte(&server).await;
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    server.stop().await;
}

#[tokio::test]
async fn over_the_global_message_ceiling_messages_are_dropped_and_nobody_is_cut_off() {
    let server = Server::start_with(|c| {
        c.limits.messages_per_second_global = 10.try_into().unwrap();
        // The per-socket limit stays out of the way.
        c.signaling.messages_per_second = 1_000_000.try_into().unwrap();
        c.signaling.message_burst = 1_000_000.try_into().unwrap();
        c.signaling.max_rate_violations = 1;
    })
    .await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    // A burst far over the server-wide ceiling from one client...
    for n in 0..50 {
        a.send(json!({"type":"ping","id":n})).await;
    }
    let mut pongs = 0;
    let mut dropped = 0;
    while pongs + dropped < 50 {
        let v = a.recv().await;
        match v["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") => {
                assert_eq!(v["code"], "rate_limited", "{v}");
                dropped += 1;
            }
            _ => {}
        }
    }
    assert!(dropped > 0 && pongs > 0, "pongs {pongs}, dropped {dropped}");
    // ...is answered message by message, and nobody is cut off for it
    // (max_rate_violations = 1 would have closed a): once the server-wide
    // bucket refills, both are served again. Every ping gets an answer, so
    // this loop waits on replies, not on time.
    for c in [&mut a, &mut b] {
        let mut served = false;
        for n in 0..1_000_000 {
            c.send(json!({"type":"ping","id":n})).await;
            if c.recv().await["type"] == "pong" {
                served = true;
                break;
            }
        }
        assert!(served, "served again once the bucket refilled");
    }
    assert!(
        server.metric("darkswap_relay_rate_limited_total{plane=\"ws\",limit=\"messages_global\"}")
            >= dropped as f64
    );
    server.stop().await;
}
