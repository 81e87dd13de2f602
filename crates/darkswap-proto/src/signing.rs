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
    let key =
        PublicKey::try_decode_protobuf(public_key).map_err(|_| OrderError::InvalidPublicKey)?;
    if key.to_peer_id() != maker {
        return Err(OrderError::MakerMismatch);
    }
    if !key.verify(&signed_bytes(tag, body), signature) {
        return Err(OrderError::BadSignature);
    }
    Ok(maker)
}

fn signed_bytes(tag: &[u8], body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(tag.len() + body.len());
    msg.extend_from_slice(tag);
    msg.extend_from_slice(body);
    msg
}
