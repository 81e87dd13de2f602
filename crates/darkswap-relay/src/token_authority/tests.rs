use darkswap_proto::relay_auth::sign_token_request;
use prometheus_client::registry::Registry;

use super::*;

fn authority(config: TokenConfig, dir: Option<&Path>) -> (Keypair, TokenAuthority) {
    let key = Keypair::generate_ed25519();
    let metrics = Arc::new(SecurityMetrics::register(&mut Registry::default()));
    let authority = TokenAuthority::new(&key, config, dir, metrics).unwrap();
    (key, authority)
}

fn sign_raw(key: &Keypair, header: &serde_json::Value, claims: &serde_json::Value) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signing_input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let signature = key.sign(signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", b64.encode(signature))
}

fn claims_json(a: &TokenAuthority, peer: &PeerId, nbf: u64, exp: u64) -> serde_json::Value {
    serde_json::json!({
        "iss": a.relay().to_string(), "aud": "darkswap-relay", "sub": peer.to_string(),
        "role": "admin", "iat": nbf, "nbf": nbf, "exp": exp, "jti": "feed",
    })
}

#[test]
fn an_issued_token_validates_and_carries_its_claims() {
    let (_, a) = authority(TokenConfig::default(), None);
    let peer = PeerId::random();
    let (token, claims) = a
        .issue(&peer, Role::Admin, Duration::from_secs(60))
        .unwrap();
    let checked = a.validate(&token).unwrap();
    assert_eq!(checked, claims);
    assert_eq!(checked.peer(), Some(peer));
    assert_eq!(checked.role, Role::Admin);
}

/// Checks that `token` is refused with `expected` while an honest token
/// of the same authority still passes.
fn refused(a: &TokenAuthority, token: &str, expected: TokenError) {
    assert_eq!(a.validate(token), Err(expected));
    let (honest, _) = a
        .issue(&PeerId::random(), Role::User, Duration::from_secs(60))
        .unwrap();
    assert!(a.validate(&honest).is_ok(), "the honest token beside it");
}

fn eddsa() -> serde_json::Value {
    serde_json::json!({"alg": "EdDSA", "typ": "JWT"})
}

#[test]
fn alg_none_is_refused() {
    let (key, a) = authority(TokenConfig::default(), None);
    let now = unix_now();
    let none = serde_json::json!({"alg": "none", "typ": "JWT"});
    let signed = sign_raw(
        &key,
        &none,
        &claims_json(&a, &PeerId::random(), now, now + 60),
    );
    let mut parts: Vec<&str> = signed.split('.').collect();
    parts[2] = "";
    refused(
        &a,
        &parts.join("."),
        TokenError::WrongAlgorithm("none".to_owned()),
    );
}

#[test]
fn a_wrong_algorithm_is_refused() {
    // HS256 keyed with the relay's public key: the classic confusion attack.
    let (key, a) = authority(TokenConfig::default(), None);
    let now = unix_now();
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims_json(&a, &PeerId::random(), now, now + 60),
        &EncodingKey::from_secret(&key.public().try_into_ed25519().unwrap().to_bytes()),
    )
    .unwrap();
    refused(&a, &hs, TokenError::WrongAlgorithm("HS256".to_owned()));
}

#[test]
fn a_wrong_key_is_refused() {
    let (_, a) = authority(TokenConfig::default(), None);
    let now = unix_now();
    let stranger = Keypair::generate_ed25519();
    let forged = sign_raw(
        &stranger,
        &eddsa(),
        &claims_json(&a, &PeerId::random(), now, now + 60),
    );
    refused(&a, &forged, TokenError::BadSignature);
}

#[test]
fn an_expired_token_is_refused() {
    let (key, a) = authority(TokenConfig::default(), None);
    let now = unix_now();
    let expired = sign_raw(
        &key,
        &eddsa(),
        &claims_json(&a, &PeerId::random(), now - 600, now - 300),
    );
    refused(&a, &expired, TokenError::Expired);
}

