//! Circuit relay v2: a node reachable only through a relay reserves a slot,
//! is reached through the circuit, exchanges gossip, and keeps its
//! reservation across a relay restart. DCUtR then upgrades to direct.

mod common;

use common::*;
use darkswap_p2p::{
    Identity, Keypair, Network, NetworkConfig, NetworkEvent, ORDERBOOK_TOPIC, PeerId,
};
use darkswap_testkit::{EVENT_TIMEOUT, TestRelay, spawn_node, test_config, wait_for};
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
    let mut b = Network::new(NetworkConfig {
        relay_peers: vec![relay.addr.clone()],
        identity: Identity::Keypair(key_b.clone()),
        ..test_config()
    })
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
    let mut a = Network::new(NetworkConfig {
        identity: Identity::Keypair(key_a.clone()),
        ..test_config()
    })
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

    wait_subscribed(&mut a, b_id).await;
    wait_subscribed(&mut b, a_id).await;
    let from_a = order_message(&key_a, 1);
    a.publish(ORDERBOOK_TOPIC, &from_a).await.unwrap();
    assert_eq!(wait_message(&mut b, a_id, ORDERBOOK_TOPIC).await, from_a);
    let from_b = order_message(&key_b, 2);
    b.publish(ORDERBOOK_TOPIC, &from_b).await.unwrap();
    assert_eq!(wait_message(&mut a, b_id, ORDERBOOK_TOPIC).await, from_b);

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
    let mut b = Network::new(NetworkConfig {
        relay_peers: vec![relay_addr.clone()],
        ..test_config()
    })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcutr_upgrades_a_relayed_connection_on_loopback() {
    let relay = TestRelay::spawn().await;
    // Both nodes listen on loopback, so their observed addresses are dialable
    // and the hole punch can succeed; b is dialled only through the relay.
    let (mut b, _) = spawn_node(NetworkConfig {
        relay_peers: vec![relay.addr.clone()],
        ..test_config()
    })
    .await;
    let b_id = b.local_peer_id();
    wait_reserved(&mut b, relay.peer_id).await;
    let (mut a, _) = spawn_node(test_config()).await;
    a.dial(
        relay
            .addr
            .clone()
            .with(Protocol::P2pCircuit)
            .with(Protocol::P2p(b_id)),
    )
    .await
    .unwrap();
    let result = wait_for(&mut a, "hole punch result", EVENT_TIMEOUT, |e| match e {
        NetworkEvent::HolePunchSucceeded { peer_id } if *peer_id == b_id => Some(Ok(())),
        NetworkEvent::HolePunchFailed { peer_id, error } if *peer_id == b_id => {
            Some(Err(error.clone()))
        }
        _ => None,
    })
    .await;
    assert_eq!(result, Ok(()), "hole punch on loopback should succeed");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
