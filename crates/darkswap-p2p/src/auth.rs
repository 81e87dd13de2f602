//! Peer authentication and authorization, and the `/darkswap/auth/1.0.0`
//! protocol that carries it.
//!
//! An [`AuthManager`] is the sans-IO core: it issues challenges, answers
//! them, verifies answers, issues and checks tokens, and knows each peer's
//! [`AuthorizationLevel`]. Time is passed in; nothing here touches a socket.
//! The swarm task (and the relay server) run it over a libp2p
//! request-response protocol, see [`protocol`].
//!
//! # Methods
//!
//! Every challenge is 32 random bytes, expires after `challenge_ttl`, is
//! accepted once, and is bound to the verifier's and the prover's peer ids
//! and to the protocol label, so an answer cannot be replayed, reflected or
//! relayed to a third party.
//!
//! - [`AuthMethod::SharedKey`]: the prover returns HMAC-SHA256 over the
//!   challenge, keyed with the operator-issued shared key. Proves possession
//!   of the key; the peer gets `default_auth_level` (or its entry in
//!   `authorized_keys`).
//! - [`AuthMethod::ChallengeResponse`]: the prover signs the challenge with
//!   its libp2p Ed25519 identity key. Any identity can prove itself; it gets
//!   `default_auth_level`, or its entry in `authorized_keys`.
//! - [`AuthMethod::PublicKey`]: the same signature, but only peers listed in
//!   `authorized_keys` may authenticate, each with the level listed there.
//!   Others are refused before a challenge is generated.
//!
//! Peers in `trusted_peers` get their level without a challenge (their
//! `authorized_keys` entry, else at least [`AuthorizationLevel::Relay`]).
//! Peers in `banned_peers` are refused before any work: no challenge is
//! generated, no MAC computed, no signature verified.
//!
//! # Tokens
//!
//! A successful authentication yields an [`AuthToken`]: the peer id, its
//! level and an expiry (`token_ttl`), with an HMAC-SHA256 tag under a key
//! each manager draws at random when it is created. Presenting it to
//! [`AuthManager::authenticate`] later restores the level without a new
//! challenge. Tokens cannot be forged or moved to another peer, and die with
//! the manager that issued them.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hmac::{Hmac, Mac};
use libp2p::{PeerId, identity::Keypair};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

pub mod protocol;

pub use protocol::{AUTH_PROTOCOL, AuthRequest, AuthResponse, Behaviour, MAX_AUTH_MESSAGE_SIZE};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of randomness in a challenge.
pub const NONCE_LEN: usize = 32;
/// Shortest shared key accepted: 128 bits.
pub const MIN_SHARED_KEY_LEN: usize = 16;
/// Challenges outstanding at once; more are refused until some expire, so a
/// flood of connections cannot grow the table without bound.
pub const MAX_PENDING_CHALLENGES: usize = 1024;
/// Domain separation for what provers sign or MAC.
const CHALLENGE_LABEL: &[u8] = b"/darkswap/auth/1.0.0 challenge";
/// Domain separation for token tags.
const TOKEN_LABEL: &[u8] = b"/darkswap/auth/1.0.0 token";

/// How a peer proves itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthMethod {
    /// HMAC-SHA256 of the challenge under a key both sides were given.
    SharedKey,
    /// Ed25519 signature by the prover's libp2p identity; any identity may
    /// authenticate and gets the default level.
    #[default]
    ChallengeResponse,
    /// Ed25519 signature by the prover's libp2p identity; only identities
    /// listed in `authorized_keys` may authenticate.
    PublicKey,
}

impl AuthMethod {
    fn tag(self) -> u8 {
        match self {
            AuthMethod::SharedKey => 1,
            AuthMethod::ChallengeResponse => 2,
            AuthMethod::PublicKey => 3,
        }
    }

    fn signs(self) -> bool {
        matches!(self, AuthMethod::ChallengeResponse | AuthMethod::PublicKey)
    }
}

