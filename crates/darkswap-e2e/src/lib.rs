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
use std::time::Duration;

mod config;
mod error;
mod frame;
mod key_share;
mod manager;
mod ratchet;
mod replay;

pub use config::{EncryptionAlgorithm, EncryptionConfig, KeyExchangeAlgorithm};
pub use error::EncryptionError;
pub use key_share::{KeyShare, SignedKey};
/// The identity types this crate's API uses.
pub use libp2p_identity::{Keypair, PeerId};
pub use manager::EncryptionManager;

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
