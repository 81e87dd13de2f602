use super::*;
use crate::metrics::{Libp2pNodeMetrics, SecurityMetrics, SignalingMetrics};
use prometheus_client::{encoding::text::encode, registry::Registry};

fn info() -> Info {
    Info {
        peer_id: "12D3KooWtest".to_owned(),
        version: "0.0.0-test",
        uptime_ms: 61_500,
        healthy: true,
        signaling_peers_max: 500,
        ws_circuits_max: 64,
    }
}

fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        name: name.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        value,
    }
}

#[test]
fn openmetrics_lines_become_samples_with_escaped_labels() {
    let text = "# HELP x help\n# TYPE x counter\n\
        darkswap_relay_circuits_active 3\n\
        darkswap_relay_gossip_rejected_total{topic=\"a\\\"b,c\",reason=\"undecodable\"} 7 # {} 1\n\
        not a sample\n\
        # EOF\n";
    assert_eq!(
        parse_samples(text),
        vec![
            sample("darkswap_relay_circuits_active", &[], 3.0),
            sample(
                "darkswap_relay_gossip_rejected_total",
                &[("topic", "a\"b,c"), ("reason", "undecodable")],
                7.0
            ),
        ]
    );
}

#[test]
fn truncated_or_malformed_lines_are_skipped_not_a_panic() {
    for line in [
        "x{",
        "x{a",
        "x{a=\"b",
        "x{a=\"b\\",
        "x{a=b} 1",
        "x 1e",
        "x{a=\"é\"} 2",
        "{",
        " ",
    ] {
        let parsed = parse_samples(line);
        assert!(parsed.len() <= 1, "{line}: {parsed:?}");
    }
    assert_eq!(parse_samples("x{a=\"é\"} 2")[0].labels[0].1, "é");
}

#[test]
fn the_snapshot_sums_transports_and_lists_refusals_most_frequent_first() {
    let samples = [
        sample(
            "darkswap_relay_connections_active",
            &[("transport", "tcp")],
            2.0,
        ),
        sample(
            "darkswap_relay_connections_active",
            &[("transport", "websocket")],
            1.0,
        ),
        sample("darkswap_relay_signaling_peers", &[], 4.0),
        sample("darkswap_relay_public_connections", &[], 6.0),
        sample("darkswap_relay_reservations_active", &[], 1.0),
        sample("darkswap_relay_reservations_max", &[], 128.0),
        sample("darkswap_relay_circuits_active", &[], -1.0),
        sample("darkswap_relay_circuits_max", &[], 16.0),
        sample("darkswap_relay_ws_circuits_active", &[], 2.0),
        sample("darkswap_relay_bytes_relayed_total", &[], 1000.0),
        sample("darkswap_relay_ws_bytes_forwarded_total", &[], 2048.0),
        sample(
            "darkswap_relay_circuits_denied_total",
            &[("reason", "NoReservation")],
            0.0,
        ),
        sample(
            "darkswap_relay_rate_limited_total",
            &[("plane", "ws"), ("limit", "messages")],
            5.0,
        ),
        sample(
            "darkswap_relay_ws_circuits_denied_total",
            &[("reason", "peer_offline")],
            2.0,
        ),
    ];
    let snapshot = Snapshot::build(&samples, info());
    assert_eq!(snapshot.status, "ok");
    assert_eq!(snapshot.uptime_ms, 61_500);
    assert_eq!(
        snapshot.peers.libp2p_connections,
        BTreeMap::from([("tcp".to_owned(), 2), ("websocket".to_owned(), 1)])
    );
    assert_eq!(snapshot.peers.libp2p_connections_total, 3);
    assert_eq!(
        snapshot.peers.signaling,
        Gauge {
            active: 4,
            max: 500
        }
    );
    assert_eq!(snapshot.peers.public_connections, 6);
    assert_eq!(
        snapshot.reservations,
        Gauge {
            active: 1,
            max: 128
        }
    );
    // A gauge below zero (a close without its open) reads 0.
    assert_eq!(snapshot.circuits.libp2p, Gauge { active: 0, max: 16 });
    assert_eq!(snapshot.circuits.websocket, Gauge { active: 2, max: 64 });
    assert_eq!(
        snapshot.bytes,
        Bytes {
            libp2p_relayed: 1000,
            websocket_forwarded: 2048,
            turn_relayed: 0
        }
    );
    let refusals: Vec<_> = snapshot
        .refusals
        .iter()
        .map(|r| (r.kind, r.reason.as_str(), r.count))
        .collect();
    assert_eq!(
        refusals,
        vec![
            ("rate_limited", "ws/messages", 5),
            ("ws_circuit", "peer_offline", 2),
            ("circuit", "NoReservation", 0),
        ]
    );
}

#[test]
fn the_snapshot_reads_the_counters_metrics_serves() {
    let mut registry = Registry::default();
    let node = Libp2pNodeMetrics::register(&mut registry);
    let signaling = SignalingMetrics::register(&mut registry);
    let security = SecurityMetrics::register(&mut registry);
    node.set_limits(128, 16);
    node.set_reservations_held(3);
    node.bytes_relayed_counter().inc_by(4096);
    signaling.peers.set(2);
    signaling.circuits_active.set(1);
    signaling.bytes_forwarded.inc_by(300);
    signaling.circuit_denied("peer_offline");
    security.limited("http", "requests");
    let mut text = String::new();
    encode(&mut text, &registry).expect("encodes");

    let snapshot = Snapshot::build(
        &parse_samples(&text),
        Info {
            healthy: false,
            ..info()
        },
    );
    assert_eq!(snapshot.status, "unhealthy");
    assert_eq!(
        snapshot.reservations,
        Gauge {
            active: 3,
            max: 128
        }
    );
    assert_eq!(snapshot.circuits.libp2p, Gauge { active: 0, max: 16 });
    assert_eq!(snapshot.circuits.websocket.active, 1);
    assert_eq!(snapshot.peers.signaling.active, 2);
    assert_eq!(snapshot.bytes.libp2p_relayed, 4096);
    assert_eq!(snapshot.bytes.websocket_forwarded, 300);
    let find = |kind: &str, reason: &str| {
        snapshot
            .refusals
            .iter()
            .find(|r| r.kind == kind && r.reason == reason)
            .map(|r| r.count)
    };
    assert_eq!(find("ws_circuit", "peer_offline"), Some(1));
    assert_eq!(find("rate_limited", "http/requests"), Some(1));
    // set_limits starts these at 0 so they show before the first refusal.
    assert_eq!(find("reservation", "ResourceLimitExceeded"), Some(0));
    assert_eq!(find("circuit", "NoReservation"), Some(0));

    let json = serde_json::to_value(&snapshot).expect("serializes");
    assert_eq!(json["circuits"]["websocket"]["max"], 64);
    assert_eq!(json["peers"]["signaling"]["active"], 2);
    assert_eq!(json["bytes"]["libp2p_relayed"], 4096);
    assert_eq!(json["refusals"][0]["count"], 1);
}
