//! The node's Prometheus metrics (seed 001): [`P2PMetrics`], the seed's
//! `p2p_*` series, and [`MetricsRegistry`], the registry they live in with
//! rust-libp2p's own (`libp2p-metrics`: swarm, identify, kad, ping,
//! gossipsub, relay, DCUtR, bandwidth), as OpenMetrics text.
//!
//! OpenMetrics gives every counter a `_total` suffix, so the seed's three
//! counters are exposed as `p2p_connection_attempts_total`,
//! `p2p_connection_successes_total` and `p2p_connection_failures_total`;
//! every other series keeps the seed's name (`docs/operations.md` lists
//! them).

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use libp2p::PeerId;
/// The Prometheus library the registry is made of, at the version in use.
pub use prometheus_client;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Bucket bounds of `p2p_connection_latency_ms`: from a loopback dial to a
/// relayed one across the world, and the seed's 500 ms alert threshold.
const LATENCY_BUCKETS_MS: [f64; 13] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RelayLabels {
    /// The relay's peer id.
    relay: String,
}

/// The node's connections at one moment, as the `p2p_connections_*` and
/// `p2p_relay_connections` gauges report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Every connection: libp2p connections established or being set up,
    /// and pooled WebRTC data channels.
    pub total: usize,
    /// Connections in use: libp2p connections to peers that sent this node
    /// application traffic (orders, sync, trades, authentication) within
    /// the last minute, and WebRTC channels handed out.
    pub active: usize,
    /// Established connections that are not active: kept open, carrying
    /// only keep-alives and discovery.
    pub idle: usize,
    /// Relays this node holds a reservation on.
    pub relay_connections: usize,
}

impl ConnectionStats {
    /// The counts of a node's libp2p connections and relays.
    pub fn new(total: usize, active: usize, idle: usize, relay_connections: usize) -> Self {
        ConnectionStats {
            total,
            active,
            idle,
            relay_connections,
        }
    }

    /// These counts with a connection pool's added (WebRTC channels).
    pub fn with_pool(mut self, total: usize, in_use: usize, idle: usize) -> Self {
        self.total += total;
        self.active += in_use;
        self.idle += idle;
        self
    }
}

/// Seed 001's node metrics. Cheap to clone: every clone records into the
/// same series. The swarm task records dials as they happen; the gauges are
/// set when the metrics are read ([`crate::NetworkHandle::metrics_text`]).
#[derive(Debug, Clone)]
pub struct P2PMetrics {
    connections_total: Gauge,
    connections_active: Gauge,
    connections_idle: Gauge,
    connection_attempts: Counter,
    connection_successes: Counter,
    connection_failures: Counter,
    relay_connections: Gauge,
    connection_latency_ms: Histogram,
    relay_score: Family<RelayLabels, Gauge<f64, AtomicU64>>,
}

impl Default for P2PMetrics {
    fn default() -> Self {
        P2PMetrics {
            connections_total: Gauge::default(),
            connections_active: Gauge::default(),
            connections_idle: Gauge::default(),
            connection_attempts: Counter::default(),
            connection_successes: Counter::default(),
            connection_failures: Counter::default(),
            relay_connections: Gauge::default(),
            connection_latency_ms: Histogram::new(LATENCY_BUCKETS_MS),
            relay_score: Family::default(),
        }
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl P2PMetrics {
    /// New series, all zero, in no registry yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers every series in `registry` under the `p2p_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("p2p");
        r.register(
            "connections_total",
            "Connections the node holds: libp2p connections established or being set up, and pooled WebRTC channels",
            self.connections_total.clone(),
        );
        r.register(
            "connections_active",
            "Connections in use: to peers that sent application traffic in the last minute, and WebRTC channels handed out",
            self.connections_active.clone(),
        );
        r.register(
            "connections_idle",
            "Established connections not in use (keep-alives and discovery only)",
            self.connections_idle.clone(),
        );
        r.register(
            "connection_attempts",
            "Outgoing connection attempts (every dial, relayed ones included)",
            self.connection_attempts.clone(),
        );
        r.register(
            "connection_successes",
            "Outgoing connection attempts that established a connection",
            self.connection_successes.clone(),
        );
        r.register(
            "connection_failures",
            "Outgoing connection attempts that failed",
            self.connection_failures.clone(),
        );
        r.register(
            "relay_connections",
            "Relays the node holds a reservation on",
            self.relay_connections.clone(),
        );
        r.register(
            "connection_latency_ms",
            "Time from dialling to an established connection, in milliseconds",
            self.connection_latency_ms.clone(),
        );
        r.register(
            "relay_score",
            "Each known relay's score in the relay pool, 0 to 100",
            self.relay_score.clone(),
        );
    }

    /// A dial started.
    pub fn record_connection_attempt(&self) {
        self.connection_attempts.inc();
    }

    /// A dial established its connection after `latency`.
    pub fn record_connection_success(&self, latency: Duration) {
        self.connection_successes.inc();
        self.connection_latency_ms
            .observe(latency.as_secs_f64() * 1000.0);
    }

    /// A dial failed.
    pub fn record_connection_failure(&self) {
        self.connection_failures.inc();
    }

    /// Sets the connection and relay gauges.
    pub fn set_connections(&self, stats: ConnectionStats) {
        self.connections_total.set(gauge_value(stats.total));
        self.connections_active.set(gauge_value(stats.active));
        self.connections_idle.set(gauge_value(stats.idle));
        self.relay_connections
            .set(gauge_value(stats.relay_connections));
    }

    /// Sets `p2p_relay_score` to exactly these relays' scores: relays no
    /// longer known lose their series.
    pub fn set_relay_scores(&self, scores: impl IntoIterator<Item = (PeerId, f64)>) {
        self.relay_score.clear();
        for (relay, score) in scores {
            self.relay_score
                .get_or_create(&RelayLabels {
                    relay: relay.to_string(),
                })
                .set(score);
        }
    }

    /// Dials started, established and failed so far.
    pub fn dials(&self) -> (u64, u64, u64) {
        (
            self.connection_attempts.get(),
            self.connection_successes.get(),
            self.connection_failures.get(),
        )
    }
}

/// Why the metrics could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The registry could not be written out as text.
    #[error("metrics could not be encoded: {0}")]
    Encode(String),
    /// The node did not answer (it has shut down, or timed out).
    #[error(transparent)]
    Command(#[from] crate::CommandError),
}

/// One sample of the exposition: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Sample {
    /// The series name as exposed (`p2p_connection_attempts_total`).
    pub name: String,
    /// The labels as written, without braces (`relay="12D3…"`), or empty.
    pub labels: String,
    /// Its value.
    pub value: f64,
}

