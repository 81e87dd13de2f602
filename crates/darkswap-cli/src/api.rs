//! The daemon's local HTTP API (`/v1/...`), JSON in and out.

use std::{
    convert::Infallible,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    extract::{
        DefaultBodyLimit, FromRequest, Path, Query, Request, State, rejection::JsonRejection,
    },
    http::StatusCode,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{delete, get, post},
};
use darkswap_p2p::{BannedPeer, CommandError, Error as NetError, OrderbookCommandError, PeerId};
use darkswap_proto::{Asset, NewOrder, Order, OrderId, Side};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::daemon::Shared;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// An API error: `{"error": {"code", "message"}}` with an HTTP status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response()
    }
}

impl From<NetError> for ApiError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::InvalidAddress { .. } | NetError::MissingPeerId(_) => {
                Self::bad_request(e.to_string())
            }
            NetError::Dial { .. } => {
                Self::new(StatusCode::BAD_GATEWAY, "dial_failed", e.to_string())
            }
            NetError::Command(e) => e.into(),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Timeout(_) => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout", e.to_string())
            }
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        }
    }
}

impl From<OrderbookCommandError> for ApiError {
    fn from(e: OrderbookCommandError) -> Self {
        match e {
            OrderbookCommandError::NotOwnOrder(_) => {
                Self::new(StatusCode::FORBIDDEN, "not_own_order", e.to_string())
            }
            OrderbookCommandError::Refused(_) => Self::bad_request(e.to_string()),
            OrderbookCommandError::Command(e) => e.into(),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        }
    }
}

/// `Json<T>` whose rejections are our 400s (413 for an oversized body),
/// with serde's message, which names the offending field.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("body over {MAX_BODY} bytes"),
                ))
            }
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// An order as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct OrderJson {
    /// Hex order id.
    pub id: String,
    /// Maker peer id.
    pub maker: String,
    /// `buy` or `sell`.
    pub side: String,
    /// Base asset.
    pub base: String,
    /// Quote asset.
    pub quote: String,
    /// Base amount, smallest unit.
    pub amount: u64,
    /// Quote units per 10^8 base units.
    pub price: u64,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
}