/// What a peer may do, in increasing order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizationLevel {
    /// Nothing beyond what unauthenticated peers may do.
    #[default]
    None,
    /// An authenticated participant.
    Basic,
    /// A relay operator's node, trusted to relay for others.
    Relay,
    /// Administration.
    Admin,
}

impl AuthorizationLevel {
    fn tag(self) -> u8 {
        match self {
            AuthorizationLevel::None => 0,
            AuthorizationLevel::Basic => 1,
            AuthorizationLevel::Relay => 2,
            AuthorizationLevel::Admin => 3,
        }
    }
}

impl fmt::Display for AuthorizationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthorizationLevel::None => "none",
            AuthorizationLevel::Basic => "basic",
            AuthorizationLevel::Relay => "relay",
            AuthorizationLevel::Admin => "admin",
        })
    }
}

/// Configuration of an [`AuthManager`].
#[derive(Clone, PartialEq, Eq)]
pub struct AuthManagerConfig {
    /// The method this node asks of peers it authenticates. It answers any
    /// method a verifier asks for that it can (a shared-key challenge only
    /// with a shared key). Default: [`AuthMethod::ChallengeResponse`].
    pub auth_method: AuthMethod,
    /// The operator-issued key for [`AuthMethod::SharedKey`], at least
    /// [`MIN_SHARED_KEY_LEN`] bytes. Required for that method; with another
    /// method it still lets this node answer shared-key challenges.
    /// Default: none.
    pub shared_key: Option<Vec<u8>>,
    /// How long an issued token, and the authentication it records, stays
    /// valid. Default: 1 h.
    pub token_ttl: Duration,
    /// How long a challenge may be answered. Default: 30 s.
    pub challenge_ttl: Duration,
    /// Peers that get their level without a challenge: their
    /// `authorized_keys` level, else the higher of
    /// [`AuthorizationLevel::Relay`] and `default_auth_level`. Default: none.
    pub trusted_peers: HashSet<PeerId>,
    /// Peers refused before any work. Default: none.
    pub banned_peers: HashSet<PeerId>,
    /// The level a peer gets by proving itself, unless `authorized_keys`
    /// names one. Default: [`AuthorizationLevel::Basic`].
    pub default_auth_level: AuthorizationLevel,
    /// When true, a peer that has not authenticated has level
    /// [`AuthorizationLevel::None`]; when false it has `default_auth_level`
    /// without proving anything. Default: true.
    pub require_auth: bool,
    /// Per-peer levels granted on successful authentication (and to trusted
    /// peers); with [`AuthMethod::PublicKey`], the allowlist of who may
    /// authenticate at all. Default: none.
    pub authorized_keys: HashMap<PeerId, AuthorizationLevel>,
}

impl Default for AuthManagerConfig {
    fn default() -> Self {
        AuthManagerConfig {
            auth_method: AuthMethod::ChallengeResponse,
            shared_key: None,
            token_ttl: Duration::from_secs(3600),
            challenge_ttl: Duration::from_secs(30),
            trusted_peers: HashSet::new(),
            banned_peers: HashSet::new(),
            default_auth_level: AuthorizationLevel::Basic,
            require_auth: true,
            authorized_keys: HashMap::new(),
        }
    }
}

impl fmt::Debug for AuthManagerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthManagerConfig")
            .field("auth_method", &self.auth_method)
            .field(
                "shared_key",
                &self.shared_key.as_ref().map(|_| "<redacted>"),
            )
            .field("token_ttl", &self.token_ttl)
            .field("challenge_ttl", &self.challenge_ttl)
            .field("trusted_peers", &self.trusted_peers)
            .field("banned_peers", &self.banned_peers)
            .field("default_auth_level", &self.default_auth_level)
            .field("require_auth", &self.require_auth)
            .field("authorized_keys", &self.authorized_keys)
            .finish()
    }
}

