//! The relay's libp2p node, in process on 127.0.0.1 port 0: the per-peer
//! reservation limit is the documented number, the reservations gauge
//! counts reservations (not connection closes) and never goes below zero,
//! refused gossip is counted, and the libp2p WebSocket listener serves
//! libp2p as the TCP one does. Attackers are raw clients (a circuit relay
//! v2 client that reserves only when told, a raw gossipsub peer); honest
//! SDK nodes work beside them.
#![cfg(feature = "server")]

use std::time::Duration;

use darkswap_p2p::{Network, NetworkEvent, ORDERBOOK_TOPIC, PeerId};
use darkswap_relay::{RelayConfig, RelayServer, config::HopConfig};
use darkswap_testkit::{EVENT_TIMEOUT, RawGossip, test_config, wait_for};
use libp2p::{Multiaddr, identity::Keypair, multiaddr::Protocol};
use serde_json::Value;

#[path = "support/hop.rs"]
mod hop;
use hop::{HopClient, OK, RESOURCE_LIMIT_EXCEEDED};

struct Relay {
    server: RelayServer,
    _dir: tempfile::TempDir,
}

impl Relay {
    async fn spawn(tune: impl FnOnce(&mut HopConfig)) -> Self {
        Self::spawn_on(&["/ip4/127.0.0.1/tcp/0"], tune).await
    }

    async fn spawn_on(listen: &[&str], tune: impl FnOnce(&mut HopConfig)) -> Self {
        Self::spawn_with(listen, |config| tune(&mut config.hop)).await
    }

