//! Orderbook sync at market size, between real nodes on loopback: a late
//! joiner gets the whole book whatever its size, nodes that were apart
//! exchange what differs rather than the book, anti-entropy repairs what
//! gossip never carried, and ten makers' burst ends in the same book on
//! every node.

use std::{collections::HashSet, time::Duration};

use darkswap_p2p::{
    Network, NetworkConfig, NetworkEvent, ORDERBOOK_TOPIC, OrderbookChange, PeerId, SyncConfig,
};
use darkswap_proto::{
    Asset, Message, NewOrder, OrderCreate, OrderId, OrderbookResponse, PRICE_SCALE, Side,
};
use darkswap_testkit::{now, signed_creates, spawn_node, test_config, wait_for, wait_subscribed};

/// Room for every change event of a large sync, so that the one event a
/// test waits for is never the one dropped from a full queue.
const EVENTS: usize = 1 << 18;

/// Bound on a sync of 100,000 orders (each verified once, on a busy
/// 2-core machine).
const LARGE_SYNC_TIMEOUT: Duration = Duration::from_secs(180);

fn config() -> NetworkConfig {
    test_config()
        .with_event_buffer(EVENTS)
        .with_connection_timeout(Duration::from_secs(60))
}

/// Bytes of the creates as gossip would carry them.
fn encoded_size(creates: &[OrderCreate]) -> u64 {
    creates
        .iter()
        .map(|c| darkswap_proto::encode(&Message::OrderCreate(c.clone())).len() as u64)
        .sum()
}

/// Puts `creates` into `net`'s book without gossiping them (as a restart
/// restores a stored book).
async fn import(net: &Network, creates: &[OrderCreate]) {
    for chunk in creates.chunks(5_000) {
        let (changes, rejected) = net
            .orderbook()
            .import(OrderbookResponse {
                orders: chunk.to_vec(),
                ..Default::default()
            })
            .await
            .expect("import");
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(changes, chunk.len());
    }
}

/// The ids of the orders in `net`'s book.
async fn book_ids(net: &Network) -> HashSet<OrderId> {
    let book = net.orderbook().export().await.expect("export");
    book.orders
        .iter()
        .map(|c| c.order.as_ref().expect("an order").id())
        .collect()
}

