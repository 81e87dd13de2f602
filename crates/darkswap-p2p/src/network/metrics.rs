//! The node's metrics on the handle: seed 001's `p2p_*` series and
//! libp2p's own, as values or as OpenMetrics text for a scrape.

use super::NetworkHandle;
use crate::{
    command::SwarmCommand,
    error::CommandError,
    metrics::{ConnectionStats, MetricsError, MetricsRegistry},
};

impl NetworkHandle {
    /// The node's connections now (libp2p connections, and the pooled
    /// WebRTC channels of its signaling relays), and the `p2p_*` gauges set
    /// to them.
    pub async fn connection_stats(&self) -> Result<ConnectionStats, CommandError> {
        let stats = self
            .ask(|reply| SwarmCommand::ConnectionStats { reply })
            .await?;
        #[cfg(not(target_arch = "wasm32"))]
        let stats = match self.webrtc.as_ref().and_then(std::sync::Weak::upgrade) {
            Some(channels) => {
                let pool = channels.pool_stats();
                stats.with_pool(
                    pool.total_connections,
                    pool.in_use_connections,
                    pool.idle_connections,
                )
            }
            None => stats,
        };
        self.p2p_metrics.set_connections(stats);
        Ok(stats)
    }

    /// Every metric of the node as OpenMetrics text (`# EOF` last), its
    /// gauges brought up to date first: what a `/metrics` endpoint serves.
    pub async fn metrics_text(&self) -> Result<String, MetricsError> {
        self.connection_stats().await?;
        self.metrics.encode()
    }

    /// The node's registry (the gauges as last set; see
    /// [`metrics_text`](Self::metrics_text)).
    pub fn metrics_registry(&self) -> &MetricsRegistry {
        &self.metrics
    }
}
