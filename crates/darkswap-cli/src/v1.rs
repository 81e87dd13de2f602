//! The local API, version 1: one type per request and one per answer,
//! used by the server ([`crate::api`]) and by the client
//! ([`crate::client`]), so the two cannot drift. This is the shape of
//! mini-redis's `cmd/get.rs`, where the same `Get` is parsed by the server
//! and encoded by the client.
//!
//! Every request type is an [`Endpoint`]: its method, its route, its
//! success status and the type of its answer. The router is built from the
//! routes and the client sends the methods and paths, so an endpoint changed
//! here changes on both sides at once.
//!
//! Field names are wire names (the README documents them). An error is an
//! [`ErrorBody`], `{"error": {"code", "message"}}`, with an HTTP status.

mod bans;
mod events;
mod node;
mod orders;
mod trades;
mod webrtc;

use axum::{
    http::{Method, StatusCode},
    routing::MethodFilter,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

pub use bans::{Ban, BanPeer, ListBans, UnbanPeer};
pub use darkswap_p2p::json::unix_secs;
pub use events::{EVENTS_ROUTE, Event, HelloRelay};
pub use node::{Connect, Connected, GetStatus, ListPeers, Peer, Relay, Status};
pub use orders::{
    CancelOrder, CreateOrder, GetOrderbook, ListOwnOrders, Order, Orderbook, UpdateOrder,
};
pub use trades::{
    CancelTrade, GetTrade, GetWallet, ListTrades, SyncWallet, TakeOrder, Trade, Wallet,
};
pub use webrtc::{
    CloseWebRtcChannel, GetWebRtc, MAX_RECEIVE_WAIT_MS, OpenWebRtcChannel, ReceiveWebRtcMessage,
    SendWebRtcMessage, SignalingRelay, WebRtcChannel, WebRtcMessage, WebRtcStatus,
};

/// Route of the Prometheus metrics (OpenMetrics text, not JSON).
pub const METRICS_ROUTE: &str = "/metrics";

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `GET`: reads, no body.
    Get,
    /// `POST`: the request is the JSON body.
    Post,
    /// `DELETE`: the path names what goes.
    Delete,
    /// `PATCH`: the path names what changes, the JSON body how.
    Patch,
}

impl Verb {
    /// The method the client sends.
    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
            Verb::Delete => Method::DELETE,
            Verb::Patch => Method::PATCH,
        }
    }

    /// The method the router accepts.
    pub fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Delete => MethodFilter::DELETE,
            Verb::Patch => MethodFilter::PATCH,
        }
    }
}

/// One endpoint of the API: a request type and what answers it.
pub trait Endpoint: Serialize {
    /// Its method. A [`Verb::Post`] or [`Verb::Patch`] request is sent as
    /// the JSON body (fields that go in the path are skipped there).
    const VERB: Verb;
    /// Its route as the router declares it (`{name}` for a path parameter).
    const ROUTE: &'static str;
    /// The status of a success. `204 No Content` answers have no body.
    const SUCCESS: StatusCode = StatusCode::OK;
    /// The JSON body of a success.
    type Response: Serialize + DeserializeOwned;

    /// The path that asks for this, parameters and query filled in.
    fn path(&self) -> String {
        Self::ROUTE.to_owned()
    }
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's stable code and its message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `invalid_request`, `not_own_order`, ...
    pub code: String,
    /// For people; names the offending field of a refused request.
    pub message: String,
}

#[cfg(test)]
mod tests;