#[test]
fn a_token_not_yet_valid_is_refused() {
    let (key, a) = authority(TokenConfig::default(), None);
    let now = unix_now();
    let early = sign_raw(
        &key,
        &eddsa(),
        &claims_json(&a, &PeerId::random(), now + 600, now + 900),
    );
    refused(&a, &early, TokenError::NotYetValid);
}

#[test]
fn a_wrong_issuer_is_refused() {
    let (key, a) = authority(TokenConfig::default(), None);
    let now = unix_now();
    let mut claims = claims_json(&a, &PeerId::random(), now, now + 60);
    claims["iss"] = PeerId::random().to_string().into();
    refused(
        &a,
        &sign_raw(&key, &eddsa(), &claims),
        TokenError::WrongIssuer,
    );
}

#[test]
fn a_wrong_audience_is_refused() {
    let (key, a) = authority(TokenConfig::default(), None);
    let now = unix_now();
    let mut claims = claims_json(&a, &PeerId::random(), now, now + 60);
    claims["aud"] = "someone-else".into();
    refused(
        &a,
        &sign_raw(&key, &eddsa(), &claims),
        TokenError::WrongAudience,
    );
}

#[test]
fn a_revoked_token_is_refused() {
    let (_, a) = authority(TokenConfig::default(), None);
    let (token, claims) = a
        .issue(&PeerId::random(), Role::User, Duration::from_secs(60))
        .unwrap();
    a.revoke(Revocation::Token(claims.jti), claims.exp).unwrap();
    refused(&a, &token, TokenError::Revoked);
}

#[test]
fn a_token_living_too_long_is_refused() {
    let (key, a) = authority(TokenConfig::default(), None);
    let now = unix_now();
    let forever = sign_raw(
        &key,
        &eddsa(),
        &claims_json(&a, &PeerId::random(), now, now + 10 * 86_400),
    );
    refused(&a, &forever, TokenError::TooLong);
}

#[test]
fn malformed_tokens_are_refused() {
    let (key, a) = authority(TokenConfig::default(), None);
    let now = unix_now();
    for garbage in ["", "abc", "a.b.c", "e30.e30.", "\u{0}.\u{1}.\u{2}"] {
        assert!(
            matches!(a.validate(garbage), Err(TokenError::Malformed(_))),
            "{garbage:?}"
        );
    }
    let mut missing_sub = claims_json(&a, &PeerId::random(), now, now + 60);
    missing_sub.as_object_mut().unwrap().remove("sub");
    let token = sign_raw(&key, &eddsa(), &missing_sub);
    assert!(matches!(a.validate(&token), Err(TokenError::Malformed(_))));
    let mut not_a_peer = claims_json(&a, &PeerId::random(), now, now + 60);
    not_a_peer["sub"] = "nobody".into();
    let token = sign_raw(&key, &eddsa(), &not_a_peer);
    refused(
        &a,
        &token,
        TokenError::Malformed("sub is not a peer id".to_owned()),
    );
}

#[test]
fn challenges_are_single_use_bound_to_their_peer_and_expire() {
    let mut config = TokenConfig::default();
    let (_, a) = authority(config.clone(), None);
    let key = Keypair::generate_ed25519();
    let peer = key.public().to_peer_id();

    let challenge = a.challenge(&peer.to_string()).unwrap();
    let request = sign_token_request(&key, &a.relay(), &challenge).unwrap();
    let (token, claims) = a.exchange(&request).unwrap();
    assert_eq!(claims.role, Role::User);
    assert!(a.validate(&token).is_ok());
    assert_eq!(a.exchange(&request), Err(ChallengeError::UnknownChallenge));

    // A challenge issued to someone else cannot be answered by key.
    let challenge = a.challenge(&PeerId::random().to_string()).unwrap();
    let request = sign_token_request(&key, &a.relay(), &challenge).unwrap();
    assert_eq!(a.exchange(&request), Err(ChallengeError::UnknownChallenge));

    // Signed for another relay.
    let challenge = a.challenge(&peer.to_string()).unwrap();
    let request = sign_token_request(&key, &PeerId::random(), &challenge).unwrap();
    assert!(matches!(
        a.exchange(&request),
        Err(ChallengeError::BadProof(_))
    ));

    assert_eq!(a.challenge("not-a-peer"), Err(ChallengeError::BadPeerId));

    config.challenge_ttl = Duration::ZERO;
    let (_, quick) = authority(config, None);
    let challenge = quick.challenge(&peer.to_string()).unwrap();
    let request = sign_token_request(&key, &quick.relay(), &challenge).unwrap();
    assert_eq!(
        quick.exchange(&request),
        Err(ChallengeError::UnknownChallenge)
    );
}