/// Why an authentication or authorization failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The configuration cannot work (e.g. shared-key method without a key).
    #[error("invalid auth configuration: {0}")]
    Config(String),
    /// The peer is banned; nothing was done for it.
    #[error("peer {0} is banned")]
    Banned(PeerId),
    /// With [`AuthMethod::PublicKey`], the peer is not in `authorized_keys`.
    #[error("peer {0} is not an authorized key")]
    NotAuthorized(PeerId),
    /// A shared-key challenge arrived but this node has no shared key.
    #[error("no shared key configured")]
    NoSharedKey,
    /// Too many challenges are outstanding.
    #[error("too many pending challenges")]
    TooManyChallenges,
    /// The answer is for a challenge this manager never issued (or forgot
    /// after it expired).
    #[error("unknown challenge")]
    UnknownChallenge,
    /// The challenge was already answered once.
    #[error("challenge already used")]
    ChallengeReused,
    /// The challenge's time to answer has passed.
    #[error("challenge expired")]
    ChallengeExpired,
    /// The challenge is bound to another peer than the one using it (or,
    /// on the prover's side, than the verifier asking).
    #[error("challenge is bound to another peer ({0})")]
    WrongPeer(
        /// The peer the challenge names.
        PeerId,
    ),
    /// The answer is of another kind than the challenge asked for.
    #[error("challenge asked for {expected:?}, answer is for another method")]
    WrongMethod {
        /// The method of the challenge.
        expected: AuthMethod,
    },
    /// The shared-key MAC does not verify: the prover has another key.
    #[error("shared-key proof does not verify")]
    BadMac,
    /// The signature does not verify under the prover's key.
    #[error("signature does not verify")]
    BadSignature,
    /// The signing key is not the prover's identity key.
    #[error("signing key does not belong to {0}")]
    KeyMismatch(PeerId),
    /// The signing key is not an Ed25519 key.
    #[error("only Ed25519 identity keys are accepted")]
    UnsupportedKey,
    /// The token's tag does not verify: forged, altered, or issued by
    /// another manager.
    #[error("invalid token")]
    InvalidToken,
    /// The token was issued to another peer.
    #[error("token was issued to another peer ({0})")]
    TokenPeerMismatch(
        /// The peer named in the token.
        PeerId,
    ),
    /// The token has expired.
    #[error("token expired")]
    TokenExpired,
    /// The peer's level is below what the operation needs.
    #[error("authorization level {have} is below the required {need}")]
    InsufficientLevel {
        /// The peer's level.
        have: AuthorizationLevel,
        /// The level needed.
        need: AuthorizationLevel,
    },
    /// The remote refused to answer the challenge.
    #[error("refused by the peer: {0}")]
    Refused(String),
    /// The exchange failed on the network (no such protocol, timeout, I/O).
    #[error("auth protocol: {0}")]
    Protocol(String),
}

/// A challenge issued by a verifier to one prover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Random bytes, unique per challenge.
    #[serde(with = "hex")]
    pub nonce: [u8; NONCE_LEN],
    /// The peer that issued it and will verify the answer.
    pub verifier: PeerId,
    /// The peer that must answer it.
    pub prover: PeerId,
    /// The proof asked for.
    pub method: AuthMethod,
    /// Unix time in milliseconds after which no answer is accepted.
    pub expires_at_ms: u64,
}

impl Challenge {
    /// The bytes a prover MACs or signs: label, method, nonce, both peer ids
    /// and the expiry, each unambiguously delimited.
    fn transcript(&self) -> Vec<u8> {
        let mut t = Vec::with_capacity(160);
        t.extend_from_slice(CHALLENGE_LABEL);
        t.push(self.method.tag());
        t.extend_from_slice(&self.nonce);
        for id in [self.verifier, self.prover] {
            let bytes = id.to_bytes();
            // Peer ids are multihashes of at most 64 bytes of digest.
            t.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            t.extend_from_slice(&bytes);
        }
        t.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        t
    }
}

