//! Circuit relay v2: a node reachable only through a relay reserves a slot,
//! is reached through the circuit, exchanges gossip, and keeps its
//! reservation across a relay restart. DCUtR then upgrades to direct.

use darkswap_p2p::{Identity, Keypair, Network, NetworkEvent, ORDERBOOK_TOPIC, PeerId};
use darkswap_testkit::{EVENT_TIMEOUT, TestRelay, spawn_node, test_config, wait_for};
use darkswap_testkit::{gossip_both_ways, order_message, wait_subscribed};
use libp2p::multiaddr::Protocol;

async fn wait_reserved(net: &mut Network, relay: PeerId) -> darkswap_p2p::ReservationId {
    wait_for(net, "RelayReserved", EVENT_TIMEOUT, |e| match e {
        NetworkEvent::RelayReserved {
            relay_peer_id,
            reservation_id,
        } if *relay_peer_id == relay => Some(*reservation_id),
        _ => None,
    })
    .await
}

async fn wait_through_relay(net: &mut Network, relay: PeerId, dst: PeerId) {
    wait_for(net, "ConnectedThroughRelay", EVENT_TIMEOUT, |e| match e {
        NetworkEvent::ConnectedThroughRelay {
            relay_peer_id,
            dst_peer_id,
        } if *relay_peer_id == relay && *dst_peer_id == dst => Some(()),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_node_is_reached_through_its_circuit() {
    let relay = TestRelay::spawn().await;
    let key_b = Keypair::generate_ed25519();
    // b listens on nothing but its circuit address.
    let mut b = Network::new(
        test_config()
            .with_relay_peers(vec![relay.addr.clone()])
            .with_identity(Identity::Keypair(key_b.clone())),
    )
    .await
    .unwrap();
    let b_id = b.local_peer_id();
    wait_reserved(&mut b, relay.peer_id).await;
    let status = b.relay_status().await.unwrap();
    assert_eq!(status.len(), 1);
    assert!(status[0].reserved);
    assert!(
        b.listen_addrs()
            .await
            .unwrap()
            .iter()
            .all(|a| a.iter().any(|p| p == Protocol::P2pCircuit))
    );

    let key_a = Keypair::generate_ed25519();
    let mut a = Network::new(test_config().with_identity(Identity::Keypair(key_a.clone())))
        .await
        .unwrap();
    let a_id = a.local_peer_id();
    let circuit = relay
        .addr
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(b_id));
    assert_eq!(a.dial(circuit).await.unwrap(), b_id);
    wait_through_relay(&mut a, relay.peer_id, b_id).await;
    wait_through_relay(&mut b, relay.peer_id, a_id).await;
    let peers = a.peers().await.unwrap();
    let b_info = peers
        .iter()
        .find(|p| p.peer_id == b_id)
        .expect("b in peers");
    assert!(b_info.relayed, "{b_info:?}");
    assert!(b_info.address.iter().any(|p| p == Protocol::P2pCircuit));

    gossip_both_ways(&mut a, &key_a, &mut b, &key_b).await;

    // Their gossip crossed the circuit: both count it, within their totals.
    for node in [&a, &b] {
        let bytes = node.handle().bandwidth().await.unwrap();
        assert!(
            bytes.relayed_inbound > 0 && bytes.relayed_outbound > 0,
            "{bytes:?}"
        );
        assert!(
            bytes.inbound > bytes.relayed_inbound && bytes.outbound > bytes.relayed_outbound,
            "the circuit's carrier connection counts too: {bytes:?}"
        );
    }

    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservation_is_remade_after_the_relay_restarts() {
    let relay = TestRelay::spawn().await;
    let (relay_key, relay_socket, relay_id, relay_addr) = (
        relay.keypair.clone(),
        relay.socket_addr(),
        relay.peer_id,
        relay.addr.clone(),
    );
    let mut b = Network::new(test_config().with_relay_peers(vec![relay_addr.clone()]))
        .await
        .unwrap();
    let first = wait_reserved(&mut b, relay_id).await;

    relay.stop().await;
    wait_for(&mut b, "RelayReservationLost", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::RelayReservationLost { relay_peer_id } if *relay_peer_id == relay_id).then_some(())
    })
    .await;
    assert!(!b.relay_status().await.unwrap()[0].reserved);

    let _relay = TestRelay::spawn_with(relay_key, relay_socket).await;
    let second = wait_reserved(&mut b, relay_id).await;
    assert_ne!(first, second);

    // And the node is reachable through it again.
    let (a, _) = spawn_node(test_config()).await;
    let circuit = relay_addr
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(b.local_peer_id()));
    assert_eq!(a.dial(circuit).await.unwrap(), b.local_peer_id());
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Relayed connections carrying DarkSwap gossip outlive a short idle timeout.
/// (There is no "quiet" control: DCUtR itself keeps a relayed connection
/// alive while its upgrade attempts are not used up, so only the in-use case
/// is ours to assert.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_connections_in_use_survive_the_idle_timeout() {
    use std::time::Duration;
    let idle = Duration::from_millis(300);
    let relay = TestRelay::spawn().await;

    // With DarkSwap traffic the connection stays up across many idle periods.
    let busy = |key: &Keypair| {
        test_config()
            .with_identity(Identity::Keypair(key.clone()))
            .with_idle_connection_timeout(idle)
    };
    let (key_a, key_b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let mut b = Network::new(busy(&key_b).with_relay_peers(vec![relay.addr.clone()]))
        .await
        .unwrap();
    let b_id = b.local_peer_id();
    wait_reserved(&mut b, relay.peer_id).await;
    let mut a = Network::new(busy(&key_a)).await.unwrap();
    a.dial(
        relay
            .addr
            .clone()
            .with(Protocol::P2pCircuit)
            .with(Protocol::P2p(b_id)),
    )
    .await
    .unwrap();
    wait_subscribed(&mut b, a.local_peer_id()).await;
    let started = std::time::Instant::now();
    let mut nonce = 0;
    while started.elapsed() < idle * 5 {
        nonce += 1;
        let msg = order_message(&key_b, nonce);
        b.publish(ORDERBOOK_TOPIC, &msg).await.unwrap();
        let got = wait_for(&mut a, "order while pacing", EVENT_TIMEOUT, |e| match e {
            NetworkEvent::PeerDisconnected(p) if *p == b_id => {
                panic!("connection in use was closed")
            }
            NetworkEvent::MessageReceived { message, .. } => Some(message.clone()),
            _ => None,
        })
        .await;
        assert_eq!(got, msg);
        // Pacing, not synchronisation: let idle periods pass between messages.
        tokio::time::sleep(idle / 2).await;
    }
    assert!(a.connected_peers().await.unwrap().contains(&b_id));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

fn tcp_port(addr: &libp2p::Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        Protocol::Tcp(port) => Some(port),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_listens_before_it_dials_so_its_relay_sees_its_listening_port() {
    // The relay's view of a node's address is what the node learns as its
    // observed address and offers for a hole punch: it must be the port
    // the node listens on, which it is only if the listener was up before
    // the relay was dialled (here as a bootstrap peer, dialled at start,
    // and as its relay).
    let relay = TestRelay::spawn().await;
    let mut node = Network::new(
        test_config()
            .with_listen_addresses(["/ip4/127.0.0.1/tcp/0".parse().unwrap()])
            .with_bootstrap_peers(vec![relay.addr.clone()])
            .with_relay_peers(vec![relay.addr.clone()]),
    )
    .await
    .unwrap();
    let listening = node.listen_addrs().await.unwrap();
    let port = listening.iter().find_map(tcp_port).expect("a TCP listener");
    wait_reserved(&mut node, relay.peer_id).await;
    let observed = relay.observed(node.local_peer_id());
    assert!(!observed.is_empty());
    assert!(
        observed.iter().all(|a| tcp_port(a) == Some(port)),
        "listening on {port}, seen from {observed:?}"
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_lists_every_connection_with_its_own_path() {
    let relay = TestRelay::spawn().await;
    let (mut b, b_addr) =
        spawn_node(test_config().with_relay_peers(vec![relay.addr.clone()])).await;
    let b_id = b.local_peer_id();
    wait_reserved(&mut b, relay.peer_id).await;
    let (a, _) = spawn_node(test_config()).await;
    // Through the relay first, then directly.
    let circuit = relay
        .addr
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(b_id));
    a.dial(circuit).await.unwrap();
    a.dial(b_addr.clone()).await.unwrap();

    let peers = a.peers().await.unwrap();
    let info = peers.iter().find(|p| p.peer_id == b_id).expect("b listed");
    assert!(
        info.connections.iter().any(|c| c.relayed),
        "{:?}",
        info.connections
    );
    assert!(
        info.connections.iter().any(|c| !c.relayed),
        "{:?}",
        info.connections
    );
    // The peer as a whole is reached directly, at the direct address.
    assert!(!info.relayed);
    assert!(
        !info
            .address
            .iter()
            .any(|p| matches!(p, Protocol::P2pCircuit)),
        "{}",
        info.address
    );
    for n in [a, b] {
        n.shutdown().await.unwrap();
    }
}
