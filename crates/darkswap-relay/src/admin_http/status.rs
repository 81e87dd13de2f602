//! The status page: `/status` (HTML, with `/status.js` and `/status.css`)
//! and `/status.json`, a snapshot of the relay's own metrics.
//!
//! The snapshot is read from the registry's OpenMetrics text, the very bytes
//! `/metrics` serves: the page and Prometheus cannot disagree, and no counter
//! is kept twice. [`parse_samples`] and [`Snapshot::build`] are pure functions
//! (text and clock in, snapshot out), tested without a server.
//!
//! Bandwidth is not computed here: the snapshot carries the byte counters and
//! the uptime in milliseconds, and the page divides the difference of two
//! successive snapshots by the time between them.

use std::collections::BTreeMap;

use serde::Serialize;

/// The page; its script and style are separate files because the page is
/// served with `Content-Security-Policy: default-src 'self'`, which forbids
/// inline ones.
pub(super) const HTML: &str = include_str!("status/status.html");
pub(super) const JS: &str = include_str!("status/status.js");
pub(super) const CSS: &str = include_str!("status/status.css");
/// Nothing but the relay's own files, so the page works on a host with no
/// way out and cannot be made to load anything else.
pub(super) const CSP: &str = "default-src 'self'";

/// One sample of the OpenMetrics text: name (with its `_total` suffix),
/// labels, value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) value: f64,
}

/// The samples of an OpenMetrics text. Comment lines and lines that do not
/// parse are skipped: the text is our own encoder's, so a skipped line means a
/// format this reader does not know, not an attack, and the page shows the rest.
pub(crate) fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = parse_labels(after)?;
        labels = parsed;
        rest = tail;
    }
    // The value is the first field after the name; an exemplar or a
    // timestamp may follow it.
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `a="x",b="y\"z"}` → the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        if let Some(tail) = s.strip_prefix('}') {
            return Some((labels, tail));
        }
        s = s.strip_prefix(',').unwrap_or(s);
        let eq = s.find('=')?;
        let key = s[..eq].to_owned();
        s = s[eq + 1..].strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key, value));
        s = &s[end + 1..];
    }
}

/// What the snapshot needs besides the metrics.
#[derive(Debug, Clone)]
pub(crate) struct Info {
    pub(crate) peer_id: String,
    pub(crate) version: &'static str,
    pub(crate) uptime_ms: u64,
    pub(crate) healthy: bool,
    /// `signaling.max_peers`.
    pub(crate) signaling_peers_max: u64,
    /// `ws_circuit.max_circuits`.
    pub(crate) ws_circuits_max: u64,
}

/// Body of `/status.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Snapshot {
    pub(crate) version: &'static str,
    pub(crate) peer_id: String,
    /// `ok`, or `unhealthy` once the swarm task has ended (as `/health`).
    pub(crate) status: &'static str,
    /// Milliseconds since the relay started: the clock the page computes
    /// rates with (the relay's, not the browser's, so a slow poll does not
    /// show as a burst).
    pub(crate) uptime_ms: u64,
    pub(crate) peers: Peers,
    pub(crate) reservations: Gauge,
    pub(crate) circuits: Circuits,
    pub(crate) bytes: Bytes,
    pub(crate) refusals: Vec<Refusal>,
}

/// A value now and its ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Gauge {
    pub(crate) active: u64,
    pub(crate) max: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Peers {
    /// libp2p connections open now, by transport (`tcp`, `quic`,
    /// `websocket`, `relayed`, `other`).
    pub(crate) libp2p_connections: BTreeMap<String, u64>,
    /// Their sum.
    pub(crate) libp2p_connections_total: u64,
    /// Peers registered on the signaling server, and `signaling.max_peers`.
    pub(crate) signaling: Gauge,
    /// TCP connections open on the public port, in any phase.
    pub(crate) public_connections: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Circuits {
    /// Circuit relay v2 circuits.
    pub(crate) libp2p: Gauge,
    /// Relayed WebSocket circuits (`/relay`).
    pub(crate) websocket: Gauge,
}

/// Byte counters since start; the page turns them into bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Bytes {
    pub(crate) libp2p_relayed: u64,
    pub(crate) websocket_forwarded: u64,
    pub(crate) turn_relayed: u64,
}

