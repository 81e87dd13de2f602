//! Domain-separated signatures by a libp2p identity key over exact body bytes.

use libp2p_identity::{Keypair, PeerId, PublicKey};

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

/// Decodes `message`'s body and checks its signature by the maker the body
/// names (`maker` picks that field out of it).
pub(crate) fn verify_message<M: SignedMessage, B: prost::Message + Default>(
    message: &M,
    maker: impl FnOnce(&B) -> &[u8],
) -> Result<(B, PeerId), OrderError> {
    let (body, public_key, signature) = message.parts();
    let decoded = B::decode(body).map_err(|e| OrderError::MalformedBody(e.to_string()))?;
    let maker = verify(M::TAG, body, public_key, signature, maker(&decoded))?;
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

/// Checks that `public_key` belongs to `maker` and signed `tag || body`.
pub(crate) fn verify(
    tag: &[u8],
    body: &[u8],
    public_key: &[u8],
    signature: &[u8],
    maker: &[u8],
) -> Result<PeerId, OrderError> {
    let maker = PeerId::from_bytes(maker).map_err(|_| OrderError::InvalidMaker)?;
    let (key, key_owner) = decode_key(public_key)?;
    if key_owner != maker {
        return Err(OrderError::MakerMismatch);
    }
    if !key.verify(&signed_bytes(tag, body), signature) {
        return Err(OrderError::BadSignature);
    }
    Ok(maker)
}

/// Decoded keys kept per thread. Decoding an Ed25519 key decompresses a
/// curve point, about a fifth of the cost of the verification itself, and
/// a maker signs many orders: decoding each maker's key once brings the
/// node's ingest rate close to the raw verification rate
/// (`darkswap-bench ingest`). Only well-formed keys are kept, and the
/// cache is emptied when full, so what a flood of fresh keys costs is
/// bounded and is the same as without the cache.
const KEY_CACHE_SIZE: usize = 4096;

thread_local! {
    static KEYS: std::cell::RefCell<std::collections::HashMap<Vec<u8>, (PublicKey, PeerId)>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The key `encoded` (protobuf) and the peer id it makes.
fn decode_key(encoded: &[u8]) -> Result<(PublicKey, PeerId), OrderError> {
    if let Some(hit) = KEYS.with_borrow(|keys| keys.get(encoded).cloned()) {
        return Ok(hit);
    }
    let key = PublicKey::try_decode_protobuf(encoded).map_err(|_| OrderError::InvalidPublicKey)?;
    let decoded = (key.clone(), key.to_peer_id());
    KEYS.with_borrow_mut(|keys| {
        if keys.len() >= KEY_CACHE_SIZE {
            keys.clear();
        }
        keys.insert(encoded.to_vec(), decoded.clone());
    });
    Ok(decoded)
}

fn signed_bytes(tag: &[u8], body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(tag.len() + body.len());
    msg.extend_from_slice(tag);
    msg.extend_from_slice(body);
    msg
}
