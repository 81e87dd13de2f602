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
    clock::unix_now,
    config::TokenConfig,
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
pub enum TokenAuthorityError {
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
pub struct TokenAuthority {
    relay: PeerId,
    config: TokenConfig,
    encoding: EncodingKey,
    validator: TokenValidator,
    revocations: Mutex<Revocations>,
    revocations_path: Option<PathBuf>,
    /// Bumped on every revocation so open sockets re-check their token.
    revoked_tx: watch::Sender<u64>,
    challenges: Mutex<HashMap<[u8; CHALLENGE_LEN], PendingChallenge>>,
    metrics: Arc<SecurityMetrics>,
}

impl std::fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthority")
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
fn signing_key(key: &Keypair) -> Result<EncodingKey, TokenAuthorityError> {
    let ed = key
        .clone()
        .try_into_ed25519()
        .map_err(|_| TokenAuthorityError::NotEd25519)?;
    let seed = Zeroizing::new(ed.secret().as_ref().to_vec());
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
        .map_err(|_| TokenAuthorityError::SigningKey)?;
    let pkcs8 = pair
        .to_pkcs8()
        .map_err(|_| TokenAuthorityError::SigningKey)?;
    let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
    Ok(EncodingKey::from_ed_der(&pkcs8))
}

impl TokenAuthority {
    /// An authority signing with `key`, keeping revocations in
    /// `data_dir/revocations.json` (none kept when `data_dir` is `None`).
    pub fn new(
        key: &Keypair,
        config: TokenConfig,
        data_dir: Option<&Path>,
        metrics: Arc<SecurityMetrics>,
    ) -> Result<Self, TokenAuthorityError> {
        let relay = key.public().to_peer_id();
        let encoding = signing_key(key)?;
        let validator = TokenValidator::new(
            &key.public(),
            &config.audience,
            config.clock_skew.as_secs(),
            config.max_token_ttl.as_secs(),
        )
        .ok_or(TokenAuthorityError::NotEd25519)?;
        let revocations_path = data_dir.map(|d| d.join(REVOCATIONS_FILE));
        let revocations = match &revocations_path {
            Some(path) => load_revocations(path)?,
            None => Revocations::default(),
        };
        let (revoked_tx, _) = watch::channel(0);
        Ok(TokenAuthority {
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
    pub fn config(&self) -> &TokenConfig {
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
    ) -> Result<(String, Claims), TokenAuthorityError> {
        let max = self.config.max_token_ttl;
        if ttl > max {
            return Err(TokenAuthorityError::TtlTooLong { ttl, max });
        }
        let now = unix_now();
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
            .map_err(|e| TokenAuthorityError::Encode(e.to_string()))?;
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
        let claims = self.validator.validate_at(token, unix_now())?;
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
                expires: now + self.config.challenge_ttl,
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
        self.issue(&peer, role, self.config.token_ttl)
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
            .issue(&peer, role, self.config.token_ttl)
            .map_err(|e| TokenError::Malformed(e.to_string()))?;
        self.supersede(&claims)
            .map_err(|e| TokenError::Malformed(e.to_string()))?;
        self.metrics.issued("refresh");
        Ok(issued)
    }

    /// Revokes a token (kept until `expires`, its `exp`) or all of a peer's
    /// tokens issued until now; persisted before this returns.
    pub fn revoke(&self, what: Revocation, expires: u64) -> Result<(), TokenAuthorityError> {
        let now = unix_now();
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

    fn supersede(&self, claims: &Claims) -> Result<(), TokenAuthorityError> {
        let now = unix_now();
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
        let skew = self.config.clock_skew.as_secs();
        let max_ttl = self.config.max_token_ttl.as_secs();
        revocations.tokens.retain(|_, exp| *exp + skew >= now);
        revocations.superseded.retain(|_, exp| *exp + skew >= now);
        revocations
            .peers
            .retain(|_, at| *at + max_ttl + 2 * skew >= now);
    }
}

fn load_revocations(path: &Path) -> Result<Revocations, TokenAuthorityError> {
    let fail = |reason: String| TokenAuthorityError::Revocations {
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
fn save_revocations(path: &Path, revocations: &Revocations) -> Result<(), TokenAuthorityError> {
    use std::io::Write as _;
    let fail = |e: std::io::Error| TokenAuthorityError::Revocations {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let bytes =
        serde_json::to_vec_pretty(revocations).map_err(|e| TokenAuthorityError::Revocations {
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
mod tests;
