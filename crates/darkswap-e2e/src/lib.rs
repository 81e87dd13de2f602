//! End-to-end encryption between two peers, for payloads that travel through
//! parties the peers do not trust (a relay forwarding a circuit).
//!
//! The scheme (specified byte for byte in `docs/security-encryption.md`, and
//! implemented identically with WebCrypto by `clients/js/darkswap-e2e.js`):
//!
//! - **Key exchange**: each side sends a [`KeyShare`] (an X25519 public key and
//!   32 fresh random bytes), optionally signed by its libp2p identity key
//!   ([`SignedKey`]) so that whoever forwards it cannot substitute its own.
//! - **Session keys**: HKDF-SHA256 over the X25519 shared secret, salted with
//!   both key shares and with both peer ids (sorted, so both sides agree) and
//!   the algorithm in the info, gives one chain key per direction.
//! - **Epochs**: each direction's chain key yields, through HKDF, the AEAD key
//!   and 4-byte nonce prefix of its epoch and the chain key of the next epoch.
//!   [`EncryptionManager::rotate_keys`] moves the sending side to the next
//!   epoch; the receiver follows when a frame of a newer epoch authenticates,
//!   and keeps the previous epoch's key for a grace period so messages still
//!   in flight decrypt.
//! - **Frames**: `version (1) | algorithm (1) | epoch (u32 BE) | counter (u64
//!   BE) | ciphertext and 16-byte tag`, the 14-byte header being the AEAD's
//!   associated data; the nonce is the epoch's prefix followed by the counter,
//!   which never repeats within an epoch. A sliding window of
//!   [`REPLAY_WINDOW`] counters per epoch rejects replays.
//!
//! ```
//! use darkswap_e2e::{EncryptionConfig, EncryptionManager};
//! use darkswap_e2e::Keypair;
//!
//! # fn main() -> Result<(), darkswap_e2e::EncryptionError> {
//! let (alice_key, bob_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
//! let (alice_id, bob_id) = (alice_key.public().to_peer_id(), bob_key.public().to_peer_id());
//! let alice = EncryptionManager::new(alice_key, EncryptionConfig::default())?;
//! let bob = EncryptionManager::new(bob_key, EncryptionConfig::default())?;
//!
//! // Each side signs a fresh key for the other; the messages may cross.
//! let from_alice = alice.signed_ephemeral_key(&bob_id)?;
//! let from_bob = bob.signed_ephemeral_key(&alice_id)?;
//! bob.accept_signed_key(&alice_id, &from_alice)?;
//! alice.accept_signed_key(&bob_id, &from_bob)?;
//!
//! let frame = alice.encrypt(&bob_id, b"hello bob")?;
//! assert_eq!(bob.decrypt(&alice_id, &frame)?, b"hello bob");
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use libp2p_identity::PublicKey;
/// The identity types this crate's API uses.
pub use libp2p_identity::{Keypair, PeerId};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use x25519_dalek::{EphemeralSecret, StaticSecret};
use zeroize::Zeroizing;

/// Version byte of every frame and signed key this module writes.
pub const FRAME_VERSION: u8 = 1;
/// Length of a frame's header (version, algorithm, epoch, counter).
pub const FRAME_HEADER_LEN: usize = 14;
/// Length of the AEAD tag at the end of a frame.
pub const TAG_LEN: usize = 16;
/// Bytes a frame adds to its plaintext.
pub const FRAME_OVERHEAD: usize = FRAME_HEADER_LEN + TAG_LEN;
/// How many counters below the highest one seen a frame may carry and still
/// be accepted (once): frames reordered by more than this are rejected.
pub const REPLAY_WINDOW: u64 = 1024;
/// How many epochs a peer's frame may be ahead of the newest one we know.
/// Bounds the key derivations a forged frame can make us do.
pub const MAX_EPOCH_JUMP: u32 = 16;
/// How many past receiving epochs a session keeps at most.
pub const MAX_RETAINED_EPOCHS: usize = 32;
/// How long, with forward secrecy, a receiving epoch's key stays usable after
/// the peer moved on to a newer epoch: the time in-flight messages have to
/// arrive.
pub const PREVIOUS_EPOCH_GRACE: Duration = Duration::from_secs(60);
/// How long a key pair made by [`EncryptionManager::generate_ephemeral_key_pair`]
/// waits for the peer's key before [`EncryptionManager::prune_expired_keys`]
/// drops it.
pub const PENDING_EXCHANGE_TTL: Duration = Duration::from_secs(60);

/// Length of an encoded [`KeyShare`].
pub const KEY_SHARE_LEN: usize = 64;

const SIGNATURE_LABEL: &[u8] = b"darkswap-e2e/v1/key";
const SESSION_LABEL: &[u8] = b"darkswap-e2e/v1/session";
const EPOCH_LABEL: &[u8] = b"darkswap-e2e/v1/epoch";
/// Longest signature we accept: Ed25519 is 64 bytes, secp256k1 DER at most 72.
const MAX_SIGNATURE_LEN: usize = 128;

/// Key agreement algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeyExchangeAlgorithm {
    /// Elliptic-curve Diffie-Hellman on Curve25519 (RFC 7748).
    #[default]
    X25519,
}

/// Authenticated encryption algorithm of a session.
///
/// Both peers must use the same one. Browsers only have AES-GCM (WebCrypto has
/// no ChaCha20-Poly1305), so sessions with a browser use [`Self::AesGcm256`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum EncryptionAlgorithm {
    /// AES-256 in Galois/Counter Mode (the default; hardware accelerated almost everywhere).
    #[default]
    AesGcm256,
    /// ChaCha20-Poly1305 (RFC 8439); fast in software, constant time without AES instructions.
    ChaCha20Poly1305,
}

impl EncryptionAlgorithm {
    /// The algorithm's byte in frames and signed keys.
    pub fn wire_id(self) -> u8 {
        match self {
            Self::AesGcm256 => 1,
            Self::ChaCha20Poly1305 => 2,
        }
    }

    /// The algorithm with wire id `id`, if any.
    pub fn from_wire_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::AesGcm256),
            2 => Some(Self::ChaCha20Poly1305),
            _ => None,
        }
    }
}

impl fmt::Display for EncryptionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AesGcm256 => "AES-256-GCM",
            Self::ChaCha20Poly1305 => "ChaCha20-Poly1305",
        })
    }
}

/// Configuration of an [`EncryptionManager`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionConfig {
    /// Key agreement; default [`KeyExchangeAlgorithm::X25519`].
    pub key_exchange_algorithm: KeyExchangeAlgorithm,
    /// AEAD of every session; default [`EncryptionAlgorithm::AesGcm256`].
    pub encryption_algorithm: EncryptionAlgorithm,
    /// A session's sending key is rotated (moved to the next epoch) by
    /// [`EncryptionManager::encrypt`] once it has been in use this long;
    /// default one hour. Must not be zero.
    pub key_rotation_interval: Duration,
    /// Default `true`. With it, keys of past epochs exist only as long as
    /// messages from them may still be in flight: a receiving epoch is
    /// dropped [`PREVIOUS_EPOCH_GRACE`] after the peer moved past it, so a
    /// later compromise of this process does not expose that traffic.
    /// Without it, up to [`MAX_RETAINED_EPOCHS`] past epochs stay usable for
    /// the session's lifetime (arbitrarily late messages still decrypt).
    /// Requires `use_ephemeral_keys`.
    pub use_forward_secrecy: bool,
    /// Default `true`: a fresh X25519 key pair for every key exchange, erased
    /// once the exchange is done. `false`: one X25519 key pair per manager,
    /// reused for every exchange (sessions still differ, since both key shares
    /// carry fresh random bytes), which gives no forward secrecy.
    pub use_ephemeral_keys: bool,
}

