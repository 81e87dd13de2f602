//! Domain-separated signatures by a libp2p identity key over exact body bytes.
//!
//! Signatures are made by the libp2p key and verified with `ed25519-zebra`
//! under the ZIP 215 rules: every signature RFC 8032 signers make verifies,
//! and a batch verification accepts exactly what one-by-one verification
//! accepts (other Ed25519 libraries differ on crafted edge cases, which
//! would let a forger make nodes that verified differently disagree on the
//! book).

use ed25519_zebra::{Signature, VerificationKey, VerificationKeyBytes, batch};
use libp2p_identity::{Keypair, PeerId, PublicKey};
use rand_batch::{SeedableRng, rngs::StdRng, rngs::SysRng};

use crate::{
    order::{CANCEL_TAG, ORDER_TAG, OrderError, UPDATE_TAG},
    pb::{OrderCancel, OrderUpdate, SignedOrder},
};

/// A message signed by its maker: the encoded body, the maker's encoded
/// public key and the signature over `TAG || body`.
pub(crate) trait SignedMessage: Sized {
    /// Domain separation of this message type's signatures.
    const TAG: &'static [u8];
    fn from_parts(body: Vec<u8>, public_key: Vec<u8>, signature: Vec<u8>) -> Self;
    fn parts(&self) -> (&[u8], &[u8], &[u8]);
}

macro_rules! signed_message {
    ($($ty:ident => $tag:expr),*) => {
        $(impl SignedMessage for $ty {
            const TAG: &'static [u8] = $tag;
            fn from_parts(body: Vec<u8>, public_key: Vec<u8>, signature: Vec<u8>) -> Self {
                $ty { body, public_key, signature }
            }
            fn parts(&self) -> (&[u8], &[u8], &[u8]) {
                (&self.body, &self.public_key, &self.signature)
            }
        })*
    };
}

signed_message!(
    SignedOrder => ORDER_TAG,
    OrderCancel => CANCEL_TAG,
    OrderUpdate => UPDATE_TAG
);

/// Encodes `body` and signs it as an `M`.
pub(crate) fn sign_message<M: SignedMessage>(
    body: &impl prost::Message,
    keypair: &Keypair,
) -> Result<M, OrderError> {
    let body = body.encode_to_vec();
    let (public_key, signature) = sign(M::TAG, &body, keypair)?;
    Ok(M::from_parts(body, public_key, signature))
}

/// When a signature is checked: at once, or later with a batch.
#[derive(Debug)]
pub(crate) enum Check<'a> {
    /// Verify it now.
    Now,
    /// Queue it in the batch; it holds only once the batch verifies.
    Later(&'a mut SignatureBatch),
}

/// Decodes `message`'s body and checks its signature by the maker the body
/// names (`maker` picks that field out of it).
pub(crate) fn verify_message<M: SignedMessage, B: prost::Message + Default>(
    message: &M,
    maker: impl FnOnce(&B) -> &[u8],
    check: &mut Check<'_>,
) -> Result<(B, PeerId), OrderError> {
    let (body, public_key, signature) = message.parts();
    let decoded = B::decode(body).map_err(|e| OrderError::MalformedBody(e.to_string()))?;
    let maker = verify(M::TAG, body, public_key, signature, maker(&decoded), check)?;
    Ok((decoded, maker))
}

/// Signs `tag || body` and returns `(encoded public key, signature)`.
pub(crate) fn sign(
    tag: &[u8],
    body: &[u8],
    keypair: &Keypair,
) -> Result<(Vec<u8>, Vec<u8>), OrderError> {
    let signature = keypair
        .sign(&signed_bytes(tag, body))
        .map_err(|_| OrderError::SigningFailed)?;
    Ok((keypair.public().encode_protobuf(), signature))
}

