//! Why an authentication or authorization failed.

use darkswap_proto::identity::PeerId;

use crate::auth::{AuthMethod, AuthorizationLevel};

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
