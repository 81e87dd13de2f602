//! Native peers that cannot use WebRTC reach each other through a real
//! `darkswap-relay` process's `/relay` circuits, end-to-end encrypted, as
//! the browser client does.

use std::time::Duration;

use darkswap_testkit::RelayProcess;
use darkswap_webrtc::{
    ConnectionPath, DataMessage, IceTransportPolicy, MAX_RELAYED_MESSAGE, WebRtcConfig, WebRtcError,
};

mod support;
use support::{peer, signaling_url};

const WAIT: Duration = Duration::from_secs(30);

/// A peer that gathers no ICE candidate: WebRTC cannot reach it.
fn relay_only() -> WebRtcConfig {
    WebRtcConfig::loopback().with_ice_transport_policy(IceTransportPolicy::Relay)
}

fn fast_fallback() -> WebRtcConfig {
    WebRtcConfig::loopback().with_ice_timeout(Duration::from_secs(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_webrtc_cannot_reach_is_reached_through_a_relayed_circuit() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::spawn(dir.path(), &[]);
    let url = signaling_url(&relay);
    let (alice, alice_id) = peer(&url, fast_fallback()).await;
    let (bob, bob_id) = peer(&url, relay_only()).await;

    // Alice offers WebRTC; Bob has no candidate to answer with, so Alice's
    // attempt times out and falls back to a circuit Bob accepts.
    let (conn, incoming) = tokio::time::timeout(WAIT, async {
        let conn = alice.create_connection(&bob_id).await.unwrap();
        (conn, bob.accept().await.unwrap())
    })
    .await
    .expect("connected in time");
    assert_eq!(
        (conn.path(), incoming.path()),
        (ConnectionPath::Relayed, ConnectionPath::Relayed)
    );
    assert_eq!(incoming.peer_id(), alice_id);
    assert!(conn.is_initiator() && !incoming.is_initiator());
    assert_eq!(conn.max_message_size(), MAX_RELAYED_MESSAGE);

    conn.send_text(r#"{"type":"chat","text":"hello bob"}"#)
        .await
        .unwrap();
    assert_eq!(
        incoming.receive().await.unwrap(),
        DataMessage::Text(r#"{"type":"chat","text":"hello bob"}"#.into())
    );
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    incoming.send(blob.clone()).await.unwrap();
    assert_eq!(conn.receive().await.unwrap(), DataMessage::Binary(blob));
    for n in 0..300 {
        conn.send_text(&n.to_string()).await.unwrap();
    }
    for n in 0..300 {
        assert_eq!(
            incoming.receive().await.unwrap(),
            DataMessage::Text(n.to_string())
        );
    }
    // Over what a circuit carries: refused locally, the circuit stays up.
    assert!(matches!(
        conn.send(vec![0; MAX_RELAYED_MESSAGE + 1]).await,
        Err(WebRtcError::TooLarge { .. })
    ));
    conn.send(vec![1; MAX_RELAYED_MESSAGE]).await.unwrap();
    assert_eq!(
        incoming.receive().await.unwrap(),
        DataMessage::Binary(vec![1; MAX_RELAYED_MESSAGE])
    );

    // Closing on one side closes the circuit for the other.
    assert!(alice.close_connection(&bob_id));
    assert_eq!(
        tokio::time::timeout(WAIT, incoming.receive())
            .await
            .unwrap(),
        Err(WebRtcError::Closed)
    );
    assert!(!incoming.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_peer_goes_straight_to_a_circuit_and_refusals_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::spawn(dir.path(), &[]);
    let url = signaling_url(&relay);
    let (alice, alice_id) = peer(&url, WebRtcConfig::loopback()).await;
    let (bob, _) = peer(&url, relay_only()).await;

    // With no candidate there is nothing to wait for: the circuit at once
    // (far within the 5 s a WebRTC attempt would be given).
    let started = std::time::Instant::now();
    let conn = tokio::time::timeout(WAIT, bob.create_connection(&alice_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conn.path(), ConnectionPath::Relayed);
    assert!(started.elapsed() < Duration::from_secs(5));
    let incoming = alice.accept().await.unwrap();
    assert_eq!(incoming.path(), ConnectionPath::Relayed);
    incoming.send_text("\"hi\"").await.unwrap();
    assert_eq!(
        conn.receive().await.unwrap(),
        DataMessage::Text("\"hi\"".into())
    );

    // A peer that refuses circuits: the requester learns it at once.
    let (carol, carol_id) = peer(&url, relay_only().with_accept_relayed(false)).await;
    let (dave, _) = peer(&url, relay_only()).await;
    match tokio::time::timeout(WAIT, dave.create_connection(&carol_id))
        .await
        .unwrap()
    {
        Err(WebRtcError::CircuitRefused(reason)) => assert_eq!(reason, "not accepted"),
        other => panic!("{other:?}"),
    }
    // No candidate and no fallback: nothing to try.
    let (erin, _) = peer(&url, relay_only().with_relay_fallback(false)).await;
    assert_eq!(
        erin.create_connection(&carol_id).await.unwrap_err(),
        WebRtcError::NoPath(carol_id)
    );
    drop(carol);
}
