//! Trades and the trading wallet: `/v1/trades`, `/v1/trades/{id}`,
//! `/v1/wallet`, `/v1/wallet/sync`.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

pub use darkswap_p2p::json::{Trade, Wallet};

use super::{Endpoint, Verb};

/// `POST /v1/trades`: take `amount` of another maker's order; answers
/// `201` with the trade as proposed. Its steps follow as `trade_updated`
/// events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakeOrder {
    /// Hex id of the order.
    pub order_id: String,
    /// Base units to take.
    pub amount: u64,
}

impl Endpoint for TakeOrder {
    const VERB: Verb = Verb::Post;
    const ROUTE: &'static str = "/v1/trades";
    const SUCCESS: StatusCode = StatusCode::CREATED;
    type Response = Trade;
}

/// `GET /v1/trades`: this node's trades, running and ended.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ListTrades;

impl Endpoint for ListTrades {
    const VERB: Verb = Verb::Get;
    const ROUTE: &'static str = "/v1/trades";
    type Response = Vec<Trade>;
}

/// `GET /v1/trades/{id}`: one trade.
#[derive(Debug, Clone, Serialize)]
pub struct GetTrade {
    /// Hex trade id (in the path).
    #[serde(skip)]
    pub id: String,
}

impl Endpoint for GetTrade {
    const VERB: Verb = Verb::Get;
    const ROUTE: &'static str = "/v1/trades/{id}";
    type Response = Trade;

    fn path(&self) -> String {
        format!("/v1/trades/{}", self.id)
    }
}

/// `DELETE /v1/trades/{id}`: cancel a trade no party has signed yet;
/// answers `204`.
#[derive(Debug, Clone, Serialize)]
pub struct CancelTrade {
    /// Hex trade id (in the path).
    #[serde(skip)]
    pub id: String,
}

impl Endpoint for CancelTrade {
    const VERB: Verb = Verb::Delete;
    const ROUTE: &'static str = "/v1/trades/{id}";
    const SUCCESS: StatusCode = StatusCode::NO_CONTENT;
    type Response = ();

    fn path(&self) -> String {
        format!("/v1/trades/{}", self.id)
    }
}

/// `GET /v1/wallet`: the wallet as of its last sync.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GetWallet;

impl Endpoint for GetWallet {
    const VERB: Verb = Verb::Get;
    const ROUTE: &'static str = "/v1/wallet";
    type Response = Wallet;
}

/// `POST /v1/wallet/sync`: ask the chain services for the wallet's coins
/// now; answers the wallet.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SyncWallet {}

impl Endpoint for SyncWallet {
    const VERB: Verb = Verb::Post;
    const ROUTE: &'static str = "/v1/wallet/sync";
    type Response = Wallet;
}
