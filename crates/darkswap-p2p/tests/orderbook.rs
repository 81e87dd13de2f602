//! Orderbook replication between real nodes: signed orders, updates and
//! cancels travel on `darkswap/orderbook/v1`, late joiners sync over
//! `/darkswap/orderbook-sync/1.0.0`, only makers cancel or update, and the
//! orders of a maker that went away drop out after the TTL.

use std::time::Duration;

use darkswap_p2p::{
    Keypair, Network, NetworkConfig, NetworkEvent, ORDERBOOK_TOPIC, OrderChanges, OrderbookChange,
    OrderbookCommandError, OrderbookConfig, OrderbookError, PeerId,
};
use darkswap_proto::{Asset, Message, NewOrder, Order, OrderCancel, OrderId, PRICE_SCALE, Side};
use darkswap_testkit::{EVENT_TIMEOUT, spawn_node, test_config, wait_for};
use darkswap_testkit::{now, wait_subscribed};

fn pair() -> (Asset, Asset) {
    ("rune:840000:3".parse().unwrap(), Asset::Btc)
}

fn new_order(side: Side, price: u64, nonce: u64) -> NewOrder {
    let now = now();
    NewOrder {
        side,
        base: pair().0,
        quote: pair().1,
        amount: 1_000,
        price,
        created_at: now,
        expires_at: now + 600,
        nonce,
    }
}

/// Has `net` sign and publish an order; returns it as its book holds it.
async fn create(net: &Network, side: Side, price: u64, nonce: u64) -> Order {
    let (order, _) = net
        .orderbook()
        .create(new_order(side, price, nonce))
        .await
        .expect("create order");
    order
}

async fn wait_added(net: &mut Network, id: OrderId) {
    wait_for(net, &format!("order {id} added"), EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::OrderbookChanged(OrderbookChange::Added(o)) if o.id == id)
            .then_some(())
    })
    .await
}

async fn wait_cancelled(net: &mut Network, id: OrderId) {
    wait_for(net, &format!("order {id} cancelled"), EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::OrderbookChanged(OrderbookChange::Cancelled { order_id, .. }) if *order_id == id)
            .then_some(())
    })
    .await
}

/// Whether `net` adds order `id` within `limit`.
async fn added_within(net: &mut Network, id: OrderId, limit: Duration) -> bool {
    tokio::time::timeout(limit, async {
        while let Some(e) = net.next_event().await {
            if matches!(e, NetworkEvent::OrderbookChanged(OrderbookChange::Added(o)) if o.id == id)
            {
                return;
            }
        }
    })
    .await
    .is_ok()
}

