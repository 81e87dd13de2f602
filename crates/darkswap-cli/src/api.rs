//! The daemon's local HTTP API (`/v1/...`), JSON in and out; the types on
//! the wire are [`crate::v1`]'s. Handlers read the node through its handle
//! and ask the state owner ([`crate::state`]) for every change; none of
//! them touches the database.

mod bans;
mod error;
mod events;
mod json;
mod linger;
mod node;
mod orders;
mod trades;
mod webrtc;

use std::sync::Arc;

use axum::{Router, extract::DefaultBodyLimit, handler::Handler, routing::get};
use darkswap_p2p::NetworkHandle;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    metrics::DaemonMetrics,
    state,
    trading::WalletService,
    v1::{self, Endpoint},
};

pub use error::ApiError;
pub use json::MAX_BODY;
pub(crate) use linger::LingeringListener;

/// What the handlers share.
#[derive(Debug)]
pub struct Api {
    /// Reads of the node (status, peers, book).
    pub network: NetworkHandle,
    /// Every change goes through the state owner.
    pub state: state::Handle,
    /// Events for `/v1/events`.
    pub events: broadcast::Sender<v1::Event>,
    /// `unknown`, `private` or `public <address>`.
    pub nat: watch::Receiver<String>,
    /// Counters and gauges for `/metrics`.
    pub metrics: Arc<DaemonMetrics>,
    /// The trading wallet, when the daemon trades.
    pub wallet: Option<WalletService>,
    /// Cancelled when the daemon stops: event streams end then, so the
    /// server's graceful shutdown does not wait for their clients.
    pub stop: CancellationToken,
}

type ApiState = Arc<Api>;

/// Routes `E` to `handler`, with `E`'s method: the route and the method
/// come from the same [`Endpoint`] the client sends.
fn endpoint<E: Endpoint, H: Handler<T, ApiState>, T: 'static>(
    router: Router<ApiState>,
    handler: H,
) -> Router<ApiState> {
    router.route(E::ROUTE, axum::routing::on(E::VERB.filter(), handler))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// The API router.
pub fn router(api: Arc<Api>) -> Router {
    let router = Router::new();
    let router = endpoint::<v1::GetStatus, _, _>(router, node::status);
    let router = endpoint::<v1::ListPeers, _, _>(router, node::peers);
    let router = endpoint::<v1::Connect, _, _>(router, node::connect);
    let router = endpoint::<v1::CreateOrder, _, _>(router, orders::create);
    let router = endpoint::<v1::ListOwnOrders, _, _>(router, orders::list_own);
    let router = endpoint::<v1::CancelOrder, _, _>(router, orders::cancel);
    let router = endpoint::<v1::UpdateOrder, _, _>(router, orders::update);
    let router = endpoint::<v1::GetOrderbook, _, _>(router, orders::book);
    let router = endpoint::<v1::ListBans, _, _>(router, bans::list);
    let router = endpoint::<v1::BanPeer, _, _>(router, bans::ban);
    let router = endpoint::<v1::UnbanPeer, _, _>(router, bans::unban);
    let router = endpoint::<v1::TakeOrder, _, _>(router, trades::take);
    let router = endpoint::<v1::ListTrades, _, _>(router, trades::list);
    let router = endpoint::<v1::GetTrade, _, _>(router, trades::get);
    let router = endpoint::<v1::CancelTrade, _, _>(router, trades::cancel);
    let router = endpoint::<v1::GetWallet, _, _>(router, trades::wallet);
    let router = endpoint::<v1::SyncWallet, _, _>(router, trades::sync_wallet);
    let router = endpoint::<v1::GetWebRtc, _, _>(router, webrtc::status);
    let router = endpoint::<v1::OpenWebRtcChannel, _, _>(router, webrtc::open);
    let router = endpoint::<v1::CloseWebRtcChannel, _, _>(router, webrtc::close);
    let router = endpoint::<v1::SendWebRtcMessage, _, _>(router, webrtc::send);
    let router = endpoint::<v1::ReceiveWebRtcMessage, _, _>(router, webrtc::receive);
    router
        .route(v1::EVENTS_ROUTE, get(events::stream))
        .route(v1::METRICS_ROUTE, get(node::metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}
