//! The admin HTTP server: `/metrics` (Prometheus / OpenMetrics text),
//! `/health` (JSON) and the status page (`/status`, `/status.json`), on its
//! own address (loopback by default; no authentication).

mod status;

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
    /// Ceilings the metrics do not carry, for the status page.
    pub(crate) status_limits: StatusLimits,
}

/// `signaling.max_peers` and `ws_circuit.max_circuits`, shown by the status
/// page next to the peers and circuits open.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StatusLimits {
    pub(crate) signaling_peers_max: usize,
    pub(crate) ws_circuits_max: usize,
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

async fn status_json(AxumState(state): AxumState<Arc<AdminState>>) -> impl IntoResponse {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CACHE_CONTROL, "no-store")],
            e.to_string(),
        )
            .into_response();
    }
    let limit = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let info = status::Info {
        peer_id: state.peer_id.to_string(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_ms: u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        healthy: state.swarm_alive.load(Ordering::Relaxed),
        signaling_peers_max: limit(state.status_limits.signaling_peers_max),
        ws_circuits_max: limit(state.status_limits.ws_circuits_max),
    };
    let snapshot = status::Snapshot::build(&status::parse_samples(&text), info);
    ([(header::CACHE_CONTROL, "no-store")], Json(snapshot)).into_response()
}

/// One of the page's files, with the page's content security policy.
fn page_file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, status::CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

pub(crate) fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/status.json", get(status_json))
        .route(
            "/status",
            get(|| async { page_file("text/html; charset=utf-8", status::HTML) }),
        )
        .route(
            "/status.js",
            get(|| async { page_file("text/javascript; charset=utf-8", status::JS) }),
        )
        // Browsers ask for it on every page; an empty answer keeps a 404
        // out of the page's console.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/status.css",
            get(|| async { page_file("text/css; charset=utf-8", status::CSS) }),
        )
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

#[cfg(test)]
mod tests;
