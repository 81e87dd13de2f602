//! The relay's token authority: challenges, JWTs signed with the relay's
//! identity key (EdDSA), validation, refresh and revocation (kept in
//! `revocations.json` in the data directory so it survives restarts).
//!
//! Tokens are bearer credentials for the WebSocket plane. The token of a
//! `/signaling` socket must name the peer that registers there, so a stolen
//! token is useless without that peer's key as well.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use darkswap_proto::{
    relay_auth::{CHALLENGE_LEN, Role, TokenRequest, verify_token_request},
    signaling::{decode_b64, encode_b64},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libp2p::{PeerId, identity::Keypair};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::{
    config::AuthSection,
    metrics::SecurityMetrics,
    token::{Claims, TokenError, TokenValidator},
};

/// File in the data directory holding revocations.
pub const REVOCATIONS_FILE: &str = "revocations.json";

/// Why a token request (`/auth/challenge`, `/auth/token`) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// `peer_id` is not a peer id.
    #[error("peer_id is not a peer id")]
    BadPeerId,
    /// Too many challenges outstanding.
    #[error("too many challenges outstanding; try again later")]
    Busy,
    /// The proof does not verify.
    #[error("{0}")]
    BadProof(String),
    /// Not a challenge this relay issued to this peer, already used, or expired.
    #[error("unknown, used or expired challenge")]
    UnknownChallenge,
}

impl ChallengeError {
    /// Metric label and wire error code.
    pub fn reason(&self) -> &'static str {
        match self {
            ChallengeError::BadPeerId => "bad_peer_id",
            ChallengeError::Busy => "busy",
            ChallengeError::BadProof(_) => "bad_proof",
            ChallengeError::UnknownChallenge => "unknown_challenge",
        }
    }
}

/// Why the authority could not start or persist.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// The identity key is not Ed25519.
    #[error("the relay identity must be an Ed25519 key")]
    NotEd25519,
    /// The signing key could not be prepared.
    #[error("cannot prepare the token signing key")]
    SigningKey,
    /// `revocations.json` cannot be read or written.
    #[error("revocations file {path}: {reason}")]
    Revocations {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A token could not be encoded.
    #[error("cannot encode a token: {0}")]
    Encode(String),
    /// A requested lifetime is longer than the configuration allows.
    #[error("ttl {ttl:?} exceeds auth.max_token_ttl_secs ({max:?})")]
    TtlTooLong {
        /// Requested.
        ttl: Duration,
        /// Allowed.
        max: Duration,
    },
}

/// What an admin revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// One token, by its `jti`.
    Token(String),
    /// Every token issued to this peer until now.
    Peer(PeerId),
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Revocations {
    /// Token ids revoked by an admin, and their expiry (after which the
    /// entry goes).
    tokens: BTreeMap<String, u64>,
    /// Token ids replaced by a refresh: refused for new connections and
    /// refreshes, while sockets opened with them stay open.
    #[serde(default)]
    superseded: BTreeMap<String, u64>,
    /// Peers whose tokens issued at or before this second are revoked.
    peers: BTreeMap<String, u64>,
}

#[derive(Debug)]
struct PendingChallenge {
    peer: PeerId,
    expires: Instant,
}