impl Default for EncryptionConfig {
    fn default() -> Self {
        Self {
            key_exchange_algorithm: KeyExchangeAlgorithm::X25519,
            encryption_algorithm: EncryptionAlgorithm::AesGcm256,
            key_rotation_interval: Duration::from_secs(3600),
            use_forward_secrecy: true,
            use_ephemeral_keys: true,
        }
    }
}

/// Errors of [`EncryptionManager`].
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
    /// [`EncryptionManager::perform_key_exchange`] without a key pair
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
    /// The frame's counter is more than [`REPLAY_WINDOW`] below the highest
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
    /// The frame's epoch is more than [`MAX_EPOCH_JUMP`] ahead of ours.
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

/// One side's contribution to a key exchange: an X25519 public key and 32
/// random bytes that make every session's keys fresh even when a side reuses
/// its X25519 key. Encoded as the 32 key bytes followed by the 32 random bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyShare {
    public: [u8; 32],
    nonce: [u8; 32],
}

impl KeyShare {
    /// The X25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }

    /// The [`KEY_SHARE_LEN`]-byte encoding.
    pub fn to_bytes(&self) -> [u8; KEY_SHARE_LEN] {
        let mut out = [0; KEY_SHARE_LEN];
        out[..32].copy_from_slice(&self.public);
        out[32..].copy_from_slice(&self.nonce);
        out
    }

    /// Decodes [`Self::to_bytes`]' output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EncryptionError> {
        let bytes: &[u8; KEY_SHARE_LEN] = bytes
            .try_into()
            .map_err(|_| EncryptionError::MalformedKey("a key share is 64 bytes"))?;
        let mut public = [0; 32];
        let mut nonce = [0; 32];
        public.copy_from_slice(&bytes[..32]);
        nonce.copy_from_slice(&bytes[32..]);
        Ok(Self { public, nonce })
    }
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShare")
            .field("public", &hex_prefix(&self.public))
            .finish_non_exhaustive()
    }
}

/// A [`KeyShare`] signed by its sender's libp2p identity key for one
/// receiver, with the sender's algorithm.
///
/// Encoded as `version (1) | algorithm (1) | key share (64) | signature`; the
/// signature covers `"darkswap-e2e/v1/key" | algorithm | key share |
/// len(sender) | sender peer id | len(receiver) | receiver peer id`
/// (lengths one byte, peer ids in their binary multihash form). The peer ids
/// are not sent: each side knows both from the authenticated channel that
/// carries the key, and a key relabelled for other peers does not verify.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedKey {
    algorithm: EncryptionAlgorithm,
    share: KeyShare,
    signature: Vec<u8>,
}

impl SignedKey {
    /// The signed key share.
    pub fn share(&self) -> &KeyShare {
        &self.share
    }

    /// The sender's algorithm.
    pub fn algorithm(&self) -> EncryptionAlgorithm {
        self.algorithm
    }

    /// The wire encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + KEY_SHARE_LEN + self.signature.len());
        out.push(FRAME_VERSION);
        out.push(self.algorithm.wire_id());
        out.extend_from_slice(&self.share.to_bytes());
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes [`Self::to_bytes`]' output (the signature is checked by
    /// [`EncryptionManager::accept_signed_key`], not here).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EncryptionError> {
        let (&version, rest) = bytes
            .split_first()
            .ok_or(EncryptionError::MalformedKey("empty signed key"))?;
        if version != FRAME_VERSION {
            return Err(EncryptionError::UnsupportedVersion(version));
        }
        let (&algorithm, rest) = rest.split_first().ok_or(EncryptionError::MalformedKey(
            "signed key without algorithm",
        ))?;
        let algorithm = EncryptionAlgorithm::from_wire_id(algorithm)
            .ok_or(EncryptionError::MalformedKey("unknown algorithm"))?;
        if rest.len() <= KEY_SHARE_LEN || rest.len() > KEY_SHARE_LEN + MAX_SIGNATURE_LEN {
            return Err(EncryptionError::MalformedKey(
                "signed key length out of range",
            ));
        }
        let (share, signature) = rest.split_at(KEY_SHARE_LEN);
        Ok(Self {
            algorithm,
            share: KeyShare::from_bytes(share)?,
            signature: signature.to_vec(),
        })
    }
}

impl fmt::Debug for SignedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedKey")
            .field("algorithm", &self.algorithm)
            .field("share", &self.share)
            .finish_non_exhaustive()
    }
}

/// Encrypts and decrypts messages exchanged with other peers, one session per
/// peer. Cheap to share between tasks (`Arc<EncryptionManager>`): every
/// method takes `&self`.
///
/// Unlike seed 001's `EncryptionManager::new(config)`, the constructor takes
/// the node's identity key: session keys are bound to both peer ids, and
/// [`Self::signed_ephemeral_key`] signs with it.
pub struct EncryptionManager {
    identity: Keypair,
    local_peer_id: PeerId,
    config: EncryptionConfig,
    state: Mutex<State>,
}

impl fmt::Debug for EncryptionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("EncryptionManager")
            .field("local_peer_id", &self.local_peer_id)
            .field("config", &self.config)
            .field("sessions", &state.sessions.len())
            .field("pending", &state.pending.len())
            .finish_non_exhaustive()
    }
}

struct State {
    /// The manager's X25519 secret when `use_ephemeral_keys` is off.
    static_secret: Option<StaticSecret>,
    pending: HashMap<PeerId, Pending>,
    sessions: HashMap<PeerId, Session>,
}

struct Pending {
    /// `None`: the manager's static secret.
    secret: Option<EphemeralSecret>,
    share: KeyShare,
    created: Instant,
}

struct Session {
    send: SendChain,
    recv: RecvChain,
}

/// What one epoch of one direction encrypts with.
struct EpochKeys {
    key: Zeroizing<[u8; 32]>,
    nonce_prefix: [u8; 4],
}

struct SendChain {
    epoch: u32,
    keys: EpochKeys,
    /// Chain key of `epoch + 1`; the current epoch's own chain key is gone.
    next_chain: Zeroizing<[u8; 32]>,
    counter: u64,
    started: Instant,
}

struct RecvChain {
    current: RecvEpoch,
    next_chain: Zeroizing<[u8; 32]>,
    /// Older epochs, oldest first, each with when the peer left it.
    previous: VecDeque<(RecvEpoch, Instant)>,
}

struct RecvEpoch {
    epoch: u32,
    keys: EpochKeys,
    window: ReplayWindow,
}

