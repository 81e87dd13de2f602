//! What a manager uses: algorithms and rotation policy.

use std::fmt;
use std::time::Duration;

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

/// Configuration of an [`EncryptionManager`](crate::EncryptionManager).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionConfig {
    /// Key agreement; default [`KeyExchangeAlgorithm::X25519`].
    pub key_exchange_algorithm: KeyExchangeAlgorithm,
    /// AEAD of every session; default [`EncryptionAlgorithm::AesGcm256`].
    pub encryption_algorithm: EncryptionAlgorithm,
    /// A session's sending key is rotated (moved to the next epoch) by
    /// [`EncryptionManager::encrypt`](crate::EncryptionManager::encrypt) once it has been in use this long;
    /// default one hour. Must not be zero.
    pub key_rotation_interval: Duration,
    /// Default `true`. With it, keys of past epochs exist only as long as
    /// messages from them may still be in flight: a receiving epoch is
    /// dropped [`PREVIOUS_EPOCH_GRACE`](crate::PREVIOUS_EPOCH_GRACE) after the peer moved past it, so a
    /// later compromise of this process does not expose that traffic.
    /// Without it, up to [`MAX_RETAINED_EPOCHS`](crate::MAX_RETAINED_EPOCHS) past epochs stay usable for
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
