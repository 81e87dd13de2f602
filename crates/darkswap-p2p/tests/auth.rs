//! `/darkswap/auth/1.0.0` between real swarms on 127.0.0.1: every method
//! authenticates an honest peer; every rejection comes with its specific
//! error while an honest peer beside the rejected one still authenticates;
//! `require_relay_auth` refuses a relay that cannot prove itself.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use darkswap_p2p::{
    AuthCommandError, Identity, Keypair, Multiaddr, Network, NetworkConfig, NetworkEvent, PeerId,
    RelayAuthStatus,
    auth::{
        AuthError, AuthManager, AuthManagerConfig, AuthMethod, AuthRequest, AuthResponse,
        AuthorizationLevel, Challenge, ChallengeResponse, Proof,
    },
};
use darkswap_testkit::{EVENT_TIMEOUT, TestRelay, spawn_node, test_config, wait_for};
use futures::StreamExt;
use libp2p::{multiaddr::Protocol, noise, request_response, swarm::SwarmEvent, tcp, yamux};

const SHARED_KEY: &[u8] = b"operator-issued key, 32 bytes ok";

fn node_config(auth: AuthManagerConfig) -> NetworkConfig {
    test_config().with_auth(auth).with_kad(false)
}

fn shared_key_config(key: &[u8]) -> AuthManagerConfig {
    AuthManagerConfig {
        auth_method: AuthMethod::SharedKey,
        shared_key: Some(key.to_vec()),
        ..AuthManagerConfig::default()
    }
}

fn auth_error(result: Result<impl std::fmt::Debug, AuthCommandError>) -> AuthError {
    match result {
        Err(AuthCommandError::Auth(e)) => e,
        other => panic!("expected an auth error, got {other:?}"),
    }
}

/// A verifier and `provers`, each dialled by the verifier (so the
/// verifier's swarm knows the connection when the test asks it to
/// authenticate).
async fn connected(
    verifier: AuthManagerConfig,
    provers: Vec<NetworkConfig>,
) -> (Network, Vec<Network>) {
    let (v, _) = spawn_node(node_config(verifier)).await;
    let mut out = Vec::new();
    for config in provers {
        let (p, p_addr) = spawn_node(config).await;
        v.dial(p_addr).await.unwrap();
        out.push(p);
    }
    (v, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_method_authenticates_an_honest_peer() {
    for method in [
        AuthMethod::SharedKey,
        AuthMethod::ChallengeResponse,
        AuthMethod::PublicKey,
    ] {
        let key = Keypair::generate_ed25519();
        let prover_id = key.public().to_peer_id();
        let mut verifier = match method {
            AuthMethod::SharedKey => shared_key_config(SHARED_KEY),
            _ => AuthManagerConfig {
                auth_method: method,
                ..AuthManagerConfig::default()
            },
        };
        if method == AuthMethod::PublicKey {
            verifier
                .authorized_keys
                .insert(prover_id, AuthorizationLevel::Admin);
        }
        let prover = node_config(match method {
            AuthMethod::SharedKey => shared_key_config(SHARED_KEY),
            _ => AuthManagerConfig::default(),
        })
        .with_identity(Identity::Keypair(key));
        let (v, _p) = connected(verifier, vec![prover]).await;
        assert_eq!(
            v.auth().peer_level(&prover_id).await.unwrap(),
            AuthorizationLevel::None
        );
        let token = v.auth().authenticate_peer(&prover_id).await.unwrap();
        let expected = match method {
            AuthMethod::PublicKey => AuthorizationLevel::Admin,
            _ => AuthorizationLevel::Basic,
        };
        assert_eq!(
            (token.peer, token.level),
            (prover_id, expected),
            "{method:?}"
        );
        assert_eq!(v.auth().peer_level(&prover_id).await.unwrap(), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_shared_key_is_refused_beside_an_honest_peer() {
    let (v, provers) = connected(
        shared_key_config(SHARED_KEY),
        vec![
            node_config(shared_key_config(b"not the operator's key at all!!")),
            node_config(AuthManagerConfig::default()),
            node_config(shared_key_config(SHARED_KEY)),
        ],
    )
    .await;
    let [wrong, keyless, honest] = &provers[..] else {
        unreachable!()
    };
    assert_eq!(
        auth_error(v.auth().authenticate_peer(&wrong.local_peer_id()).await),
        AuthError::BadMac
    );
    assert_eq!(
        auth_error(v.auth().authenticate_peer(&keyless.local_peer_id()).await),
        AuthError::Refused(AuthError::NoSharedKey.to_string())
    );
    let token = v
        .auth()
        .authenticate_peer(&honest.local_peer_id())
        .await
        .unwrap();
    assert_eq!(token.level, AuthorizationLevel::Basic);
    assert_eq!(
        v.auth().peer_level(&wrong.local_peer_id()).await.unwrap(),
        AuthorizationLevel::None
    );
}

/// A raw libp2p node speaking only `/darkswap/auth/1.0.0`, answering every
/// challenge with `answer`. Counts the challenges it received.
struct Hostile {
    peer_id: PeerId,
    addr: Multiaddr,
    challenges: Arc<AtomicUsize>,
    _task: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn hostile(
    key: Keypair,
    answer: impl Fn(&Keypair, &Challenge) -> AuthResponse + Send + 'static,
) -> Hostile {
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| darkswap_p2p::auth::behaviour(Duration::from_secs(10)))
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let peer_id = *swarm.local_peer_id();
    let challenges = Arc::new(AtomicUsize::new(0));
    let counter = challenges.clone();
    let task = tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request: AuthRequest::Challenge(c),
                        channel,
                        ..
                    },
                ..
            }) = swarm.select_next_some().await
            {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = swarm
                    .behaviour_mut()
                    .send_response(channel, answer(&key, &c));
            }
        }
    });
    Hostile {
        peer_id,
        addr: addr.with(Protocol::P2p(peer_id)),
        challenges,
        _task: AbortOnDrop(task),
    }
}