#[test]
fn roles_come_from_the_configuration() {
    let admin = Keypair::generate_ed25519();
    let config = TokenConfig {
        admins: vec![admin.public().to_peer_id()],
        default_role: Role::Guest,
        ..TokenConfig::default()
    };
    let (_, a) = authority(config, None);
    let challenge = a
        .challenge(&admin.public().to_peer_id().to_string())
        .unwrap();
    let (_, claims) = a
        .exchange(&sign_token_request(&admin, &a.relay(), &challenge).unwrap())
        .unwrap();
    assert_eq!(claims.role, Role::Admin);
    let nobody = Keypair::generate_ed25519();
    let challenge = a
        .challenge(&nobody.public().to_peer_id().to_string())
        .unwrap();
    let (_, claims) = a
        .exchange(&sign_token_request(&nobody, &a.relay(), &challenge).unwrap())
        .unwrap();
    assert_eq!(claims.role, Role::Guest);
}

#[test]
fn refresh_replaces_the_token_and_never_raises_the_role() {
    let (_, a) = authority(TokenConfig::default(), None);
    let peer = PeerId::random();
    let (old, old_claims) = a
        .issue(&peer, Role::Admin, Duration::from_secs(60))
        .unwrap();
    let (new, claims) = a.refresh(&old).unwrap();
    assert!(
        !a.revoked_by_admin(&old_claims),
        "sockets opened with it stay open"
    );
    assert_eq!(
        claims.role,
        Role::User,
        "the configuration does not list it as admin"
    );
    assert_eq!(a.validate(&old), Err(TokenError::Revoked));
    assert!(a.validate(&new).is_ok());
}

#[test]
fn revocations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    let metrics = || Arc::new(SecurityMetrics::register(&mut Registry::default()));
    let a = TokenAuthority::new(&key, TokenConfig::default(), Some(dir.path()), metrics()).unwrap();
    let (victim, peer_token, other) = (PeerId::random(), PeerId::random(), PeerId::random());
    let (t1, c1) = a
        .issue(&victim, Role::User, Duration::from_secs(60))
        .unwrap();
    let (t2, _) = a
        .issue(&peer_token, Role::User, Duration::from_secs(60))
        .unwrap();
    let (t3, _) = a
        .issue(&other, Role::User, Duration::from_secs(60))
        .unwrap();
    a.revoke(Revocation::Token(c1.jti), c1.exp).unwrap();
    a.revoke(Revocation::Peer(peer_token), 0).unwrap();
    drop(a);

    let b = TokenAuthority::new(&key, TokenConfig::default(), Some(dir.path()), metrics()).unwrap();
    assert_eq!(b.validate(&t1), Err(TokenError::Revoked));
    assert_eq!(b.validate(&t2), Err(TokenError::Revoked));
    assert!(b.validate(&t3).is_ok());
    // A token issued after the peer's revocation is good.
    let (t4, _) = b
        .issue(&peer_token, Role::User, Duration::from_secs(60))
        .unwrap();
    assert!(b.validate(&t4).is_ok());
}

#[test]
fn a_corrupt_revocations_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(REVOCATIONS_FILE), b"{not json").unwrap();
    let key = Keypair::generate_ed25519();
    let metrics = Arc::new(SecurityMetrics::register(&mut Registry::default()));
    let err =
        TokenAuthority::new(&key, TokenConfig::default(), Some(dir.path()), metrics).unwrap_err();
    assert!(matches!(err, TokenAuthorityError::Revocations { .. }));
}
