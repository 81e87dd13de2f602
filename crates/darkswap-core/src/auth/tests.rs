use std::time::Duration;

use darkswap_proto::identity::{Keypair, PeerId};
use hmac::Mac;
use web_time::{SystemTime, UNIX_EPOCH};

use super::*;

const KEY: &[u8] = b"operator-issued shared key 0001";

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn manager(config: AuthManagerConfig) -> AuthManager {
    AuthManager::new(config, Keypair::generate_ed25519()).unwrap()
}

fn with_method(method: AuthMethod) -> AuthManagerConfig {
    AuthManagerConfig {
        auth_method: method,
        shared_key: (method == AuthMethod::SharedKey).then(|| KEY.to_vec()),
        ..AuthManagerConfig::default()
    }
}

/// Verifier `v` challenges prover `p`; returns the challenge and answer.
fn handshake(v: &mut AuthManager, p: &AuthManager) -> (Challenge, ChallengeResponse) {
    let c = v.generate_challenge(p.local_peer_id(), t0()).unwrap();
    let r = p.respond(&c, v.local_peer_id(), t0()).unwrap();
    (c, r)
}

#[test]
fn levels_are_ordered() {
    use AuthorizationLevel::*;
    assert!(None < Basic && Basic < Relay && Relay < Admin);
}

#[test]
fn each_method_authenticates_an_honest_peer() {
    for method in [
        AuthMethod::SharedKey,
        AuthMethod::ChallengeResponse,
        AuthMethod::PublicKey,
    ] {
        let prover = manager(with_method(method));
        let mut config = with_method(method);
        if method == AuthMethod::PublicKey {
            config
                .authorized_keys
                .insert(prover.local_peer_id(), AuthorizationLevel::Relay);
        }
        let mut verifier = manager(config);
        let p = prover.local_peer_id();
        assert_eq!(
            verifier.authorization_level(&p, t0()),
            AuthorizationLevel::None
        );
        let (_, r) = handshake(&mut verifier, &prover);
        let token = verifier.verify_response(p, &r, t0()).unwrap();
        let expected = match method {
            AuthMethod::PublicKey => AuthorizationLevel::Relay,
            _ => AuthorizationLevel::Basic,
        };
        assert_eq!(token.level, expected, "{method:?}");
        assert_eq!(token.peer, p);
        assert_eq!(verifier.authorization_level(&p, t0()), expected);
        assert_eq!(verifier.pending_challenges(), 0);
    }
}

#[test]
fn wrong_shared_key_is_a_bad_mac() {
    let mut verifier = manager(with_method(AuthMethod::SharedKey));
    let prover = manager(AuthManagerConfig {
        shared_key: Some(b"another key of sixteen+ bytes".to_vec()),
        ..with_method(AuthMethod::SharedKey)
    });
    let (_, r) = handshake(&mut verifier, &prover);
    assert_eq!(
        verifier.verify_response(prover.local_peer_id(), &r, t0()),
        Err(AuthError::BadMac)
    );
    // A prover without any key cannot answer at all.
    let keyless = manager(AuthManagerConfig::default());
    let c = verifier
        .generate_challenge(keyless.local_peer_id(), t0())
        .unwrap();
    assert_eq!(
        keyless.respond(&c, verifier.local_peer_id(), t0()),
        Err(AuthError::NoSharedKey)
    );
}