/// What an honest prover holding `key` would answer.
fn honest_answer(key: &Keypair, c: &Challenge) -> ChallengeResponse {
    AuthManager::new(AuthManagerConfig::default(), key.clone())
        .unwrap()
        .respond(c, c.verifier, SystemTime::now())
        .unwrap()
}

/// A valid signature by `key`, which is not the prover's identity key.
fn answer_with_foreign_key(key: &Keypair, c: &Challenge) -> ChallengeResponse {
    let mut as_if_mine = c.clone();
    as_if_mine.prover = key.public().to_peer_id();
    honest_answer(key, &as_if_mine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_signatures_over_the_wire_are_refused_beside_an_honest_peer() {
    let (v, _) = spawn_node(node_config(AuthManagerConfig::default())).await;
    let (honest, honest_addr) = spawn_node(node_config(AuthManagerConfig::default())).await;
    v.dial(honest_addr).await.unwrap();

    // Flips a bit of an otherwise valid signature.
    let tamper = hostile(Keypair::generate_ed25519(), |key, c| {
        let mut r = honest_answer(key, c);
        if let Proof::Signature { signature, .. } = &mut r.proof {
            signature[0] ^= 0x80;
        }
        AuthResponse::Proof(r)
    })
    .await;
    // Signs correctly, but with a key that is not its identity.
    let other_key = hostile(Keypair::generate_ed25519(), |_, c| {
        AuthResponse::Proof(answer_with_foreign_key(&Keypair::generate_ed25519(), c))
    })
    .await;
    // Answers every challenge with the first answer it ever gave.
    let first = std::sync::Mutex::new(None::<ChallengeResponse>);
    let replay = hostile(Keypair::generate_ed25519(), move |key, c| {
        let mut first = first.lock().unwrap();
        let r = first.get_or_insert_with(|| honest_answer(key, c)).clone();
        AuthResponse::Proof(r)
    })
    .await;

    for h in [&tamper, &other_key, &replay] {
        v.dial(h.addr.clone()).await.unwrap();
    }
    assert_eq!(
        auth_error(v.auth().authenticate_peer(&tamper.peer_id).await),
        AuthError::BadSignature
    );
    assert_eq!(
        auth_error(v.auth().authenticate_peer(&other_key.peer_id).await),
        AuthError::KeyMismatch(other_key.peer_id)
    );
    v.auth().authenticate_peer(&replay.peer_id).await.unwrap();
    assert_eq!(
        auth_error(v.auth().authenticate_peer(&replay.peer_id).await),
        AuthError::ChallengeReused
    );
    let token = v
        .auth()
        .authenticate_peer(&honest.local_peer_id())
        .await
        .unwrap();
    assert_eq!(token.level, AuthorizationLevel::Basic);
    // Forged proofs cost reputation; a stale (reused) one and honesty do not.
    for forger in [&tamper, &other_key] {
        assert!(v.reputation().peer(forger.peer_id).await.unwrap().score < 0.0);
    }
    assert_eq!(
        v.reputation().peer(replay.peer_id).await.unwrap().score,
        0.0
    );
    assert_eq!(
        v.reputation()
            .peer(honest.local_peer_id())
            .await
            .unwrap()
            .score,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banned_peers_get_no_challenge_and_trusted_peers_need_none() {
    let banned = hostile(Keypair::generate_ed25519(), |key, c| {
        AuthResponse::Proof(honest_answer(key, c))
    })
    .await;
    let trusted = hostile(Keypair::generate_ed25519(), |key, c| {
        AuthResponse::Proof(honest_answer(key, c))
    })
    .await;
    let (v, _) = spawn_node(node_config(AuthManagerConfig {
        banned_peers: [banned.peer_id].into(),
        trusted_peers: [trusted.peer_id].into(),
        ..AuthManagerConfig::default()
    }))
    .await;
    let (honest, honest_addr) = spawn_node(node_config(AuthManagerConfig::default())).await;
    v.dial(honest_addr).await.unwrap();
    v.dial(banned.addr.clone()).await.unwrap();
    v.dial(trusted.addr.clone()).await.unwrap();

    assert_eq!(
        auth_error(v.auth().authenticate_peer(&banned.peer_id).await),
        AuthError::Banned(banned.peer_id)
    );
    assert_eq!(
        auth_error(v.auth().generate_relay_challenge(&banned.peer_id).await),
        AuthError::Banned(banned.peer_id)
    );
    let token = v.auth().authenticate_peer(&trusted.peer_id).await.unwrap();
    assert_eq!(token.level, AuthorizationLevel::Relay);
    v.auth()
        .authenticate_peer(&honest.local_peer_id())
        .await
        .unwrap();
    assert_eq!(banned.challenges.load(Ordering::SeqCst), 0);
    assert_eq!(trusted.challenges.load(Ordering::SeqCst), 0);
}

/// The relay-facing API of `NetworkHandle`, driven out of band as seed 001
/// shows: each rejection has its error, an honest relay still passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_challenge_api_rejects_each_forgery() {
    let relay_key = Keypair::generate_ed25519();
    let relay = relay_key.public().to_peer_id();
    let relay_prover = AuthManager::new(AuthManagerConfig::default(), relay_key.clone()).unwrap();
    let node = Network::new(node_config(AuthManagerConfig {
        challenge_ttl: Duration::from_millis(300),
        token_ttl: Duration::from_millis(300),
        authorized_keys: [(relay, AuthorizationLevel::Relay)].into(),
        ..AuthManagerConfig::default()
    }))
    .await
    .unwrap();
    let me = node.local_peer_id();
    let answer = |c: &Challenge| relay_prover.respond(c, me, SystemTime::now()).unwrap();

    // Bad signature.
    let c = node.auth().generate_relay_challenge(&relay).await.unwrap();
    let mut r = answer(&c);
    if let Proof::Signature { signature, .. } = &mut r.proof {
        signature[5] ^= 1;
    }
    assert_eq!(
        auth_error(
            node.auth()
                .verify_relay_challenge_response(&relay, &r)
                .await
        ),
        AuthError::BadSignature
    );
    // Signature by another key.
    let c = node.auth().generate_relay_challenge(&relay).await.unwrap();
    let r = answer_with_foreign_key(&Keypair::generate_ed25519(), &c);
    assert_eq!(
        auth_error(
            node.auth()
                .verify_relay_challenge_response(&relay, &r)
                .await
        ),
        AuthError::KeyMismatch(relay)
    );
    // A challenge bound to another peer, answered by that peer.
    let other_key = Keypair::generate_ed25519();
    let other = other_key.public().to_peer_id();
    let c = node.auth().generate_relay_challenge(&other).await.unwrap();
    let r = honest_answer(&other_key, &c);
    assert_eq!(
        auth_error(
            node.auth()
                .verify_relay_challenge_response(&relay, &r)
                .await
        ),
        AuthError::WrongPeer(other)
    );

    // The honest answer passes, once.
    let c = node.auth().generate_relay_challenge(&relay).await.unwrap();
    let r = answer(&c);
    let token = node
        .auth()
        .verify_relay_challenge_response(&relay, &r)
        .await
        .unwrap();
    assert_eq!(token.level, AuthorizationLevel::Relay);
    assert_eq!(
        auth_error(
            node.auth()
                .verify_relay_challenge_response(&relay, &r)
                .await
        ),
        AuthError::ChallengeReused
    );
    assert_eq!(
        node.auth()
            .authenticate_relay(&relay, &token)
            .await
            .unwrap(),
        AuthorizationLevel::Relay
    );
    // A forged token: a higher level under the old tag.
    let mut forged = token.clone();
    forged.level = AuthorizationLevel::Admin;
    assert_eq!(
        auth_error(node.auth().authenticate_relay(&relay, &forged).await),
        AuthError::InvalidToken
    );

    // Expiry: answer a challenge (and present a token) after the TTL.
    let c = node.auth().generate_relay_challenge(&relay).await.unwrap();
    let r = answer(&c);
    // Letting the 300 ms TTLs run out is the behaviour under test.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        auth_error(
            node.auth()
                .verify_relay_challenge_response(&relay, &r)
                .await
        ),
        AuthError::ChallengeExpired
    );
    assert_eq!(
        auth_error(node.auth().authenticate_relay(&relay, &token).await),
        AuthError::TokenExpired
    );
    // And an honest exchange still works afterwards.
    let c = node.auth().generate_relay_challenge(&relay).await.unwrap();
    node.auth()
        .verify_relay_challenge_response(&relay, &answer(&c))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_below_the_minimum_level_is_refused() {
    let relay_key = Keypair::generate_ed25519();
    let relay = relay_key.public().to_peer_id();
    let good_key = Keypair::generate_ed25519();
    let good = good_key.public().to_peer_id();
    // Any identity may prove itself, but only reaches Basic unless listed.
    let node = Network::new(node_config(AuthManagerConfig {
        authorized_keys: [(good, AuthorizationLevel::Relay)].into(),
        ..AuthManagerConfig::default()
    }))
    .await
    .unwrap();
    let c = node.auth().generate_relay_challenge(&relay).await.unwrap();
    assert_eq!(
        auth_error(
            node.auth()
                .verify_relay_challenge_response(&relay, &honest_answer(&relay_key, &c))
                .await
        ),
        AuthError::InsufficientLevel {
            have: AuthorizationLevel::Basic,
            need: AuthorizationLevel::Relay
        }
    );
    let c = node.auth().generate_relay_challenge(&good).await.unwrap();
    let token = node
        .auth()
        .verify_relay_challenge_response(&good, &honest_answer(&good_key, &c))
        .await
        .unwrap();
    assert_eq!(token.level, AuthorizationLevel::Relay);
}

/// A plain circuit relay does not speak `/darkswap/auth/1.0.0`: a node
/// requiring relay authentication takes no reservation on it, says why, and
/// shows it in the relay status; a node beside it that does not require
/// authentication reserves on the same relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_relay_auth_refuses_a_relay_that_cannot_authenticate() {
    let relay = TestRelay::spawn().await;
    let mut strict = Network::new(
        node_config(AuthManagerConfig::default())
            .with_relay_peers(vec![relay.addr.clone()])
            .with_require_relay_auth(true),
    )
    .await
    .unwrap();
    let error = wait_for(&mut strict, "RelayAuthFailed", EVENT_TIMEOUT, |e| match e {
        NetworkEvent::RelayReserved { .. } => panic!("reserved on an unauthenticated relay"),
        NetworkEvent::RelayAuthFailed {
            relay_peer_id,
            error,
        } if *relay_peer_id == relay.peer_id => Some(error.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(&error, AuthError::Protocol(reason) if reason.contains("protocols")),
        "{error:?}"
    );
    let status = strict.relay_status().await.unwrap();
    assert!(!status[0].reserved);
    assert!(
        matches!(&status[0].auth, RelayAuthStatus::Refused(reason) if reason == &error.to_string()),
        "{status:?}"
    );
    assert!(
        strict
            .listen_addrs()
            .await
            .unwrap()
            .iter()
            .all(|a| !a.iter().any(|p| p == Protocol::P2pCircuit))
    );

    let mut relaxed = Network::new(
        node_config(AuthManagerConfig::default()).with_relay_peers(vec![relay.addr.clone()]),
    )
    .await
    .unwrap();
    wait_for(&mut relaxed, "RelayReserved", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::RelayReserved { relay_peer_id, .. } if *relay_peer_id == relay.peer_id).then_some(())
    })
    .await;
    assert_eq!(
        relaxed.relay_status().await.unwrap()[0].auth,
        RelayAuthStatus::NotRequired
    );
    assert!(!strict.relay_status().await.unwrap()[0].reserved);
}