/// A prover's proof of one challenge.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Proof {
    /// HMAC-SHA256 of the transcript under the shared key.
    SharedKey {
        /// The tag.
        #[serde(with = "hex")]
        mac: Vec<u8>,
    },
    /// Signature of the transcript by the prover's identity key.
    Signature {
        /// The prover's public key, protobuf-encoded as libp2p does.
        #[serde(with = "hex")]
        public_key: Vec<u8>,
        /// The Ed25519 signature.
        #[serde(with = "hex")]
        signature: Vec<u8>,
    },
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proof::SharedKey { .. } => f.write_str("Proof::SharedKey"),
            Proof::Signature { .. } => f.write_str("Proof::Signature"),
        }
    }
}

/// The answer to a [`Challenge`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// The nonce of the challenge answered.
    #[serde(with = "hex")]
    pub nonce: [u8; NONCE_LEN],
    /// The proof.
    pub proof: Proof,
}

/// Proof that a peer authenticated to an [`AuthManager`], presentable to it
/// later instead of a new challenge.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthToken {
    /// The manager's peer that issued it.
    pub issuer: PeerId,
    /// The peer it was issued to.
    pub peer: PeerId,
    /// The level granted.
    pub level: AuthorizationLevel,
    /// Unix time in milliseconds after which it is refused.
    pub expires_at_ms: u64,
    /// HMAC-SHA256 over the fields above under the issuer's token key.
    #[serde(with = "hex")]
    pub mac: [u8; 32],
}

impl AuthToken {
    fn tagged_bytes(&self) -> Vec<u8> {
        let mut t = Vec::with_capacity(128);
        t.extend_from_slice(TOKEN_LABEL);
        for id in [self.issuer, self.peer] {
            let bytes = id.to_bytes();
            t.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            t.extend_from_slice(&bytes);
        }
        t.push(self.level.tag());
        t.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        t
    }
}

