//! The relay pool on real swarms: a node finds relays it was not told of
//! (identify, the DHT), reserves on them by itself (auto-relay), fails
//! over to the next best when its relay dies, and is reached through the
//! best relay by `connect_via_relay`.

use std::time::Duration;

use darkswap_p2p::{Error, KadMode, Network, NetworkEvent, PeerId, RelaySource};
use darkswap_testkit::{EVENT_TIMEOUT, TestRelay, spawn_node, test_config, wait_for};
use libp2p::multiaddr::Protocol;

async fn wait_discovered(net: &mut Network, relay: PeerId) -> RelaySource {
    wait_for(net, "RelayDiscovered", EVENT_TIMEOUT, |e| match e {
        NetworkEvent::RelayDiscovered {
            relay_peer_id,
            source,
        } if *relay_peer_id == relay => Some(*source),
        _ => None,
    })
    .await
}

async fn wait_reserved(net: &mut Network) -> PeerId {
    wait_for(net, "RelayReserved", EVENT_TIMEOUT, |e| match e {
        NetworkEvent::RelayReserved { relay_peer_id, .. } => Some(*relay_peer_id),
        _ => None,
    })
    .await
}

/// A node told of no relay meets one (its bootstrap peer): identify shows
/// the hop protocol, and the node reserves on it by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_told_of_no_relay_reserves_on_the_relay_it_meets() {
    let relay = TestRelay::spawn().await;
    let (mut node, _) =
        spawn_node(test_config().with_bootstrap_peers(vec![relay.addr.clone()])).await;
    assert_eq!(
        wait_discovered(&mut node, relay.peer_id).await,
        RelaySource::Identify
    );
    // The reservation and the circuit address, in either order.
    let (mut reserved, mut circuit) = (false, false);
    while !(reserved && circuit) {
        wait_for(
            &mut node,
            "RelayReserved and its address",
            EVENT_TIMEOUT,
            |e| {
                match e {
                    NetworkEvent::RelayReserved { relay_peer_id, .. } => {
                        assert_eq!(*relay_peer_id, relay.peer_id);
                        reserved = true;
                    }
                    NetworkEvent::NewListenAddr { address }
                        if address.iter().any(|p| p == Protocol::P2p(relay.peer_id)) =>
                    {
                        circuit = true
                    }
                    _ => return None,
                }
                Some(())
            },
        )
        .await;
    }

    let status = node
        .relays()
        .get_relay_status(relay.peer_id)
        .await
        .unwrap()
        .unwrap();
    assert!(status.reserved && status.held, "{status:?}");
    assert_eq!(status.sources, [RelaySource::Identify]);
    assert!(status.score > 0.0, "{status:?}");
    assert_eq!(node.relays().connected_relay_count().await.unwrap(), 1);
    let stats = node.relays().get_connection_stats().await.unwrap();
    assert_eq!((stats.known, stats.reserved), (1, 1), "{stats:?}");
    node.shutdown().await.unwrap();
}