/// One refusal counter: what was refused, why, how many times since start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Refusal {
    pub(crate) kind: &'static str,
    pub(crate) reason: String,
    pub(crate) count: u64,
}

/// The refusal counters: metric, the kind the page calls it, and the labels
/// that make its reason (joined with `/`).
const REFUSALS: &[(&str, &str, &[&str])] = &[
    (
        "darkswap_relay_reservations_denied_total",
        "reservation",
        &["reason"],
    ),
    (
        "darkswap_relay_circuits_denied_total",
        "circuit",
        &["reason"],
    ),
    (
        "darkswap_relay_ws_circuits_denied_total",
        "ws_circuit",
        &["reason"],
    ),
    (
        "darkswap_relay_rate_limited_total",
        "rate_limited",
        &["plane", "limit"],
    ),
    ("darkswap_relay_auth_rejected_total", "auth", &["reason"]),
    (
        "darkswap_relay_access_denied_total",
        "access_denied",
        &["action"],
    ),
    ("darkswap_relay_turn_refusals_total", "turn", &["reason"]),
    (
        "darkswap_relay_gossip_rejected_total",
        "gossip",
        &["topic", "reason"],
    ),
];

/// Counters and gauges are whole numbers; a negative gauge (a missed
/// increment) shows as 0 rather than wrapping.
fn count(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        value as u64
    } else {
        0
    }
}

impl Snapshot {
    /// The snapshot of `samples` (from [`parse_samples`]). A metric that is
    /// absent (TURN off, no refusal of a kind yet) counts as 0.
    pub(crate) fn build(samples: &[Sample], info: Info) -> Self {
        let get = |name: &str| {
            samples
                .iter()
                .filter(|s| s.name == name)
                .map(|s| count(s.value))
                .sum::<u64>()
        };
        let mut libp2p_connections = BTreeMap::new();
        for s in samples
            .iter()
            .filter(|s| s.name == "darkswap_relay_connections_active")
        {
            if let Some((_, transport)) = s.labels.iter().find(|(k, _)| k == "transport") {
                *libp2p_connections.entry(transport.clone()).or_insert(0) += count(s.value);
            }
        }
        let libp2p_connections_total = libp2p_connections.values().sum();
        let mut refusals = Vec::new();
        for (metric, kind, keys) in REFUSALS {
            for s in samples.iter().filter(|s| s.name == *metric) {
                let reason = keys
                    .iter()
                    .filter_map(|key| s.labels.iter().find(|(k, _)| k == key))
                    .map(|(_, v)| v.as_str())
                    .collect::<Vec<_>>()
                    .join("/");
                refusals.push(Refusal {
                    kind,
                    reason,
                    count: count(s.value),
                });
            }
        }
        // Most frequent first, then by name: a stable order the page keeps
        // from one poll to the next.
        refusals.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (a.kind, &a.reason).cmp(&(b.kind, &b.reason)))
        });
        Snapshot {
            version: info.version,
            peer_id: info.peer_id,
            status: if info.healthy { "ok" } else { "unhealthy" },
            uptime_ms: info.uptime_ms,
            peers: Peers {
                libp2p_connections,
                libp2p_connections_total,
                signaling: Gauge {
                    active: get("darkswap_relay_signaling_peers"),
                    max: info.signaling_peers_max,
                },
                public_connections: get("darkswap_relay_public_connections"),
            },
            reservations: Gauge {
                active: get("darkswap_relay_reservations_active"),
                max: get("darkswap_relay_reservations_max"),
            },
            circuits: Circuits {
                libp2p: Gauge {
                    active: get("darkswap_relay_circuits_active"),
                    max: get("darkswap_relay_circuits_max"),
                },
                websocket: Gauge {
                    active: get("darkswap_relay_ws_circuits_active"),
                    max: info.ws_circuits_max,
                },
            },
            bytes: Bytes {
                libp2p_relayed: get("darkswap_relay_bytes_relayed_total"),
                websocket_forwarded: get("darkswap_relay_ws_bytes_forwarded_total"),
                turn_relayed: get("darkswap_relay_turn_bytes_relayed_total"),
            },
            refusals,
        }
    }
}

#[cfg(test)]
mod tests;
