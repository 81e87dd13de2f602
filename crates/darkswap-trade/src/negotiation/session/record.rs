//! What a node keeps of a trade so that a restart neither forgets it nor
//! signs anything for it again: [`TradeRecord`], taken from a session at
//! every step before its messages go out.

use std::collections::BTreeMap;

use bitcoin::{OutPoint, Transaction};
use darkswap_proto::{OrderId, SignedTradeMessage, identity::PeerId};

use super::TradeSession;
use crate::{
    Role,
    negotiation::{TradeId, TradeState},
};

/// A trade as stored. A session's record is taken before each message it
/// sends, so a stored trade never lags behind what the counterparty saw.
///
/// After a restart a record comes back as a recovered trade
/// ([`crate::negotiation::Trades::restore`]): it answers retransmissions
/// of the steps it received with the very messages it sent, sends its last
/// message once more (it may not have left before the crash), broadcasts
/// its finished transaction again if it held one, and otherwise waits for
/// its deadline. It signs nothing: whatever it signed before is all it
/// ever signs for this trade.
#[derive(Debug, Clone, PartialEq)]
pub struct TradeRecord {
    /// The trade.
    pub id: TradeId,
    /// The order it fills.
    pub order_id: OrderId,
    /// This node's side.
    pub role: Role,
    /// The counterparty.
    pub peer: PeerId,
    /// The state when recorded.
    pub state: TradeState,
    /// Whether a party had signed (no cancel from then on).
    pub signed: bool,
    /// Unix seconds when the whole negotiation times out.
    pub deadline_unix: u64,
    /// Base units of the order the trade fills.
    pub amount: u64,
    /// The UTXOs this side offered.
    pub own_outpoints: Vec<OutPoint>,
    /// The body bytes of each step received, by step.
    pub received: BTreeMap<u32, Vec<u8>>,
    /// Each message sent, by step.
    pub sent: BTreeMap<u32, SignedTradeMessage>,
    /// The finished transaction, once there is one.
    pub final_tx: Option<Transaction>,
}

impl TradeRecord {
    /// The last message this side sent.
    pub fn last_sent(&self) -> Option<&SignedTradeMessage> {
        self.sent.values().next_back()
    }
}

impl TradeSession {
    /// The session as stored now (see [`TradeRecord`]).
    pub fn record(&self) -> TradeRecord {
        TradeRecord {
            id: self.id,
            order_id: self.order_id,
            role: self.role,
            peer: self.peer,
            state: self.state.clone(),
            signed: self.signed,
            deadline_unix: self.deadline_unix,
            amount: self.amount,
            own_outpoints: self.own_outpoints(),
            received: self.received.clone(),
            sent: self.sent.clone(),
            final_tx: self.final_tx.clone(),
        }
    }
}
