//! A DarkSwap node with a Prometheus endpoint: `GET /metrics` serves its
//! `p2p_*` series and libp2p's own as OpenMetrics text (axum), ready for a
//! `scrape_configs` entry (`deploy/prometheus.yml`).
//!
//! ```text
//! cargo run -p darkswap-p2p --example metrics_server -- --metrics 127.0.0.1:9100 \
//!     --listen /ip4/0.0.0.0/tcp/4001 --relay /ip4/203.0.113.7/tcp/9000/p2p/12D3Koo...
//! curl http://127.0.0.1:9100/metrics
//! ```
//!
//! With `--self-check` it serves on the address given (port 0 picks one),
//! scrapes itself once as Prometheus would, checks the answer and exits:
//! non-zero unless the endpoint serves the seed's series.

use std::net::SocketAddr;

use anyhow::{Context, ensure};
use axum::{
    Router,
    extract::State,
    http::{StatusCode, header::CONTENT_TYPE},
    response::IntoResponse,
    routing::get,
};
use clap::Parser;
use darkswap_p2p::{Multiaddr, Network, NetworkConfig, NetworkHandle};

/// What Prometheus asks for and gets.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Parser)]
struct Args {
    /// Address of the metrics endpoint.
    #[arg(long, default_value = "127.0.0.1:9100")]
    metrics: SocketAddr,
    /// libp2p listen address (repeatable).
    #[arg(long)]
    listen: Vec<Multiaddr>,
    /// Relay to hold a reservation on (repeatable).
    #[arg(long)]
    relay: Vec<Multiaddr>,
    /// Peer to dial at start (repeatable).
    #[arg(long)]
    dial: Vec<Multiaddr>,
    /// Scrape the endpoint once, check it and exit.
    #[arg(long)]
    self_check: bool,
}

async fn metrics(State(network): State<NetworkHandle>) -> impl IntoResponse {
    match network.metrics_text().await {
        Ok(text) => (StatusCode::OK, [(CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let network = Network::new(
        NetworkConfig::default()
            .with_mdns(false)
            .with_listen_addresses(args.listen)
            .with_relay_peers(args.relay),
    )
    .await?;
    for peer in args.dial {
        network.dial(peer).await?;
    }
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(network.handle());
    let listener = tokio::net::TcpListener::bind(args.metrics)
        .await
        .with_context(|| format!("cannot serve metrics on {}", args.metrics))?;
    let addr = listener.local_addr()?;
    println!("metrics on http://{addr}/metrics");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    if args.self_check {
        let result = self_check(addr).await;
        server.abort();
        network.shutdown().await?;
        return result;
    }
    tokio::signal::ctrl_c().await?;
    network.shutdown().await?;
    Ok(())
}

/// One scrape, as Prometheus makes it.
async fn self_check(addr: SocketAddr) -> anyhow::Result<()> {
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .header("accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await?;
    ensure!(resp.status() == StatusCode::OK, "status {}", resp.status());
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ensure!(content_type == OPENMETRICS, "content type {content_type}");
    let text = resp.text().await?;
    for series in [
        "# TYPE p2p_connections_total gauge",
        "# TYPE p2p_connection_attempts counter",
        "# TYPE p2p_connection_latency_ms histogram",
        "p2p_relay_connections 0",
        "libp2p_swarm_",
    ] {
        ensure!(text.contains(series), "{series} missing");
    }
    ensure!(text.ends_with("# EOF\n"), "no # EOF");
    println!("self-check: {} lines of OpenMetrics", text.lines().count());
    Ok(())
}
