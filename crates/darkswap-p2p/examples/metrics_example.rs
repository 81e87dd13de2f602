//! Seed 001's metrics: `P2PMetrics` on its own (record, read back, print
//! as Prometheus text), then the same series fed by a real node that dials
//! another on 127.0.0.1. Exits non-zero unless what it shows holds.
//!
//! ```text
//! cargo run -p darkswap-p2p --example metrics_example
//! ```

use std::time::Duration;

use anyhow::{Context, ensure};
use darkswap_p2p::{
    Network, NetworkConfig,
    metrics::{
        ConnectionStats, MetricsRegistry, P2PMetrics, prometheus_client::registry::Registry,
    },
};
use libp2p::multiaddr::Protocol;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 1. On their own: what an application with its own pool records.
    let metrics = P2PMetrics::new();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let registry = MetricsRegistry::new(registry);
    metrics.record_connection_attempt();
    metrics.record_connection_success(Duration::from_millis(50));
    metrics.record_connection_attempt();
    metrics.record_connection_failure();
    metrics.set_connections(ConnectionStats::new(3, 2, 1, 1));
    let attempts = registry
        .get_metric("p2p_connection_attempts_total")?
        .context("no p2p_connection_attempts_total")?;
    ensure!(attempts == 2.0, "2 attempts recorded, {attempts} read back");
    println!("-- recorded by hand --");
    print_p2p(&registry.encode()?);

    // 2. Fed by a node: two nodes on loopback, one dials the other.
    let config = || NetworkConfig::default().with_mdns(false).with_kad(false);
    let a = Network::new(config()).await?;
    let b = Network::new(config()).await?;
    let b_addr = b
        .listen_on("/ip4/127.0.0.1/tcp/0")
        .await?
        .with(Protocol::P2p(b.local_peer_id()));
    a.dial(b_addr).await?;
    let stats = a.connection_stats().await?;
    println!("-- node a: {stats:?} --");
    let text = a.metrics_text().await?;
    print_p2p(&text);
    let node = a.metrics_registry();
    ensure!(node.get_metric("p2p_connection_successes_total")? == Some(1.0));
    ensure!(stats.total >= 1, "a holds its connection to b");
    ensure!(
        text.contains("libp2p_swarm_connections_established_total"),
        "libp2p's own metrics are there too"
    );
    a.shutdown().await?;
    b.shutdown().await?;
    Ok(())
}

/// The `p2p_*` samples of `text`.
fn print_p2p(text: &str) {
    for line in text.lines().filter(|l| l.starts_with("p2p_")) {
        println!("{line}");
    }
}