#[test]
fn tampered_and_foreign_signatures_are_refused() {
    let mut verifier = manager(AuthManagerConfig::default());
    let prover = manager(AuthManagerConfig::default());
    let p = prover.local_peer_id();

    // A flipped bit in the signature.
    let (_, mut r) = handshake(&mut verifier, &prover);
    if let Proof::Signature { signature, .. } = &mut r.proof {
        signature[10] ^= 1;
    }
    assert_eq!(
        verifier.verify_response(p, &r, t0()),
        Err(AuthError::BadSignature)
    );

    // A valid signature by another key, claimed for the prover.
    let other = Keypair::generate_ed25519();
    let c = verifier.generate_challenge(p, t0()).unwrap();
    let r = ChallengeResponse {
        nonce: c.nonce,
        proof: Proof::Signature {
            public_key: other.public().encode_protobuf(),
            signature: other.sign(&c.transcript()).unwrap(),
        },
    };
    assert_eq!(
        verifier.verify_response(p, &r, t0()),
        Err(AuthError::KeyMismatch(p))
    );

    // The prover's own key, but its signature over another transcript
    // (another verifier's challenge).
    let mut elsewhere = manager(AuthManagerConfig::default());
    let foreign = elsewhere.generate_challenge(p, t0()).unwrap();
    let c = verifier.generate_challenge(p, t0()).unwrap();
    let mut r = prover
        .respond(&foreign, elsewhere.local_peer_id(), t0())
        .unwrap();
    r.nonce = c.nonce;
    assert_eq!(
        verifier.verify_response(p, &r, t0()),
        Err(AuthError::BadSignature)
    );

    // A MAC where a signature was asked for.
    let c = verifier.generate_challenge(p, t0()).unwrap();
    let r = ChallengeResponse {
        nonce: c.nonce,
        proof: Proof::SharedKey { mac: vec![0; 32] },
    };
    assert_eq!(
        verifier.verify_response(p, &r, t0()),
        Err(AuthError::WrongMethod {
            expected: AuthMethod::ChallengeResponse
        })
    );
}

#[test]
fn challenges_expire_and_are_single_use() {
    let mut verifier = manager(AuthManagerConfig::default());
    let prover = manager(AuthManagerConfig::default());
    let p = prover.local_peer_id();
    let ttl = verifier.config().challenge_ttl;

    let (_, r) = handshake(&mut verifier, &prover);
    let late = t0() + ttl + Duration::from_millis(1);
    assert_eq!(
        verifier.verify_response(p, &r, late),
        Err(AuthError::ChallengeExpired)
    );
    // Answering right at the deadline still works.
    let (_, r) = handshake(&mut verifier, &prover);
    verifier.verify_response(p, &r, t0() + ttl).unwrap();
    assert_eq!(
        verifier.verify_response(p, &r, t0()),
        Err(AuthError::ChallengeReused)
    );
    // A made-up nonce.
    let mut forged = r.clone();
    forged.nonce = [7; NONCE_LEN];
    assert_eq!(
        verifier.verify_response(p, &forged, t0()),
        Err(AuthError::UnknownChallenge)
    );
    // Pruning forgets used nonces only after their challenge expired.
    verifier.prune(t0());
    assert_eq!(
        verifier.verify_response(p, &r, t0()),
        Err(AuthError::ChallengeReused)
    );
    verifier.prune(late);
    assert_eq!(verifier.pending_challenges(), 0);
    // The prover refuses to answer an expired challenge too.
    let c = verifier.generate_challenge(p, t0()).unwrap();
    assert_eq!(
        prover.respond(&c, verifier.local_peer_id(), late),
        Err(AuthError::ChallengeExpired)
    );
}

#[test]
fn challenges_are_bound_to_both_peers() {
    let mut verifier = manager(AuthManagerConfig::default());
    let alice = manager(AuthManagerConfig::default());
    let mallory = manager(AuthManagerConfig::default());
    let (c, r) = handshake(&mut verifier, &alice);

    // Mallory presents Alice's answer as hers: refused, and Alice's
    // challenge is not burnt by it.
    assert_eq!(
        verifier.verify_response(mallory.local_peer_id(), &r, t0()),
        Err(AuthError::WrongPeer(alice.local_peer_id()))
    );
    // Mallory cannot get Alice to sign it for her either: Alice only
    // answers challenges naming her and coming from their verifier.
    assert!(matches!(
        mallory.respond(&c, verifier.local_peer_id(), t0()),
        Err(AuthError::WrongPeer(_))
    ));
    assert!(matches!(
        alice.respond(&c, mallory.local_peer_id(), t0()),
        Err(AuthError::WrongPeer(_))
    ));
    verifier
        .verify_response(alice.local_peer_id(), &r, t0())
        .unwrap();
}