impl EncryptionManager {
    /// A manager for the node whose identity key is `identity`.
    ///
    /// Fails with [`EncryptionError::InvalidConfig`] for a zero
    /// `key_rotation_interval`, or forward secrecy without ephemeral keys (a
    /// static X25519 key recomputes every past session's secret).
    pub fn new(identity: Keypair, config: EncryptionConfig) -> Result<Self, EncryptionError> {
        if config.key_rotation_interval.is_zero() {
            return Err(EncryptionError::InvalidConfig(
                "key_rotation_interval must not be zero",
            ));
        }
        if config.use_forward_secrecy && !config.use_ephemeral_keys {
            return Err(EncryptionError::InvalidConfig(
                "use_forward_secrecy requires use_ephemeral_keys",
            ));
        }
        let static_secret =
            (!config.use_ephemeral_keys).then(|| StaticSecret::random_from_rng(OsRng));
        Ok(Self {
            local_peer_id: identity.public().to_peer_id(),
            identity,
            config,
            state: Mutex::new(State {
                static_secret,
                pending: HashMap::new(),
                sessions: HashMap::new(),
            }),
        })
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The configuration.
    pub fn config(&self) -> &EncryptionConfig {
        &self.config
    }

    /// Whether a key exchange with `peer` has completed (and not been removed).
    pub fn has_session(&self, peer: &PeerId) -> bool {
        self.lock().sessions.contains_key(peer)
    }

    /// Makes a key pair for a key exchange with `peer` and returns the share
    /// to send it. A previous pending exchange with `peer` is replaced; an
    /// existing session stays in use until [`Self::perform_key_exchange`]
    /// replaces it.
    pub fn generate_ephemeral_key_pair(&self, peer: &PeerId) -> Result<KeyShare, EncryptionError> {
        self.generate_at(peer, Instant::now())
    }

    /// Completes the key exchange with `peer` using its share: from now on
    /// [`Self::encrypt`] and [`Self::decrypt`] work for `peer`, and any
    /// previous session with it is gone. The share is not authenticated: use
    /// [`Self::accept_signed_key`] when it came through anyone but `peer`.
    pub fn perform_key_exchange(
        &self,
        peer: &PeerId,
        their_share: &KeyShare,
    ) -> Result<(), EncryptionError> {
        self.exchange_at(peer, their_share, Instant::now())
    }

    /// [`Self::generate_ephemeral_key_pair`], signed by our identity key for
    /// `peer` (see [`SignedKey`]).
    pub fn signed_ephemeral_key(&self, peer: &PeerId) -> Result<SignedKey, EncryptionError> {
        let share = self.generate_ephemeral_key_pair(peer)?;
        let algorithm = self.config.encryption_algorithm;
        let message = signed_message(algorithm, &share, &self.local_peer_id, peer);
        let signature = self
            .identity
            .sign(&message)
            .map_err(|e| EncryptionError::Signing(e.to_string()))?;
        Ok(SignedKey {
            algorithm,
            share,
            signature,
        })
    }

    /// Checks that `signed` was signed by `peer`'s identity key (the one its
    /// peer id embeds) for us and uses our algorithm, then completes the key
    /// exchange with it like [`Self::perform_key_exchange`].
    pub fn accept_signed_key(
        &self,
        peer: &PeerId,
        signed: &SignedKey,
    ) -> Result<(), EncryptionError> {
        let public = embedded_public_key(peer)?;
        let message = signed_message(signed.algorithm, &signed.share, peer, &self.local_peer_id);
        if !public.verify(&message, &signed.signature) {
            return Err(EncryptionError::BadSignature { peer: *peer });
        }
        if signed.algorithm != self.config.encryption_algorithm {
            return Err(EncryptionError::AlgorithmMismatch {
                expected: self.config.encryption_algorithm,
                received: signed.algorithm,
            });
        }
        self.perform_key_exchange(peer, &signed.share)
    }

    /// Encrypts `plaintext` for `peer` into one frame. Rotates the sending
    /// key first if it is older than `key_rotation_interval`.
    pub fn encrypt(&self, peer: &PeerId, plaintext: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        self.encrypt_at(peer, plaintext, Instant::now())
    }

    /// Decrypts a frame `peer` made with [`Self::encrypt`]. A frame is
    /// accepted at most once; frames may arrive out of order within
    /// [`REPLAY_WINDOW`], and from the previous epochs while their keys are
    /// kept. On error the session is unchanged.
    pub fn decrypt(&self, peer: &PeerId, frame: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        self.decrypt_at(peer, frame, Instant::now())
    }

    /// Moves the sending side of every session that has sent something in its
    /// current epoch to the next epoch: later frames use a new key derived one
    /// way from the previous chain key, which is erased. Peers follow on their
    /// own when they receive them.
    pub fn rotate_keys(&self) -> Result<(), EncryptionError> {
        let now = Instant::now();
        let mut state = self.lock();
        for session in state.sessions.values_mut() {
            // An epoch that has encrypted nothing has nothing to protect;
            // skipping it keeps an idle session's epochs from running ahead
            // of what the peer may derive forward (MAX_EPOCH_JUMP).
            if session.send.counter > 0 {
                session.send.rotate(now)?;
            }
        }
        Ok(())
    }

    /// Drops what is no longer needed: past receiving epochs whose grace
    /// period is over (with forward secrecy), and key pairs of exchanges that
    /// did not complete within [`PENDING_EXCHANGE_TTL`]. Expired keys are
    /// refused even before they are pruned; this frees them.
    pub fn prune_expired_keys(&self) {
        self.prune_at(Instant::now());
    }

    /// Forgets everything about `peer` (pending exchange and session), e.g.
    /// when the connection with it closes.
    pub fn remove_peer(&self, peer: &PeerId) {
        let mut state = self.lock();
        state.pending.remove(peer);
        state.sessions.remove(peer);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation reserves a nonce before it can fail, so the state a
        // panicking thread leaves behind never leads to a nonce being reused.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn generate_at(&self, peer: &PeerId, now: Instant) -> Result<KeyShare, EncryptionError> {
        if *peer == self.local_peer_id {
            return Err(EncryptionError::SelfSession);
        }
        let mut nonce = [0; 32];
        OsRng.fill_bytes(&mut nonce);
        let mut state = self.lock();
        let (secret, public) = match &state.static_secret {
            Some(secret) => (None, x25519_dalek::PublicKey::from(secret)),
            None => {
                let secret = EphemeralSecret::random_from_rng(OsRng);
                let public = x25519_dalek::PublicKey::from(&secret);
                (Some(secret), public)
            }
        };
        let share = KeyShare {
            public: public.to_bytes(),
            nonce,
        };
        state.pending.insert(
            *peer,
            Pending {
                secret,
                share,
                created: now,
            },
        );
        Ok(share)
    }

    fn exchange_at(
        &self,
        peer: &PeerId,
        their_share: &KeyShare,
        now: Instant,
    ) -> Result<(), EncryptionError> {
        if *peer == self.local_peer_id {
            return Err(EncryptionError::SelfSession);
        }
        let mut state = self.lock();
        let pending = state
            .pending
            .remove(peer)
            .filter(|p| now.saturating_duration_since(p.created) < PENDING_EXCHANGE_TTL)
            .ok_or(EncryptionError::NoPendingKeyExchange { peer: *peer })?;
        let their_public = x25519_dalek::PublicKey::from(their_share.public);
        let shared = match (pending.secret, &state.static_secret) {
            // Consumed, hence erased, right here: forward secrecy.
            (Some(secret), _) => secret.diffie_hellman(&their_public),
            (None, Some(secret)) => secret.diffie_hellman(&their_public),
            (None, None) => return Err(EncryptionError::NoPendingKeyExchange { peer: *peer }),
        };
        if !shared.was_contributory() {
            return Err(EncryptionError::WeakPublicKey);
        }
        let (send_chain, recv_chain) = session_chains(
            self.config.encryption_algorithm,
            shared.as_bytes(),
            (&self.local_peer_id, &pending.share),
            (peer, their_share),
        );
        let session = Session {
            send: SendChain::new(send_chain, now),
            recv: RecvChain::new(recv_chain),
        };
        state.sessions.insert(*peer, session);
        Ok(())
    }

    fn encrypt_at(
        &self,
        peer: &PeerId,
        plaintext: &[u8],
        now: Instant,
    ) -> Result<Vec<u8>, EncryptionError> {
        let algorithm = self.config.encryption_algorithm;
        let mut state = self.lock();
        let send = &mut state
            .sessions
            .get_mut(peer)
            .ok_or(EncryptionError::NoSession { peer: *peer })?
            .send;
        if now.saturating_duration_since(send.started) >= self.config.key_rotation_interval {
            send.rotate(now)?;
        }
        if send.counter == u64::MAX {
            return Err(EncryptionError::CounterExhausted);
        }
        let counter = send.counter;
        // Reserved before encrypting: whatever happens next, never reused.
        send.counter += 1;
        let header = frame_header(algorithm, send.epoch, counter);
        let nonce = nonce(&send.keys.nonce_prefix, counter);
        let sealed = seal(algorithm, &send.keys.key, &nonce, &header, plaintext)?;
        let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + sealed.len());
        frame.extend_from_slice(&header);
        frame.extend_from_slice(&sealed);
        Ok(frame)
    }