/// The node's metrics registry: the `p2p_*` series and libp2p's own.
/// Cheap to clone; registration is over once the node is built.
#[derive(Debug, Clone)]
pub struct MetricsRegistry {
    registry: Arc<Registry>,
}

impl MetricsRegistry {
    /// A registry holding what `registry` holds.
    pub fn new(registry: Registry) -> Self {
        MetricsRegistry {
            registry: Arc::new(registry),
        }
    }

    /// Every series as OpenMetrics text, ending in `# EOF`.
    pub fn encode(&self) -> Result<String, MetricsError> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| MetricsError::Encode(e.to_string()))?;
        Ok(text)
    }

    /// Every sample now (histograms as their `_bucket`, `_sum` and `_count`
    /// samples).
    pub fn get_metrics(&self) -> Result<Vec<Sample>, MetricsError> {
        Ok(samples(&self.encode()?))
    }

    /// The value of the sample named `name` without labels (a counter's
    /// name with its `_total`), or the sum over its labels.
    pub fn get_metric(&self, name: &str) -> Result<Option<f64>, MetricsError> {
        let matching: Vec<f64> = self
            .get_metrics()?
            .into_iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .collect();
        Ok((!matching.is_empty()).then(|| matching.iter().sum()))
    }

    /// The registry, for encoders that take one.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// The samples of OpenMetrics text as `prometheus-client` writes it: one
/// per line, `name[{labels}] value[ # exemplar]`, comments skipped.
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|line| {
            let line = line.split(" # ").next().unwrap_or(line);
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            Some(Sample {
                name: name.to_owned(),
                labels: labels.to_owned(),
                value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry_with(m: &P2PMetrics) -> MetricsRegistry {
        let mut r = Registry::default();
        m.register(&mut r);
        MetricsRegistry::new(r)
    }

    #[test]
    fn the_seed_series_are_exposed_under_their_names() {
        let m = P2PMetrics::new();
        let r = registry_with(&m);
        m.record_connection_attempt();
        m.record_connection_attempt();
        m.record_connection_success(Duration::from_millis(40));
        m.record_connection_failure();
        m.set_connections(ConnectionStats::new(5, 2, 3, 1).with_pool(2, 1, 1));
        let relay = PeerId::random();
        m.set_relay_scores([(relay, 72.5)]);

        let text = r.encode().unwrap();
        for line in [
            "# TYPE p2p_connections_total gauge",
            "p2p_connections_total 7",
            "p2p_connections_active 3",
            "p2p_connections_idle 4",
            "# TYPE p2p_connection_attempts counter",
            "p2p_connection_attempts_total 2",
            "p2p_connection_successes_total 1",
            "p2p_connection_failures_total 1",
            "p2p_relay_connections 1",
            "# TYPE p2p_connection_latency_ms histogram",
            "p2p_connection_latency_ms_bucket{le=\"50.0\"} 1",
            "p2p_connection_latency_ms_bucket{le=\"25.0\"} 0",
            "p2p_connection_latency_ms_count 1",
            &format!("p2p_relay_score{{relay=\"{relay}\"}} 72.5"),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        assert_eq!(
            r.get_metric("p2p_connection_attempts_total").unwrap(),
            Some(2.0)
        );
        assert_eq!(r.get_metric("p2p_relay_score").unwrap(), Some(72.5));
        assert_eq!(r.get_metric("p2p_nothing").unwrap(), None);
        assert_eq!(m.dials(), (2, 1, 1));

        // A relay no longer known loses its series.
        m.set_relay_scores([]);
        assert_eq!(r.get_metric("p2p_relay_score").unwrap(), None);
    }

    #[test]
    fn samples_read_labels_values_and_skip_exemplars() {
        let text = "# HELP a x\n# TYPE a counter\na_total 3\nb{x=\"1\",y=\"a b\"} 2.5\nc_bucket{le=\"+Inf\"} 4 # {id=\"x\"} 1\n# EOF\n";
        let s = samples(text);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].name.as_str(), s[0].value), ("a_total", 3.0));
        assert_eq!(s[1].labels, "x=\"1\",y=\"a b\"");
        assert_eq!((s[2].name.as_str(), s[2].value), ("c_bucket", 4.0));
    }
}
