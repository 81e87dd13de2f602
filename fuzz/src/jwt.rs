//! `jwt`: a bearer token as a client presents it to the relay (WebSocket
//! subprotocol, `Authorization: Bearer`), through
//! [`TokenValidator::validate_at`], the relay's token check short of its
//! revocation list.
//!
//! Beyond "no panic" it asserts:
//! - nothing validates that the relay did not sign: the fuzzer holds no key,
//!   so an accepted token must carry exactly the claims of a seed the relay
//!   signed (base64 spellings of the same bytes may differ, the claims not);
//! - a header naming any algorithm but EdDSA (`none`, HS256, ...) is refused
//!   as [`TokenError::WrongAlgorithm`], never checked with another algorithm.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use darkswap_proto::{identity::Keypair, relay_auth::Role};
use darkswap_relay::token::{Claims, TokenError, TokenValidator};
use serde_json::{Value, json};

/// The relay whose tokens are checked.
fn relay() -> Keypair {
    Keypair::ed25519_from_bytes([0x07; 32]).unwrap_or_else(|e| panic!("ed25519 key: {e}"))
}

const AUDIENCE: &str = "darkswap-relay";
/// The seeds' expiry: an hour after the fuzzing clock.
const EXP: u64 = crate::SEED_NOW + 3600;

fn claims(role: Role, exp: u64) -> Claims {
    let subject = Keypair::ed25519_from_bytes([0x08; 32])
        .unwrap_or_else(|e| panic!("ed25519 key: {e}"))
        .public()
        .to_peer_id();
    Claims {
        iss: relay().public().to_peer_id().to_string(),
        aud: AUDIENCE.to_owned(),
        sub: subject.to_string(),
        role,
        iat: crate::SEED_NOW - 60,
        nbf: crate::SEED_NOW - 60,
        exp,
        jti: "00112233445566778899aabbccddeeff".to_owned(),
    }
}

/// A compact JWS over `header` and `claims`, signed by `key`.
fn sign(key: &Keypair, header: &Value, claims: &Claims) -> String {
    let claims = serde_json::to_string(claims).unwrap_or_else(|e| panic!("claims: {e}"));
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims));
    let signature = key
        .sign(input.as_bytes())
        .unwrap_or_else(|e| panic!("sign: {e}"));
    format!("{input}.{}", B64.encode(signature))
}

/// Runs one input as a token.
pub fn check(data: &[u8]) {
    // Tokens arrive in HTTP header values, which are text.
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let validator = TokenValidator::new(&relay().public(), AUDIENCE, 30, 86_400)
        .unwrap_or_else(|| panic!("an Ed25519 relay key"));
    let header_alg = token
        .split('.')
        .next()
        .and_then(|h| B64.decode(h.trim_end_matches('=')).ok())
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_owned));
    match validator.validate_at(token, crate::SEED_NOW) {
        Ok(accepted) => {
            let signed = [claims(Role::User, EXP), claims(Role::Admin, EXP)];
            assert!(
                signed.contains(&accepted),
                "accepted claims the relay never signed: {accepted:?}"
            );
            assert_eq!(header_alg.as_deref(), Some("EdDSA"));
        }
        Err(TokenError::WrongAlgorithm(alg)) => {
            assert_ne!(alg, "EdDSA", "EdDSA refused as a wrong algorithm");
        }
        Err(e) => {
            if let Some(alg) = header_alg {
                assert_eq!(alg, "EdDSA", "{alg} reached the signature check: {e}");
            }
        }
    }
}

/// Valid tokens of the relay, and refused ones of each kind.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let key = relay();
    let eddsa = json!({"alg": "EdDSA", "typ": "JWT"});
    let stranger = Keypair::ed25519_from_bytes([0x09; 32]).unwrap_or_else(|e| panic!("key: {e}"));
    let mut other_audience = claims(Role::User, EXP);
    other_audience.aud = "elsewhere".to_owned();
    let mut not_a_peer = claims(Role::User, EXP);
    not_a_peer.sub = "nobody".to_owned();
    let mut too_long = claims(Role::User, EXP);
    too_long.nbf = 1;
    let seeds = [
        ("user", sign(&key, &eddsa, &claims(Role::User, EXP))),
        ("admin", sign(&key, &eddsa, &claims(Role::Admin, EXP))),
        (
            "expired",
            sign(&key, &eddsa, &claims(Role::User, 1_000_000_000)),
        ),
        (
            "other_key",
            sign(&stranger, &eddsa, &claims(Role::User, EXP)),
        ),
        ("other_audience", sign(&key, &eddsa, &other_audience)),
        ("sub_not_a_peer", sign(&key, &eddsa, &not_a_peer)),
        ("too_long", sign(&key, &eddsa, &too_long)),
        (
            "alg_none",
            sign(&key, &json!({"alg": "none"}), &claims(Role::Admin, EXP)),
        ),
        (
            "alg_hs256",
            sign(&key, &json!({"alg": "HS256"}), &claims(Role::Admin, EXP)),
        ),
        ("garbage", "a.b.c".to_owned()),
    ];
    seeds
        .into_iter()
        .map(|(name, token)| (name, token.into_bytes()))
        .collect()
}