/// Checks that `public_key` belongs to `maker` and signed `tag || body`
/// (now, or by queueing the signature in a batch).
pub(crate) fn verify(
    tag: &[u8],
    body: &[u8],
    public_key: &[u8],
    signature: &[u8],
    maker: &[u8],
    check: &mut Check<'_>,
) -> Result<PeerId, OrderError> {
    let maker = PeerId::from_bytes(maker).map_err(|_| OrderError::InvalidMaker)?;
    let key = decode_key(public_key)?;
    if key.owner != maker {
        return Err(OrderError::MakerMismatch);
    }
    let signature = Signature::from_slice(signature).map_err(|_| OrderError::BadSignature)?;
    let message = signed_bytes(tag, body);
    match check {
        Check::Now => key
            .key
            .verify(&signature, &message)
            .map_err(|_| OrderError::BadSignature)?,
        Check::Later(batch) => batch.queue(key.bytes, signature, &message),
    }
    Ok(maker)
}

/// Signatures queued to be verified together: about twice as fast as one
/// by one, and more when one key signed many of them (the terms of each
/// key are coalesced). Messages verified with a batch are valid only once
/// [`SignatureBatch::verify`] succeeds; when it fails, at least one
/// signature is bad and the caller verifies the messages one by one to
/// find which (the two always agree: ZIP 215 rules).
#[derive(Default)]
pub struct SignatureBatch {
    verifier: batch::Verifier,
    len: usize,
}

impl std::fmt::Debug for SignatureBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureBatch")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Why a [`SignatureBatch`] did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// At least one signature in the batch does not verify.
    #[error("a signature in the batch does not verify")]
    Invalid,
    /// The OS gave no randomness for the batch's coefficients.
    #[error("no randomness for batch verification: {0}")]
    Randomness(String),
}

impl SignatureBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Signatures queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no signature is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn queue(&mut self, key: VerificationKeyBytes, signature: Signature, message: &[u8]) {
        self.verifier.queue((key, signature, message));
        self.len += 1;
    }

    /// Verifies every queued signature at once.
    pub fn verify(self) -> Result<(), BatchError> {
        if self.len == 0 {
            return Ok(());
        }
        // The coefficients must be unpredictable to whoever chose the
        // signatures, or invalid ones could be made to cancel out.
        let rng =
            StdRng::try_from_rng(&mut SysRng).map_err(|e| BatchError::Randomness(e.to_string()))?;
        self.verifier.verify(rng).map_err(|_| BatchError::Invalid)
    }
}

/// Decoded keys kept per thread. Decoding an Ed25519 key decompresses a
/// curve point, about a fifth of the cost of the verification itself, and
/// a maker signs many orders: decoding each maker's key once brings the
/// node's ingest rate close to the raw verification rate
/// (`darkswap-bench ingest`). Only well-formed keys are kept, and the
/// cache is emptied when full, so what a flood of fresh keys costs is
/// bounded and is the same as without the cache.
const KEY_CACHE_SIZE: usize = 4096;

/// A maker's key, decoded.
#[derive(Clone, Copy)]
struct MakerKey {
    key: VerificationKey,
    bytes: VerificationKeyBytes,
    owner: PeerId,
}

thread_local! {
    static KEYS: std::cell::RefCell<std::collections::HashMap<Vec<u8>, MakerKey>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The key `encoded` (a libp2p protobuf public key) and the peer id it
/// makes. Only Ed25519 keys that libp2p itself accepts are keys here.
fn decode_key(encoded: &[u8]) -> Result<MakerKey, OrderError> {
    if let Some(hit) = KEYS.with_borrow(|keys| keys.get(encoded).copied()) {
        return Ok(hit);
    }
    let public =
        PublicKey::try_decode_protobuf(encoded).map_err(|_| OrderError::InvalidPublicKey)?;
    let owner = public.to_peer_id();
    let raw = public
        .try_into_ed25519()
        .map_err(|_| OrderError::InvalidPublicKey)?
        .to_bytes();
    let key = VerificationKey::try_from(raw).map_err(|_| OrderError::InvalidPublicKey)?;
    let decoded = MakerKey {
        key,
        bytes: VerificationKeyBytes::from(raw),
        owner,
    };
    KEYS.with_borrow_mut(|keys| {
        if keys.len() >= KEY_CACHE_SIZE {
            keys.clear();
        }
        keys.insert(encoded.to_vec(), decoded);
    });
    Ok(decoded)
}

fn signed_bytes(tag: &[u8], body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(tag.len() + body.len());
    msg.extend_from_slice(tag);
    msg.extend_from_slice(body);
    msg
}
