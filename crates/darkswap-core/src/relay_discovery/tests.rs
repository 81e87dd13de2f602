use super::*;

fn addr(port: u16) -> Multiaddr {
    format!("/ip4/192.0.2.1/tcp/{port}").parse().unwrap()
}

fn manager(config: RelayDiscoveryConfig) -> (RelayDiscoveryManager, Instant) {
    let t0 = Instant::now();
    (RelayDiscoveryManager::new(config, t0), t0)
}

fn drain(m: &mut RelayDiscoveryManager) -> Vec<RelayDiscoveryOutput> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn best(m: &RelayDiscoveryManager, n: usize) -> Vec<PeerId> {
    m.get_best_relays(n).iter().map(|r| r.peer_id).collect()
}

#[test]
fn configured_relays_are_known_from_the_start_and_others_come_from_each_source() {
    let configured = PeerId::random();
    let (mut m, t0) = manager(RelayDiscoveryConfig {
        bootstrap_relays: vec![(configured, addr(1))],
        ..Default::default()
    });
    assert_eq!(
        drain(&mut m),
        [RelayDiscoveryOutput::Discovered {
            peer_id: configured,
            source: RelaySource::Configured
        }]
    );
    let (dht, mdns, identify) = (PeerId::random(), PeerId::random(), PeerId::random());
    m.handle_discovered(dht, vec![addr(2)], RelaySource::Dht, t0);
    m.handle_discovered(mdns, vec![addr(3)], RelaySource::Mdns, t0);
    m.handle_discovered(identify, vec![addr(4)], RelaySource::Identify, t0);
    // Found again by another source: one relay, two sources, no new event.
    m.handle_discovered(dht, vec![addr(5)], RelaySource::Identify, t0);
    assert_eq!(m.len(), 4);
    assert_eq!(drain(&mut m).len(), 3);
    let relay = m.get(&dht).unwrap();
    assert_eq!(
        relay.sources,
        BTreeSet::from([RelaySource::Dht, RelaySource::Identify])
    );
    assert_eq!(relay.addrs, [addr(5), addr(2)], "newest address first");
}