    fn decrypt_at(
        &self,
        peer: &PeerId,
        frame: &[u8],
        now: Instant,
    ) -> Result<Vec<u8>, EncryptionError> {
        let header = parse_header(frame)?;
        let expected = self.config.encryption_algorithm;
        if header.algorithm != expected {
            return Err(EncryptionError::AlgorithmMismatch {
                expected,
                received: header.algorithm,
            });
        }
        let mut state = self.lock();
        let recv = &mut state
            .sessions
            .get_mut(peer)
            .ok_or(EncryptionError::NoSession { peer: *peer })?
            .recv;
        let grace = self
            .config
            .use_forward_secrecy
            .then_some(PREVIOUS_EPOCH_GRACE);
        recv.open(expected, &header, frame, now, grace)
    }

    fn prune_at(&self, now: Instant) {
        let mut state = self.lock();
        state
            .pending
            .retain(|_, p| now.saturating_duration_since(p.created) < PENDING_EXCHANGE_TTL);
        if self.config.use_forward_secrecy {
            for session in state.sessions.values_mut() {
                session.recv.previous.retain(|(_, left)| {
                    now.saturating_duration_since(*left) < PREVIOUS_EPOCH_GRACE
                });
            }
        }
    }
}

impl SendChain {
    fn new(chain: Zeroizing<[u8; 32]>, now: Instant) -> Self {
        let (keys, next_chain) = epoch_keys(&chain);
        Self {
            epoch: 0,
            keys,
            next_chain,
            counter: 0,
            started: now,
        }
    }

    fn rotate(&mut self, now: Instant) -> Result<(), EncryptionError> {
        let epoch = self
            .epoch
            .checked_add(1)
            .ok_or(EncryptionError::EpochExhausted)?;
        let (keys, next_chain) = epoch_keys(&self.next_chain);
        // The replaced keys and chain key are zeroized as they drop.
        *self = Self {
            epoch,
            keys,
            next_chain,
            counter: 0,
            started: now,
        };
        Ok(())
    }
}

impl RecvChain {
    fn new(chain: Zeroizing<[u8; 32]>) -> Self {
        let (keys, next_chain) = epoch_keys(&chain);
        Self {
            current: RecvEpoch {
                epoch: 0,
                keys,
                window: ReplayWindow::default(),
            },
            next_chain,
            previous: VecDeque::new(),
        }
    }

    /// Authenticates and decrypts `frame`; only a frame that authenticates
    /// changes the chain (replay window, newer epoch).
    fn open(
        &mut self,
        algorithm: EncryptionAlgorithm,
        header: &Header,
        frame: &[u8],
        now: Instant,
        grace: Option<Duration>,
    ) -> Result<Vec<u8>, EncryptionError> {
        let current = self.current.epoch;
        let (aad, sealed) = frame.split_at(FRAME_HEADER_LEN);
        if header.epoch == current {
            return self.current.open(algorithm, header, aad, sealed);
        }
        if header.epoch < current {
            let (epoch, _) = self
                .previous
                .iter_mut()
                .find(|(e, left)| {
                    e.epoch == header.epoch
                        && grace.is_none_or(|g| now.saturating_duration_since(*left) < g)
                })
                .ok_or(EncryptionError::UnknownEpoch {
                    epoch: header.epoch,
                    current,
                })?;
            return epoch.open(algorithm, header, aad, sealed);
        }
        let jump = header.epoch - current;
        if jump > MAX_EPOCH_JUMP {
            return Err(EncryptionError::EpochTooFarAhead {
                epoch: header.epoch,
                current,
            });
        }
        // Derive forward on the side, keeping every skipped epoch (frames of
        // those may still be in flight); commit only if the frame authenticates.
        let mut skipped = Vec::with_capacity(jump as usize);
        let (mut keys, mut next_chain) = epoch_keys(&self.next_chain);
        for epoch in current + 1..header.epoch {
            skipped.push(RecvEpoch {
                epoch,
                keys,
                window: ReplayWindow::default(),
            });
            (keys, next_chain) = epoch_keys(&next_chain);
        }
        let mut newest = RecvEpoch {
            epoch: header.epoch,
            keys,
            window: ReplayWindow::default(),
        };
        let plaintext = newest.open(algorithm, header, aad, sealed)?;
        let old = std::mem::replace(&mut self.current, newest);
        self.next_chain = next_chain;
        self.previous.push_back((old, now));
        self.previous.extend(skipped.into_iter().map(|e| (e, now)));
        while self.previous.len() > MAX_RETAINED_EPOCHS {
            self.previous.pop_front();
        }
        Ok(plaintext)
    }
}

impl RecvEpoch {
    fn open(
        &mut self,
        algorithm: EncryptionAlgorithm,
        header: &Header,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, EncryptionError> {
        self.window.check(self.epoch, header.counter)?;
        let nonce = nonce(&self.keys.nonce_prefix, header.counter);
        let plaintext = open(algorithm, &self.keys.key, &nonce, aad, sealed)?;
        self.window.accept(header.counter);
        Ok(plaintext)
    }
}

/// Which counters of one epoch were accepted: the highest, and a bitmap of the
/// [`REPLAY_WINDOW`] counters up to it (bit `c % REPLAY_WINDOW` for counter `c`,
/// as in RFC 6479).
#[derive(Default)]
struct ReplayWindow {
    highest: Option<u64>,
    bits: [u64; (REPLAY_WINDOW / 64) as usize],
}

impl ReplayWindow {
    fn check(&self, epoch: u32, counter: u64) -> Result<(), EncryptionError> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if counter > highest {
            return Ok(());
        }
        if highest - counter >= REPLAY_WINDOW {
            return Err(EncryptionError::TooOld {
                epoch,
                counter,
                newest: highest,
            });
        }
        if self.bit(counter) {
            return Err(EncryptionError::Replay { epoch, counter });
        }
        Ok(())
    }

    /// Records `counter`, which [`Self::check`] allowed.
    fn accept(&mut self, counter: u64) {
        match self.highest {
            Some(highest) if counter <= highest => {}
            Some(highest) => {
                // Slots of the counters we move past now belong to new ones.
                let advance = (counter - highest).min(REPLAY_WINDOW);
                for c in counter - advance + 1..=counter {
                    self.set_bit(c, false);
                }
                self.highest = Some(counter);
            }
            None => self.highest = Some(counter),
        }
        self.set_bit(counter, true);
    }

    fn bit(&self, counter: u64) -> bool {
        let slot = counter % REPLAY_WINDOW;
        self.bits[(slot / 64) as usize] & (1 << (slot % 64)) != 0
    }

    fn set_bit(&mut self, counter: u64, value: bool) {
        let slot = counter % REPLAY_WINDOW;
        let word = &mut self.bits[(slot / 64) as usize];
        if value {
            *word |= 1 << (slot % 64);
        } else {
            *word &= !(1 << (slot % 64));
        }
    }
}

struct Header {
    algorithm: EncryptionAlgorithm,
    epoch: u32,
    counter: u64,
}

fn frame_header(
    algorithm: EncryptionAlgorithm,
    epoch: u32,
    counter: u64,
) -> [u8; FRAME_HEADER_LEN] {
    let mut header = [0; FRAME_HEADER_LEN];
    header[0] = FRAME_VERSION;
    header[1] = algorithm.wire_id();
    header[2..6].copy_from_slice(&epoch.to_be_bytes());
    header[6..14].copy_from_slice(&counter.to_be_bytes());
    header
}

fn parse_header(frame: &[u8]) -> Result<Header, EncryptionError> {
    let Some(&version) = frame.first() else {
        return Err(EncryptionError::MalformedFrame("empty frame"));
    };
    if version != FRAME_VERSION {
        return Err(EncryptionError::UnsupportedVersion(version));
    }
    if frame.len() < FRAME_OVERHEAD {
        return Err(EncryptionError::MalformedFrame(
            "shorter than header and tag",
        ));
    }
    let algorithm = EncryptionAlgorithm::from_wire_id(frame[1])
        .ok_or(EncryptionError::MalformedFrame("unknown algorithm"))?;
    let mut epoch = [0; 4];
    epoch.copy_from_slice(&frame[2..6]);
    let mut counter = [0; 8];
    counter.copy_from_slice(&frame[6..14]);
    Ok(Header {
        algorithm,
        epoch: u32::from_be_bytes(epoch),
        counter: u64::from_be_bytes(counter),
    })
}

