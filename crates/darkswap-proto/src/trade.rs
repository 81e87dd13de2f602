//! Trade messages, signed by their sender and bound to one trade, one order,
//! one step and both peers (see `docs/trade.md`).

use libp2p_identity::{Keypair, PeerId};
use prost::Message as _;

use crate::{
    order::OrderError,
    pb::{SignedTradeMessage, TradeMessageBody},
    signing::{self, Check},
};

/// Domain separation of trade message signatures.
const TRADE_TAG: &[u8] = b"darkswap/trade/v1";

/// Why a signed trade message was refused before any trade looked at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TradeMessageError {
    /// The body does not decode, or carries no payload.
    #[error("malformed trade message: {0}")]
    Malformed(String),
    /// The sender or recipient field is not a peer id.
    #[error("invalid peer id in a trade message")]
    InvalidPeer,
    /// The public key is not an Ed25519 libp2p key.
    #[error("invalid public key in a trade message")]
    InvalidPublicKey,
    /// The key is not the sender's.
    #[error("the key does not belong to the sender")]
    SenderMismatch,
    /// The signature does not verify.
    #[error("trade message signature does not verify")]
    BadSignature,
    /// The signing key is not the sender named in the body.
    #[error("cannot sign: the key is not the body's sender")]
    NotSender,
}

/// A trade message whose signature verified: its body, the peer that signed
/// it and the peer it was meant for.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedTradeMessage {
    /// The body as signed.
    pub body: TradeMessageBody,
    /// The signer, named in the body.
    pub sender: PeerId,
    /// The peer the sender addressed.
    pub recipient: PeerId,
}

impl TradeMessageBody {
    /// Signs this body with `keypair`, which must be its sender's.
    pub fn sign(&self, keypair: &Keypair) -> Result<SignedTradeMessage, TradeMessageError> {
        if self.sender != keypair.public().to_peer_id().to_bytes() {
            return Err(TradeMessageError::NotSender);
        }
        let body = self.encode_to_vec();
        let (public_key, signature) = signing::sign(TRADE_TAG, &body, keypair)
            .map_err(|_| TradeMessageError::BadSignature)?;
        Ok(SignedTradeMessage {
            body,
            public_key,
            signature,
        })
    }
}

impl SignedTradeMessage {
    /// Decodes the body and checks that its sender signed it.
    pub fn verify(&self) -> Result<VerifiedTradeMessage, TradeMessageError> {
        let body = TradeMessageBody::decode(self.body.as_slice())
            .map_err(|e| TradeMessageError::Malformed(e.to_string()))?;
        if body.payload.is_none() {
            return Err(TradeMessageError::Malformed("no payload".into()));
        }
        let recipient =
            PeerId::from_bytes(&body.recipient).map_err(|_| TradeMessageError::InvalidPeer)?;
        let sender = signing::verify(
            TRADE_TAG,
            &self.body,
            &self.public_key,
            &self.signature,
            &body.sender,
            &mut Check::Now,
        )
        .map_err(|e| match e {
            OrderError::InvalidMaker => TradeMessageError::InvalidPeer,
            OrderError::InvalidPublicKey => TradeMessageError::InvalidPublicKey,
            OrderError::MakerMismatch => TradeMessageError::SenderMismatch,
            _ => TradeMessageError::BadSignature,
        })?;
        Ok(VerifiedTradeMessage {
            body,
            sender,
            recipient,
        })
    }
}