#[test]
fn disabled_sources_are_ignored_and_no_dht_query_is_asked_for() {
    let (mut m, t0) = manager(RelayDiscoveryConfig {
        enable_dht_discovery: false,
        enable_mdns_discovery: false,
        ..Default::default()
    });
    m.handle_discovered(PeerId::random(), vec![addr(1)], RelaySource::Dht, t0);
    m.handle_discovered(PeerId::random(), vec![addr(2)], RelaySource::Mdns, t0);
    assert!(m.is_empty());
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn the_dht_is_queried_at_start_and_every_interval() {
    let interval = Duration::from_secs(300);
    let (mut m, t0) = manager(RelayDiscoveryConfig {
        dht_query_interval: interval,
        ..Default::default()
    });
    assert_eq!(m.poll_timeout(), Some(t0));
    m.handle_timeout(t0);
    assert_eq!(drain(&mut m), [RelayDiscoveryOutput::QueryDht]);
    assert_eq!(m.poll_timeout(), Some(t0 + interval));
    m.handle_timeout(t0 + interval - Duration::from_secs(1));
    assert!(drain(&mut m).is_empty(), "not before it is due");
    m.handle_timeout(t0 + interval);
    assert_eq!(drain(&mut m), [RelayDiscoveryOutput::QueryDht]);
}

#[test]
fn a_faster_relay_ranks_above_a_slower_one_that_is_as_reliable() {
    let (mut m, t0) = manager(RelayDiscoveryConfig::default());
    let (fast, slow) = (PeerId::random(), PeerId::random());
    for (peer, rtt) in [(fast, 20), (slow, 300)] {
        m.handle_discovered(peer, vec![addr(1)], RelaySource::Dht, t0);
        m.record_success(&peer, Some(Duration::from_millis(rtt)), t0);
    }
    assert_eq!(best(&m, 2), [fast, slow]);
    assert!(m.get(&fast).unwrap().score() > m.get(&slow).unwrap().score());
}

#[test]
fn a_relay_that_keeps_failing_sinks_and_recovers_when_it_comes_back() {
    let (mut m, t0) = manager(RelayDiscoveryConfig::default());
    let (steady, flaky) = (PeerId::random(), PeerId::random());
    for peer in [steady, flaky] {
        m.handle_discovered(peer, vec![addr(1)], RelaySource::Dht, t0);
    }
    // The flaky one is the faster, but it keeps refusing.
    m.record_success(&steady, Some(Duration::from_millis(80)), t0);
    m.record_success(&flaky, Some(Duration::from_millis(10)), t0);
    assert_eq!(best(&m, 2), [flaky, steady]);
    let t1 = t0 + Duration::from_secs(5);
    for _ in 0..4 {
        m.record_failure(&flaky, t1);
    }
    m.record_success(&steady, None, t1);
    assert_eq!(best(&m, 2), [steady, flaky]);
    assert_eq!(m.get(&flaky).unwrap().consecutive_failures, 4);
    let sunk = m.get(&flaky).unwrap().score();

    // An hour later its failures have faded, and it answers again.
    let t2 = t1 + Duration::from_secs(3600);
    for _ in 0..3 {
        m.record_success(&flaky, Some(Duration::from_millis(10)), t2);
    }
    m.record_success(&steady, None, t2);
    assert!(m.get(&flaky).unwrap().score() > sunk);
    assert_eq!(m.get(&flaky).unwrap().consecutive_failures, 0);
    assert_eq!(best(&m, 2), [flaky, steady]);
}

#[test]
fn a_relay_that_fails_authentication_is_never_among_the_best() {
    let (mut m, t0) = manager(RelayDiscoveryConfig::default());
    let (honest, impostor) = (PeerId::random(), PeerId::random());
    for peer in [honest, impostor] {
        m.handle_discovered(peer, vec![addr(1)], RelaySource::Identify, t0);
    }
    m.record_success(&impostor, Some(Duration::from_millis(1)), t0);
    m.record_auth(&impostor, false, t0);
    m.record_auth(&honest, true, t0);
    assert_eq!(m.get(&impostor).unwrap().score(), 0.0);
    assert_eq!(best(&m, 5), [honest]);
    // Passing later brings it back.
    m.record_auth(&impostor, true, t0);
    assert_eq!(best(&m, 5), [impostor, honest]);
}

#[test]
fn silent_discovered_relays_are_forgotten_after_the_ttl_but_configured_ones_stay() {
    let ttl = Duration::from_secs(3600);
    let configured = PeerId::random();
    let (mut m, t0) = manager(RelayDiscoveryConfig {
        bootstrap_relays: vec![(configured, addr(1))],
        relay_ttl: ttl,
        ..Default::default()
    });
    let (silent, alive) = (PeerId::random(), PeerId::random());
    m.handle_discovered(silent, vec![addr(2)], RelaySource::Dht, t0);
    m.handle_discovered(alive, vec![addr(3)], RelaySource::Dht, t0);
    m.record_rtt(&alive, Duration::from_millis(30), t0 + ttl / 2);
    drain(&mut m);
    assert!(m.prune_relays(t0 + ttl - Duration::from_secs(1)).is_empty());
    assert_eq!(m.prune_relays(t0 + ttl), [silent]);
    assert_eq!(
        drain(&mut m),
        [RelayDiscoveryOutput::Forgotten { peer_id: silent }]
    );
    assert!(m.get(&configured).is_some());
    assert!(m.get(&alive).is_some());
}

#[test]
fn beyond_max_relays_the_lowest_scored_discovered_one_goes() {
    let configured = PeerId::random();
    let (mut m, t0) = manager(RelayDiscoveryConfig {
        bootstrap_relays: vec![(configured, addr(1))],
        max_relays: 3,
        ..Default::default()
    });
    let (good, bad, new) = (PeerId::random(), PeerId::random(), PeerId::random());
    m.handle_discovered(good, vec![addr(2)], RelaySource::Dht, t0);
    m.handle_discovered(bad, vec![addr(3)], RelaySource::Dht, t0);
    m.record_success(&good, Some(Duration::from_millis(20)), t0);
    m.record_failure(&bad, t0);
    m.record_failure(&configured, t0);
    drain(&mut m);
    m.handle_discovered(new, vec![addr(4)], RelaySource::Mdns, t0);
    assert_eq!(m.len(), 3);
    assert!(
        m.get(&bad).is_none(),
        "the worst discovered relay made room"
    );
    assert!(m.get(&configured).is_some(), "configured relays stay");
    assert_eq!(
        drain(&mut m),
        [
            RelayDiscoveryOutput::Discovered {
                peer_id: new,
                source: RelaySource::Mdns
            },
            RelayDiscoveryOutput::Forgotten { peer_id: bad },
        ]
    );
}

#[test]
fn the_score_follows_the_documented_formula() {
    let (mut m, t0) = manager(RelayDiscoveryConfig::default());
    let peer = PeerId::random();
    m.handle_discovered(peer, vec![addr(1)], RelaySource::Dht, t0);
    // Nothing known: reliability ½, speed ½, freshness ½.
    let expected = 100.0 * 0.25 * 0.75 * 0.75;
    assert!((m.get(&peer).unwrap().score() - expected).abs() < 1e-9);
    // One success at 100 ms just now: reliability ⅔, speed ½, freshness 1.
    m.record_success(&peer, Some(RTT_REFERENCE), t0);
    let expected = 100.0 * (2.0f64 / 3.0).powi(2) * 0.75 * 1.0;
    assert!((m.get(&peer).unwrap().score() - expected).abs() < 1e-9);
    // Five minutes of silence halves the freshness, and the success has
    // faded by half a half-life.
    m.prune_relays(t0 + FRESHNESS_REFERENCE);
    let successes = 0.5f64.powf(0.5);
    let reliability = (successes + 1.0) / (successes + 2.0);
    let expected = 100.0 * reliability.powi(2) * 0.75 * 0.75;
    assert!((m.get(&peer).unwrap().score() - expected).abs() < 1e-9);
}

#[test]
fn a_look_up_can_be_asked_for_at_once_and_the_interval_restarts_from_it() {
    let t0 = Instant::now();
    let config = RelayDiscoveryConfig::default();
    let interval = config.dht_query_interval;
    let mut m = RelayDiscoveryManager::new(config, t0);
    m.handle_timeout(t0);
    assert_eq!(m.poll_output(), Some(RelayDiscoveryOutput::QueryDht));
    let later = t0 + Duration::from_secs(5);
    m.query_dht_now(later);
    assert_eq!(m.poll_output(), Some(RelayDiscoveryOutput::QueryDht));
    assert_eq!(m.poll_timeout(), Some(later + interval));

    let mut off = RelayDiscoveryManager::new(
        RelayDiscoveryConfig {
            enable_dht_discovery: false,
            ..Default::default()
        },
        t0,
    );
    off.query_dht_now(later);
    assert_eq!(off.poll_output(), None);
}
