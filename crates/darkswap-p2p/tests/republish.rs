//! Re-announcements go out in the background: a refresh of many own orders
//! is paced, and a cancel made while it trickles out reaches peers at once,
//! ahead of the rest of the burst (seed 002's prioritisation).

use std::time::Duration;

use darkswap_p2p::{NetworkEvent, ORDERBOOK_TOPIC, OrderbookChange, OrderbookConfig};
use darkswap_proto::{Asset, Message, NewOrder, PRICE_SCALE, Side, decode};
use darkswap_testkit::{
    EVENT_TIMEOUT, RawGossip, now, spawn_node, test_config, wait_for, wait_subscribed,
};

const ORDERS: u64 = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_made_before_any_peer_subscribed_goes_to_the_first_that_does() {
    // The refresh is an hour away: only the kept message can bring it.
    let (maker, maker_addr) = spawn_node(test_config().with_orderbook(OrderbookConfig {
        refresh_interval: Duration::from_secs(3600),
        ..OrderbookConfig::default()
    }))
    .await;
    let t = now();
    let (order, _) = maker
        .orderbook()
        .create(NewOrder {
            side: Side::Sell,
            base: Asset::Btc,
            quote: "rune:1:0".parse().unwrap(),
            amount: 1_000,
            price: PRICE_SCALE,
            created_at: t,
            expires_at: t + 3600,
            nonce: 1,
        })
        .await
        .unwrap();
    // A peer without sync of its own: what it gets came by gossip.
    let mut peer = RawGossip::new(&[ORDERBOOK_TOPIC]);
    peer.connect(&[maker_addr], &[maker.local_peer_id()], ORDERBOOK_TOPIC)
        .await;
    let data = peer.next_message(ORDERBOOK_TOPIC).await;
    match decode(&data).unwrap() {
        Message::OrderCreate(create) => assert_eq!(create.order.unwrap().id(), order.id),
        other => panic!("expected the order's create, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_made_during_a_refresh_reaches_a_peer_ahead_of_the_burst() {
    // 150 orders re-announced 5 per 100 ms: a refresh takes 3 s.
    let refresh = Duration::from_secs(3);
    let maker_config = test_config()
        .with_orderbook(OrderbookConfig {
            refresh_interval: refresh,
            ttl: Duration::from_secs(600),
            ..OrderbookConfig::default()
        })
        .with_republish_per_tick(5);
    let (maker, maker_addr) = spawn_node(maker_config).await;
    let (mut peer, _) = spawn_node(test_config().with_event_buffer(1 << 14)).await;
    peer.dial(maker_addr).await.unwrap();
    wait_subscribed(&mut peer, maker.local_peer_id()).await;
    let t = now();
    let mut ids = Vec::new();
    for nonce in 0..ORDERS {
        let order = NewOrder {
            side: Side::Sell,
            base: Asset::Btc,
            quote: "rune:1:0".parse().unwrap(),
            amount: 1_000 + nonce,
            price: PRICE_SCALE,
            created_at: t,
            expires_at: t + 3600,
            nonce,
        };
        ids.push(maker.orderbook().create(order).await.unwrap().0.id);
    }
    let mut added = 0;
    wait_for(&mut peer, "every order on the peer", EVENT_TIMEOUT, |e| {
        if matches!(e, NetworkEvent::OrderbookChanged(OrderbookChange::Added(_))) {
            added += 1;
        }
        (added == ORDERS).then_some(())
    })
    .await;

    // The refresh begins: the peer sees the first re-announcement (every
    // create it receives from now on is one: each order's first
    // announcement came before the book change it made).
    let reannounced = |e: &NetworkEvent| {
        matches!(
            e,
            NetworkEvent::MessageReceived {
                message: Message::OrderCreate(_),
                ..
            }
        )
    };
    wait_for(&mut peer, "the refresh", refresh * 3, |e| {
        reannounced(e).then_some(())
    })
    .await;
    let cancelled = *ids.last().unwrap();
    maker.orderbook().cancel(cancelled).await.unwrap();

    // The cancel arrives while the burst still trickles in.
    let mut before = 1;
    wait_for(&mut peer, "the cancel", EVENT_TIMEOUT, |e| {
        if reannounced(e) {
            before += 1;
        }
        matches!(e, NetworkEvent::OrderbookChanged(OrderbookChange::Cancelled { order_id, .. }) if *order_id == cancelled)
            .then_some(())
    })
    .await;
    let mut after = 0;
    wait_for(&mut peer, "the rest of the refresh", EVENT_TIMEOUT, |e| {
        if reannounced(e) {
            after += 1;
        }
        (before + after >= ORDERS - 1).then_some(())
    })
    .await;
    assert!(
        after > ORDERS / 2,
        "the cancel came after {before} of {ORDERS} re-announcements"
    );
}
