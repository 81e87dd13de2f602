//! Key shares: an X25519 public key with fresh randomness, optionally
//! signed by its sender's libp2p identity for one receiver.

use std::fmt;

use libp2p_identity::{PeerId, PublicKey};

use crate::{FRAME_VERSION, KEY_SHARE_LEN, config::EncryptionAlgorithm, error::EncryptionError};

pub(crate) const SIGNATURE_LABEL: &[u8] = b"darkswap-e2e/v1/key";

pub(crate) const MAX_SIGNATURE_LEN: usize = 128;

/// One side's contribution to a key exchange: an X25519 public key and 32
/// random bytes that make every session's keys fresh even when a side reuses
/// its X25519 key. Encoded as the 32 key bytes followed by the 32 random bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyShare {
    pub(crate) public: [u8; 32],
    pub(crate) nonce: [u8; 32],
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
    pub(crate) algorithm: EncryptionAlgorithm,
    pub(crate) share: KeyShare,
    pub(crate) signature: Vec<u8>,
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
    /// [`EncryptionManager::accept_signed_key`](crate::EncryptionManager::accept_signed_key), not here).
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

/// What a [`SignedKey`] signature covers: the label, the algorithm, the
/// share and both peer ids, each delimited.
pub(crate) fn signed_message(
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
pub(crate) fn len_u8(bytes: &[u8]) -> u8 {
    u8::try_from(bytes.len()).unwrap_or(u8::MAX)
}

/// The public key inside an identity-multihash peer id (Ed25519 and
/// secp256k1 keys are short enough to be inlined; RSA keys are hashed).
pub(crate) fn embedded_public_key(peer: &PeerId) -> Result<PublicKey, EncryptionError> {
    let multihash = peer.as_ref();
    if multihash.code() != 0 {
        return Err(EncryptionError::PeerKeyNotEmbedded { peer: *peer });
    }
    PublicKey::try_decode_protobuf(multihash.digest())
        .map_err(|_| EncryptionError::PeerKeyNotEmbedded { peer: *peer })
}

pub(crate) fn hex_prefix(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().take(8).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }) + "…"
}