/// Issues and checks the relay's tokens.
pub struct Authority {
    relay: PeerId,
    config: AuthSection,
    encoding: EncodingKey,
    validator: TokenValidator,
    revocations: Mutex<Revocations>,
    revocations_path: Option<PathBuf>,
    /// Bumped on every revocation so open sockets re-check their token.
    revoked_tx: watch::Sender<u64>,
    challenges: Mutex<HashMap<[u8; CHALLENGE_LEN], PendingChallenge>>,
    metrics: Arc<SecurityMetrics>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("relay", &self.relay)
            .field("revocations_path", &self.revocations_path)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these leaves consistent data (every
    // update is a single insert or remove), so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The key pair's signing key as PKCS#8, what `jsonwebtoken` takes.
fn signing_key(key: &Keypair) -> Result<EncodingKey, AuthorityError> {
    let ed = key
        .clone()
        .try_into_ed25519()
        .map_err(|_| AuthorityError::NotEd25519)?;
    let seed = Zeroizing::new(ed.secret().as_ref().to_vec());
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
        .map_err(|_| AuthorityError::SigningKey)?;
    let pkcs8 = pair.to_pkcs8().map_err(|_| AuthorityError::SigningKey)?;
    let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
    Ok(EncodingKey::from_ed_der(&pkcs8))
}

impl Authority {
    /// An authority signing with `key`, keeping revocations in
    /// `data_dir/revocations.json` (none kept when `data_dir` is `None`).
    pub fn new(
        key: &Keypair,
        config: AuthSection,
        data_dir: Option<&Path>,
        metrics: Arc<SecurityMetrics>,
    ) -> Result<Self, AuthorityError> {
        let relay = key.public().to_peer_id();
        let encoding = signing_key(key)?;
        let validator = TokenValidator::new(
            &key.public(),
            &config.audience,
            config.clock_skew_secs,
            config.max_token_ttl_secs,
        )
        .ok_or(AuthorityError::NotEd25519)?;
        let revocations_path = data_dir.map(|d| d.join(REVOCATIONS_FILE));
        let revocations = match &revocations_path {
            Some(path) => load_revocations(path)?,
            None => Revocations::default(),
        };
        let (revoked_tx, _) = watch::channel(0);
        Ok(Authority {
            relay,
            config,
            encoding,
            validator,
            revocations: Mutex::new(revocations),
            revocations_path,
            revoked_tx,
            challenges: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// The relay's peer id (the tokens' issuer).
    pub fn relay(&self) -> PeerId {
        self.relay
    }

    /// The configuration in force.
    pub fn config(&self) -> &AuthSection {
        &self.config
    }

    /// The metrics this authority counts in.
    pub fn metrics(&self) -> &Arc<SecurityMetrics> {
        &self.metrics
    }

    /// Changes whenever something is revoked.
    pub fn revocations_changed(&self) -> watch::Receiver<u64> {
        self.revoked_tx.subscribe()
    }

    /// Mints a token for `peer` with `role`, valid for `ttl` from now.
    pub fn issue(
        &self,
        peer: &PeerId,
        role: Role,
        ttl: Duration,
    ) -> Result<(String, Claims), AuthorityError> {
        let max = Duration::from_secs(self.config.max_token_ttl_secs);
        if ttl > max {
            return Err(AuthorityError::TtlTooLong { ttl, max });
        }
        let now = darkswap_p2p::unix_now();
        // A token issued in the second a peer's tokens were revoked must
        // not fall under that revocation.
        let revoked_at = lock(&self.revocations)
            .peers
            .get(&peer.to_string())
            .copied();
        let iat = match revoked_at {
            Some(at) if at >= now => at + 1,
            _ => now,
        };
        let mut jti = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut jti);
        let claims = Claims {
            iss: self.relay.to_string(),
            aud: self.config.audience.clone(),
            sub: peer.to_string(),
            role,
            iat,
            nbf: now,
            exp: now + ttl.as_secs(),
            jti: hex::encode(jti),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .map_err(|e| AuthorityError::Encode(e.to_string()))?;
        Ok((token, claims))
    }

    /// Checks a token: signature, algorithm, issuer, audience, time window,
    /// lifetime and revocations. Refusals are counted by reason.
    pub fn validate(&self, token: &str) -> Result<Claims, TokenError> {
        let result = self.check(token);
        if let Err(e) = &result {
            self.metrics.rejected(e.reason());
        }
        result
    }

    fn check(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = self
            .validator
            .validate_at(token, darkswap_p2p::unix_now())?;
        let revocations = lock(&self.revocations);
        let peer_revoked = revocations
            .peers
            .get(&claims.sub)
            .is_some_and(|at| claims.iat <= *at);
        if peer_revoked
            || revocations.tokens.contains_key(&claims.jti)
            || revocations.superseded.contains_key(&claims.jti)
        {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// Whether an admin revoked this token, or every token of its peer
    /// issued until it: what closes a socket opened with the token.
    pub fn revoked_by_admin(&self, claims: &Claims) -> bool {
        let revocations = lock(&self.revocations);
        revocations.tokens.contains_key(&claims.jti)
            || revocations
                .peers
                .get(&claims.sub)
                .is_some_and(|at| claims.iat <= *at)
    }

    /// Issues a challenge for `peer_id`.
    pub fn challenge(&self, peer_id: &str) -> Result<String, ChallengeError> {
        let result = self.new_challenge(peer_id);
        if let Err(e) = &result {
            self.metrics.rejected(e.reason());
        }
        result
    }

    fn new_challenge(&self, peer_id: &str) -> Result<String, ChallengeError> {
        let peer: PeerId = peer_id.parse().map_err(|_| ChallengeError::BadPeerId)?;
        let now = Instant::now();
        let mut challenges = lock(&self.challenges);
        if challenges.len() >= self.config.max_pending_challenges {
            challenges.retain(|_, c| c.expires > now);
            if challenges.len() >= self.config.max_pending_challenges {
                return Err(ChallengeError::Busy);
            }
        }
        let mut challenge = [0u8; CHALLENGE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut challenge);
        challenges.insert(
            challenge,
            PendingChallenge {
                peer,
                expires: now + Duration::from_secs(self.config.challenge_ttl_secs),
            },
        );
        Ok(encode_b64(&challenge))
    }

    /// Exchanges an answered challenge for a token. The challenge is used
    /// up whether or not the proof verifies.
    pub fn exchange(&self, request: &TokenRequest) -> Result<(String, Claims), ChallengeError> {
        let result = self.redeem(request);
        match &result {
            Ok(_) => self.metrics.issued("challenge"),
            Err(e) => self.metrics.rejected(e.reason()),
        }
        result
    }

    fn redeem(&self, request: &TokenRequest) -> Result<(String, Claims), ChallengeError> {
        let raw = decode_b64(&request.challenge)
            .and_then(|c| <[u8; CHALLENGE_LEN]>::try_from(c).ok())
            .ok_or(ChallengeError::UnknownChallenge)?;
        let pending = lock(&self.challenges)
            .remove(&raw)
            .ok_or(ChallengeError::UnknownChallenge)?;
        if pending.expires <= Instant::now() || pending.peer.to_string() != request.peer_id {
            return Err(ChallengeError::UnknownChallenge);
        }
        let (peer, _) = verify_token_request(request, &self.relay)
            .map_err(|e| ChallengeError::BadProof(e.to_string()))?;
        let role = self.config.role_of(&peer);
        self.issue(&peer, role, Duration::from_secs(self.config.token_ttl_secs))
            .map_err(|e| ChallengeError::BadProof(e.to_string()))
    }

    /// A fresh token for the holder of a valid one; the old one can no
    /// longer open connections or be refreshed (sockets it opened stay).
    /// The new token never carries more than the configuration gives the
    /// peer today.
    pub fn refresh(&self, token: &str) -> Result<(String, Claims), TokenError> {
        let claims = self.validate(token)?;
        let peer = claims
            .peer()
            .ok_or_else(|| TokenError::Malformed("sub is not a peer id".to_owned()))?;
        let role = claims.role.min(self.config.role_of(&peer));
        let issued = self
            .issue(&peer, role, Duration::from_secs(self.config.token_ttl_secs))
            .map_err(|e| TokenError::Malformed(e.to_string()))?;
        self.supersede(&claims)
            .map_err(|e| TokenError::Malformed(e.to_string()))?;
        self.metrics.issued("refresh");
        Ok(issued)
    }

    /// Revokes a token (kept until `expires`, its `exp`) or all of a peer's
    /// tokens issued until now; persisted before this returns.
    pub fn revoke(&self, what: Revocation, expires: u64) -> Result<(), AuthorityError> {
        let now = darkswap_p2p::unix_now();
        let mut revocations = lock(&self.revocations);
        let kind = match &what {
            Revocation::Token(jti) => {
                revocations.tokens.insert(jti.clone(), expires);
                "token"
            }
            Revocation::Peer(peer) => {
                revocations.peers.insert(peer.to_string(), now);
                "peer"
            }
        };
        self.prune(&mut revocations, now);
        if let Some(path) = &self.revocations_path {
            save_revocations(path, &revocations)?;
        }
        drop(revocations);
        self.metrics.revoked(kind);
        self.revoked_tx.send_modify(|n| *n += 1);
        Ok(())
    }

    fn supersede(&self, claims: &Claims) -> Result<(), AuthorityError> {
        let now = darkswap_p2p::unix_now();
        let mut revocations = lock(&self.revocations);
        revocations
            .superseded
            .insert(claims.jti.clone(), claims.exp);
        self.prune(&mut revocations, now);
        if let Some(path) = &self.revocations_path {
            save_revocations(path, &revocations)?;
        }
        Ok(())
    }

    /// Drops entries no token can match any more.
    fn prune(&self, revocations: &mut Revocations, now: u64) {
        let skew = self.config.clock_skew_secs;
        let max_ttl = self.config.max_token_ttl_secs;
        revocations.tokens.retain(|_, exp| *exp + skew >= now);
        revocations.superseded.retain(|_, exp| *exp + skew >= now);
        revocations
            .peers
            .retain(|_, at| *at + max_ttl + 2 * skew >= now);
    }
}

fn load_revocations(path: &Path) -> Result<Revocations, AuthorityError> {
    let fail = |reason: String| AuthorityError::Revocations {
        path: path.to_owned(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Revocations::default()),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// Writes to a temporary file, syncs it and renames it over the old one, so
/// a crash leaves either the old list or the new one.
fn save_revocations(path: &Path, revocations: &Revocations) -> Result<(), AuthorityError> {
    use std::io::Write as _;
    let fail = |e: std::io::Error| AuthorityError::Revocations {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let bytes =
        serde_json::to_vec_pretty(revocations).map_err(|e| AuthorityError::Revocations {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(fail)?;
    file.write_all(&bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkswap_proto::relay_auth::sign_token_request;
    use prometheus_client::registry::Registry;

    fn authority(config: AuthSection, dir: Option<&Path>) -> (Keypair, Authority) {
        let key = Keypair::generate_ed25519();
        let metrics = Arc::new(SecurityMetrics::register(&mut Registry::default()));
        let authority = Authority::new(&key, config, dir, metrics).unwrap();
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

    fn claims_json(a: &Authority, peer: &PeerId, nbf: u64, exp: u64) -> serde_json::Value {
        serde_json::json!({
            "iss": a.relay().to_string(), "aud": "darkswap-relay", "sub": peer.to_string(),
            "role": "admin", "iat": nbf, "nbf": nbf, "exp": exp, "jti": "feed",
        })
    }

    #[test]
    fn an_issued_token_validates_and_carries_its_claims() {
        let (_, a) = authority(AuthSection::default(), None);
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
    fn refused(a: &Authority, token: &str, expected: TokenError) {
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
        let (key, a) = authority(AuthSection::default(), None);
        let now = darkswap_p2p::unix_now();
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
        let (key, a) = authority(AuthSection::default(), None);
        let now = darkswap_p2p::unix_now();
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
        let (_, a) = authority(AuthSection::default(), None);
        let now = darkswap_p2p::unix_now();
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
        let (key, a) = authority(AuthSection::default(), None);
        let now = darkswap_p2p::unix_now();
        let expired = sign_raw(
            &key,
            &eddsa(),
            &claims_json(&a, &PeerId::random(), now - 600, now - 300),
        );
        refused(&a, &expired, TokenError::Expired);
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let (key, a) = authority(AuthSection::default(), None);
        let now = darkswap_p2p::unix_now();
        let early = sign_raw(
            &key,
            &eddsa(),
            &claims_json(&a, &PeerId::random(), now + 600, now + 900),
        );
        refused(&a, &early, TokenError::NotYetValid);
    }

    #[test]
    fn a_wrong_issuer_is_refused() {
        let (key, a) = authority(AuthSection::default(), None);
        let now = darkswap_p2p::unix_now();
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
        let (key, a) = authority(AuthSection::default(), None);
        let now = darkswap_p2p::unix_now();
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
        let (_, a) = authority(AuthSection::default(), None);
        let (token, claims) = a
            .issue(&PeerId::random(), Role::User, Duration::from_secs(60))
            .unwrap();
        a.revoke(Revocation::Token(claims.jti), claims.exp).unwrap();
        refused(&a, &token, TokenError::Revoked);
    }

    #[test]
    fn a_token_living_too_long_is_refused() {
        let (key, a) = authority(AuthSection::default(), None);
        let now = darkswap_p2p::unix_now();
        let forever = sign_raw(
            &key,
            &eddsa(),
            &claims_json(&a, &PeerId::random(), now, now + 10 * 86_400),
        );
        refused(&a, &forever, TokenError::TooLong);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let (key, a) = authority(AuthSection::default(), None);
        let now = darkswap_p2p::unix_now();
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
        let mut config = AuthSection::default();
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

        config.challenge_ttl_secs = 0;
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
        let config = AuthSection {
            admins: vec![admin.public().to_peer_id()],
            default_role: Role::Guest,
            ..AuthSection::default()
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
        let (_, a) = authority(AuthSection::default(), None);
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
        let a = Authority::new(&key, AuthSection::default(), Some(dir.path()), metrics()).unwrap();
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

        let b = Authority::new(&key, AuthSection::default(), Some(dir.path()), metrics()).unwrap();
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
            Authority::new(&key, AuthSection::default(), Some(dir.path()), metrics).unwrap_err();
        assert!(matches!(err, AuthorityError::Revocations { .. }));
    }
}
