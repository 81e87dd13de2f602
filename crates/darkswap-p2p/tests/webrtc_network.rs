//! WebRTC data channels on the `Network` handle (seed 003's Rust usage):
//! two nodes registered on a real `darkswap-relay` process's signaling
//! server, one naming its public port, one deriving it from its relay peer,
//! open a channel, exchange messages both ways and close it; on a closed
//! relay serving `wss://`, nodes with tokens and the private CA do too.
#![cfg(not(target_arch = "wasm32"))]

use std::time::Duration;

use darkswap_p2p::{
    ConnectionPath, DataMessage, Network, NetworkConfig, PeerId, RelayAuth, SignalingOptions,
    SignalingState, TlsRoots, WebRtcCommandError,
};
use darkswap_testkit::{RelayProcess, generate_certs};

const WAIT: Duration = Duration::from_secs(30);

fn quiet() -> NetworkConfig {
    NetworkConfig::default()
        .with_mdns(false)
        .with_kad(false)
        .with_connection_timeout(Duration::from_secs(15))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_messages_over_a_webrtc_channel_through_a_relays_signaling() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::spawn(dir.path(), &[]);
    let port = relay.signaling.unwrap().port();
    let public_port = format!("/ip4/127.0.0.1/tcp/{port}/ws").parse().unwrap();
    let alice = Network::new(quiet().with_webrtc_signaling_relays([public_port]))
        .await
        .unwrap();
    // Bob names no signaling relay: it uses its relay peer's host on `port`.
    let bob = Network::new(
        quiet()
            .with_relay_peers([relay.tcp_addr.clone()])
            .with_webrtc_signaling(true, Some(port)),
    )
    .await
    .unwrap();
    let (alice_id, bob_id) = (alice.local_peer_id(), bob.local_peer_id());

    // Both register in the background.
    for node in [&alice, &bob] {
        node.wait_for_webrtc_signaling().await.unwrap();
    }
    let path = tokio::time::timeout(WAIT, alice.create_webrtc_data_channel(bob_id))
        .await
        .expect("a channel in time")
        .unwrap();
    assert_eq!(path, ConnectionPath::Direct);
    assert_eq!(
        alice.webrtc_channels(),
        vec![(bob_id, ConnectionPath::Direct)]
    );
    let relays = alice.webrtc_signaling_relays();
    assert_eq!(relays.len(), 1);
    assert_eq!(relays[0].1, SignalingState::Connected);

    alice
        .send_webrtc_message(&bob_id, b"Hello, world!".to_vec())
        .await
        .unwrap();
    assert_eq!(
        bob.receive_webrtc_message(&alice_id).await.unwrap(),
        DataMessage::Binary(b"Hello, world!".to_vec())
    );
    bob.send_webrtc_message(&alice_id, "{\"type\":\"chat\",\"text\":\"hi\"}")
        .await
        .unwrap();
    assert_eq!(
        alice.receive_webrtc_message(&bob_id).await.unwrap(),
        DataMessage::Text("{\"type\":\"chat\",\"text\":\"hi\"}".into())
    );

    // Closing one end ends the other's, after what was sent before the
    // close is read; a long poll with nothing to read ends empty.
    assert_eq!(
        bob.receive_webrtc_message_within(&alice_id, Duration::from_millis(50))
            .await,
        Ok(None)
    );
    alice
        .send_webrtc_message(&bob_id, "last words")
        .await
        .unwrap();
    assert!(alice.close_webrtc_channel(&bob_id));
    assert!(alice.webrtc_channels().is_empty());
    assert_eq!(
        bob.receive_webrtc_message(&alice_id).await.unwrap(),
        DataMessage::Text("last words".into())
    );
    assert_eq!(
        bob.receive_webrtc_message(&alice_id).await,
        Err(WebRtcCommandError::ChannelClosed(alice_id))
    );

    // Without signaling relays there are no channels; unknown peers are errors.
    let plain = Network::new(quiet()).await.unwrap();
    assert_eq!(
        plain.create_webrtc_data_channel(bob_id).await,
        Err(WebRtcCommandError::Disabled)
    );
    let nobody = PeerId::random();
    assert_eq!(
        alice.create_webrtc_data_channel(nobody).await,
        Err(WebRtcCommandError::UnknownPeer(nobody))
    );
}

/// A closed relay (no registration without a token) serving `wss://` with a
/// certificate from `deploy/generate-certs.sh`: nodes that earn tokens and
/// trust the private CA register and talk; one without a token does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_register_on_a_closed_tls_relay_with_tokens_and_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    generate_certs(&certs, &[]);
    let relay = RelayProcess::spawn_tls(
        &dir.path().join("relay"),
        &certs,
        &[("DARKSWAP_RELAY_AUTH__ANONYMOUS_ROLE", "guest")],
    );
    let port = relay.signaling.unwrap().port();
    let public_port: darkswap_p2p::Multiaddr =
        format!("/dns4/localhost/tcp/{port}/wss").parse().unwrap();
    let roots = TlsRoots::with_extra_pem(&std::fs::read(certs.join("ca.pem")).unwrap()).unwrap();
    let node = |auth: RelayAuth| {
        quiet()
            .with_webrtc_signaling_relays([public_port.clone()])
            .with_webrtc_signaling_options(
                SignalingOptions::default()
                    .with_auth(auth)
                    .with_tls_roots(roots.clone()),
            )
    };
    let alice = Network::new(node(RelayAuth::Auto)).await.unwrap();
    let bob = Network::new(node(RelayAuth::Auto)).await.unwrap();
    for n in [&alice, &bob] {
        n.wait_for_webrtc_signaling().await.unwrap();
    }
    let relays = alice.webrtc_signaling_relays();
    assert_eq!(relays[0].0, format!("wss://localhost:{port}/signaling"));
    alice
        .send_webrtc_message(&bob.local_peer_id(), "over wss")
        .await
        .unwrap();
    assert_eq!(
        bob.receive_webrtc_message(&alice.local_peer_id())
            .await
            .unwrap(),
        DataMessage::Text("over wss".into())
    );

    // Without a token the closed relay does not take the registration.
    let stranger =
        Network::new(node(RelayAuth::None).with_connection_timeout(Duration::from_secs(3)))
            .await
            .unwrap();
    assert_eq!(
        stranger.wait_for_webrtc_signaling().await,
        Err(WebRtcCommandError::NotRegistered)
    );
}
