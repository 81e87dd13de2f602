//! Relay tokens, sans-IO: their claims and their check. A token is a JWT
//! signed with the relay's Ed25519 identity key (EdDSA only), so anyone can
//! verify it against the relay's peer id and the relay needs no second
//! secret. [`TokenValidator::validate_at`] takes the time as an argument, so
//! the check is deterministic; revocations are the token authority's, after
//! it.
//!
//! Built without the `server` feature, so the fuzz crate reaches it without
//! the relay's IO stack.

use darkswap_proto::{
    identity::{PeerId, PublicKey},
    relay_auth::Role,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

/// The claims of a relay token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: the relay's peer id.
    pub iss: String,
    /// Audience: the relay's configured audience.
    pub aud: String,
    /// Subject: the peer id the token was issued to.
    pub sub: String,
    /// The role it grants.
    pub role: Role,
    /// Issued at (unix seconds).
    pub iat: u64,
    /// Not before (unix seconds).
    pub nbf: u64,
    /// Expires (unix seconds).
    pub exp: u64,
    /// Token id, the handle for revoking it.
    pub jti: String,
}

impl Claims {
    /// The subject as a peer id.
    pub fn peer(&self) -> Option<PeerId> {
        self.sub.parse().ok()
    }
}

/// Why a token was refused. Each has a stable [`TokenError::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a JWT, or claims missing or of the wrong type.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Signed with an algorithm other than EdDSA (`none` included).
    #[error("token algorithm {0} is not accepted (EdDSA only)")]
    WrongAlgorithm(String),
    /// The signature is not the relay's.
    #[error("token signature does not verify")]
    BadSignature,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// Before `nbf`.
    #[error("token not valid yet")]
    NotYetValid,
    /// `iss` is not this relay.
    #[error("token issued by someone else")]
    WrongIssuer,
    /// `aud` is not this relay's audience.
    #[error("token issued for another audience")]
    WrongAudience,
    /// Revoked by an admin (the relay's own check, after validation).
    #[error("token revoked")]
    Revoked,
    /// Lives longer than the relay's maximum token lifetime.
    #[error("token lifetime exceeds the relay's maximum")]
    TooLong,
}

impl TokenError {
    /// Metric label and wire error detail.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "malformed",
            TokenError::WrongAlgorithm(_) => "wrong_algorithm",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::Revoked => "revoked",
            TokenError::TooLong => "too_long",
        }
    }
}

/// Checks relay tokens: EdDSA only, signed by the relay's key, issued by
/// the relay for its audience, inside their time window (with a tolerated
/// clock skew), no longer-lived than the maximum, `sub` a peer id. It does
/// not know revocations; the relay checks those after it.
pub struct TokenValidator {
    decoding: DecodingKey,
    validation: Validation,
    max_ttl_secs: u64,
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenValidator")
            .field("issuer", &self.validation.iss)
            .field("audience", &self.validation.aud)
            .finish_non_exhaustive()
    }
}

/// The `alg` a token's header names, read only to tell "wrong algorithm"
/// apart from other failures; `jsonwebtoken` does the real checking.
fn header_alg(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(str::to_owned)
}

impl TokenValidator {
    /// A validator for tokens of the relay whose identity is `relay_key`
    /// (Ed25519), for `audience`, tolerating `leeway_secs` of clock skew.
    /// `None` if the key is not Ed25519.
    pub fn new(
        relay_key: &PublicKey,
        audience: &str,
        leeway_secs: u64,
        max_ttl_secs: u64,
    ) -> Option<Self> {
        let ed = relay_key.clone().try_into_ed25519().ok()?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        // The time window is checked against the caller's clock (see
        // `validate_at`), so validation is deterministic.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = leeway_secs;
        validation.set_issuer(&[relay_key.to_peer_id().to_string()]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Some(TokenValidator {
            decoding: DecodingKey::from_ed_der(&ed.to_bytes()),
            validation,
            max_ttl_secs,
        })
    }

    /// Checks `token` against everything but revocations, at unix time `now`.
    pub fn validate_at(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        match header_alg(token) {
            None => return Err(TokenError::Malformed("no readable header".to_owned())),
            Some(alg) if alg != "EdDSA" => return Err(TokenError::WrongAlgorithm(alg)),
            Some(_) => {}
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm("?".to_owned()),
                _ => TokenError::Malformed(e.to_string()),
            })?
            .claims;
        let leeway = self.validation.leeway;
        if claims.exp.saturating_add(leeway) < now {
            return Err(TokenError::Expired);
        }
        if claims.nbf > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid);
        }
        if claims.peer().is_none() {
            return Err(TokenError::Malformed("sub is not a peer id".to_owned()));
        }
        if claims.exp.saturating_sub(claims.nbf.min(claims.iat)) > self.max_ttl_secs {
            return Err(TokenError::TooLong);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    use darkswap_proto::identity::Keypair;
    use serde_json::json;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    /// A token over `header` and claims expiring at `exp`, signed by `key`.
    fn token(key: &Keypair, relay: &Keypair, header: &serde_json::Value, exp: u64) -> String {
        let claims = json!({
            "iss": relay.public().to_peer_id().to_string(), "aud": "darkswap-relay",
            "sub": PeerId::random().to_string(), "role": "user",
            "iat": NOW - 60, "nbf": NOW - 60, "exp": exp, "jti": "00",
        });
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = key.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(signature))
    }

    #[test]
    fn the_time_window_is_checked_against_the_clock_passed_in() {
        let relay = Keypair::generate_ed25519();
        let validator = TokenValidator::new(&relay.public(), "darkswap-relay", 30, 86_400).unwrap();
        let eddsa = json!({"alg": "EdDSA", "typ": "JWT"});
        let t = token(&relay, &relay, &eddsa, NOW + 60);
        assert!(validator.validate_at(&t, NOW).is_ok());
        // Expiry plus the tolerated skew is the last valid second.
        assert!(validator.validate_at(&t, NOW + 60 + 30).is_ok());
        assert_eq!(
            validator.validate_at(&t, NOW + 60 + 31),
            Err(TokenError::Expired)
        );
        assert_eq!(
            validator.validate_at(&t, NOW - 60 - 31),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn another_algorithm_is_refused_before_any_signature_check() {
        let relay = Keypair::generate_ed25519();
        let validator = TokenValidator::new(&relay.public(), "darkswap-relay", 30, 86_400).unwrap();
        let stranger = Keypair::generate_ed25519();
        let t = token(&stranger, &relay, &json!({"alg": "HS256"}), NOW + 60);
        assert_eq!(
            validator.validate_at(&t, NOW),
            Err(TokenError::WrongAlgorithm("HS256".to_owned()))
        );
    }
}
