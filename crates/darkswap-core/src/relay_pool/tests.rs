use super::*;

fn addr(n: u16) -> Multiaddr {
    format!("/ip4/192.0.2.{}/tcp/4001", n % 250 + 1)
        .parse()
        .unwrap()
}

fn drain(pool: &mut RelayConnectionPool) -> Vec<RelayPoolOutput> {
    std::iter::from_fn(|| pool.poll_output()).collect()
}

fn reserves(outputs: &[RelayPoolOutput]) -> Vec<PeerId> {
    outputs
        .iter()
        .filter_map(|o| match o {
            RelayPoolOutput::Reserve { relay, .. } => Some(*relay),
            _ => None,
        })
        .collect()
}

fn releases(outputs: &[RelayPoolOutput]) -> Vec<PeerId> {
    outputs
        .iter()
        .filter_map(|o| match o {
            RelayPoolOutput::Release { relay } => Some(*relay),
            _ => None,
        })
        .collect()
}

fn events(outputs: &[RelayPoolOutput]) -> Vec<RelayPoolEvent> {
    outputs
        .iter()
        .filter_map(|o| match o {
            RelayPoolOutput::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// A pool with DHT discovery off (no look-ups to drain) and `relays`
/// discovered by identify, each measured at its round-trip time, best
/// (fastest) first in the returned order.
fn pool_with(
    config: RelayConnectionPoolConfig,
    rtts_ms: &[u64],
) -> (RelayConnectionPool, Vec<PeerId>, Instant) {
    let t0 = Instant::now();
    let mut pool = RelayConnectionPool::new(
        RelayConnectionPoolConfig {
            discovery: RelayDiscoveryConfig {
                enable_dht_discovery: false,
                ..config.discovery.clone()
            },
            ..config
        },
        t0,
    );
    let mut relays = Vec::new();
    for (n, rtt) in rtts_ms.iter().enumerate() {
        let relay = PeerId::random();
        pool.discovery
            .handle_discovered(relay, vec![addr(n as u16)], RelaySource::Identify, t0);
        pool.handle_rtt(&relay, Duration::from_millis(*rtt), t0);
        relays.push(relay);
    }
    drain(&mut pool);
    (pool, relays, t0)
}

#[test]
fn a_private_node_reserves_on_the_best_relays_up_to_the_maximum() {
    let (mut pool, relays, t0) =
        pool_with(RelayConnectionPoolConfig::default(), &[10, 40, 80, 200]);
    pool.check_connections(t0);
    let out = drain(&mut pool);
    assert_eq!(reserves(&out), relays[..3]);
    assert_eq!(pool.get_connection_stats(t0).reserving, 3);
    for relay in &relays[..3] {
        pool.handle_reserved(*relay, t0);
    }
    assert_eq!(pool.connected_relay_count(), 3);
    assert_eq!(
        events(&drain(&mut pool)),
        relays[..3]
            .iter()
            .map(|r| RelayPoolEvent::Reserved { relay: *r })
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_failed_relay_is_replaced_by_the_next_best_at_once() {
    let config = RelayConnectionPoolConfig {
        max_relay_connections: 2,
        ..Default::default()
    };
    let (mut pool, relays, t0) = pool_with(config, &[10, 40, 80]);
    pool.check_connections(t0);
    drain(&mut pool);
    pool.handle_reserved(relays[0], t0);
    pool.handle_reserved(relays[1], t0);
    drain(&mut pool);

    let t1 = t0 + Duration::from_secs(1);
    pool.handle_failed(relays[0], t1);
    let out = drain(&mut pool);
    assert_eq!(releases(&out), [relays[0]]);
    assert_eq!(reserves(&out), [relays[2]]);
    assert_eq!(
        events(&out),
        [RelayPoolEvent::Replaced {
            old: relays[0],
            new: relays[2]
        }]
    );
    let status = pool.get_relay_status(&relays[0]).unwrap();
    assert_eq!(status.held, None);
    assert_eq!(status.cooling_until, Some(t1 + Duration::from_secs(1)));
}

#[test]
fn a_relay_that_comes_back_is_reserved_on_again_after_its_cool_down() {
    let config = RelayConnectionPoolConfig {
        max_relay_connections: 2,
        ..Default::default()
    };
    let (mut pool, relays, t0) = pool_with(config, &[10, 40]);
    pool.check_connections(t0);
    drain(&mut pool);
    pool.handle_reserved(relays[0], t0);
    pool.handle_reserved(relays[1], t0);
    drain(&mut pool);

    // It dies: nobody to replace it with.
    pool.handle_failed(relays[0], t0);
    assert_eq!(
        events(&drain(&mut pool)),
        [RelayPoolEvent::Lost { relay: relays[0] }]
    );
    // The next attempt waits out the cool-down: 1 s, then 2 s after a second
    // failure in a row.
    let due = pool.poll_timeout();
    assert_eq!(due, t0 + Duration::from_secs(1));
    pool.handle_timeout(due);
    assert_eq!(reserves(&drain(&mut pool)), [relays[0]]);
    pool.handle_failed(relays[0], due);
    drain(&mut pool);
    assert_eq!(pool.poll_timeout(), due + Duration::from_secs(2));
    pool.handle_timeout(due + Duration::from_secs(2));
    assert_eq!(reserves(&drain(&mut pool)), [relays[0]]);
    // Back: reserved, its failures forgiven.
    pool.handle_reserved(relays[0], due + Duration::from_secs(2));
    assert_eq!(pool.connected_relay_count(), 2);
    assert_eq!(
        pool.get_relay_status(&relays[0]).unwrap().cooling_until,
        None
    );
    // Nothing is due before the next check: no busy loop on past cool-downs.
    assert!(pool.poll_timeout() > due + Duration::from_secs(2));
}

#[test]
fn a_connection_to_a_cooling_relay_ends_its_cool_down() {
    let (mut pool, relays, t0) = pool_with(RelayConnectionPoolConfig::default(), &[10]);
    pool.check_connections(t0);
    assert_eq!(reserves(&drain(&mut pool)), [relays[0]]);
    // Asked for while the node was still reconnecting: failed at once.
    pool.handle_failed(relays[0], t0);
    drain(&mut pool);
    let soon = t0 + Duration::from_millis(5);
    pool.handle_timeout(soon);
    assert!(reserves(&drain(&mut pool)).is_empty(), "cooling down");
    // The connection to it is up: asked for again now, not in 1 s.
    pool.handle_connected(&relays[0], soon);
    assert_eq!(reserves(&drain(&mut pool)), [relays[0]]);
    // A relay that is not cooling down is left alone.
    pool.handle_connected(&relays[0], soon);
    pool.handle_connected(&PeerId::random(), soon);
    assert!(drain(&mut pool).is_empty());
    // Its failure still counts: failing again backs off 2 s.
    pool.handle_failed(relays[0], soon);
    drain(&mut pool);
    assert_eq!(pool.poll_timeout(), soon + Duration::from_secs(2));
}

#[test]
fn a_reservation_not_confirmed_in_time_counts_as_a_failure() {
    let config = RelayConnectionPoolConfig {
        max_relay_connections: 1,
        reservation_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let (mut pool, relays, t0) = pool_with(config, &[10, 40]);
    pool.check_connections(t0);
    assert_eq!(reserves(&drain(&mut pool)), [relays[0]]);
    assert_eq!(pool.poll_timeout(), t0 + Duration::from_secs(10));
    pool.handle_timeout(t0 + Duration::from_secs(10));
    let out = drain(&mut pool);
    assert_eq!(releases(&out), [relays[0]]);
    assert_eq!(reserves(&out), [relays[1]]);
}

#[test]
fn a_publicly_reachable_node_keeps_only_the_minimum_and_takes_more_when_private_again() {
    let (mut pool, relays, t0) = pool_with(RelayConnectionPoolConfig::default(), &[10, 40, 80]);
    pool.check_connections(t0);
    drain(&mut pool);
    for relay in &relays {
        pool.handle_reserved(*relay, t0);
    }
    drain(&mut pool);
    let public = NatStatus::Public("/ip4/198.51.100.7/tcp/4001".parse().unwrap());
    pool.handle_nat_status(&public, t0);
    let out = drain(&mut pool);
    // The best stays; the two others go.
    assert_eq!(releases(&out).len(), 2);
    assert!(!releases(&out).contains(&relays[0]));
    assert_eq!(pool.get_connection_stats(t0).target, 1);
    pool.handle_nat_status(&NatStatus::Private, t0);
    assert_eq!(reserves(&drain(&mut pool)).len(), 2);
}

#[test]
fn without_auto_connect_exactly_the_configured_relays_are_held() {
    let configured: Vec<PeerId> = (0..2).map(|_| PeerId::random()).collect();
    let config = RelayConnectionPoolConfig {
        auto_connect: false,
        max_relay_connections: 1,
        discovery: RelayDiscoveryConfig {
            bootstrap_relays: configured.iter().map(|p| (*p, addr(9))).collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    // A much faster discovered relay is not taken.
    let (mut pool, discovered, t0) = pool_with(config, &[1]);
    pool.check_connections(t0);
    for relay in &configured {
        assert!(pool.get_relay_status(relay).unwrap().held.is_some());
    }
    assert!(
        pool.get_relay_status(&discovered[0])
            .unwrap()
            .held
            .is_none()
    );
    assert_eq!(pool.get_connection_stats(t0).target, 2);
}

#[test]
fn a_much_better_relay_replaces_the_worst_held_one_at_the_check() {
    let config = RelayConnectionPoolConfig {
        max_relay_connections: 1,
        connection_check_interval: Duration::from_secs(30),
        ..Default::default()
    };
    let (mut pool, relays, t0) = pool_with(config, &[400]);
    pool.check_connections(t0);
    drain(&mut pool);
    pool.handle_reserved(relays[0], t0);
    drain(&mut pool);
    // A far faster relay turns up, with a record of relaying (scores:
    // about 62 against 27).
    let fast = PeerId::random();
    pool.handle_discovered(fast, vec![addr(7)], RelaySource::Identify, t0);
    pool.handle_rtt(&fast, Duration::from_millis(5), t0);
    for _ in 0..3 {
        pool.discovery.record_success(&fast, None, t0);
    }
    drain(&mut pool);
    pool.check_connections(t0 + Duration::from_secs(1));
    assert!(reserves(&drain(&mut pool)).is_empty(), "only at the check");
    pool.check_connections(t0 + Duration::from_secs(30));
    let out = drain(&mut pool);
    assert_eq!(releases(&out), [relays[0]]);
    assert_eq!(reserves(&out), [fast]);
    assert_eq!(
        events(&out),
        [RelayPoolEvent::Replaced {
            old: relays[0],
            new: fast
        }]
    );
}

#[test]
fn a_relay_that_fails_authentication_is_let_go_and_not_taken_again() {
    let config = RelayConnectionPoolConfig {
        max_relay_connections: 1,
        ..Default::default()
    };
    let (mut pool, relays, t0) = pool_with(config, &[10, 40]);
    pool.check_connections(t0);
    drain(&mut pool);
    pool.handle_auth(&relays[0], false, t0);
    let out = drain(&mut pool);
    assert_eq!(releases(&out), [relays[0]]);
    assert_eq!(reserves(&out), [relays[1]]);
    pool.handle_failed(relays[1], t0 + Duration::from_secs(60));
    let out = drain(&mut pool);
    assert!(
        !reserves(&out).contains(&relays[0]),
        "an impostor is never a replacement"
    );
}

#[test]
fn circuit_addresses_are_dialled_in_the_rank_of_their_relays() {
    let (pool, relays, _) = pool_with(RelayConnectionPoolConfig::default(), &[10, 300]);
    let target = PeerId::random();
    let circuit = |relay: PeerId| -> Multiaddr {
        format!("/ip4/192.0.2.9/tcp/4001/p2p/{relay}/p2p-circuit/p2p/{target}")
            .parse()
            .unwrap()
    };
    let direct: Multiaddr = "/ip4/192.0.2.10/tcp/4001".parse().unwrap();
    let ranked = pool.rank_circuit_addrs(&[circuit(relays[1]), direct, circuit(relays[0])]);
    assert_eq!(ranked, [circuit(relays[0]), circuit(relays[1])]);
    assert_eq!(relay_of_circuit(&circuit(relays[1])), Some(relays[1]));
}

#[test]
fn moves_in_the_ranking_are_reported_at_each_check() {
    let config = RelayConnectionPoolConfig {
        connection_check_interval: Duration::from_secs(30),
        ..Default::default()
    };
    let (mut pool, relays, t0) = pool_with(config, &[10, 40]);
    let rank_events = |out: &[RelayPoolOutput]| {
        events(out)
            .into_iter()
            .filter_map(|e| match e {
                RelayPoolEvent::RankChanged {
                    peer_id,
                    previous,
                    rank,
                    ..
                } => Some((peer_id, previous, rank)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    // The first check only takes note of the order.
    pool.check_connections(t0 + Duration::from_secs(30));
    assert!(rank_events(&drain(&mut pool)).is_empty());
    // The faster relay keeps failing: it sinks below the slower one.
    for _ in 0..4 {
        pool.handle_failed(relays[0], t0 + Duration::from_secs(31));
    }
    pool.check_connections(t0 + Duration::from_secs(60));
    let mut moved = rank_events(&drain(&mut pool));
    moved.sort_by_key(|m| m.2);
    assert_eq!(moved, [(relays[1], 1, 0), (relays[0], 0, 1)]);
    // Nothing moved since: nothing is reported.
    pool.check_connections(t0 + Duration::from_secs(90));
    assert!(rank_events(&drain(&mut pool)).is_empty());
}

#[test]
fn the_status_lists_every_relay_best_first_with_the_keepers_state() {
    let config = RelayConnectionPoolConfig {
        max_relay_connections: 1,
        ..Default::default()
    };
    let (mut pool, relays, t0) = pool_with(config, &[10, 300]);
    pool.check_connections(t0);
    drain(&mut pool);
    pool.handle_reserved(relays[0], t0);
    let circuit = addr(0)
        .with(Protocol::P2p(relays[0]))
        .with(Protocol::P2pCircuit);
    let mut kept = RelayStatus::new(relays[0], circuit.clone(), RelayAuthStatus::NotRequired);
    kept.reserved = true;
    let by_hand = PeerId::random();
    let manual = RelayStatus::new(by_hand, Multiaddr::empty(), RelayAuthStatus::NotRequired);
    let status = pool.status(vec![kept, manual], RelayAuthStatus::Pending, t0);
    let order: Vec<PeerId> = status.iter().map(|s| s.relay_peer_id).collect();
    assert_eq!(order, [relays[0], relays[1], by_hand]);
    assert!(status[0].reserved && status[0].held && status[0].score > status[1].score);
    assert_eq!(status[0].circuit_addr, circuit);
    assert_eq!(status[0].rtt, Some(Duration::from_millis(10)));
    assert_eq!(status[0].sources, [RelaySource::Identify]);
    // Known, not held: standby, with the auth state of a relay not asked.
    assert!(!status[1].reserved && !status[1].held && !status[1].cooling_down);
    assert_eq!(status[1].auth, RelayAuthStatus::Pending);
    assert_eq!(status[2].score, 0.0, "listened on by hand: not ranked");
}