impl fmt::Debug for AuthToken {
    // The tag stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthToken")
            .field("issuer", &self.issuer)
            .field("peer", &self.peer)
            .field("level", &self.level)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// Unix time in milliseconds (0 before the epoch).
fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Issues and verifies challenges and tokens, and tracks each peer's level.
/// Sans-IO: every method that depends on time takes `now`.
pub struct AuthManager {
    config: AuthManagerConfig,
    key: Keypair,
    local_peer_id: PeerId,
    shared_key: Option<Zeroizing<Vec<u8>>>,
    token_key: Zeroizing<[u8; 32]>,
    /// Challenges issued and not yet answered, by nonce.
    pending: HashMap<[u8; NONCE_LEN], Challenge>,
    /// Nonces already answered, until their challenge would have expired.
    used: HashMap<[u8; NONCE_LEN], u64>,
    /// Authenticated peers: level and when it lapses (unix ms).
    sessions: HashMap<PeerId, (AuthorizationLevel, u64)>,
}

impl fmt::Debug for AuthManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthManager")
            .field("local_peer_id", &self.local_peer_id)
            .field("config", &self.config)
            .field("pending", &self.pending.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl AuthManager {
    /// A manager proving itself with `key` (the node's libp2p identity).
    /// Fails if the configuration cannot work.
    pub fn new(config: AuthManagerConfig, key: Keypair) -> Result<Self, AuthError> {
        if let Some(k) = &config.shared_key
            && k.len() < MIN_SHARED_KEY_LEN
        {
            return Err(AuthError::Config(format!(
                "shared_key must be at least {MIN_SHARED_KEY_LEN} bytes"
            )));
        }
        if config.auth_method == AuthMethod::SharedKey && config.shared_key.is_none() {
            return Err(AuthError::Config(
                "auth_method shared_key needs a shared_key".to_owned(),
            ));
        }
        if config.challenge_ttl.is_zero() || config.token_ttl.is_zero() {
            return Err(AuthError::Config(
                "challenge_ttl and token_ttl must be positive".to_owned(),
            ));
        }
        let mut token_key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(token_key.as_mut());
        Ok(AuthManager {
            shared_key: config.shared_key.clone().map(Zeroizing::new),
            local_peer_id: key.public().to_peer_id(),
            key,
            config,
            token_key,
            pending: HashMap::new(),
            used: HashMap::new(),
            sessions: HashMap::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AuthManagerConfig {
        &self.config
    }

    /// The peer id this manager verifies for and proves as.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// Whether `peer` is banned.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.config.banned_peers.contains(peer)
    }

    /// Bans `peer`: it loses its authentication and is refused from now on.
    pub fn ban(&mut self, peer: PeerId) {
        self.sessions.remove(&peer);
        self.pending.retain(|_, c| c.prover != peer);
        self.config.banned_peers.insert(peer);
    }

    /// Lifts a ban.
    pub fn unban(&mut self, peer: &PeerId) {
        self.config.banned_peers.remove(peer);
    }

    /// Challenges issued and not yet answered or expired.
    pub fn pending_challenges(&self) -> usize {
        self.pending.len()
    }

    fn check_not_banned(&self, peer: &PeerId) -> Result<(), AuthError> {
        if self.is_banned(peer) {
            return Err(AuthError::Banned(*peer));
        }
        Ok(())
    }

    fn trusted_level(&self, peer: &PeerId) -> Option<AuthorizationLevel> {
        self.config.trusted_peers.contains(peer).then(|| {
            self.config.authorized_keys.get(peer).copied().unwrap_or(
                self.config
                    .default_auth_level
                    .max(AuthorizationLevel::Relay),
            )
        })
    }

    fn proven_level(&self, peer: &PeerId) -> AuthorizationLevel {
        self.config
            .authorized_keys
            .get(peer)
            .copied()
            .unwrap_or(self.config.default_auth_level)
    }

    /// Drops expired challenges, used nonces and sessions.
    pub fn prune(&mut self, now: SystemTime) {
        let now = unix_ms(now);
        self.pending.retain(|_, c| c.expires_at_ms >= now);
        self.used.retain(|_, expires| *expires >= now);
        self.sessions.retain(|_, (_, expires)| *expires >= now);
    }

    /// If `peer` is trusted, records and returns its authentication without
    /// a challenge; `None` for other peers. Banned wins over trusted.
    pub fn authenticate_trusted(
        &mut self,
        peer: PeerId,
        now: SystemTime,
    ) -> Result<Option<AuthToken>, AuthError> {
        self.check_not_banned(&peer)?;
        Ok(self
            .trusted_level(&peer)
            .map(|level| self.issue_token(peer, level, now)))
    }

    /// A fresh challenge for `peer` using the configured method. Banned
    /// peers, and with [`AuthMethod::PublicKey`] peers outside
    /// `authorized_keys`, are refused before anything is generated.
    pub fn generate_challenge(
        &mut self,
        peer: PeerId,
        now: SystemTime,
    ) -> Result<Challenge, AuthError> {
        self.check_not_banned(&peer)?;
        if self.config.auth_method == AuthMethod::PublicKey
            && !self.config.authorized_keys.contains_key(&peer)
        {
            return Err(AuthError::NotAuthorized(peer));
        }
        if self.pending.len() >= MAX_PENDING_CHALLENGES {
            self.prune(now);
            if self.pending.len() >= MAX_PENDING_CHALLENGES {
                return Err(AuthError::TooManyChallenges);
            }
        }
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let challenge = Challenge {
            nonce,
            verifier: self.local_peer_id,
            prover: peer,
            method: self.config.auth_method,
            expires_at_ms: unix_ms(now).saturating_add(duration_ms(self.config.challenge_ttl)),
        };
        self.pending.insert(nonce, challenge.clone());
        Ok(challenge)
    }

    /// The response to a `/darkswap/auth/1.0.0` request from `verifier`: a
    /// proof, or a refusal that names why (see [`AuthManager::respond`]).
    pub fn answer(&self, request: &AuthRequest, verifier: PeerId, now: SystemTime) -> AuthResponse {
        match request {
            AuthRequest::Challenge(challenge) => match self.respond(challenge, verifier, now) {
                Ok(answer) => AuthResponse::Proof(answer),
                Err(error) => {
                    tracing::debug!(peer = %verifier, %error, "refused to answer an auth challenge");
                    AuthResponse::Refused(error.to_string())
                }
            },
        }
    }

    /// Answers a challenge from `verifier` (the prover's side). Refuses
    /// banned verifiers, challenges bound to other peers (so this node is
    /// never a signing oracle for someone else's handshake), expired ones,
    /// and shared-key challenges when it has no shared key.
    pub fn respond(
        &self,
        challenge: &Challenge,
        verifier: PeerId,
        now: SystemTime,
    ) -> Result<ChallengeResponse, AuthError> {
        self.check_not_banned(&verifier)?;
        if challenge.verifier != verifier {
            return Err(AuthError::WrongPeer(challenge.verifier));
        }
        if challenge.prover != self.local_peer_id {
            return Err(AuthError::WrongPeer(challenge.prover));
        }
        if challenge.expires_at_ms < unix_ms(now) {
            return Err(AuthError::ChallengeExpired);
        }
        let transcript = challenge.transcript();
        let proof = match challenge.method {
            AuthMethod::SharedKey => {
                let key = self.shared_key.as_ref().ok_or(AuthError::NoSharedKey)?;
                let mut mac = HmacSha256::new_from_slice(key)
                    .map_err(|e| AuthError::Config(e.to_string()))?;
                mac.update(&transcript);
                Proof::SharedKey {
                    mac: mac.finalize().into_bytes().to_vec(),
                }
            }
            AuthMethod::ChallengeResponse | AuthMethod::PublicKey => Proof::Signature {
                public_key: self.key.public().encode_protobuf(),
                signature: self
                    .key
                    .sign(&transcript)
                    .map_err(|e| AuthError::Config(e.to_string()))?,
            },
        };
        Ok(ChallengeResponse {
            nonce: challenge.nonce,
            proof,
        })
    }

    /// What a `/darkswap/auth/1.0.0` response from `peer` proves: a verified
    /// proof gives a token, a refusal or a forgery an error.
    pub fn check_answer(
        &mut self,
        peer: PeerId,
        response: AuthResponse,
        now: SystemTime,
    ) -> Result<AuthToken, AuthError> {
        match response {
            AuthResponse::Proof(answer) => self.verify_response(peer, &answer, now),
            AuthResponse::Refused(reason) => Err(AuthError::Refused(reason)),
        }
    }

    /// Verifies `peer`'s answer to a challenge this manager issued. On
    /// success the peer is authenticated until the returned token expires.
    ///
    /// A challenge is consumed by the first answer from its prover, right or
    /// wrong, so each gets one attempt.
    pub fn verify_response(
        &mut self,
        peer: PeerId,
        response: &ChallengeResponse,
        now: SystemTime,
    ) -> Result<AuthToken, AuthError> {
        self.check_not_banned(&peer)?;
        let now_ms = unix_ms(now);
        let Some(challenge) = self.pending.get(&response.nonce) else {
            return Err(match self.used.get(&response.nonce) {
                Some(_) => AuthError::ChallengeReused,
                None => AuthError::UnknownChallenge,
            });
        };
        // Checked before consuming, so a peer that saw someone else's nonce
        // cannot burn their challenge.
        if challenge.prover != peer {
            return Err(AuthError::WrongPeer(challenge.prover));
        }
        let Some(challenge) = self.pending.remove(&response.nonce) else {
            return Err(AuthError::UnknownChallenge);
        };
        self.used.insert(challenge.nonce, challenge.expires_at_ms);
        if challenge.expires_at_ms < now_ms {
            return Err(AuthError::ChallengeExpired);
        }
        let transcript = challenge.transcript();
        match (&response.proof, challenge.method) {
            (Proof::SharedKey { mac }, AuthMethod::SharedKey) => {
                let key = self.shared_key.as_ref().ok_or(AuthError::NoSharedKey)?;
                let mut expected = HmacSha256::new_from_slice(key)
                    .map_err(|e| AuthError::Config(e.to_string()))?;
                expected.update(&transcript);
                // Constant-time comparison.
                expected.verify_slice(mac).map_err(|_| AuthError::BadMac)?;
            }
            (
                Proof::Signature {
                    public_key,
                    signature,
                },
                method,
            ) if method.signs() => {
                let key = libp2p::identity::PublicKey::try_decode_protobuf(public_key)
                    .map_err(|_| AuthError::UnsupportedKey)?;
                if key.clone().try_into_ed25519().is_err() {
                    return Err(AuthError::UnsupportedKey);
                }
                if key.to_peer_id() != peer {
                    return Err(AuthError::KeyMismatch(peer));
                }
                if !key.verify(&transcript, signature) {
                    return Err(AuthError::BadSignature);
                }
            }
            (_, expected) => return Err(AuthError::WrongMethod { expected }),
        }
        let level = self
            .trusted_level(&peer)
            .unwrap_or_else(|| self.proven_level(&peer));
        Ok(self.issue_token(peer, level, now))
    }

    fn token_mac(&self, token: &AuthToken) -> HmacSha256 {
        // HMAC accepts keys of any length; 32 bytes cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.token_key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(&token.tagged_bytes());
        mac
    }

    fn issue_token(
        &mut self,
        peer: PeerId,
        level: AuthorizationLevel,
        now: SystemTime,
    ) -> AuthToken {
        let expires_at_ms = unix_ms(now).saturating_add(duration_ms(self.config.token_ttl));
        let mut token = AuthToken {
            issuer: self.local_peer_id,
            peer,
            level,
            expires_at_ms,
            mac: [0; 32],
        };
        token.mac = self.token_mac(&token).finalize().into_bytes().into();
        self.sessions.insert(peer, (level, expires_at_ms));
        token
    }

    /// Authenticates `peer` with a token this manager issued to it earlier,
    /// skipping the challenge. Returns the level it restores.
    pub fn authenticate(
        &mut self,
        peer: PeerId,
        token: &AuthToken,
        now: SystemTime,
    ) -> Result<AuthorizationLevel, AuthError> {
        self.check_not_banned(&peer)?;
        if token.peer != peer {
            return Err(AuthError::TokenPeerMismatch(token.peer));
        }
        if token.issuer != self.local_peer_id {
            return Err(AuthError::InvalidToken);
        }
        self.token_mac(token)
            .verify_slice(&token.mac)
            .map_err(|_| AuthError::InvalidToken)?;
        if token.expires_at_ms < unix_ms(now) {
            return Err(AuthError::TokenExpired);
        }
        self.sessions
            .insert(peer, (token.level, token.expires_at_ms));
        Ok(token.level)
    }

    /// The level `peer` has now: none if banned; its trusted level; the
    /// level of its unexpired authentication; else the default level if
    /// `require_auth` is off, [`AuthorizationLevel::None`] if it is on.
    pub fn authorization_level(&self, peer: &PeerId, now: SystemTime) -> AuthorizationLevel {
        if self.is_banned(peer) {
            return AuthorizationLevel::None;
        }
        if let Some(level) = self.trusted_level(peer) {
            return level;
        }
        match self.sessions.get(peer) {
            Some((level, expires)) if *expires >= unix_ms(now) => *level,
            _ if !self.config.require_auth => self.config.default_auth_level,
            _ => AuthorizationLevel::None,
        }
    }

    /// Whether `peer` is authenticated right now: trusted, or it proved
    /// itself and that has not expired.
    pub fn is_authenticated(&self, peer: &PeerId, now: SystemTime) -> bool {
        !self.is_banned(peer)
            && (self.trusted_level(peer).is_some()
                || self
                    .sessions
                    .get(peer)
                    .is_some_and(|(_, expires)| *expires >= unix_ms(now)))
    }

    /// Checks that `peer` has at least `required`; returns its level.
    pub fn authorize(
        &self,
        peer: &PeerId,
        required: AuthorizationLevel,
        now: SystemTime,
    ) -> Result<AuthorizationLevel, AuthError> {
        self.check_not_banned(peer)?;
        let have = self.authorization_level(peer, now);
        if have < required {
            return Err(AuthError::InsufficientLevel {
                have,
                need: required,
            });
        }
        Ok(have)
    }
}

#[cfg(test)]
mod tests {
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
}
