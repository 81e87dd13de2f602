//! Why an encryption operation failed.

use libp2p_identity::PeerId;

use crate::config::EncryptionAlgorithm;

/// Errors of [`EncryptionManager`](crate::EncryptionManager).
///
/// Everything a peer (or whoever forwards its frames) can cause is an error,
/// never a panic; after any decryption error the session is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptionError {
    /// The configuration is inconsistent.
    #[error("invalid encryption config: {0}")]
    InvalidConfig(&'static str),
    /// There is no session with this peer: no key exchange was completed.
    #[error("no encryption session with {peer}")]
    NoSession {
        /// The peer.
        peer: PeerId,
    },
    /// [`EncryptionManager::perform_key_exchange`](crate::EncryptionManager::perform_key_exchange) without a key pair
    /// generated for this peer (or it expired, or was used already).
    #[error("no pending key exchange with {peer}")]
    NoPendingKeyExchange {
        /// The peer.
        peer: PeerId,
    },
    /// A session with ourselves was asked for.
    #[error("cannot make an encryption session with ourselves")]
    SelfSession,
    /// The peer's X25519 public key is a low-order point: the shared secret
    /// would be known to anyone.
    #[error("the peer's X25519 public key is not contributory")]
    WeakPublicKey,
    /// A key share or signed key does not have the documented layout.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// The signature on a peer's key does not verify against the public key in
    /// its peer id (or was made for another pair of peers).
    #[error("the key signature of {peer} does not verify")]
    BadSignature {
        /// The claimed signer.
        peer: PeerId,
    },
    /// The peer id does not embed its public key (only hashed-key peer ids,
    /// e.g. RSA, do not), so its signature cannot be checked.
    #[error("peer id {peer} does not embed a public key")]
    PeerKeyNotEmbedded {
        /// The peer.
        peer: PeerId,
    },
    /// Our identity key could not sign.
    #[error("signing our key failed: {0}")]
    Signing(String),
    /// The peer uses another AEAD than this manager.
    #[error("peer uses {received}, this manager {expected}")]
    AlgorithmMismatch {
        /// Ours.
        expected: EncryptionAlgorithm,
        /// The peer's.
        received: EncryptionAlgorithm,
    },
    /// A frame or key written in a version this implementation does not know.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// A frame that is too short or names an unknown algorithm.
    #[error("malformed frame: {0}")]
    MalformedFrame(&'static str),
    /// The frame did not authenticate: tampered with, truncated, or not made
    /// by this peer's session.
    #[error("frame authentication failed")]
    AuthenticationFailed,
    /// This frame's counter was accepted before.
    #[error("replayed frame (epoch {epoch}, counter {counter})")]
    Replay {
        /// Epoch of the frame.
        epoch: u32,
        /// Its counter.
        counter: u64,
    },
    /// The frame's counter is more than [`REPLAY_WINDOW`](crate::REPLAY_WINDOW) below the highest
    /// accepted in its epoch: it cannot be told apart from a replay.
    #[error("frame too old (epoch {epoch}, counter {counter}, newest {newest})")]
    TooOld {
        /// Epoch of the frame.
        epoch: u32,
        /// Its counter.
        counter: u64,
        /// Highest counter accepted in that epoch.
        newest: u64,
    },
    /// The frame's epoch is older than every key this session still holds.
    #[error("unknown or expired epoch {epoch} (current {current})")]
    UnknownEpoch {
        /// Epoch of the frame.
        epoch: u32,
        /// Newest receiving epoch of the session.
        current: u32,
    },
    /// The frame's epoch is more than [`MAX_EPOCH_JUMP`](crate::MAX_EPOCH_JUMP) ahead of ours.
    #[error("epoch {epoch} too far ahead of {current}")]
    EpochTooFarAhead {
        /// Epoch of the frame.
        epoch: u32,
        /// Newest receiving epoch of the session.
        current: u32,
    },
    /// The sending counter of this epoch is used up; rotate the keys.
    #[error("message counter exhausted; rotate the keys")]
    CounterExhausted,
    /// The session has used every epoch; make a new key exchange.
    #[error("key epochs exhausted; make a new key exchange")]
    EpochExhausted,
    /// The plaintext is longer than the AEAD can encrypt.
    #[error("plaintext too large")]
    PlaintextTooLarge,
}
