//! Native peers that may only use relay candidates reach each other over
//! WebRTC through the relay's own TURN server (a real `darkswap-relay`
//! process with `[turn]` on), with credentials the relay minted for them;
//! a peer whose credentials are forged cannot allocate and ends up on a
//! relayed circuit instead.

use std::{sync::Arc, time::Duration};

use darkswap_testkit::RelayProcess;
use darkswap_webrtc::{
    CandidateType, ConnectionPath, DataMessage, IceServer, IceTransportPolicy, Keypair,
    WebRtcConfig, WebRtcConnectionManager, WebRtcSignalingClient,
};

const WAIT: Duration = Duration::from_secs(30);

async fn peer(
    url: &str,
    config: WebRtcConfig,
) -> (WebRtcConnectionManager, Arc<WebRtcSignalingClient>) {
    let signaling = Arc::new(WebRtcSignalingClient::new(Keypair::generate_ed25519()));
    signaling.connect(url).await.unwrap();
    (
        WebRtcConnectionManager::new(signaling.clone(), config),
        signaling,
    )
}

fn turn_only() -> WebRtcConfig {
    WebRtcConfig::loopback()
        .with_ice_transport_policy(IceTransportPolicy::Relay)
        .with_relay_ice_servers(true)
        .with_ice_timeout(Duration::from_secs(10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_peers_connect_through_the_relays_turn_server() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(
        &RelayProcess::binary(),
        &RelayProcess::loopback_args(dir.path()),
        &[
            ("DARKSWAP_RELAY_TURN__ENABLED", "true"),
            ("DARKSWAP_RELAY_TURN__LISTEN", "127.0.0.1:0"),
        ],
    );
    let url = format!("ws://{}/signaling", relay.signaling.unwrap());
    let (alice, alice_signaling) = peer(&url, turn_only()).await;
    let (bob, bob_signaling) = peer(&url, turn_only()).await;

    // The relay hands out its STUN and TURN servers to a token holder.
    let ice = alice_signaling.fetch_ice_servers().await.unwrap();
    let port = relay.turn.unwrap().port();
    assert_eq!(ice.ice_servers[0].urls, [format!("stun:127.0.0.1:{port}")]);
    assert!(ice.ice_servers[1].credential.is_some());

    let bob_id = bob_signaling.local_peer_id();
    let (conn, incoming) = tokio::time::timeout(WAIT, async {
        let conn = alice.create_connection(&bob_id).await.unwrap();
        (conn, bob.accept().await.unwrap())
    })
    .await
    .expect("connected in time");
    // WebRTC, not the circuit: a data channel whose datagrams go through TURN.
    assert_eq!(
        (conn.path(), incoming.path()),
        (ConnectionPath::Direct, ConnectionPath::Direct)
    );
    conn.send_text("\"over turn\"").await.unwrap();
    assert_eq!(
        incoming.receive().await.unwrap(),
        DataMessage::Text("\"over turn\"".into())
    );
    incoming.send(vec![9; 10_000]).await.unwrap();
    assert_eq!(
        conn.receive().await.unwrap(),
        DataMessage::Binary(vec![9; 10_000])
    );
    assert_eq!(conn.local_candidate_type(), Some(CandidateType::Relay));
    assert_eq!(incoming.local_candidate_type(), Some(CandidateType::Relay));

    // Forged TURN credentials: no allocation, so no candidate that works,
    // and the connection takes the relayed circuit.
    let forged = IceServer {
        urls: vec![format!("turn:127.0.0.1:{port}?transport=udp")],
        username: Some(format!("4102444800:{}", alice_signaling.local_peer_id())),
        credential: Some("forged".into()),
    };
    let (carol, _) = peer(
        &url,
        WebRtcConfig::loopback()
            .with_ice_transport_policy(IceTransportPolicy::Relay)
            .with_ice_servers(vec![forged])
            .with_ice_timeout(Duration::from_secs(2)),
    )
    .await;
    let to_bob = tokio::time::timeout(WAIT, carol.create_connection(&bob_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(to_bob.path(), ConnectionPath::Relayed);

    let metrics = reqwest::get(format!("http://{}/metrics", relay.metrics.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("darkswap_relay_turn_allocations_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("darkswap_relay_turn_refusals_total{reason=\"unauthorized\"} 1"),
        "{metrics}"
    );
}
