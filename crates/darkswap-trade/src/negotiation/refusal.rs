//! A maker's refusal of a proposal, signed for the taker.

use darkswap_proto::{
    SignedTradeMessage, TradeMessageBody, TradePayload, TradeReject, VerifiedTradeMessage,
    identity::Keypair,
};

use super::{RefusalReason, step};

/// A refusal of a proposal: the message to send back, and why.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Why.
    pub reason: RefusalReason,
    /// The signed `TradeReject` for the taker.
    pub message: Option<SignedTradeMessage>,
}

impl Refusal {
    pub(super) fn new(
        key: &Keypair,
        proposal: &VerifiedTradeMessage,
        reason: RefusalReason,
        unix_now: u64,
    ) -> Self {
        let body = TradeMessageBody {
            trade_id: proposal.body.trade_id.clone(),
            order_id: proposal.body.order_id.clone(),
            step: step::ACCEPT,
            sender: key.public().to_peer_id().to_bytes(),
            recipient: proposal.sender.to_bytes(),
            sent_at: unix_now,
            payload: Some(TradePayload::Reject(TradeReject {
                trade_id: proposal.body.trade_id.clone(),
                reason: reason.code().to_owned(),
            })),
        };
        Refusal {
            reason,
            message: body.sign(key).ok(),
        }
    }

    /// A refusal of `proposal` for `reason`, made by whoever holds `key`
    /// (the maker, when the refusal is decided before any session exists).
    pub fn of(
        key: &Keypair,
        proposal: &VerifiedTradeMessage,
        reason: RefusalReason,
        unix_now: u64,
    ) -> Self {
        Refusal::new(key, proposal, reason, unix_now)
    }
}