/// Waits for the end of a reconciliation with `peer`; returns its changes
/// and bytes.
async fn wait_synced(net: &mut Network, peer: PeerId, timeout: Duration) -> (usize, u64) {
    wait_for(net, &format!("sync with {peer}"), timeout, |e| match e {
        NetworkEvent::OrderbookSynced {
            peer_id,
            changes,
            rejected,
            bytes,
        } if *peer_id == peer => {
            assert!(rejected.is_empty(), "refused: {rejected:?}");
            Some((*changes, *bytes))
        }
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_all_100_000_orders() {
    let creates = signed_creates(100 * 1_000, 1_000);
    let (a, a_addr) = spawn_node(config()).await;
    import(&a, &creates).await;
    let (mut b, _) = spawn_node(config()).await;
    b.dial(a_addr).await.unwrap();
    let (changes, bytes) = wait_synced(&mut b, a.local_peer_id(), LARGE_SYNC_TIMEOUT).await;
    assert_eq!(changes, 100_000, "the whole book, not a capped snapshot");
    assert_eq!(book_ids(&b).await, book_ids(&a).await);
    // Besides the orders: each item's 32-byte id once in the answer's id
    // lists and once in a fetch (64 bytes on ~200 an order), a few
    // fingerprints and the framing. Within 40 % of the orders themselves.
    let orders = encoded_size(&creates);
    assert!(
        bytes >= orders && bytes <= orders + orders * 2 / 5,
        "{bytes} bytes exchanged for {orders} bytes of orders"
    );
    for n in [a, b] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_were_apart_exchange_what_differs_not_the_book() {
    let common = signed_creates(10 * 1_000, 1_000);
    let only_a = signed_creates(100, 100);
    let only_b = signed_creates(50, 50);
    let (mut a, a_addr) = spawn_node(config()).await;
    let (mut b, _) = spawn_node(config()).await;
    for (net, own) in [(&a, &only_a), (&b, &only_b)] {
        import(net, &common).await;
        import(net, own).await;
    }
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    b.dial(a_addr).await.unwrap();
    // Each side reconciles as the other joins.
    let (to_b, b_bytes) = wait_synced(&mut b, a_id, Duration::from_secs(60)).await;
    let (to_a, a_bytes) = wait_synced(&mut a, b_id, Duration::from_secs(60)).await;
    assert_eq!((to_b, to_a), (100, 50));
    assert_eq!(book_ids(&a).await.len(), 10_150);
    assert_eq!(book_ids(&a).await, book_ids(&b).await);
    // What crossed is about the 150 orders that differ: nowhere near the
    // 10,000 both had.
    let differ = encoded_size(&only_a).max(encoded_size(&only_b));
    let book = encoded_size(&common);
    for bytes in [a_bytes, b_bytes] {
        assert!(
            bytes < differ + book / 20,
            "{bytes} bytes to reconcile {differ} bytes of differences over a {book}-byte book"
        );
    }
    for n in [a, b] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anti_entropy_repairs_what_gossip_never_carried() {
    let config = || {
        config()
            .with_sync(SyncConfig::default().with_anti_entropy_interval(Duration::from_millis(500)))
    };
    let (mut a, a_addr) = spawn_node(config()).await;
    let (mut b, _) = spawn_node(config()).await;
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    b.dial(a_addr).await.unwrap();
    wait_subscribed(&mut a, b_id).await;
    wait_subscribed(&mut b, a_id).await;
    // Orders a holds that were never gossiped: only anti-entropy brings
    // them to b.
    let missed = signed_creates(2 * 300, 300);
    import(&a, &missed).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut repaired = 0;
    while repaired < missed.len() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        repaired += wait_synced(&mut b, a_id, left).await.0;
    }
    assert_eq!(repaired, 600);
    assert_eq!(book_ids(&b).await, book_ids(&a).await);
    for n in [a, b] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_makers_burst_and_every_node_ends_with_the_same_book() {
    const MAKERS: usize = 10;
    const PER_MAKER: u64 = 1_000;
    let config = || {
        config().with_sync(SyncConfig::default().with_anti_entropy_interval(Duration::from_secs(2)))
    };
    let (mut hub, hub_addr) = spawn_node(config()).await;
    let mut makers = Vec::new();
    for _ in 0..MAKERS {
        let (mut maker, _) = spawn_node(config()).await;
        maker.dial(hub_addr.clone()).await.unwrap();
        wait_subscribed(&mut maker, hub.local_peer_id()).await;
        wait_subscribed(&mut hub, maker.local_peer_id()).await;
        makers.push(maker);
    }
    // Every maker publishes its thousand orders as fast as it can, all at
    // once.
    let now = now();
    let bursts = makers.iter().map(|maker| async move {
        for nonce in 0..PER_MAKER {
            maker
                .orderbook()
                .create(NewOrder {
                    side: Side::Sell,
                    base: "rune:840000:3".parse().unwrap(),
                    quote: Asset::Btc,
                    amount: 1_000 + nonce,
                    price: 25 * PRICE_SCALE,
                    created_at: now,
                    expires_at: now + 3600,
                    nonce,
                })
                .await
                .expect("create");
        }
    });
    futures::future::join_all(bursts).await;
    // Every node's book reaches all 10,000 orders, whatever gossip dropped
    // on the way.
    let total = MAKERS * PER_MAKER as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    for (i, net) in std::iter::once(&mut hub)
        .chain(makers.iter_mut())
        .enumerate()
    {
        // How this node's orders came (by gossip, or else repaired by
        // reconciliation), and the gossip it could not send, by reason, as
        // far as its events were read by the time its book was complete.
        let others = if i == 0 {
            total
        } else {
            total - PER_MAKER as usize
        };
        let (mut by_gossip, mut dropped) = (0, 0);
        loop {
            let missing = total - book_ids(net).await.len();
            if missing == 0 {
                break;
            }
            // Additions already queued count too, so this may look again
            // early, never late.
            for _ in 0..missing {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                wait_for(net, "more orders", left, |e| match e {
                    NetworkEvent::OrderbookChanged(OrderbookChange::Added(_)) => Some(()),
                    NetworkEvent::MessageReceived { topic, .. } if topic == ORDERBOOK_TOPIC => {
                        by_gossip += 1;
                        None
                    }
                    NetworkEvent::GossipDropped { messages, .. } => {
                        dropped += messages;
                        None
                    }
                    NetworkEvent::EventsDropped { count } => {
                        panic!("{count} events dropped: the count would be wrong")
                    }
                    _ => None,
                })
                .await;
            }
        }
        let by_gossip = by_gossip.min(others);
        eprintln!(
            "node {i}: of {others} others' orders {by_gossip} came by gossip, {} by reconciliation; it dropped {dropped} messages to slow peers",
            others - by_gossip
        );
    }
    let reference = book_ids(&hub).await;
    assert_eq!(reference.len(), total);
    for maker in &makers {
        let book = book_ids(maker).await;
        assert!(
            book == reference,
            "a maker holds {} orders, {} of them not the hub's, and lacks {} of the hub's",
            book.len(),
            book.difference(&reference).count(),
            reference.difference(&book).count()
        );
    }
    hub.shutdown().await.unwrap();
    for maker in makers {
        maker.shutdown().await.unwrap();
    }
}