impl From<&Order> for OrderJson {
    fn from(o: &Order) -> Self {
        OrderJson {
            id: o.id.to_string(),
            maker: o.maker.to_string(),
            side: o.side.to_string(),
            base: o.base.to_string(),
            quote: o.quote.to_string(),
            amount: o.amount,
            price: o.price,
            created_at: o.created_at,
            expires_at: o.expires_at,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOrder {
    side: String,
    base: String,
    quote: String,
    amount: u64,
    price: u64,
    /// Seconds until expiry.
    expires_in: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Connect {
    addr: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ban {
    peer_id: String,
    /// Seconds; absent for a ban until lifted.
    duration_secs: Option<u64>,
}

/// Unix seconds of `t`, rounded up (a ban shown never ends earlier than
/// it does).
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn ban_json(b: &BannedPeer) -> Value {
    json!({
        "peer_id": b.peer_id.to_string(),
        "until": b.until.map(unix_secs),
        "reason": b.reason.as_str(),
        "bans": b.bans,
    })
}

fn parse_peer(value: &str) -> Result<PeerId, ApiError> {
    value
        .parse()
        .map_err(|e| ApiError::bad_request(format!("peer_id: {e}")))
}

async fn bans(State(s): State<Arc<Shared>>) -> Result<Json<Value>, ApiError> {
    let bans = s.network.reputation().banned().await?;
    Ok(Json(Value::Array(bans.iter().map(ban_json).collect())))
}

async fn ban(
    State(s): State<Arc<Shared>>,
    ApiJson(b): ApiJson<Ban>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let peer = parse_peer(&b.peer_id)?;
    if peer == s.network.local_peer_id() {
        return Err(ApiError::bad_request("peer_id: this node's own id"));
    }
    if b.duration_secs == Some(0) {
        return Err(ApiError::bad_request(
            "duration_secs: must be greater than zero",
        ));
    }
    let ban = s
        .network
        .reputation()
        .ban(peer, b.duration_secs.map(Duration::from_secs))
        .await?;
    Ok((StatusCode::CREATED, Json(ban_json(&ban))))
}

async fn unban(
    State(s): State<Arc<Shared>>,
    Path(peer): Path<String>,
) -> Result<StatusCode, ApiError> {
    let peer = parse_peer(&peer)?;
    if s.network.reputation().unban(peer).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_banned",
            format!("{peer} is not banned"),
        ))
    }
}

#[derive(Debug, Deserialize)]
struct Pair {
    base: String,
    quote: String,
}

fn parse_asset(field: &str, value: &str) -> Result<Asset, ApiError> {
    value
        .parse()
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

async fn status(State(s): State<Arc<Shared>>) -> Result<Json<Value>, ApiError> {
    let net = &s.network;
    let relays: Vec<Value> = net
        .relay_status()
        .await?
        .into_iter()
        .map(|r| json!({ "peer_id": r.relay_peer_id.to_string(), "circuit_addr": r.circuit_addr.to_string(), "reserved": r.reserved }))
        .collect();
    let listen: Vec<String> = net
        .listen_addrs()
        .await?
        .iter()
        .map(|a| a.to_string())
        .collect();
    Ok(Json(json!({
        "peer_id": net.local_peer_id().to_string(),
        "listen_addrs": listen,
        "nat_status": s.nat_status(),
        "relays": relays,
        "peers": net.connected_peers().await?.len(),
        "own_orders": net.orderbook().own_orders().await?.len(),
        "rejected_messages": s.metrics.rejected_total(),
        "banned_peers": net.reputation().banned().await?.iter().map(ban_json).collect::<Vec<_>>(),
    })))
}

async fn peers(State(s): State<Arc<Shared>>) -> Result<Json<Value>, ApiError> {
    let peers: Vec<Value> = s
        .network
        .peers()
        .await?
        .into_iter()
        .map(|p| {
            json!({
                "peer_id": p.peer_id.to_string(),
                "address": p.address.to_string(),
                "path": if p.relayed { "relayed" } else { "direct" },
                "latency_ms": p.rtt.map(|d| d.as_millis() as u64),
            })
        })
        .collect();
    Ok(Json(Value::Array(peers)))
}

async fn connect(
    State(s): State<Arc<Shared>>,
    ApiJson(c): ApiJson<Connect>,
) -> Result<Json<Value>, ApiError> {
    let peer = s.network.dial(c.addr.as_str()).await?;
    Ok(Json(json!({ "peer_id": peer.to_string() })))
}

async fn create_order(
    State(s): State<Arc<Shared>>,
    ApiJson(c): ApiJson<CreateOrder>,
) -> Result<(StatusCode, Json<OrderJson>), ApiError> {
    let side: Side = c
        .side
        .parse()
        .map_err(|_| ApiError::bad_request("side: expected \"buy\" or \"sell\""))?;
    if c.expires_in == 0 {
        return Err(ApiError::bad_request(
            "expires_in: must be greater than zero",
        ));
    }
    let now = crate::daemon::unix_now();
    let new = NewOrder {
        side,
        base: parse_asset("base", &c.base)?,
        quote: parse_asset("quote", &c.quote)?,
        amount: c.amount,
        price: c.price,
        created_at: now,
        expires_at: now.saturating_add(c.expires_in),
        nonce: s.next_nonce(),
    };
    let (order, signed) = s.network.orderbook().create(new).await?;
    s.store(|st| st.put(&signed))?;
    Ok((StatusCode::CREATED, Json(OrderJson::from(&order))))
}

async fn cancel_order(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: OrderId = id
        .parse()
        .map_err(|_| ApiError::bad_request("id: expected 64 hex characters"))?;
    s.network.orderbook().cancel(id).await?;
    s.store(|st| st.remove(&id))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn own_orders(State(s): State<Arc<Shared>>) -> Result<Json<Vec<OrderJson>>, ApiError> {
    let mut orders: Vec<OrderJson> = s
        .network
        .orderbook()
        .own_orders()
        .await?
        .iter()
        .map(|(o, _)| o.into())
        .collect();
    orders.sort_by_key(|o| o.created_at);
    Ok(Json(orders))
}

async fn orderbook(
    State(s): State<Arc<Shared>>,
    query: Result<Query<Pair>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(pair) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let book = s
        .network
        .orderbook()
        .book(
            parse_asset("base", &pair.base)?,
            parse_asset("quote", &pair.quote)?,
        )
        .await?;
    let side = |v: &[Order]| v.iter().map(OrderJson::from).collect::<Vec<_>>();
    Ok(Json(
        json!({ "base": pair.base, "quote": pair.quote, "bids": side(&book.bids), "asks": side(&book.asks) }),
    ))
}

async fn events(
    State(s): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribe first, then take the snapshot: nothing falls in between.
    let rx = s.events.subscribe();
    let relays: Vec<Value> = s
        .network
        .relay_status()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| json!({ "peer_id": r.relay_peer_id.to_string(), "reserved": r.reserved }))
        .collect();
    let hello = json!({ "type": "hello", "peer_id": s.network.local_peer_id().to_string(), "relays": relays });
    let first = futures::stream::once(async move { Ok(Event::default().data(hello.to_string())) });
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(v) => return Some((Ok(Event::default().data(v.to_string())), rx)),
                // A slow reader skips what it missed rather than stalling the daemon.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(first.chain(rest)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn metrics(State(s): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let m = &s.metrics;
    m.peers.set(s.network.connected_peers().await?.len() as i64);
    m.own_orders
        .set(s.network.orderbook().own_orders().await?.len() as i64);
    m.banned
        .set(s.network.reputation().banned().await?.len() as i64);
    let body = m.encode().map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// The API router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers))
        .route("/v1/connect", post(connect))
        .route("/v1/orders", post(create_order).get(own_orders))
        .route("/v1/orders/{id}", delete(cancel_order))
        .route("/v1/orderbook", get(orderbook))
        .route("/v1/bans", get(bans).post(ban))
        .route("/v1/bans/{peer}", delete(unban))
        .route("/v1/events", get(events))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}