async fn connected_pair(config: impl Fn() -> NetworkConfig) -> (Network, Network) {
    let (mut a, a_addr) = spawn_node(config()).await;
    let (mut b, _) = spawn_node(config()).await;
    let (a_id, b_id): (PeerId, PeerId) = (a.local_peer_id(), b.local_peer_id());
    b.dial(a_addr).await.unwrap();
    wait_subscribed(&mut a, b_id).await;
    wait_subscribed(&mut b, a_id).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_replicate_and_cancels_propagate() {
    let (a, mut b) = connected_pair(test_config).await;
    let order = create(&a, Side::Sell, 3 * PRICE_SCALE, 1).await;
    assert_eq!(order.maker, a.local_peer_id());
    wait_added(&mut b, order.id).await;
    let book = b.orderbook().book(pair().0, pair().1).await.unwrap();
    assert_eq!(
        book.asks.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![order.id]
    );
    assert_eq!(
        a.orderbook().book(pair().0, pair().1).await.unwrap(),
        book,
        "same book on both nodes"
    );
    assert_eq!(a.orderbook().own_orders().await.unwrap().len(), 1);

    // Only the maker's node can cancel through the API...
    assert!(matches!(
        b.orderbook().cancel(order.id).await,
        Err(OrderbookCommandError::NotOwnOrder(_))
    ));
    // ...and the maker's cancel propagates.
    a.orderbook().cancel(order.id).await.unwrap();
    wait_cancelled(&mut b, order.id).await;
    assert!(
        b.orderbook()
            .book(pair().0, pair().1)
            .await
            .unwrap()
            .asks
            .is_empty()
    );
    assert!(a.orderbook().own_orders().await.unwrap().is_empty());

    // Invalid terms never leave the node.
    let bad = NewOrder {
        amount: 0,
        ..new_order(Side::Buy, 1, 2)
    };
    assert!(matches!(
        a.orderbook().create(bad).await,
        Err(OrderbookCommandError::Refused(_))
    ));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_signed_by_someone_else_is_refused() {
    let key_b = Keypair::generate_ed25519();
    let with_b_key = || test_config().with_identity(darkswap_p2p::Identity::Keypair(key_b.clone()));
    let (mut a, a_addr) = spawn_node(test_config()).await;
    let (mut b, _) = spawn_node(with_b_key()).await;
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    b.dial(a_addr).await.unwrap();
    wait_subscribed(&mut a, b_id).await;
    // b may only publish once it knows a is on the topic.
    wait_subscribed(&mut b, a_id).await;
    let order = create(&a, Side::Buy, PRICE_SCALE, 1).await;

    // b signs a cancel of a's order with its own (valid) key and gossips it.
    let forged = Message::OrderCancel(OrderCancel::sign(order.id, now(), &key_b).unwrap());
    b.publish(ORDERBOOK_TOPIC, &forged).await.unwrap();
    let error = wait_for(
        &mut a,
        "forged cancel refused",
        EVENT_TIMEOUT,
        |e| match e {
            NetworkEvent::OrderbookRejected { peer_id, error } if *peer_id == b_id => {
                Some(error.clone())
            }
            _ => None,
        },
    )
    .await;
    assert_eq!(error, OrderbookError::NotMaker);
    assert_eq!(
        a.orderbook()
            .book(pair().0, pair().1)
            .await
            .unwrap()
            .bids
            .len(),
        1,
        "order still there"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_the_whole_book_by_sync() {
    let (a, mut b) = connected_pair(test_config).await;
    let o1 = create(&a, Side::Sell, 5 * PRICE_SCALE, 1).await;
    let o2 = create(&b, Side::Buy, 4 * PRICE_SCALE, 2).await;
    let cancelled = create(&a, Side::Sell, 6 * PRICE_SCALE, 3).await;
    wait_added(&mut b, cancelled.id).await;
    a.orderbook().cancel(cancelled.id).await.unwrap();
    wait_cancelled(&mut b, cancelled.id).await;

    // c joins later, knowing only b (no Kademlia: a DHT walk could reach a
    // first, and the sync from b would then find nothing new).
    let (mut c, _) = spawn_node(test_config().with_kad(false)).await;
    let b_addr = b.listen_addrs().await.unwrap()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(b.local_peer_id()));
    c.dial(b_addr).await.unwrap();
    let b_id = b.local_peer_id();
    let changes = wait_for(&mut c, "sync from b", EVENT_TIMEOUT, |e| match e {
        NetworkEvent::OrderbookSynced {
            peer_id,
            changes,
            rejected,
            ..
        } if *peer_id == b_id && rejected.is_empty() => Some(*changes),
        _ => None,
    })
    .await;
    assert_eq!(
        changes, 2,
        "both open orders, and the cancelled one not resurrected"
    );
    let book = c.orderbook().book(pair().0, pair().1).await.unwrap();
    assert_eq!(book, b.orderbook().book(pair().0, pair().1).await.unwrap());
    assert_eq!((book.asks[0].id, book.bids[0].id), (o1.id, o2.id));
    for n in [a, b, c] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_maker_keeps_its_orders_and_a_gone_one_loses_them() {
    let ttl = Duration::from_secs(2);
    let config = || {
        test_config().with_orderbook(OrderbookConfig {
            refresh_interval: Duration::from_millis(500),
            ttl,
            ..Default::default()
        })
    };
    let (a, mut b) = connected_pair(config).await;
    let a_id = a.local_peer_id();
    let order = create(&a, Side::Sell, PRICE_SCALE, 1).await;
    wait_added(&mut b, order.id).await;

    // Re-announcements keep it in b's book well past the TTL.
    let start = std::time::Instant::now();
    while start.elapsed() < ttl * 2 {
        wait_for(&mut b, "re-announcement", EVENT_TIMEOUT, |e| match e {
            NetworkEvent::OrderbookChanged(OrderbookChange::Expired(ids))
                if ids.contains(&order.id) =>
            {
                panic!("a live maker's order expired")
            }
            NetworkEvent::MessageReceived { peer_id, .. } if *peer_id == a_id => Some(()),
            _ => None,
        })
        .await;
    }
    assert_eq!(
        b.orderbook()
            .book(pair().0, pair().1)
            .await
            .unwrap()
            .asks
            .len(),
        1
    );

    // The maker goes away (saying so: its `Disconnect`; a maker that
    // vanishes without a word drops out after the TTL, see the daemon test
    // `a_restarted_daemon_keeps_the_book_and_a_dead_makers_orders_drop_out`).
    a.shutdown().await.unwrap();
    wait_for(&mut b, "ghost order dropped", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::OrderbookChanged(OrderbookChange::Expired(ids)) if ids.contains(&order.id))
            .then_some(())
    })
    .await;
    assert!(
        b.orderbook()
            .book(pair().0, pair().1)
            .await
            .unwrap()
            .asks
            .is_empty()
    );
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_that_shuts_down_takes_its_orders_off_every_book_at_once() {
    // a — b — c: c hears of a's departure only through b's forwarding.
    // Default refresh and TTL, so nothing but the `Disconnect` drops it.
    // c runs without Kademlia, so it knows only b: a DHT walk would find a.
    let (a, mut b) = connected_pair(test_config).await;
    let (mut c, _) = spawn_node(test_config().with_kad(false)).await;
    let b_addr = b.listen_addrs().await.unwrap()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(b.local_peer_id()));
    c.dial(b_addr).await.unwrap();
    wait_subscribed(&mut c, b.local_peer_id()).await;
    let a_id = a.local_peer_id();
    let kept = create(&b, Side::Buy, PRICE_SCALE / 2, 100).await;
    wait_added(&mut c, kept.id).await;
    // b forwards a's messages to c once c is in b's mesh (b's next
    // heartbeat after c subscribed): until one of a's orders reaches c,
    // a makes another.
    let mut orders = Vec::new();
    loop {
        let order = create(&a, Side::Sell, PRICE_SCALE, orders.len() as u64 + 1).await;
        orders.push(order.id);
        wait_added(&mut b, order.id).await;
        if added_within(&mut c, order.id, Duration::from_secs(2)).await {
            break;
        }
        assert!(orders.len() < 10, "b never forwarded a's orders to c");
    }
    orders.sort();

    a.shutdown().await.unwrap();
    for net in [&mut b, &mut c] {
        wait_for(net, "the leaving maker's orders dropped", EVENT_TIMEOUT, |e| {
            matches!(e, NetworkEvent::OrderbookChanged(OrderbookChange::Expired(ids)) if ids == &orders)
                .then_some(())
        })
        .await;
        let book = net.orderbook().book(pair().0, pair().1).await.unwrap();
        assert!(book.asks.is_empty(), "{book:?}");
        assert_eq!(
            book.bids.iter().map(|o| o.id).collect::<Vec<_>>(),
            vec![kept.id],
            "the others' orders stay"
        );
    }
    assert!(!b.connected_peers().await.unwrap().contains(&a_id));
    for n in [b, c] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_orders_come_back_and_foreign_ones_are_refused() {
    let key = Keypair::generate_ed25519();
    let config = || test_config().with_identity(darkswap_p2p::Identity::Keypair(key.clone()));
    let first = Network::new(config()).await.unwrap();
    let order = create(&first, Side::Buy, PRICE_SCALE, 7).await;
    let saved: Vec<_> = first
        .orderbook()
        .own_orders()
        .await
        .unwrap()
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    first.shutdown().await.unwrap();

    // Same identity after a restart: the saved orders are its own again.
    let second = Network::new(config()).await.unwrap();
    let results = second.orderbook().restore(saved.clone()).await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].as_ref().unwrap().id, order.id);
    assert_eq!(second.orderbook().own_orders().await.unwrap().len(), 1);
    // Another node cannot adopt them.
    let other = Network::new(test_config()).await.unwrap();
    assert!(matches!(
        other.orderbook().restore(saved).await.unwrap()[0],
        Err(OrderbookCommandError::NotOwnOrder(_))
    ));
    second.shutdown().await.unwrap();
    other.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_book_imports_elsewhere_under_the_same_rules() {
    let (a, mut b) = connected_pair(test_config).await;
    let kept = create(&a, Side::Sell, 3 * PRICE_SCALE, 1).await;
    let cancelled = create(&a, Side::Buy, PRICE_SCALE, 2).await;
    wait_added(&mut b, cancelled.id).await;
    a.orderbook().cancel(cancelled.id).await.unwrap();
    wait_cancelled(&mut b, cancelled.id).await;
    let saved = b.orderbook().export().await.unwrap();
    assert_eq!((saved.orders.len(), saved.cancels.len()), (1, 1));

    // A node that never met a takes the saved book: same book, and the
    // cancel keeps the cancelled order out.
    let (c, _) = spawn_node(test_config()).await;
    let (changes, rejected) = c.orderbook().import(saved.clone()).await.unwrap();
    assert_eq!((changes, rejected.len()), (1, 0));
    assert_eq!(
        c.orderbook().book(pair().0, pair().1).await.unwrap(),
        b.orderbook().book(pair().0, pair().1).await.unwrap()
    );
    assert_eq!(
        c.orderbook().book(pair().0, pair().1).await.unwrap().asks[0].id,
        kept.id
    );
    // Importing again changes nothing.
    assert_eq!(
        c.orderbook().import(saved.clone()).await.unwrap(),
        (0, vec![])
    );

    // A tampered entry is refused, not imported.
    let (d, _) = spawn_node(test_config()).await;
    let mut forged = saved;
    forged.cancels.clear();
    forged.orders[0].order.as_mut().unwrap().signature[0] ^= 1;
    let (changes, rejected) = d.orderbook().import(forged).await.unwrap();
    assert_eq!(changes, 0);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].reason(), "bad_signature");
    assert!(
        d.orderbook()
            .book(pair().0, pair().1)
            .await
            .unwrap()
            .asks
            .is_empty()
    );
    for n in [a, b, c, d] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_makers_update_replicates_and_others_are_refused_by_kind() {
    let (a, mut b) = connected_pair(test_config).await;
    let order = create(&a, Side::Sell, 3 * PRICE_SCALE, 1).await;
    wait_added(&mut b, order.id).await;

    let changes = OrderChanges::default()
        .with_amount(400)
        .with_price(2 * PRICE_SCALE);
    let (now, update) = a.orderbook().update(order.id, changes).await.unwrap();
    assert_eq!((now.amount, now.price), (400, 2 * PRICE_SCALE));
    assert_eq!(update.verify().unwrap().fields.sequence, 1);
    let seen = wait_for(&mut b, "the update on b", EVENT_TIMEOUT, |e| match e {
        NetworkEvent::OrderbookChanged(OrderbookChange::Updated(o)) if o.id == order.id => {
            Some(o.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(seen, now);
    assert_eq!(
        b.orderbook().book(pair().0, pair().1).await.unwrap().asks,
        vec![now]
    );

    let one = OrderChanges::default().with_amount(1);
    assert_eq!(
        b.orderbook().update(order.id, one).await,
        Err(OrderbookCommandError::NotOwnOrder(order.id)),
        "only the maker's node updates"
    );
    assert!(matches!(
        a.orderbook()
            .update(order.id, OrderChanges::default().with_price(0))
            .await,
        Err(OrderbookCommandError::Refused(OrderbookError::Invalid(_)))
    ));
    assert!(matches!(
        a.orderbook()
            .update(
                order.id,
                OrderChanges::default().with_expires_at(order.expires_at + 60)
            )
            .await,
        Err(OrderbookCommandError::ExpiryBeyondSigned { .. })
    ));
    a.orderbook().cancel(order.id).await.unwrap();
    assert_eq!(
        a.orderbook().update(order.id, one).await,
        Err(OrderbookCommandError::Refused(OrderbookError::Cancelled(
            order.id
        )))
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
