//! Seed 001's metrics on a real node: dials, their outcomes and latency,
//! active and idle connections, reservations and relay scores, under the
//! names the dashboards and alerts use, with libp2p's own beside them.

use darkswap_p2p::{Identity, Keypair, NetworkEvent, PeerId};
use darkswap_testkit::{
    EVENT_TIMEOUT, TestRelay, gossip_both_ways, spawn_node, test_config, wait_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_counts_dials_connections_and_relays_under_the_seed_names() {
    let relay = TestRelay::spawn().await;
    let (key_a, key_b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (mut a, _) = spawn_node(
        test_config()
            .with_identity(Identity::Keypair(key_a.clone()))
            .with_relay_peers([relay.addr.clone()]),
    )
    .await;
    wait_for(&mut a, "RelayReserved", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::RelayReserved { .. }).then_some(())
    })
    .await;
    let (mut b, b_addr) =
        spawn_node(test_config().with_identity(Identity::Keypair(key_b.clone()))).await;
    let b_id = b.local_peer_id();
    assert_eq!(a.dial(b_addr).await.unwrap(), b_id);
    // Orders both ways: b's connection carries application traffic.
    gossip_both_ways(&mut a, &key_a, &mut b, &key_b).await;
    // Nobody listens there: a failed dial.
    let nowhere = format!("/ip4/127.0.0.1/tcp/1/p2p/{}", PeerId::random());
    a.dial(nowhere.as_str()).await.unwrap_err();

    let stats = a.connection_stats().await.unwrap();
    assert_eq!(stats.relay_connections, 1, "{stats:?}");
    // b's connection is active, the relay's (ping and identify only) idle.
    assert!(stats.active >= 1 && stats.idle >= 1, "{stats:?}");
    assert!(stats.total >= stats.active + stats.idle, "{stats:?}");

    let text = a.metrics_text().await.unwrap();
    let registry = a.metrics_registry();
    let value = |name: &str| registry.get_metric(name).unwrap().unwrap_or(-1.0);
    let attempts = value("p2p_connection_attempts_total");
    let successes = value("p2p_connection_successes_total");
    let failures = value("p2p_connection_failures_total");
    // The relay, b and nowhere at least; every attempt ends one way or the other.
    assert!(
        attempts >= 3.0 && successes >= 2.0 && failures >= 1.0,
        "{text}"
    );
    assert!(successes + failures <= attempts, "{text}");
    assert_eq!(
        value("p2p_connection_latency_ms_count"),
        successes,
        "{text}"
    );
    assert_eq!(value("p2p_relay_connections"), 1.0);
    assert_eq!(value("p2p_connections_active"), stats.active as f64);
    assert_eq!(value("p2p_connections_idle"), stats.idle as f64);
    assert_eq!(value("p2p_connections_total"), stats.total as f64);
    let score = format!("p2p_relay_score{{relay=\"{}\"}} ", relay.peer_id);
    let score: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(score.as_str()))
        .unwrap_or_else(|| panic!("no score for the relay in\n{text}"))
        .parse()
        .unwrap();
    assert!(score > 0.0 && score <= 100.0, "{score}");
    // libp2p's own metrics, fed by the same node.
    for series in [
        "libp2p_swarm_connections_established_total",
        "libp2p_identify_",
        "libp2p_ping_rtt_seconds",
        "libp2p_gossipsub_",
        "libp2p_bandwidth_bytes_total",
    ] {
        assert!(text.contains(series), "{series} missing in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
}
