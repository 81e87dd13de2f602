//! The admin HTTP server: `/metrics` (Prometheus / OpenMetrics text) and
//! `/health` (JSON), on its own address (loopback by default).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use axum::{
    Json, Router,
    extract::State as AxumState,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use libp2p::PeerId;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::metrics::Libp2pNodeMetrics;

/// What the admin server reads, shared with the swarm task.
#[derive(Debug)]
pub(crate) struct AdminState {
    pub(crate) peer_id: PeerId,
    pub(crate) started: Instant,
    pub(crate) registry: Registry,
    pub(crate) node_metrics: Arc<Libp2pNodeMetrics>,
    /// Cleared when the swarm task ends: `/health` then says `unhealthy`.
    pub(crate) swarm_alive: AtomicBool,
}

/// Body of `/health`.
#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    peer_id: String,
    uptime_seconds: u64,
    reservations: i64,
    circuits: i64,
    connections: i64,
}

async fn metrics(AxumState(state): AxumState<Arc<AdminState>>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

async fn health(AxumState(state): AxumState<Arc<AdminState>>) -> impl IntoResponse {
    let alive = state.swarm_alive.load(Ordering::Relaxed);
    let m = &state.node_metrics;
    let body = Health {
        status: if alive { "ok" } else { "unhealthy" },
        peer_id: state.peer_id.to_string(),
        uptime_seconds: state.started.elapsed().as_secs(),
        reservations: m.reservations_now(),
        circuits: m.circuits_now(),
        connections: m.connections_now(),
    };
    let code = if alive {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

pub(crate) fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(state)
}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
    cancel: CancellationToken,
) {
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "metrics server failed");
    }
}
