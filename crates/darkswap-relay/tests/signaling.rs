//! The signaling server and WebSocket circuits, on 127.0.0.1 port 0, driven
//! by real WebSocket clients: every documented error and close code, and
//! proof that one misbehaving client does not disturb the others. Tokens,
//! roles and connection limits are in `signaling_access.rs`.
#![cfg(feature = "server")]

use std::time::Duration;

use darkswap_proto::signaling::{close_code, sign_registration};
use futures::{SinkExt, StreamExt};
use libp2p::identity::Keypair;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use support::{Client, Server, WAIT, open_circuit, send_a_mebibyte, still_routing};

#[path = "support/signaling.rs"]
mod support;

#[tokio::test]
async fn peers_register_see_each_other_and_exchange_offers_answers_and_candidates() {
    let server = Server::start(|_, _| {}).await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::connect(&server.url("/signaling")).await;
    // a watches b before b registers: a hears of b, and only because it asked.
    a.send(json!({"type":"watch","peers":[b.id()]})).await;
    assert_eq!(
        a.recv().await,
        json!({"type":"presence","online":[],"offline":[b.id()]})
    );
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

#[tokio::test]
async fn a_one_way_circuit_is_not_idle_and_reaches_its_byte_limit() {
    // At 64 KiB/s, 12 frames of 16 KiB take two seconds: twice the idle
    // timeout, during which b's end receives and never sends.
    let server = Server::start(|_, r| {
        r.idle_timeout = Duration::from_secs(1);
        r.bandwidth_per_circuit = 64 * 1024;
        r.max_frame_size = 16 * 1024;
        r.max_circuit_bytes = 12 * 16 * 1024;
    })
    .await;
    let mut a = Client::registered(&server).await;
    let mut b = Client::registered(&server).await;
    let (id, ra, mut rb) = open_circuit(&server, &mut a, &mut b).await;
    let (mut sink, _stream) = ra.ws.split();
    let sender = tokio::spawn(async move {
        // Until the server stops taking frames: the 13th ends the circuit.
        for n in 0u8..=12 {
            if sink
                .send(Message::binary(vec![n; 16 * 1024]))
                .await
                .is_err()
            {
                break;
            }
        }
        sink
    });
    for n in 0u8..12 {
        assert_eq!(rb.recv_binary().await, vec![n; 16 * 1024], "frame {n}");
    }
    assert_eq!(
        rb.closed().await,
        (close_code::CIRCUIT_CLOSED, "byte_limit".to_owned())
    );
    assert_eq!(
        a.recv_type("circuit_closed").await,
        json!({"type":"circuit_closed","circuit_id":id,"reason":"byte_limit"})
    );
    drop(sender.await.unwrap());
    server.stop().await;
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
