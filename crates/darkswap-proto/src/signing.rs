//! Domain-separated signatures by a libp2p identity key over exact body bytes.

use libp2p_identity::{Keypair, PeerId, PublicKey};

use crate::OrderError;

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
