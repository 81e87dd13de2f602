//! The native signaling client against real `darkswap-relay` processes:
//! relay tokens on a closed relay, refreshed before they expire;
//! reconnection under the same peer id after the relay restarts; the
//! connection states, reported in order.

use std::{sync::Arc, time::Duration};

use darkswap_testkit::RelayProcess;
use darkswap_webrtc::{
    ConnectionState, DataMessage, Keypair, ReconnectPolicy, RelayAuth, Role, SignalingError,
    SignalingOptions, WebRtcConfig, WebRtcConnectionManager, WebRtcSignalingClient,
};
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(30);
/// A closed relay (no token, no registration) whose tokens live 6 s.
const CLOSED: [(&str, &str); 2] = [
    ("DARKSWAP_RELAY_AUTH__ANONYMOUS_ROLE", "guest"),
    ("DARKSWAP_RELAY_AUTH__TOKEN_TTL_SECS", "6"),
];

/// A relay on loopback whose public port is `port` (0: any).
fn relay(dir: &std::path::Path, port: u16) -> RelayProcess {
    let mut args = RelayProcess::loopback_args(dir);
    let at = args
        .iter()
        .position(|a| a == "--signaling-listen")
        .expect("loopback args set the signaling address");
    args[at + 1] = format!("127.0.0.1:{port}");
    RelayProcess::start(&RelayProcess::binary(), &args, &CLOSED)
}

fn options(auth: RelayAuth) -> SignalingOptions {
    SignalingOptions::default().with_auth(auth).with_reconnect(
        ReconnectPolicy::default()
            .with_backoff(Duration::from_millis(100), Duration::from_millis(500)),
    )
}

/// The next state change, bounded.
async fn next(changes: &mut broadcast::Receiver<ConnectionState>) -> ConnectionState {
    tokio::time::timeout(WAIT, changes.recv())
        .await
        .expect("a state change in time")
        .expect("no change lost")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_holders_register_on_a_closed_relay_and_come_back_after_it_restarts() {
    use ConnectionState::*;
    let dir = tempfile::tempdir().unwrap();
    let mut first = relay(dir.path(), 0);
    let addr = first.signaling.expect("signaling on");
    let url = format!("ws://{addr}/signaling");

    // Without a token a closed relay refuses the registration, for good.
    let stranger = WebRtcSignalingClient::new(Keypair::generate_ed25519());
    match stranger.connect(&url).await {
        Err(SignalingError::Refused { code, .. }) => assert_eq!(code, "unauthorized"),
        other => panic!("{other:?}"),
    }
    assert_eq!(stranger.state(), Failed);

    // With `Auto`, a token is earned first.
    let alice = Arc::new(WebRtcSignalingClient::with_options(
        Keypair::generate_ed25519(),
        options(RelayAuth::Auto),
    ));
    let mut changes = alice.state_changes();
    assert_eq!(alice.state(), New);
    alice.connect(&url).await.unwrap();
    assert_eq!(
        (next(&mut changes).await, next(&mut changes).await),
        (Connecting, Connected)
    );
    let token = alice.token().expect("a token was earned");
    assert_eq!(token.role, Role::User);
    let bob_signaling = Arc::new(WebRtcSignalingClient::with_options(
        Keypair::generate_ed25519(),
        options(RelayAuth::Auto),
    ));
    bob_signaling.connect(&url).await.unwrap();
    let (alice_id, bob_id) = (alice.local_peer_id(), bob_signaling.local_peer_id());

    // The token is refreshed after 3/4 of its 6 s, before it expires.
    let mut tokens = alice.token_changes();
    tokio::time::timeout(
        WAIT,
        tokens.wait_for(|t| t.as_ref().is_some_and(|t| *t != token)),
    )
    .await
    .expect("refreshed in time")
    .unwrap();
    assert!(alice.token().unwrap().expires_at > token.expires_at);
    assert_eq!(alice.state(), Connected);

    // The relay goes away: the socket is lost, and reconnection is tried
    // with backoff until the relay is back on the same port.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert_eq!(next(&mut changes).await, Disconnected);
    assert_eq!(next(&mut changes).await, Connecting);
    let _second = relay(dir.path(), addr.port());
    let mut between = Vec::new();
    loop {
        match next(&mut changes).await {
            Connected => break,
            state => between.push(state),
        }
    }
    // Failed attempts while it was down: disconnected, connecting again.
    assert!(
        between
            .iter()
            .all(|s| matches!(s, Disconnected | Connecting)),
        "{between:?}"
    );
    bob_signaling
        .wait_until_connected(WAIT)
        .await
        .expect("bob is back too");

    // Registered again under the same ids: they reach each other.
    let alice_peers = WebRtcConnectionManager::new(alice.clone(), WebRtcConfig::loopback());
    let bob = WebRtcConnectionManager::new(bob_signaling.clone(), WebRtcConfig::loopback());
    let (to_bob, to_alice) = tokio::time::timeout(WAIT, async {
        tokio::join!(
            alice_peers.create_connection(&bob_id),
            bob.wait_for_connection(&alice_id)
        )
    })
    .await
    .expect("connected in time");
    let (to_bob, to_alice) = (to_bob.unwrap(), to_alice.unwrap());
    to_bob.send_text("\"back\"").await.unwrap();
    assert_eq!(
        to_alice.receive().await.unwrap(),
        DataMessage::Text("\"back\"".into())
    );

    // Closing is final: no reconnection follows.
    alice.disconnect().await;
    assert_eq!(next(&mut changes).await, Closed);
    assert_eq!(alice.state(), Closed);
    assert!(alice.list_peers().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reconnection_a_lost_socket_stays_disconnected() {
    use ConnectionState::*;
    let dir = tempfile::tempdir().unwrap();
    let mut relay = relay(dir.path(), 0);
    let url = format!("ws://{}/signaling", relay.signaling.unwrap());
    let client = WebRtcSignalingClient::with_options(
        Keypair::generate_ed25519(),
        options(RelayAuth::Auto).with_reconnect(ReconnectPolicy::never()),
    );
    let mut changes = client.state_changes();
    client.connect(&url).await.unwrap();
    client.wait_until_connected(WAIT).await.unwrap();
    relay.child.kill().unwrap();
    relay.child.wait().unwrap();
    assert_eq!(
        [
            next(&mut changes).await,
            next(&mut changes).await,
            next(&mut changes).await
        ],
        [Connecting, Connected, Disconnected]
    );
    // Waiting for a connection that will not come fails at once.
    assert_eq!(
        client.wait_until_connected(WAIT).await,
        Err(SignalingError::NotConnected)
    );
}
