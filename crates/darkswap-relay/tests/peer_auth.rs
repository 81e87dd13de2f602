//! `[peer_auth]`: the relay server proves itself over `/darkswap/auth/1.0.0`
//! so nodes with `require_relay_auth` reserve on it, and with `require_auth`
//! it authenticates the nodes that connect. Real `RelayServer` on
//! 127.0.0.1 port 0, real SDK nodes.
#![cfg(feature = "server")]

use darkswap_p2p::{
    Network, NetworkConfig, NetworkEvent, PeerId, RelayAuthStatus,
    auth::{AuthError, AuthManagerConfig, AuthMethod, AuthorizationLevel},
};
use darkswap_relay::{RelayConfig, RelayServer, config::PeerAuthConfig};
use darkswap_testkit::{EVENT_TIMEOUT, test_config, wait_for};

const SHARED_KEY: &[u8] = b"operator-issued key, 32 bytes ok";

struct Relay {
    server: RelayServer,
    _dir: tempfile::TempDir,
}

async fn relay(tune: impl FnOnce(&mut PeerAuthConfig, &std::path::Path)) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RelayConfig::default();
    config.data_dir = dir.path().to_owned();
    config.libp2p.listen_addresses = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.admin_http.enabled = false;
    config.signaling.enabled = false;
    tune(&mut config.peer_auth, dir.path());
    Relay {
        server: RelayServer::spawn(config).await.unwrap(),
        _dir: dir,
    }
}

fn strict_node(relay: &RelayServer, auth: AuthManagerConfig) -> NetworkConfig {
    test_config()
        .with_relay_peers(vec![relay.listen_addrs()[0].clone()])
        .with_require_relay_auth(true)
        .with_auth(auth)
}

async fn wait_reserved(net: &mut Network, relay: PeerId) {
    wait_for(net, "RelayReserved", EVENT_TIMEOUT, |e| match e {
        NetworkEvent::RelayAuthFailed { error, .. } => panic!("relay refused: {error}"),
        NetworkEvent::RelayReserved { relay_peer_id, .. } if *relay_peer_id == relay => Some(()),
        _ => None,
    })
    .await
}

async fn wait_refused(net: &mut Network, relay: PeerId) -> AuthError {
    wait_for(net, "RelayAuthFailed", EVENT_TIMEOUT, |e| match e {
        NetworkEvent::RelayReserved { .. } => panic!("reserved on a refused relay"),
        NetworkEvent::RelayAuthFailed {
            relay_peer_id,
            error,
        } if *relay_peer_id == relay => Some(error.clone()),
        _ => None,
    })
    .await
}

/// Signature methods: a node reserves on a relay whose identity it lists at
/// `Relay` level, and refuses the same relay when it only reaches `Basic`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_reserve_only_on_relays_that_authenticate_high_enough() {
    let r = relay(|_, _| {}).await;
    let relay_id = r.server.peer_id();

    let mut listed = Network::new(strict_node(
        &r.server,
        AuthManagerConfig {
            auth_method: AuthMethod::PublicKey,
            authorized_keys: [(relay_id, AuthorizationLevel::Relay)].into(),
            ..AuthManagerConfig::default()
        },
    ))
    .await
    .unwrap();
    let mut unlisted = Network::new(strict_node(&r.server, AuthManagerConfig::default()))
        .await
        .unwrap();

    let error = wait_refused(&mut unlisted, relay_id).await;
    assert_eq!(
        error,
        AuthError::InsufficientLevel {
            have: AuthorizationLevel::Basic,
            need: AuthorizationLevel::Relay
        }
    );
    wait_reserved(&mut listed, relay_id).await;
    let status = &listed.relay_status().await.unwrap()[0];
    assert!(status.reserved);
    assert_eq!(
        status.auth,
        RelayAuthStatus::Authenticated(AuthorizationLevel::Relay)
    );
    let status = &unlisted.relay_status().await.unwrap()[0];
    assert!(!status.reserved);
    assert!(matches!(status.auth, RelayAuthStatus::Refused(_)));
    listed.shutdown().await.unwrap();
    unlisted.shutdown().await.unwrap();
    r.server.shutdown().await;
}

/// Shared key: the relay proves the operator-issued key from its key file;
/// a relay with another key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_key_relays_prove_the_operator_key() {
    let with_key = |key: &'static [u8]| {
        move |s: &mut PeerAuthConfig, dir: &std::path::Path| {
            let file = dir.join("peer-auth.key");
            std::fs::write(&file, format!("{}\n", hex::encode(key))).unwrap();
            s.shared_key_file = Some(file);
        }
    };
    let good = relay(with_key(SHARED_KEY)).await;
    let bad = relay(with_key(b"some other operator's 32 byte key")).await;
    let node_auth = AuthManagerConfig {
        auth_method: AuthMethod::SharedKey,
        shared_key: Some(SHARED_KEY.to_vec()),
        default_auth_level: AuthorizationLevel::Relay,
        ..AuthManagerConfig::default()
    };
    let mut to_bad = Network::new(strict_node(&bad.server, node_auth.clone()))
        .await
        .unwrap();
    let mut to_good = Network::new(strict_node(&good.server, node_auth))
        .await
        .unwrap();
    assert_eq!(
        wait_refused(&mut to_bad, bad.server.peer_id()).await,
        AuthError::BadMac
    );
    wait_reserved(&mut to_good, good.server.peer_id()).await;
    to_bad.shutdown().await.unwrap();
    to_good.shutdown().await.unwrap();
    good.server.shutdown().await;
    bad.server.shutdown().await;
}

/// With `require_auth`, the relay challenges every node that connects and
/// disconnects those that fail; honest nodes stay and reserve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_requiring_auth_drops_nodes_that_fail() {
    let banned = darkswap_p2p::Keypair::generate_ed25519();
    let banned_id = banned.public().to_peer_id();
    let r = relay(|s, _| {
        s.require_auth = true;
        s.method = AuthMethod::ChallengeResponse;
        s.banned_peers = vec![banned_id];
    })
    .await;
    let relay_id = r.server.peer_id();
    let relay_addr = r.server.listen_addrs()[0].clone();

    let mut honest = Network::new(test_config().with_relay_peers(vec![relay_addr.clone()]))
        .await
        .unwrap();
    wait_reserved(&mut honest, relay_id).await;

    let mut bad =
        Network::new(test_config().with_identity(darkswap_p2p::Identity::Keypair(banned)))
            .await
            .unwrap();
    let _ = bad.dial(relay_addr).await;
    wait_for(&mut bad, "disconnect by the relay", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::PeerDisconnected(p) if *p == relay_id).then_some(())
    })
    .await;
    assert!(honest.connected_peers().await.unwrap().contains(&relay_id));
    assert!(honest.relay_status().await.unwrap()[0].reserved);
    honest.shutdown().await.unwrap();
    bad.shutdown().await.unwrap();
    r.server.shutdown().await;
}