    async fn spawn_with(listen: &[&str], tune: impl FnOnce(&mut RelayConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = RelayConfig::default();
        config.data_dir = dir.path().to_owned();
        config.libp2p.listen_addresses = listen.iter().map(|a| a.parse().unwrap()).collect();
        config.admin_http.listen = "127.0.0.1:0".parse().unwrap();
        config.signaling.enabled = false;
        tune(&mut config);
        Relay {
            server: RelayServer::spawn(config).await.unwrap(),
            _dir: dir,
        }
    }

    fn addr(&self) -> Multiaddr {
        self.server.listen_addrs()[0].clone()
    }

    async fn connect(&self, key: &Keypair) -> HopClient {
        HopClient::connect(key, &self.addr(), self.server.peer_id()).await
    }

    async fn get(&self, path: &str) -> String {
        let admin = self.server.metrics_addr().expect("admin server");
        reqwest::get(format!("http://{admin}{path}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until `/health` shows `connections` and `reservations`;
    /// panics at once if `reservations` is ever below zero.
    async fn wait_health(&self, connections: i64, reservations: i64) {
        let wait = async {
            loop {
                let health: Value = serde_json::from_str(&self.get("/health").await).unwrap();
                let held = health["reservations"].as_i64().unwrap();
                assert!(held >= 0, "reservations below zero: {health}");
                if (health["connections"].as_i64(), held) == (Some(connections), reservations) {
                    return;
                }
                // /health has no change feed: poll it, bounded by the timeout.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(EVENT_TIMEOUT, wait).await.is_err() {
            let health = self.get("/health").await;
            panic!("expected {connections} connections, {reservations} reservations: {health}");
        }
    }
}

async fn wait_reserved(net: &mut Network, relay: PeerId) {
    wait_for(net, "RelayReserved", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::RelayReserved { relay_peer_id, .. } if *relay_peer_id == relay)
            .then_some(())
    })
    .await
}

/// A peer gets `limit` reservations (one per connection), the next is
/// refused, its held ones still renew, and an honest node still reserves.
async fn a_peer_holds_exactly(limit: usize) {
    let relay = Relay::spawn(|hop| hop.max_reservations_per_peer = limit).await;
    let attacker = Keypair::generate_ed25519();
    let mut held = Vec::new();
    for _ in 0..limit {
        let mut client = relay.connect(&attacker).await;
        assert_eq!(client.reserve().await, OK);
        held.push(client);
    }
    let mut extra = relay.connect(&attacker).await;
    assert_eq!(
        extra.reserve().await,
        RESOURCE_LIMIT_EXCEEDED,
        "reservation {} of a peer limited to {limit}",
        limit + 1
    );
    assert_eq!(held[0].reserve().await, OK, "a renewal at the limit");

    let mut honest = Network::new(test_config().with_relay_peers(vec![relay.addr()]))
        .await
        .unwrap();
    wait_reserved(&mut honest, relay.server.peer_id()).await;
    relay.wait_health(limit as i64 + 2, limit as i64 + 1).await;
    honest.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_holds_at_most_its_reservation_limit() {
    a_peer_holds_exactly(HopConfig::default().max_reservations_per_peer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_limited_to_one_reservation_gets_one() {
    a_peer_holds_exactly(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reservations_gauge_counts_reservations_not_closed_connections() {
    let relay = Relay::spawn(|_| {}).await;
    let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());

    // A connection that never reserves comes and goes.
    let idle = relay.connect(&a).await;
    relay.wait_health(1, 0).await;
    drop(idle);
    relay.wait_health(0, 0).await;

    // A reserves and renews on one connection; B reserves.
    let mut a1 = relay.connect(&a).await;
    assert_eq!(a1.reserve().await, OK);
    assert_eq!(a1.reserve().await, OK, "renewal");
    let mut b1 = relay.connect(&b).await;
    assert_eq!(b1.reserve().await, OK);
    relay.wait_health(2, 2).await;

    // A second connection of A, holding no reservation, closes: libp2p
    // reports a ReservationClosed for A all the same.
    let a2 = relay.connect(&a).await;
    relay.wait_health(3, 2).await;
    drop(a2);
    relay.wait_health(2, 2).await;

    // The reserved connections close.
    drop(a1);
    relay.wait_health(1, 1).await;
    drop(b1);
    relay.wait_health(0, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_reservation_leaves_the_gauge_while_its_connection_stays() {
    let relay = Relay::spawn(|hop| hop.reservation_duration = Duration::from_secs(4)).await;
    let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let mut holder = relay.connect(&a).await;
    let bystander = relay.connect(&b).await;
    assert_eq!(holder.reserve().await, OK);
    relay.wait_health(2, 1).await;
    // The client never renews: the relay lets the reservation expire.
    relay.wait_health(2, 0).await;
    // libp2p forgets an expired reservation's connection, so its close
    // reports nothing; the bystander's close reports a ReservationClosed.
    drop(holder);
    relay.wait_health(1, 0).await;
    drop(bystander);
    relay.wait_health(0, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_gossip_is_counted_by_topic_and_reason() {
    let relay = Relay::spawn(|_| {}).await;
    let mut hostile = RawGossip::new(&[ORDERBOOK_TOPIC]);
    hostile
        .connect(&[relay.addr()], &[relay.server.peer_id()], ORDERBOOK_TOPIC)
        .await;
    hostile.publish(ORDERBOOK_TOPIC, b"\x08\x01\x52\xff\xff".to_vec());
    let _driver = hostile.run();
    let counted = "darkswap_relay_gossip_rejected_total{topic=\"darkswap/orderbook/v1\",reason=\"undecodable\"} 1";
    let wait = async {
        while !relay.get("/metrics").await.contains(counted) {
            // /metrics has no change feed: poll it, bounded by the timeout.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(EVENT_TIMEOUT, wait).await.is_err() {
        panic!("{counted} missing in:\n{}", relay.get("/metrics").await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_listener_serves_libp2p_reservations_and_circuits() {
    let relay = Relay::spawn_on(&["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"], |_| {}).await;
    let is_ws = |a: &Multiaddr| a.iter().any(|p| matches!(p, Protocol::Ws(_)));
    let ws = relay
        .server
        .listen_addrs()
        .iter()
        .find(|a| is_ws(a))
        .expect("a /ws listen address")
        .clone();
    // b reaches the relay over WebSocket only, and reserves there.
    let mut b = Network::new(test_config().with_relay_peers(vec![ws.clone()]))
        .await
        .unwrap();
    wait_reserved(&mut b, relay.server.peer_id()).await;
    let peers = b.peers().await.unwrap();
    assert!(
        peers.iter().any(|p| is_ws(&p.address)),
        "b is connected over WebSocket: {peers:?}"
    );
    // a dials b through the relay's circuit, over WebSocket too.
    let a = Network::new(test_config()).await.unwrap();
    let circuit = ws
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(b.local_peer_id()));
    assert_eq!(a.dial(circuit).await.unwrap(), b.local_peer_id());
    let metrics = relay.get("/metrics").await;
    let over_ws = metrics
        .lines()
        .find_map(|l| l.strip_prefix("darkswap_relay_connections_total{transport=\"websocket\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(over_ws >= Some(2.0), "a's and b's connections: {metrics}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// `[network] perf` (off by default) makes the relay serve `/perf/1.0.0`:
/// a node measures its link to the relay both ways, byte for byte. A relay
/// without it refuses the protocol, and the measurement fails rather than
/// hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_is_served_only_when_configured() {
    let serving = Relay::spawn_with(&["/ip4/127.0.0.1/tcp/0"], |c| c.libp2p.perf = true).await;
    let silent = Relay::spawn(|_| {}).await;
    let node = Network::new(test_config().with_perf(true)).await.unwrap();

    let id = node.dial(serving.addr()).await.unwrap();
    let report = tokio::time::timeout(EVENT_TIMEOUT, node.perf(id, 1 << 20, 2 << 20))
        .await
        .expect("perf against the relay finishes")
        .unwrap();
    assert_eq!((report.uploaded, report.downloaded), (1 << 20, 2 << 20));

    let id = node.dial(silent.addr()).await.unwrap();
    let refused = tokio::time::timeout(EVENT_TIMEOUT, node.perf(id, 1 << 10, 1 << 10))
        .await
        .expect("a refused perf fails within the bound");
    assert!(refused.is_err(), "{refused:?}");
    node.shutdown().await.unwrap();
}
