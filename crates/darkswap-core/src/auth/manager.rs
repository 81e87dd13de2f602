//! The sans-IO authentication state of one node.

use std::{collections::HashMap, fmt, time::Duration};

use darkswap_proto::identity::{Keypair, PeerId, PublicKey};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use web_time::{SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

use crate::auth::{
    AuthError, AuthManagerConfig, AuthMethod, AuthRequest, AuthResponse, AuthToken,
    AuthorizationLevel, Challenge, ChallengeResponse, MAX_PENDING_CHALLENGES, MIN_SHARED_KEY_LEN,
    NONCE_LEN, Proof,
};

type HmacSha256 = Hmac<Sha256>;

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
                let key = PublicKey::try_decode_protobuf(public_key)
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

    pub(crate) fn token_mac(&self, token: &AuthToken) -> HmacSha256 {
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
