//! A partition heals by itself: two nodes that reach each other only
//! through a relay drop apart when it dies; when it is back, the node that
//! lost its peer redials it and their books are reconciled, so an order
//! made during the outage arrives.

use darkswap_p2p::{Network, NetworkEvent, OrderbookChange};
use darkswap_proto::{Asset, NewOrder, PRICE_SCALE, Side};
use darkswap_testkit::{EVENT_TIMEOUT, TestRelay, now, test_config, wait_for, wait_subscribed};
use libp2p::multiaddr::Protocol;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_made_while_the_relay_was_down_arrives_once_it_is_back() {
    let relay = TestRelay::spawn().await;
    let (relay_key, relay_socket, relay_id) =
        (relay.keypair.clone(), relay.socket_addr(), relay.peer_id);
    // a listens nowhere but its circuit; b listens nowhere and only dials.
    // No Kademlia: its walks would dial a now and then, and this is about
    // the node redialling the peers it lost.
    let config = || test_config().with_kad(false);
    let mut a = Network::new(config().with_relay_peers(vec![relay.addr.clone()]))
        .await
        .unwrap();
    let a_id = a.local_peer_id();
    wait_for(&mut a, "RelayReserved", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::RelayReserved { relay_peer_id, .. } if *relay_peer_id == relay_id)
            .then_some(())
    })
    .await;
    let mut b = Network::new(config().with_auto_relay(false)).await.unwrap();
    let circuit = relay
        .addr
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(a_id));
    assert_eq!(b.dial(circuit).await.unwrap(), a_id);
    wait_subscribed(&mut b, a_id).await;
    wait_subscribed(&mut a, b.local_peer_id()).await;

    relay.stop().await;
    wait_for(&mut b, "a lost", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::PeerDisconnected(p) if *p == a_id).then_some(())
    })
    .await;
    let t = now();
    let (order, _) = b
        .orderbook()
        .create(NewOrder {
            side: Side::Sell,
            base: Asset::Btc,
            quote: "rune:840000:3".parse().unwrap(),
            amount: 5_000,
            price: PRICE_SCALE,
            created_at: t,
            expires_at: t + 3600,
            nonce: 1,
        })
        .await
        .unwrap();

    let _relay = TestRelay::spawn_with(relay_key, relay_socket).await;
    // Nobody is told to reconnect: b redials a through the relay once a
    // holds its reservation again (b's redials are at most 2 s apart in
    // test_config; the default doubles to 30 s, which could outlast the
    // wait), and the sync on subscription brings the order over.
    wait_for(&mut a, "the order made during the outage", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::OrderbookChanged(OrderbookChange::Added(o)) if o.id == order.id)
            .then_some(())
    })
    .await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
