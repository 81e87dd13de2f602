//! Own orders and the book: `/v1/orders`, `/v1/orders/{id}`,
//! `/v1/orderbook`.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

pub use darkswap_p2p::json::Order;

use super::{Endpoint, Verb};

/// `POST /v1/orders`: sign and publish an own order; answers `201` with
/// the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// `buy` or `sell`.
    pub side: String,
    /// Base asset: `BTC`, `rune:<block>:<tx>` or `alkane:<block>:<tx>`.
    pub base: String,
    /// Quote asset.
    pub quote: String,
    /// Base amount, smallest unit.
    pub amount: u64,
    /// Quote units per 10^8 base units.
    pub price: u64,
    /// Seconds until expiry.
    pub expires_in: u64,
}

impl Endpoint for CreateOrder {
    const VERB: Verb = Verb::Post;
    const ROUTE: &'static str = "/v1/orders";
    const SUCCESS: StatusCode = StatusCode::CREATED;
    type Response = Order;
}

/// `GET /v1/orders`: this node's open orders, oldest first.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ListOwnOrders;

impl Endpoint for ListOwnOrders {
    const VERB: Verb = Verb::Get;
    const ROUTE: &'static str = "/v1/orders";
    type Response = Vec<Order>;
}

/// `DELETE /v1/orders/{id}`: cancel an own order; answers `204` once the
/// cancel is stored.
#[derive(Debug, Clone, Serialize)]
pub struct CancelOrder {
    /// Hex order id.
    pub id: String,
}

impl Endpoint for CancelOrder {
    const VERB: Verb = Verb::Delete;
    const ROUTE: &'static str = "/v1/orders/{id}";
    const SUCCESS: StatusCode = StatusCode::NO_CONTENT;
    type Response = ();

    fn path(&self) -> String {
        format!("/v1/orders/{}", self.id)
    }
}

/// `PATCH /v1/orders/{id}`: change the amount, price and/or expiry of an
/// own open order; answers `200` with the order as it now stands, once the
/// signed update is stored. Fields left out keep their values; at least one
/// must be given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrder {
    /// Hex order id: in the path, not in the body.
    #[serde(skip)]
    pub id: String,
    /// New base amount, smallest unit (greater than zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<u64>,
    /// New price: quote units per 10^8 base units (greater than zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<u64>,
    /// New expiry, in seconds from now (greater than zero, and not past the
    /// expiry the order was created with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

impl Endpoint for UpdateOrder {
    const VERB: Verb = Verb::Patch;
    const ROUTE: &'static str = "/v1/orders/{id}";
    type Response = Order;

    fn path(&self) -> String {
        format!("/v1/orders/{}", self.id)
    }
}

/// `GET /v1/orderbook?base=&quote=`: the bids and asks of a pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetOrderbook {
    /// Base asset.
    pub base: String,
    /// Quote asset.
    pub quote: String,
}

impl Endpoint for GetOrderbook {
    const VERB: Verb = Verb::Get;
    const ROUTE: &'static str = "/v1/orderbook";
    type Response = Orderbook;

    fn path(&self) -> String {
        format!("/v1/orderbook?base={}&quote={}", self.base, self.quote)
    }
}

/// The answer to [`GetOrderbook`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orderbook {
    /// Base asset, as asked.
    pub base: String,
    /// Quote asset, as asked.
    pub quote: String,
    /// Buy orders, best (highest) price first, then oldest first.
    pub bids: Vec<Order>,
    /// Sell orders, best (lowest) price first, then oldest first.
    pub asks: Vec<Order>,
}
