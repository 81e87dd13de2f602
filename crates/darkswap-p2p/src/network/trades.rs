//! The trades facet of the handle.

use darkswap_core::{
    proto::OrderId,
    trade::{Role, TradeId, TradeState},
};
use libp2p::PeerId;

use crate::{command::TradeCommand, error::TradeCommandError, network::NetworkHandle};

/// One of this node's trades, as [`TradesHandle::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TradeInfo {
    /// The trade.
    pub trade_id: TradeId,
    /// The order it fills.
    pub order_id: OrderId,
    /// The counterparty.
    pub peer_id: PeerId,
    /// This node's side.
    pub role: Role,
    /// Where it stands.
    pub state: TradeState,
    /// The swap transaction's id, once both signed.
    pub txid: Option<String>,
}

/// This node's trades: what [`NetworkHandle::trades`] returns. Each step
/// is reported as [`NetworkEvent::TradeUpdated`](crate::NetworkEvent::TradeUpdated).
#[derive(Debug, Clone, Copy)]
pub struct TradesHandle<'a> {
    pub(super) handle: &'a NetworkHandle,
}

impl TradesHandle<'_> {
    /// Takes `amount` base units of `order_id` (another node's order in
    /// this node's book): proposes the trade to its maker with inputs from
    /// the wallet; returns the trade's id.
    pub async fn take(&self, order_id: OrderId, amount: u64) -> Result<TradeId, TradeCommandError> {
        self.handle
            .ask(|reply| TradeCommand::Take {
                order_id,
                amount,
                reply,
            })
            .await?
    }

    /// Cancels a trade; refused once a party signed.
    pub async fn cancel(&self, trade_id: TradeId) -> Result<(), TradeCommandError> {
        self.handle
            .ask(|reply| TradeCommand::Cancel { trade_id, reply })
            .await?
    }

    /// Every trade of this node, running or ended.
    pub async fn list(&self) -> Result<Vec<TradeInfo>, TradeCommandError> {
        Ok(self
            .handle
            .ask(|reply| TradeCommand::List { reply })
            .await?)
    }
}