#[test]
fn tokens_restore_the_level_until_they_expire() {
    let mut verifier = manager(AuthManagerConfig::default());
    let prover = manager(AuthManagerConfig::default());
    let p = prover.local_peer_id();
    let (_, r) = handshake(&mut verifier, &prover);
    let token = verifier.verify_response(p, &r, t0()).unwrap();
    let ttl = verifier.config().token_ttl;
    let later = t0() + ttl + Duration::from_secs(1);
    assert_eq!(
        verifier.authorization_level(&p, later),
        AuthorizationLevel::None,
        "authentication lapses with the token"
    );

    assert_eq!(
        verifier.authenticate(p, &token, t0() + ttl),
        Ok(AuthorizationLevel::Basic)
    );
    assert_eq!(
        verifier.authenticate(p, &token, later),
        Err(AuthError::TokenExpired)
    );

    // Raising the level, extending the expiry or re-tagging is detected.
    let mut raised = token.clone();
    raised.level = AuthorizationLevel::Admin;
    assert_eq!(
        verifier.authenticate(p, &raised, t0()),
        Err(AuthError::InvalidToken)
    );
    let mut extended = token.clone();
    extended.expires_at_ms += 1;
    assert_eq!(
        verifier.authenticate(p, &extended, t0()),
        Err(AuthError::InvalidToken)
    );
    // Another manager's token, even with the same ids.
    let other = manager(AuthManagerConfig::default());
    let mut foreign = token.clone();
    foreign.mac = other.token_mac(&token).finalize().into_bytes().into();
    assert_eq!(
        verifier.authenticate(p, &foreign, t0()),
        Err(AuthError::InvalidToken)
    );
    // Presented for another peer.
    let q = PeerId::random();
    assert_eq!(
        verifier.authenticate(q, &token, t0()),
        Err(AuthError::TokenPeerMismatch(p))
    );
    // Tokens survive a JSON round trip.
    let json = serde_json::to_string(&token).unwrap();
    let back: AuthToken = serde_json::from_str(&json).unwrap();
    assert_eq!(verifier.authenticate(p, &back, t0()), Ok(token.level));
    assert!(!format!("{token:?}").contains(&hex::encode(token.mac)));
}

#[test]
fn banned_peers_are_refused_before_any_work() {
    let prover = manager(AuthManagerConfig::default());
    let p = prover.local_peer_id();
    let mut verifier = manager(AuthManagerConfig {
        trusted_peers: [p].into(),
        ..AuthManagerConfig::default()
    });
    let (_, r) = handshake(&mut verifier, &prover);
    let token = verifier.verify_response(p, &r, t0()).unwrap();
    let c = verifier.generate_challenge(p, t0()).unwrap();
    let answer = prover.respond(&c, verifier.local_peer_id(), t0()).unwrap();

    verifier.ban(p);
    assert_eq!(
        verifier.pending_challenges(),
        0,
        "its challenges are dropped"
    );
    assert_eq!(
        verifier.generate_challenge(p, t0()),
        Err(AuthError::Banned(p))
    );
    assert_eq!(verifier.pending_challenges(), 0, "no challenge generated");
    assert_eq!(
        verifier.verify_response(p, &answer, t0()),
        Err(AuthError::Banned(p))
    );
    assert_eq!(
        verifier.authenticate(p, &token, t0()),
        Err(AuthError::Banned(p))
    );
    assert_eq!(
        verifier.authenticate_trusted(p, t0()),
        Err(AuthError::Banned(p)),
        "a ban wins over trust"
    );
    assert_eq!(
        verifier.authorization_level(&p, t0()),
        AuthorizationLevel::None
    );
    // A banned verifier gets no answer (no signing work) from the prover.
    let mut prover = prover;
    prover.ban(verifier.local_peer_id());
    let mut fresh = manager(AuthManagerConfig::default());
    let c = fresh.generate_challenge(p, t0()).unwrap();
    assert!(prover.respond(&c, fresh.local_peer_id(), t0()).is_ok());
    verifier.unban(&p);
    let c = verifier.generate_challenge(p, t0()).unwrap();
    assert_eq!(
        prover.respond(&c, verifier.local_peer_id(), t0()),
        Err(AuthError::Banned(verifier.local_peer_id()))
    );
}