fn nonce(prefix: &[u8; 4], counter: u64) -> [u8; 12] {
    let mut nonce = [0; 12];
    nonce[..4].copy_from_slice(prefix);
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

fn seal(
    algorithm: EncryptionAlgorithm,
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EncryptionError> {
    let payload = Payload {
        msg: plaintext,
        aad,
    };
    let sealed = match algorithm {
        EncryptionAlgorithm::AesGcm256 => Aes256Gcm::new(key.into()).encrypt(nonce.into(), payload),
        EncryptionAlgorithm::ChaCha20Poly1305 => {
            ChaCha20Poly1305::new(key.into()).encrypt(nonce.into(), payload)
        }
    };
    sealed.map_err(|_| EncryptionError::PlaintextTooLarge)
}

fn open(
    algorithm: EncryptionAlgorithm,
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, EncryptionError> {
    let payload = Payload { msg: sealed, aad };
    let opened = match algorithm {
        EncryptionAlgorithm::AesGcm256 => Aes256Gcm::new(key.into()).decrypt(nonce.into(), payload),
        EncryptionAlgorithm::ChaCha20Poly1305 => {
            ChaCha20Poly1305::new(key.into()).decrypt(nonce.into(), payload)
        }
    };
    opened.map_err(|_| EncryptionError::AuthenticationFailed)
}

/// HKDF-SHA256 of `ikm` into `out` (the lengths used here are far below
/// HKDF's limit of 255 hash lengths, so expansion cannot fail).
fn hkdf(salt: &[u8], ikm: &[u8], info: &[&[u8]], out: &mut [u8]) {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    if hk.expand_multi_info(info, out).is_err() {
        unreachable!("HKDF output of {} bytes is within its limit", out.len());
    }
}

/// The two directions' epoch-0 chain keys, as (ours, theirs).
fn session_chains(
    algorithm: EncryptionAlgorithm,
    shared: &[u8; 32],
    local: (&PeerId, &KeyShare),
    remote: (&PeerId, &KeyShare),
) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let local_bytes = local.0.to_bytes();
    let remote_bytes = remote.0.to_bytes();
    let local_is_low = local_bytes < remote_bytes;
    let (low, high) = if local_is_low {
        ((&local_bytes, local.1), (&remote_bytes, remote.1))
    } else {
        ((&remote_bytes, remote.1), (&local_bytes, local.1))
    };
    let mut salt = [0; 2 * KEY_SHARE_LEN];
    salt[..KEY_SHARE_LEN].copy_from_slice(&low.1.to_bytes());
    salt[KEY_SHARE_LEN..].copy_from_slice(&high.1.to_bytes());
    let mut okm = Zeroizing::new([0; 64]);
    hkdf(
        &salt,
        shared,
        &[
            SESSION_LABEL,
            &[algorithm.wire_id()],
            &[len_u8(low.0)],
            low.0,
            &[len_u8(high.0)],
            high.0,
        ],
        okm.as_mut_slice(),
    );
    let mut low_to_high = Zeroizing::new([0; 32]);
    let mut high_to_low = Zeroizing::new([0; 32]);
    low_to_high.copy_from_slice(&okm[..32]);
    high_to_low.copy_from_slice(&okm[32..]);
    if local_is_low {
        (low_to_high, high_to_low)
    } else {
        (high_to_low, low_to_high)
    }
}

/// An epoch's keys and the next epoch's chain key, from this epoch's chain key.
fn epoch_keys(chain: &[u8; 32]) -> (EpochKeys, Zeroizing<[u8; 32]>) {
    let mut okm = Zeroizing::new([0; 68]);
    hkdf(&[], chain, &[EPOCH_LABEL], okm.as_mut_slice());
    let mut key = Zeroizing::new([0; 32]);
    let mut nonce_prefix = [0; 4];
    let mut next = Zeroizing::new([0; 32]);
    key.copy_from_slice(&okm[..32]);
    nonce_prefix.copy_from_slice(&okm[32..36]);
    next.copy_from_slice(&okm[36..]);
    (EpochKeys { key, nonce_prefix }, next)
}

fn signed_message(
    algorithm: EncryptionAlgorithm,
    share: &KeyShare,
    sender: &PeerId,
    receiver: &PeerId,
) -> Vec<u8> {
    let sender = sender.to_bytes();
    let receiver = receiver.to_bytes();
    let mut message = Vec::with_capacity(SIGNATURE_LABEL.len() + 3 + KEY_SHARE_LEN + 2 * 64);
    message.extend_from_slice(SIGNATURE_LABEL);
    message.push(algorithm.wire_id());
    message.extend_from_slice(&share.to_bytes());
    message.push(len_u8(&sender));
    message.extend_from_slice(&sender);
    message.push(len_u8(&receiver));
    message.extend_from_slice(&receiver);
    message
}

/// Peer ids are multihashes of at most 64 digest bytes plus a few header bytes.
fn len_u8(bytes: &[u8]) -> u8 {
    u8::try_from(bytes.len()).unwrap_or(u8::MAX)
}

/// The public key inside an identity-multihash peer id (Ed25519 and
/// secp256k1 keys are short enough to be inlined; RSA keys are hashed).
fn embedded_public_key(peer: &PeerId) -> Result<PublicKey, EncryptionError> {
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return Err(EncryptionError::PeerKeyNotEmbedded { peer: *peer });
    }
    PublicKey::try_decode_protobuf(multihash.digest())
        .map_err(|_| EncryptionError::PeerKeyNotEmbedded { peer: *peer })
}

fn hex_prefix(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().take(8).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }) + "…"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(config: EncryptionConfig) -> EncryptionManager {
        EncryptionManager::new(Keypair::generate_ed25519(), config).unwrap()
    }

    fn with_algorithm(algorithm: EncryptionAlgorithm) -> EncryptionConfig {
        EncryptionConfig {
            encryption_algorithm: algorithm,
            ..EncryptionConfig::default()
        }
    }

    /// Signed key exchange between `a` and `b`, keys crossing.
    fn connect(a: &EncryptionManager, b: &EncryptionManager) {
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
        let from_a = a.signed_ephemeral_key(&b_id).unwrap();
        let from_b = b.signed_ephemeral_key(&a_id).unwrap();
        b.accept_signed_key(&a_id, &from_a).unwrap();
        a.accept_signed_key(&b_id, &from_b).unwrap();
    }

    fn pair(config: EncryptionConfig) -> (EncryptionManager, EncryptionManager) {
        let (a, b) = (manager(config.clone()), manager(config));
        connect(&a, &b);
        (a, b)
    }

    const ALGORITHMS: [EncryptionAlgorithm; 2] = [
        EncryptionAlgorithm::AesGcm256,
        EncryptionAlgorithm::ChaCha20Poly1305,
    ];

    #[test]
    fn round_trip_both_directions_and_algorithms() {
        for algorithm in ALGORITHMS {
            let (a, b) = pair(with_algorithm(algorithm));
            let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
            for message in [&b""[..], b"x", &[0xAB; 5000]] {
                let frame = a.encrypt(&b_id, message).unwrap();
                assert_eq!(frame.len(), message.len() + FRAME_OVERHEAD);
                assert_eq!(frame[1], algorithm.wire_id());
                assert_eq!(b.decrypt(&a_id, &frame).unwrap(), message);
                let frame = b.encrypt(&a_id, message).unwrap();
                assert_eq!(a.decrypt(&b_id, &frame).unwrap(), message);
            }
        }
    }

    #[test]
    fn the_same_plaintext_never_gives_the_same_frame() {
        let (a, b) = pair(EncryptionConfig::default());
        let b_id = b.local_peer_id();
        let first = a.encrypt(&b_id, b"same").unwrap();
        let second = a.encrypt(&b_id, b"same").unwrap();
        assert_ne!(first[FRAME_HEADER_LEN..], second[FRAME_HEADER_LEN..]);
        assert_eq!(&first[6..14], &0u64.to_be_bytes());
        assert_eq!(&second[6..14], &1u64.to_be_bytes());
    }

    #[test]
    fn flipping_any_byte_of_a_frame_is_rejected_and_the_genuine_frame_still_decrypts() {
        for algorithm in ALGORITHMS {
            let (a, b) = pair(with_algorithm(algorithm));
            let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
            let frame = a.encrypt(&b_id, b"an order worth protecting").unwrap();
            for position in 0..frame.len() {
                for mask in [0x01, 0x80, 0xFF] {
                    let mut tampered = frame.clone();
                    tampered[position] ^= mask;
                    let error = b.decrypt(&a_id, &tampered).unwrap_err();
                    let expected = match position {
                        0 => matches!(error, EncryptionError::UnsupportedVersion(_)),
                        1 => matches!(
                            error,
                            EncryptionError::MalformedFrame(_)
                                | EncryptionError::AlgorithmMismatch { .. }
                        ),
                        2..=5 => matches!(
                            error,
                            EncryptionError::AuthenticationFailed
                                | EncryptionError::EpochTooFarAhead { .. }
                        ),
                        _ => error == EncryptionError::AuthenticationFailed,
                    };
                    assert!(expected, "byte {position} ^ {mask:#x}: {error:?}");
                }
            }
            assert_eq!(
                b.decrypt(&a_id, &frame).unwrap(),
                b"an order worth protecting"
            );
        }
    }

    #[test]
    fn truncated_frames_are_rejected() {
        let (a, b) = pair(EncryptionConfig::default());
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
        let frame = a.encrypt(&b_id, b"twelve bytes").unwrap();
        for len in 0..frame.len() {
            let error = b.decrypt(&a_id, &frame[..len]).unwrap_err();
            if len < FRAME_OVERHEAD {
                assert!(
                    matches!(error, EncryptionError::MalformedFrame(_)),
                    "{len}: {error:?}"
                );
            } else {
                assert_eq!(error, EncryptionError::AuthenticationFailed, "{len}");
            }
        }
        let mut longer = frame.clone();
        longer.push(0);
        assert_eq!(
            b.decrypt(&a_id, &longer),
            Err(EncryptionError::AuthenticationFailed)
        );
        assert_eq!(b.decrypt(&a_id, &frame).unwrap(), b"twelve bytes");
    }

    #[test]
    fn a_replayed_frame_is_rejected_and_the_next_one_accepted() {
        let (a, b) = pair(EncryptionConfig::default());
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
        let first = a.encrypt(&b_id, b"pay 1 BTC").unwrap();
        b.decrypt(&a_id, &first).unwrap();
        assert_eq!(
            b.decrypt(&a_id, &first),
            Err(EncryptionError::Replay {
                epoch: 0,
                counter: 0
            })
        );
        let second = a.encrypt(&b_id, b"next").unwrap();
        assert_eq!(b.decrypt(&a_id, &second).unwrap(), b"next");
        assert!(matches!(
            b.decrypt(&a_id, &second),
            Err(EncryptionError::Replay { counter: 1, .. })
        ));
    }

    #[test]
    fn reordering_within_the_window_is_accepted_beyond_it_rejected() {
        let (a, b) = pair(EncryptionConfig::default());
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
        let frames: Vec<_> = (0..=REPLAY_WINDOW + 5)
            .map(|i| a.encrypt(&b_id, &i.to_be_bytes()).unwrap())
            .collect();
        let newest = REPLAY_WINDOW + 5;
        b.decrypt(&a_id, &frames[newest as usize]).unwrap();
        // Backwards through the window: every one exactly once.
        for i in (6..newest).rev() {
            assert_eq!(
                b.decrypt(&a_id, &frames[i as usize]).unwrap(),
                i.to_be_bytes()
            );
        }
        for i in 0..=5 {
            assert_eq!(
                b.decrypt(&a_id, &frames[i as usize]),
                Err(EncryptionError::TooOld {
                    epoch: 0,
                    counter: i,
                    newest
                })
            );
        }
        for i in [6, 500, newest] {
            assert!(matches!(
                b.decrypt(&a_id, &frames[i as usize]),
                Err(EncryptionError::Replay { .. })
            ));
        }
    }

    #[test]
    fn replay_window_survives_jumps_larger_than_itself() {
        let mut window = ReplayWindow::default();
        for counter in [0, 3, 2 * REPLAY_WINDOW + 7, 2 * REPLAY_WINDOW + 6] {
            window.check(0, counter).unwrap();
            window.accept(counter);
        }
        // Slot of counter 7 held "7" once; it must not look like a replay of 2*W+7 - W.
        window.check(0, REPLAY_WINDOW + 8).unwrap();
        assert!(matches!(
            window.check(0, 2 * REPLAY_WINDOW + 6),
            Err(EncryptionError::Replay { .. })
        ));
        assert!(matches!(
            window.check(0, 3),
            Err(EncryptionError::TooOld { .. })
        ));
    }

    #[test]
    fn rotation_mid_stream_keeps_in_flight_frames_until_the_grace_period_ends() {
        let (a, b) = pair(EncryptionConfig::default());
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
        let old = a.encrypt(&b_id, b"sent before rotation").unwrap();
        let old_late = a.encrypt(&b_id, b"also before").unwrap();
        a.rotate_keys().unwrap();
        let new = a.encrypt(&b_id, b"sent after rotation").unwrap();
        assert_eq!(&new[2..6], &1u32.to_be_bytes());
        assert_ne!(new[FRAME_HEADER_LEN..], old[FRAME_HEADER_LEN..]);

        let now = Instant::now();
        // The new epoch arrives first; the old one is still in flight.
        assert_eq!(
            b.decrypt_at(&a_id, &new, now).unwrap(),
            b"sent after rotation"
        );
        assert_eq!(
            b.decrypt_at(&a_id, &old, now).unwrap(),
            b"sent before rotation"
        );
        assert!(matches!(
            b.decrypt_at(&a_id, &old, now),
            Err(EncryptionError::Replay { epoch: 0, .. })
        ));
        // After the grace period the old epoch's key is refused, then pruned.
        let later = now + PREVIOUS_EPOCH_GRACE;
        assert_eq!(
            b.decrypt_at(&a_id, &old_late, later),
            Err(EncryptionError::UnknownEpoch {
                epoch: 0,
                current: 1
            })
        );
        b.prune_at(later);
        assert!(b.lock().sessions[&a_id].recv.previous.is_empty());
        let next = a.encrypt(&b_id, b"still fine").unwrap();
        assert_eq!(b.decrypt_at(&a_id, &next, later).unwrap(), b"still fine");
    }

    #[test]
    fn without_forward_secrecy_old_epochs_stay_usable() {
        let config = EncryptionConfig {
            use_forward_secrecy: false,
            ..EncryptionConfig::default()
        };
        let (a, b) = pair(config);
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
        let old = a.encrypt(&b_id, b"late").unwrap();
        a.rotate_keys().unwrap();
        let new = a.encrypt(&b_id, b"new").unwrap();
        let now = Instant::now();
        b.decrypt_at(&a_id, &new, now).unwrap();
        let much_later = now + 100 * PREVIOUS_EPOCH_GRACE;
        b.prune_at(much_later);
        assert_eq!(b.decrypt_at(&a_id, &old, much_later).unwrap(), b"late");
    }

    #[test]
    fn the_receiver_derives_forward_over_lost_epochs_but_only_so_far() {
        let (a, b) = pair(EncryptionConfig::default());
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
        let mut per_epoch = Vec::new();
        for _ in 0..3 {
            per_epoch.push(a.encrypt(&b_id, b"epoch").unwrap());
            a.rotate_keys().unwrap();
        }
        // Epochs 0..2 are lost in transit; epoch 3 arrives first.
        let third = a.encrypt(&b_id, b"epoch 3").unwrap();
        assert_eq!(b.decrypt(&a_id, &third).unwrap(), b"epoch 3");
        for frame in &per_epoch {
            assert_eq!(b.decrypt(&a_id, frame).unwrap(), b"epoch");
        }
        // A forged frame far ahead costs nothing and changes nothing.
        let mut far = a.encrypt(&b_id, b"x").unwrap();
        far[2..6].copy_from_slice(&(3 + MAX_EPOCH_JUMP + 1).to_be_bytes());
        assert_eq!(
            b.decrypt(&a_id, &far),
            Err(EncryptionError::EpochTooFarAhead {
                epoch: 3 + MAX_EPOCH_JUMP + 1,
                current: 3
            })
        );
        let mut near = a.encrypt(&b_id, b"y").unwrap();
        near[2..6].copy_from_slice(&5u32.to_be_bytes());
        assert_eq!(
            b.decrypt(&a_id, &near),
            Err(EncryptionError::AuthenticationFailed)
        );
        assert_eq!(b.lock().sessions[&a_id].recv.current.epoch, 3);
    }

    #[test]
    fn rotate_keys_skips_idle_sessions_and_encrypt_rotates_stale_keys() {
        let (a, b) = pair(EncryptionConfig::default());
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
        for _ in 0..(MAX_EPOCH_JUMP + 4) {
            a.rotate_keys().unwrap();
        }
        let frame = a.encrypt(&b_id, b"after idle rotations").unwrap();
        assert_eq!(&frame[2..6], &0u32.to_be_bytes());
        b.decrypt(&a_id, &frame).unwrap();

        let later = Instant::now() + a.config().key_rotation_interval;
        let frame = a.encrypt_at(&b_id, b"stale key", later).unwrap();
        assert_eq!(&frame[2..6], &1u32.to_be_bytes());
        assert_eq!(b.decrypt(&a_id, &frame).unwrap(), b"stale key");
    }

    #[test]
    fn counter_exhaustion_is_an_error_until_the_keys_rotate() {
        let (a, b) = pair(EncryptionConfig::default());
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
        a.lock().sessions.get_mut(&b_id).unwrap().send.counter = u64::MAX - 1;
        let last = a.encrypt(&b_id, b"last").unwrap();
        assert_eq!(
            a.encrypt(&b_id, b"one more"),
            Err(EncryptionError::CounterExhausted)
        );
        assert_eq!(b.decrypt(&a_id, &last).unwrap(), b"last");
        a.rotate_keys().unwrap();
        let frame = a.encrypt(&b_id, b"fresh epoch").unwrap();
        assert_eq!(b.decrypt(&a_id, &frame).unwrap(), b"fresh epoch");
    }

    #[test]
    fn frames_for_another_peer_or_reflected_back_do_not_decrypt() {
        let (a, b) = pair(EncryptionConfig::default());
        let c = manager(EncryptionConfig::default());
        connect(&a, &c);
        connect(&b, &c);
        let (a_id, b_id, c_id) = (a.local_peer_id(), b.local_peer_id(), c.local_peer_id());
        let to_b = a.encrypt(&b_id, b"for b only").unwrap();
        assert_eq!(
            c.decrypt(&a_id, &to_b),
            Err(EncryptionError::AuthenticationFailed)
        );
        assert_eq!(
            b.decrypt(&c_id, &to_b),
            Err(EncryptionError::AuthenticationFailed)
        );
        assert_eq!(
            a.decrypt(&b_id, &to_b),
            Err(EncryptionError::AuthenticationFailed)
        );
        let stranger = PeerId::random();
        assert_eq!(
            b.decrypt(&stranger, &to_b),
            Err(EncryptionError::NoSession { peer: stranger })
        );
        assert_eq!(
            a.encrypt(&stranger, b"x"),
            Err(EncryptionError::NoSession { peer: stranger })
        );
        assert_eq!(b.decrypt(&a_id, &to_b).unwrap(), b"for b only");
    }

    #[test]
    fn sessions_with_several_peers_are_independent() {
        let hub = manager(EncryptionConfig::default());
        let spokes: Vec<_> = (0..3)
            .map(|_| manager(EncryptionConfig::default()))
            .collect();
        for spoke in &spokes {
            connect(&hub, spoke);
        }
        let hub_id = hub.local_peer_id();
        for round in 0..5u8 {
            for (i, spoke) in spokes.iter().enumerate() {
                let frame = hub
                    .encrypt(&spoke.local_peer_id(), &[round, i as u8])
                    .unwrap();
                assert_eq!(&frame[6..14], &u64::from(round).to_be_bytes());
                assert_eq!(spoke.decrypt(&hub_id, &frame).unwrap(), [round, i as u8]);
            }
        }
        // Re-keying or dropping one peer leaves the others alone.
        connect(&hub, &spokes[0]);
        hub.remove_peer(&spokes[1].local_peer_id());
        assert!(!hub.has_session(&spokes[1].local_peer_id()));
        let frame = hub
            .encrypt(&spokes[2].local_peer_id(), b"still here")
            .unwrap();
        assert_eq!(spokes[2].decrypt(&hub_id, &frame).unwrap(), b"still here");
        let frame = hub
            .encrypt(&spokes[0].local_peer_id(), b"new session")
            .unwrap();
        assert_eq!(&frame[6..14], &0u64.to_be_bytes());
        assert_eq!(spokes[0].decrypt(&hub_id, &frame).unwrap(), b"new session");
    }

    #[test]
    fn signed_keys_bind_the_signer_and_the_receiver() {
        let (a, b) = (
            manager(EncryptionConfig::default()),
            manager(EncryptionConfig::default()),
        );
        let mallory = manager(EncryptionConfig::default());
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());

        // A relay substituting its own key, signed by itself, for A's.
        let substituted = mallory.signed_ephemeral_key(&b_id).unwrap();
        assert_eq!(
            b.accept_signed_key(&a_id, &substituted),
            Err(EncryptionError::BadSignature { peer: a_id })
        );
        // A's genuine key with one bit of the share changed.
        let genuine = a.signed_ephemeral_key(&b_id).unwrap();
        let mut bytes = genuine.to_bytes();
        bytes[10] ^= 1;
        let altered = SignedKey::from_bytes(&bytes).unwrap();
        assert_eq!(
            b.accept_signed_key(&a_id, &altered),
            Err(EncryptionError::BadSignature { peer: a_id })
        );
        // A key A signed for Mallory, forwarded to B.
        let for_mallory = a.signed_ephemeral_key(&mallory.local_peer_id()).unwrap();
        assert_eq!(
            b.accept_signed_key(&a_id, &for_mallory),
            Err(EncryptionError::BadSignature { peer: a_id })
        );
        // The honest exchange still completes.
        let genuine = a.signed_ephemeral_key(&b_id).unwrap();
        let decoded = SignedKey::from_bytes(&genuine.to_bytes()).unwrap();
        assert_eq!(decoded, genuine);
        let from_b = b.signed_ephemeral_key(&a_id).unwrap();
        b.accept_signed_key(&a_id, &decoded).unwrap();
        a.accept_signed_key(&b_id, &from_b).unwrap();
        let frame = a.encrypt(&b_id, b"authenticated").unwrap();
        assert_eq!(b.decrypt(&a_id, &frame).unwrap(), b"authenticated");
    }

    #[test]
    fn malformed_signed_keys_are_rejected() {
        let a = manager(EncryptionConfig::default());
        let good = a
            .signed_ephemeral_key(&PeerId::random())
            .unwrap()
            .to_bytes();
        assert_eq!(good.len(), 2 + KEY_SHARE_LEN + 64);
        assert!(matches!(
            SignedKey::from_bytes(&[]),
            Err(EncryptionError::MalformedKey(_))
        ));
        assert!(matches!(
            SignedKey::from_bytes(&good[..2 + KEY_SHARE_LEN]),
            Err(EncryptionError::MalformedKey(_))
        ));
        let mut bad = good.clone();
        bad[0] = 2;
        assert_eq!(
            SignedKey::from_bytes(&bad),
            Err(EncryptionError::UnsupportedVersion(2))
        );
        let mut bad = good.clone();
        bad[1] = 9;
        assert!(matches!(
            SignedKey::from_bytes(&bad),
            Err(EncryptionError::MalformedKey(_))
        ));
        let mut long = good;
        long.extend_from_slice(&[0; MAX_SIGNATURE_LEN]);
        assert!(matches!(
            SignedKey::from_bytes(&long),
            Err(EncryptionError::MalformedKey(_))
        ));
        assert!(matches!(
            KeyShare::from_bytes(&[0; 63]),
            Err(EncryptionError::MalformedKey(_))
        ));
    }

    #[test]
    fn peers_with_different_algorithms_are_told_so() {
        let aes = manager(with_algorithm(EncryptionAlgorithm::AesGcm256));
        let chacha = manager(with_algorithm(EncryptionAlgorithm::ChaCha20Poly1305));
        let (aes_id, chacha_id) = (aes.local_peer_id(), chacha.local_peer_id());
        let from_chacha = chacha.signed_ephemeral_key(&aes_id).unwrap();
        aes.signed_ephemeral_key(&chacha_id).unwrap();
        assert_eq!(
            aes.accept_signed_key(&chacha_id, &from_chacha),
            Err(EncryptionError::AlgorithmMismatch {
                expected: EncryptionAlgorithm::AesGcm256,
                received: EncryptionAlgorithm::ChaCha20Poly1305
            })
        );
        // Unsigned exchange: the mismatch shows on the first frame.
        let share_aes = aes.generate_ephemeral_key_pair(&chacha_id).unwrap();
        let share_chacha = chacha.generate_ephemeral_key_pair(&aes_id).unwrap();
        aes.perform_key_exchange(&chacha_id, &share_chacha).unwrap();
        chacha.perform_key_exchange(&aes_id, &share_aes).unwrap();
        let frame = chacha.encrypt(&aes_id, b"hi").unwrap();
        assert!(matches!(
            aes.decrypt(&chacha_id, &frame),
            Err(EncryptionError::AlgorithmMismatch { .. })
        ));
    }

    #[test]
    fn the_seed_flow_with_unsigned_shares_works() {
        let (a, b) = (
            manager(EncryptionConfig::default()),
            manager(EncryptionConfig::default()),
        );
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
        let a_share = a.generate_ephemeral_key_pair(&b_id).unwrap();
        let b_share = b.generate_ephemeral_key_pair(&a_id).unwrap();
        a.perform_key_exchange(&b_id, &b_share).unwrap();
        b.perform_key_exchange(&a_id, &a_share).unwrap();
        let frame = a.encrypt(&b_id, b"Hello, Bob!").unwrap();
        assert_eq!(b.decrypt(&a_id, &frame).unwrap(), b"Hello, Bob!");
        // A share is used once.
        assert_eq!(
            a.perform_key_exchange(&b_id, &b_share),
            Err(EncryptionError::NoPendingKeyExchange { peer: b_id })
        );
        a.rotate_keys().unwrap();
        b.rotate_keys().unwrap();
        a.prune_expired_keys();
        b.prune_expired_keys();
        let frame = b.encrypt(&a_id, b"Hi, Alice!").unwrap();
        assert_eq!(a.decrypt(&b_id, &frame).unwrap(), b"Hi, Alice!");
    }

    #[test]
    fn ephemeral_keys_are_fresh_and_static_keys_reused_yet_sessions_differ() {
        let ephemeral = manager(EncryptionConfig::default());
        let peer = PeerId::random();
        let one = ephemeral.generate_ephemeral_key_pair(&peer).unwrap();
        let two = ephemeral.generate_ephemeral_key_pair(&peer).unwrap();
        assert_ne!(one.public_key(), two.public_key());

        let static_config = EncryptionConfig {
            use_ephemeral_keys: false,
            use_forward_secrecy: false,
            ..EncryptionConfig::default()
        };
        let (a, b) = (manager(static_config.clone()), manager(static_config));
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
        let mut first_frames = Vec::new();
        for _ in 0..2 {
            let a_share = a.generate_ephemeral_key_pair(&b_id).unwrap();
            let b_share = b.generate_ephemeral_key_pair(&a_id).unwrap();
            a.perform_key_exchange(&b_id, &b_share).unwrap();
            b.perform_key_exchange(&a_id, &a_share).unwrap();
            let frame = a.encrypt(&b_id, b"same counter, same plaintext").unwrap();
            assert_eq!(
                b.decrypt(&a_id, &frame).unwrap(),
                b"same counter, same plaintext"
            );
            first_frames.push((a_share, frame));
        }
        // Same X25519 key both times, but never the same key stream at counter 0.
        assert_eq!(
            first_frames[0].0.public_key(),
            first_frames[1].0.public_key()
        );
        assert_eq!(
            first_frames[0].1[..FRAME_HEADER_LEN],
            first_frames[1].1[..FRAME_HEADER_LEN]
        );
        assert_ne!(first_frames[0].1, first_frames[1].1);
    }

    #[test]
    fn invalid_configs_are_refused() {
        let refuse =
            |config| EncryptionManager::new(Keypair::generate_ed25519(), config).unwrap_err();
        assert!(matches!(
            refuse(EncryptionConfig {
                use_ephemeral_keys: false,
                ..EncryptionConfig::default()
            }),
            EncryptionError::InvalidConfig(_)
        ));
        assert!(matches!(
            refuse(EncryptionConfig {
                key_rotation_interval: Duration::ZERO,
                ..EncryptionConfig::default()
            }),
            EncryptionError::InvalidConfig(_)
        ));
    }

    #[test]
    fn low_order_public_keys_and_self_sessions_are_refused() {
        let a = manager(EncryptionConfig::default());
        let peer = PeerId::random();
        a.generate_ephemeral_key_pair(&peer).unwrap();
        let zero = KeyShare::from_bytes(&[0; KEY_SHARE_LEN]).unwrap();
        assert_eq!(
            a.perform_key_exchange(&peer, &zero),
            Err(EncryptionError::WeakPublicKey)
        );
        assert!(!a.has_session(&peer));
        let me = a.local_peer_id();
        assert_eq!(
            a.generate_ephemeral_key_pair(&me),
            Err(EncryptionError::SelfSession)
        );
    }

    #[test]
    fn pending_exchanges_expire() {
        let (a, b) = (
            manager(EncryptionConfig::default()),
            manager(EncryptionConfig::default()),
        );
        let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
        let now = Instant::now();
        a.generate_at(&b_id, now).unwrap();
        let b_share = b.generate_ephemeral_key_pair(&a_id).unwrap();
        assert_eq!(
            a.exchange_at(&b_id, &b_share, now + PENDING_EXCHANGE_TTL),
            Err(EncryptionError::NoPendingKeyExchange { peer: b_id })
        );
        a.generate_at(&b_id, now).unwrap();
        a.prune_at(now + PENDING_EXCHANGE_TTL);
        assert!(a.lock().pending.is_empty());
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let (a, b) = pair(EncryptionConfig::default());
        let b_id = b.local_peer_id();
        let share = a.generate_ephemeral_key_pair(&b_id).unwrap();
        let printed = format!("{a:?} {share:?}");
        assert!(printed.contains("sessions: 1"), "{printed}");
        let state = a.lock();
        let session = &state.sessions[&b_id];
        for secret in [
            &session.send.keys.key[..],
            &session.send.next_chain[..],
            &session.recv.current.keys.key[..],
            &share.nonce[..],
        ] {
            let hex: String = secret[..4].iter().map(|b| format!("{b:02x}")).collect();
            assert!(!printed.contains(&hex), "{printed}");
        }
    }
}