/// `a`, behind a NAT (it listens nowhere), knows only `b`; the relay `r`
/// is `b`'s peer and announces itself in the DHT. `a` finds `r` by a DHT
/// look-up, reserves on it, and `b` then reaches `a` through `r` with
/// `connect_via_relay`. (`r` runs Kademlia as a client, so the only way
/// `a` can learn of it is its provider record at `b`: a DHT walk never
/// leads to it, because `b` drops its bootstrap peer `r` from its routing
/// table once identify shows `r` does not serve the DHT. Were `a`
/// listening, `r` could meet it first by storing its provider record at
/// `a`, and `a` would learn of the relay by identify.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_found_in_the_dht_is_reserved_on_and_carries_connect_via_relay() {
    let (r, r_addr) = spawn_node(
        test_config()
            .with_relay_hop(true)
            .with_kad_mode(KadMode::Client),
    )
    .await;
    let mut listen = r_addr.clone();
    listen.pop();
    // A relay serves reservations on a confirmed address only.
    r.add_external_address(listen).await.unwrap();
    let r_id = r.local_peer_id();
    let (mut b, b_addr) = spawn_node(test_config().with_bootstrap_peers(vec![r_addr])).await;
    // b meets r directly and takes it as a relay too; wait for that, so the
    // DHT holds r before a asks.
    assert_eq!(wait_reserved(&mut b).await, r_id);

    let mut config = test_config().with_bootstrap_peers(vec![b_addr]);
    // r's provider record may reach b after a's first look-up; a asks
    // again soon rather than at the default five minutes.
    config.relay.pool.discovery.dht_query_interval = Duration::from_millis(250);
    let mut a = Network::new(config).await.unwrap();
    let a_id = a.local_peer_id();
    assert_eq!(wait_discovered(&mut a, r_id).await, RelaySource::Dht);
    assert_eq!(wait_reserved(&mut a).await, r_id);

    // b learns a's circuit address when a's identify push reaches it (its
    // routing table is updated): try again at each update.
    let path = tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            match b.relays().connect_via_relay(a_id).await {
                Ok(path) => return path,
                Err(Error::NoRelayPath(_)) => {
                    wait_for(&mut b, "RoutingUpdated", EVENT_TIMEOUT, |e| {
                        matches!(e, NetworkEvent::RoutingUpdated { peer_id } if *peer_id == a_id)
                            .then_some(())
                    })
                    .await
                }
                Err(e) => panic!("connect_via_relay: {e}"),
            }
        }
    })
    .await
    .expect("a reached through r in time");
    assert!(
        path.iter().any(|p| p == Protocol::P2p(r_id))
            && path.iter().any(|p| p == Protocol::P2pCircuit),
        "{path}"
    );
    wait_for(&mut b, "ConnectedThroughRelay", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::ConnectedThroughRelay { relay_peer_id, dst_peer_id }
            if *relay_peer_id == r_id && *dst_peer_id == a_id)
        .then_some(())
    })
    .await;
    for n in [a, b, r] {
        n.shutdown().await.unwrap();
    }
}

/// Two relays, room for one: when the held relay dies the node reserves on
/// the other within seconds and says which replaced which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_its_relay_dies_the_node_reserves_on_the_next_best_at_once() {
    let one = TestRelay::spawn().await;
    let two = TestRelay::spawn().await;
    let mut config = test_config().with_relay_peers(vec![one.addr.clone(), two.addr.clone()]);
    config.relay.pool.max_relay_connections = 1;
    let (mut node, _) = spawn_node(config).await;
    let first = wait_reserved(&mut node).await;
    let (dead, other) = if first == one.peer_id {
        (one, two)
    } else {
        (two, one)
    };
    assert_eq!(node.relays().connected_relay_count().await.unwrap(), 1);
    let dead_id = dead.peer_id;
    dead.stop().await;
    let replaced = wait_for(
        &mut node,
        "RelayReplaced",
        Duration::from_secs(10),
        |e| match e {
            NetworkEvent::RelayReplaced { old, new } => Some((*old, *new)),
            _ => None,
        },
    )
    .await;
    assert_eq!(replaced, (dead_id, other.peer_id));
    assert_eq!(wait_reserved(&mut node).await, other.peer_id);
    let status = node.relays().status().await.unwrap();
    let dead_status = status.iter().find(|s| s.relay_peer_id == dead_id).unwrap();
    assert!(
        !dead_status.held && !dead_status.reserved && dead_status.cooling_down,
        "{dead_status:?}"
    );
    node.shutdown().await.unwrap();
}

/// With relays off, a node neither reserves on its configured relay nor
/// dials circuit addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_relays_off_nothing_is_reserved_and_circuits_are_not_dialled() {
    let relay = TestRelay::spawn().await;
    let mut config = test_config().with_relay_peers(vec![relay.addr.clone()]);
    config.relay.enabled = false;
    let (node, _) = spawn_node(config).await;
    let circuit = relay
        .addr
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(PeerId::random()));
    let error = node.dial(circuit).await.unwrap_err();
    assert!(error.to_string().contains("relay is disabled"), "{error}");
    assert!(node.relay_status().await.unwrap().is_empty());
    node.shutdown().await.unwrap();
}