#[test]
fn trusted_peers_skip_the_challenge_and_levels_are_enforced() {
    let trusted = PeerId::random();
    let admin = PeerId::random();
    let stranger = PeerId::random();
    let mut v = manager(AuthManagerConfig {
        trusted_peers: [trusted, admin].into(),
        authorized_keys: [(admin, AuthorizationLevel::Admin)].into(),
        ..AuthManagerConfig::default()
    });
    assert_eq!(
        v.authenticate_trusted(trusted, t0())
            .unwrap()
            .unwrap()
            .level,
        AuthorizationLevel::Relay
    );
    assert_eq!(
        v.authorization_level(&admin, t0()),
        AuthorizationLevel::Admin
    );
    assert_eq!(v.authenticate_trusted(stranger, t0()), Ok(None));
    assert_eq!(v.pending_challenges(), 0);
    assert_eq!(
        v.authorize(&trusted, AuthorizationLevel::Admin, t0()),
        Err(AuthError::InsufficientLevel {
            have: AuthorizationLevel::Relay,
            need: AuthorizationLevel::Admin
        })
    );
    assert_eq!(
        v.authorize(&stranger, AuthorizationLevel::Basic, t0()),
        Err(AuthError::InsufficientLevel {
            have: AuthorizationLevel::None,
            need: AuthorizationLevel::Basic
        })
    );
}

#[test]
fn require_auth_off_gives_the_default_level_without_proof() {
    let stranger = PeerId::random();
    let v = manager(AuthManagerConfig {
        require_auth: false,
        default_auth_level: AuthorizationLevel::Basic,
        ..AuthManagerConfig::default()
    });
    assert_eq!(
        v.authorize(&stranger, AuthorizationLevel::Basic, t0()),
        Ok(AuthorizationLevel::Basic)
    );
    assert!(!v.is_authenticated(&stranger, t0()));
}

#[test]
fn public_key_method_admits_only_authorized_keys() {
    let known = manager(AuthManagerConfig::default());
    let unknown = PeerId::random();
    let mut v = manager(AuthManagerConfig {
        auth_method: AuthMethod::PublicKey,
        authorized_keys: [(known.local_peer_id(), AuthorizationLevel::Basic)].into(),
        ..AuthManagerConfig::default()
    });
    assert_eq!(
        v.generate_challenge(unknown, t0()),
        Err(AuthError::NotAuthorized(unknown))
    );
    assert_eq!(v.pending_challenges(), 0);
    let (_, r) = handshake(&mut v, &known);
    assert_eq!(
        v.verify_response(known.local_peer_id(), &r, t0())
            .unwrap()
            .level,
        AuthorizationLevel::Basic
    );
}

#[test]
fn pending_challenges_are_bounded() {
    let mut v = manager(AuthManagerConfig::default());
    let p = PeerId::random();
    for _ in 0..MAX_PENDING_CHALLENGES {
        v.generate_challenge(p, t0()).unwrap();
    }
    assert_eq!(
        v.generate_challenge(p, t0()),
        Err(AuthError::TooManyChallenges)
    );
    // Once they expire there is room again.
    let later = t0() + v.config().challenge_ttl + Duration::from_secs(1);
    v.generate_challenge(p, later).unwrap();
    assert_eq!(v.pending_challenges(), 1);
}

#[test]
fn bad_configurations_are_refused() {
    let key = Keypair::generate_ed25519;
    assert!(matches!(
        AuthManager::new(with_method(AuthMethod::SharedKey).without_key(), key()),
        Err(AuthError::Config(_))
    ));
    assert!(matches!(
        AuthManager::new(
            AuthManagerConfig {
                shared_key: Some(b"short".to_vec()),
                ..AuthManagerConfig::default()
            },
            key()
        ),
        Err(AuthError::Config(_))
    ));
    let debug = format!("{:?}", with_method(AuthMethod::SharedKey));
    assert!(!debug.contains("operator-issued"), "{debug}");
}

impl AuthManagerConfig {
    fn without_key(mut self) -> Self {
        self.shared_key = None;
        self
    }
}

#[test]
fn wire_messages_round_trip_within_the_size_limit() {
    let mut v = manager(AuthManagerConfig::default());
    let p = manager(AuthManagerConfig::default());
    let (c, r) = handshake(&mut v, &p);
    let req = serde_json::to_vec(&AuthRequest::Challenge(c.clone())).unwrap();
    let resp = serde_json::to_vec(&AuthResponse::Proof(r.clone())).unwrap();
    assert!(req.len() as u64 <= MAX_AUTH_MESSAGE_SIZE);
    assert!(resp.len() as u64 <= MAX_AUTH_MESSAGE_SIZE);
    assert_eq!(
        serde_json::from_slice::<AuthRequest>(&req).unwrap(),
        AuthRequest::Challenge(c)
    );
    assert_eq!(
        serde_json::from_slice::<AuthResponse>(&resp).unwrap(),
        AuthResponse::Proof(r)
    );
}
