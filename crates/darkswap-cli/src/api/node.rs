//! `/v1/status`, `/v1/peers`, `/v1/connect` and `/metrics`: reads of the
//! node, and a dial.

use axum::{
    extract::State,
    http::header::CONTENT_TYPE,
    response::{IntoResponse, Response},
};

use super::{
    ApiError, ApiState,
    json::{Answer, ApiJson},
};
use crate::v1::{self, Ban, Connect, Connected, GetStatus, ListPeers, Peer, Relay};

pub(super) async fn status(State(s): State<ApiState>) -> Result<Answer<GetStatus>, ApiError> {
    let net = &s.network;
    // Not held across an await: the borrow would make the future !Send.
    let nat_status = s.nat.borrow().clone();
    Ok(Answer::new(v1::Status {
        peer_id: net.local_peer_id().to_string(),
        listen_addrs: net
            .listen_addrs()
            .await?
            .iter()
            .map(ToString::to_string)
            .collect(),
        nat_status,
        relays: net.relay_status().await?.iter().map(Relay::from).collect(),
        peers: net.connected_peers().await?.len(),
        own_orders: net.orderbook().own_orders().await?.len(),
        rejected_messages: s.metrics.rejected_total(),
        banned_peers: net
            .reputation()
            .banned()
            .await?
            .iter()
            .map(Ban::from)
            .collect(),
    }))
}

pub(super) async fn peers(State(s): State<ApiState>) -> Result<Answer<ListPeers>, ApiError> {
    let peers = s.network.peers().await?;
    Ok(Answer::new(peers.iter().map(Peer::from).collect()))
}

pub(super) async fn connect(
    State(s): State<ApiState>,
    ApiJson(c): ApiJson<Connect>,
) -> Result<Answer<Connect>, ApiError> {
    let peer = s.network.dial(c.addr.as_str()).await?;
    Ok(Answer::new(Connected {
        peer_id: peer.to_string(),
    }))
}

pub(super) async fn metrics(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let m = &s.metrics;
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    m.peers.set(gauge(s.network.connected_peers().await?.len()));
    m.own_orders
        .set(gauge(s.network.orderbook().own_orders().await?.len()));
    m.banned
        .set(gauge(s.network.reputation().banned().await?.len()));
    let own = m.encode().map_err(|e| ApiError::internal(e.to_string()))?;
    // The node's own series follow (`p2p_*`, `libp2p_*`): one exposition,
    // so the daemon's `# EOF` goes and the node's ends it.
    let node = s
        .network
        .metrics_text()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let body = format!("{}{node}", own.strip_suffix("# EOF\n").unwrap_or(&own));
    Ok((
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
