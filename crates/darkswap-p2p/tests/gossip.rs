//! Two real nodes on 127.0.0.1 exchange DarkSwap gossip both ways.

use darkswap_p2p::{Error, Identity, Keypair, NetworkConfig, ORDERBOOK_TOPIC, TRADE_TOPIC};
use darkswap_proto::{Message, OrderCreate, TradeAccept};
use darkswap_testkit::{order_message, wait_message, wait_subscribed};
use darkswap_testkit::{spawn_node, test_config};

fn config_with(key: &Keypair) -> NetworkConfig {
    test_config().with_identity(Identity::Keypair(key.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_gossip_both_ways() {
    let (key_a, key_b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (mut a, a_addr) = spawn_node(config_with(&key_a)).await;
    let (mut b, _) = spawn_node(config_with(&key_b)).await;
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());

    assert_eq!(b.dial(a_addr).await.unwrap(), a_id);
    wait_subscribed(&mut a, b_id).await;
    wait_subscribed(&mut b, a_id).await;
    assert_eq!(a.connected_peers().await.unwrap(), vec![b_id]);
    let peers = b.peers().await.unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!((peers[0].peer_id, peers[0].relayed), (a_id, false));

    // a → b: a signed order on the orderbook topic.
    let order = order_message(&key_a, 1);
    a.publish(ORDERBOOK_TOPIC, &order).await.unwrap();
    assert_eq!(wait_message(&mut b, a_id, ORDERBOOK_TOPIC).await, order);

    // b → a: an order of b's, then its fill notice on the trade topic
    // (filled whole: a cancel).
    let order_b = order_message(&key_b, 2);
    b.publish(ORDERBOOK_TOPIC, &order_b).await.unwrap();
    assert_eq!(wait_message(&mut a, b_id, ORDERBOOK_TOPIC).await, order_b);
    let Message::OrderCreate(OrderCreate {
        order: Some(signed_b),
        ..
    }) = &order_b
    else {
        unreachable!()
    };
    let filled = Message::OrderCancel(
        darkswap_p2p::proto::OrderCancel::sign(signed_b.id(), unix_now(), &key_b).unwrap(),
    );
    b.publish(TRADE_TOPIC, &filled).await.unwrap();
    assert_eq!(wait_message(&mut a, b_id, TRADE_TOPIC).await, filled);
    // A trade step is not gossip.
    let accept = Message::TradeAccept(TradeAccept {
        trade_id: vec![7; 16],
        offer: None,
    });
    assert!(matches!(
        b.publish(TRADE_TOPIC, &accept).await,
        Err(Error::InvalidMessage(_))
    ));

    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_refuses_what_receivers_would_reject() {
    let key = Keypair::generate_ed25519();
    let (a, _) = spawn_node(config_with(&key)).await;

    // Not an orderbook message.
    let accept = Message::TradeAccept(TradeAccept {
        trade_id: vec![1; 16],
        offer: None,
    });
    assert!(matches!(
        a.publish(ORDERBOOK_TOPIC, &accept).await,
        Err(Error::InvalidMessage(_))
    ));
    // A tampered order.
    let Message::OrderCreate(OrderCreate {
        order: Some(mut order),
        ..
    }) = order_message(&key, 1)
    else {
        unreachable!()
    };
    order.signature[0] ^= 1;
    let forged = Message::OrderCreate(OrderCreate::from_order(order));
    assert!(matches!(
        a.publish(ORDERBOOK_TOPIC, &forged).await,
        Err(Error::InvalidMessage(_))
    ));
    // Valid, but nobody to send it to.
    assert!(matches!(
        a.publish(ORDERBOOK_TOPIC, &order_message(&key, 2)).await,
        Err(Error::Gossipsub(_))
    ));
    // Bad topics and addresses are typed errors.
    assert!(matches!(a.subscribe(""), Err(Error::InvalidTopic(_))));
    assert!(matches!(
        a.dial("not a multiaddr").await,
        Err(Error::InvalidAddress { .. })
    ));
    a.shutdown().await.unwrap();
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}
