use std::collections::BTreeSet;

use darkswap_proto::{
    Message, OrderCancel, OrderCreate, OrderId, OrderUpdate, UpdateFields, identity::Keypair,
};

use super::*;
use crate::{
    fixtures::{NOW, create},
    orderbook::{Holding, OrderbookChange, OrderbookConfig},
    protocols::TRADE_TOPIC,
};

/// A node in memory: its book and its sync.
struct Node {
    id: PeerId,
    book: Orderbook,
    sync: OrderbookSync,
}

impl Node {
    fn new(config: SyncConfig, t0: Instant) -> Self {
        Node {
            id: PeerId::random(),
            book: Orderbook::new(OrderbookConfig {
                max_orders_per_maker: 1_000_000,
                max_orders: 1_000_000,
                ..OrderbookConfig::default()
            }),
            sync: OrderbookSync::new(config, t0),
        }
    }

    fn holdings(&self) -> BTreeSet<(OrderId, String)> {
        self.book
            .holdings()
            .map(|(id, h)| (id, format!("{h:?}")))
            .collect()
    }
}

/// What a drive saw: events and penalties by node index, requests sent.
#[derive(Default)]
struct Seen {
    events: [Vec<NetworkEvent>; 2],
    penalties: [Vec<(PeerId, PenaltyReason)>; 2],
    requests: usize,
}

/// Delivers every request between `a` and `b` and its answer, until
/// neither has anything left to send.
fn drive(a: &mut Node, b: &mut Node) -> Seen {
    let mut seen = Seen::default();
    let weights = PenaltyWeights::default();
    loop {
        let mut idle = true;
        for from in 0..2 {
            let (me, other) = if from == 0 {
                (&mut *a, &mut *b)
            } else {
                (&mut *b, &mut *a)
            };
            while let Some(output) = me.sync.poll_output() {
                idle = false;
                match output {
                    SyncOutput::Request { peer, request } => {
                        assert_eq!(peer, other.id);
                        seen.requests += 1;
                        let answer = other.sync.handle_request(&other.book, me.id, request);
                        match answer {
                            Some(answer) => me.sync.handle_response(
                                &mut me.book,
                                other.id,
                                answer,
                                &weights,
                                NOW,
                            ),
                            None => me.sync.handle_outbound_failure(other.id, SyncFailure::Io),
                        }
                    }
                    SyncOutput::Event(e) => seen.events[from].push(e),
                    SyncOutput::Penalize { peer, reason } => {
                        seen.penalties[from].push((peer, reason))
                    }
                }
            }
        }
        if idle {
            return seen;
        }
    }
}

/// Lets `a` reconcile with `b` by hand, `tamper`ing with every answer of
/// items on the way; returns what `a` output besides requests.
fn drive_tampering(
    a: &mut Node,
    b: &mut Node,
    mut tamper: impl FnMut(&mut OrderbookResponse),
) -> Vec<SyncOutput> {
    let weights = PenaltyWeights::default();
    let mut outputs = Vec::new();
    while let Some(output) = a.sync.poll_output() {
        let SyncOutput::Request { request, .. } = output else {
            outputs.push(output);
            continue;
        };
        let mut answer = b.sync.handle_request(&b.book, a.id, request).unwrap();
        if let SyncResponse::Items(items) = &mut answer {
            tamper(items);
        }
        a.sync
            .handle_response(&mut a.book, b.id, answer, &weights, NOW);
    }
    outputs
}

fn id_of(message: &Message) -> OrderId {
    match message {
        Message::OrderCreate(OrderCreate { order: Some(o), .. }) => o.id(),
        _ => unreachable!(),
    }
}

/// `n` orders by one maker, applied to `book`.
fn fill(book: &mut Orderbook, key: &Keypair, nonces: std::ops::Range<u64>) -> Vec<OrderId> {
    nonces
        .map(|n| {
            let (m, id) = create(key, n);
            book.apply(&m, NOW).unwrap();
            id
        })
        .collect()
}

fn synced(events: &[NetworkEvent]) -> Vec<(usize, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            NetworkEvent::OrderbookSynced { changes, bytes, .. } => Some((*changes, *bytes)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_late_joiner_gets_the_whole_book_however_large() {
    let t0 = Instant::now();
    let (mut a, mut b) = (
        Node::new(SyncConfig::default(), t0),
        Node::new(SyncConfig::default(), t0),
    );
    let key = Keypair::generate_ed25519();
    fill(&mut b.book, &key, 0..5_000);
    a.sync.handle_subscribed(&a.book, b.id, ORDERBOOK_TOPIC);
    let seen = drive(&mut a, &mut b);
    assert_eq!(a.book.len(), 5_000, "more than the old 2,000 cap");
    assert_eq!(a.holdings(), b.holdings());
    let [(changes, bytes)] = synced(&seen.events[0])[..] else {
        panic!("one sync reported: {:?}", seen.events[0].len());
    };
    assert_eq!(changes, 5_000);
    assert!(bytes > 5_000 * 32, "ids and items were counted: {bytes}");
    assert!(seen.penalties.iter().all(Vec::is_empty));
    assert!(!a.sync.is_syncing_with(&b.id));
}

#[test]
fn after_a_partition_both_sides_converge_exchanging_what_differs() {
    let t0 = Instant::now();
    let (mut a, mut b) = (
        Node::new(SyncConfig::default(), t0),
        Node::new(SyncConfig::default(), t0),
    );
    let (ka, kb) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    // 3,000 orders both hold.
    let shared: Vec<Message> = (0..3_000).map(|n| create(&ka, n).0).collect();
    for m in &shared {
        a.book.apply(m, NOW).unwrap();
        b.book.apply(m, NOW).unwrap();
    }
    // Partitioned: each side creates, one cancels, the other updates.
    fill(&mut a.book, &ka, 10_000..10_010);
    fill(&mut b.book, &kb, 20_000..20_010);
    for m in &shared[..5] {
        let cancel = OrderCancel::sign(id_of(m), NOW + 1, &ka).unwrap();
        a.book
            .apply(&Message::OrderCancel(cancel), NOW + 1)
            .unwrap();
    }
    let updated = id_of(&shared[10]);
    let update = OrderUpdate::sign(
        updated,
        UpdateFields {
            sequence: 1,
            amount: 42,
            price: darkswap_proto::PRICE_SCALE,
            expires_at: NOW + 3000,
            updated_at: NOW + 2,
        },
        &ka,
    )
    .unwrap();
    b.book
        .apply(&Message::OrderUpdate(update), NOW + 2)
        .unwrap();
    assert_ne!(a.holdings(), b.holdings());

    // Healed: each reconciles with the other.
    a.sync.handle_subscribed(&a.book, b.id, ORDERBOOK_TOPIC);
    b.sync.handle_subscribed(&b.book, a.id, ORDERBOOK_TOPIC);
    let seen = drive(&mut a, &mut b);
    assert_eq!(a.holdings(), b.holdings(), "both books are the same");
    assert_eq!(a.book.len(), 3_000 - 5 + 20);
    assert_eq!(a.book.get(&updated).unwrap().amount, 42);
    for m in &shared[..5] {
        assert!(b.book.get(&id_of(m)).is_none(), "cancels win");
    }
    // A full exchange would be at least 3,000 ids each way.
    let bytes: u64 = synced(&seen.events[0])
        .iter()
        .chain(&synced(&seen.events[1]))
        .map(|(_, b)| b)
        .sum();
    assert!(bytes < 3_000 * 32, "bytes follow the differences: {bytes}");
}

#[test]
fn equal_books_settle_in_one_round() {
    let t0 = Instant::now();
    let (mut a, mut b) = (
        Node::new(SyncConfig::default(), t0),
        Node::new(SyncConfig::default(), t0),
    );
    let key = Keypair::generate_ed25519();
    fill(&mut a.book, &key, 0..1_000);
    fill(&mut b.book, &key, 0..1_000);
    a.sync.handle_subscribed(&a.book, b.id, ORDERBOOK_TOPIC);
    let seen = drive(&mut a, &mut b);
    assert_eq!(seen.requests, 1);
    assert_eq!(synced(&seen.events[0])[0].0, 0);
}

#[test]
fn each_peer_is_reconciled_with_on_joining_and_then_in_turn() {
    let t0 = Instant::now();
    let config = SyncConfig {
        anti_entropy_interval: Duration::from_secs(10),
        ..SyncConfig::default()
    };
    let mut node = Node::new(config, t0);
    let book = Orderbook::new(OrderbookConfig::default());
    let (p, q) = {
        let (x, y) = (PeerId::random(), PeerId::random());
        (x.min(y), x.max(y))
    };
    node.sync.handle_subscribed(&book, p, TRADE_TOPIC);
    assert!(
        node.sync.poll_output().is_none(),
        "only the orderbook topic"
    );
    node.sync.handle_subscribed(&book, p, ORDERBOOK_TOPIC);
    node.sync.handle_subscribed(&book, q, ORDERBOOK_TOPIC);
    let asked: Vec<PeerId> = std::iter::from_fn(|| node.sync.poll_output())
        .filter_map(|o| match o {
            SyncOutput::Request { peer, .. } => Some(peer),
            _ => None,
        })
        .collect();
    assert_eq!(asked, vec![p, q]);
    // Both sessions end (the peers left); anti-entropy then takes turns.
    node.sync.handle_disconnected(&p);
    node.sync.handle_disconnected(&q);
    node.sync.handle_subscribed(&book, p, ORDERBOOK_TOPIC);
    node.sync.handle_subscribed(&book, q, ORDERBOOK_TOPIC);
    std::iter::from_fn(|| node.sync.poll_output()).for_each(drop);
    node.sync.handle_disconnected(&p);
    node.sync.handle_disconnected(&q);
    node.sync.peers.extend([p, q]);
    assert_eq!(node.sync.poll_timeout(), t0 + Duration::from_secs(10));
    let mut turns = Vec::new();
    for i in 1..=3 {
        let at = t0 + Duration::from_secs(10 * i);
        node.sync.handle_timeout(&book, at);
        let outputs: Vec<_> = std::iter::from_fn(|| node.sync.poll_output()).collect();
        for o in outputs {
            if let SyncOutput::Request { peer, .. } = o {
                turns.push(peer);
                node.sync.end_session(&peer);
            }
        }
    }
    assert_eq!(turns, vec![p, q, p], "one peer per interval, in turn");
}

#[test]
fn garbage_and_oversized_requests_are_refused_and_penalised() {
    let t0 = Instant::now();
    let mut node = Node::new(SyncConfig::default(), t0);
    let peer = PeerId::random();
    // Another protocol version, and a range of a mode that does not exist.
    for message in [vec![0x10], vec![0x61, 0x00, 0x00, 0x09]] {
        let garbage = SyncRequest::Reconcile(OrderbookReconcile { message });
        assert_eq!(node.sync.handle_request(&node.book, peer, garbage), None);
    }
    let too_many = SyncRequest::Fetch(OrderbookFetch {
        items: vec![vec![0; 32]; 1001],
    });
    assert_eq!(node.sync.handle_request(&node.book, peer, too_many), None);
    let bad_id = SyncRequest::Fetch(OrderbookFetch {
        items: vec![vec![0; 31]],
    });
    assert_eq!(node.sync.handle_request(&node.book, peer, bad_id), None);
    let penalties: Vec<_> = std::iter::from_fn(|| node.sync.poll_output()).collect();
    assert_eq!(
        penalties,
        vec![
            SyncOutput::Penalize {
                peer,
                reason: PenaltyReason::ProtocolViolation
            };
            4
        ]
    );
    // Unknown items are no offence: the book moved on.
    let unknown = SyncRequest::Fetch(OrderbookFetch {
        items: vec![vec![7; 32]],
    });
    assert_eq!(
        node.sync.handle_request(&node.book, peer, unknown),
        Some(SyncResponse::Items(OrderbookResponse::default()))
    );
}

#[test]
fn a_peer_answering_out_of_turn_breaks_the_session() {
    let t0 = Instant::now();
    let mut node = Node::new(SyncConfig::default(), t0);
    let peer = PeerId::random();
    node.sync
        .handle_subscribed(&node.book, peer, ORDERBOOK_TOPIC);
    std::iter::from_fn(|| node.sync.poll_output()).for_each(drop);
    // Items where a range message was expected.
    node.sync.handle_response(
        &mut node.book,
        peer,
        SyncResponse::Items(OrderbookResponse::default()),
        &PenaltyWeights::default(),
        NOW,
    );
    assert_eq!(
        std::iter::from_fn(|| node.sync.poll_output()).collect::<Vec<_>>(),
        vec![SyncOutput::Penalize {
            peer,
            reason: PenaltyReason::ProtocolViolation
        }]
    );
    assert!(!node.sync.is_syncing_with(&peer));
}

#[test]
fn forged_items_cost_the_peer_one_penalty() {
    let t0 = Instant::now();
    let (mut a, mut b) = (
        Node::new(SyncConfig::default(), t0),
        Node::new(SyncConfig::default(), t0),
    );
    let key = Keypair::generate_ed25519();
    fill(&mut b.book, &key, 0..3);
    a.sync.handle_subscribed(&a.book, b.id, ORDERBOOK_TOPIC);
    let outputs = drive_tampering(&mut a, &mut b, |items| {
        for o in &mut items.orders {
            if let Some(order) = &mut o.order {
                order.signature[0] ^= 1;
            }
        }
    });
    assert!(a.book.is_empty());
    assert!(matches!(
        &outputs[0],
        SyncOutput::Event(NetworkEvent::OrderbookSynced { changes: 0, rejected, .. })
            if rejected.len() == 3
    ));
    assert_eq!(
        outputs[1..],
        [SyncOutput::Penalize {
            peer: b.id,
            reason: PenaltyReason::InvalidSignature
        }]
    );
}

#[test]
fn two_sessions_do_not_fetch_the_same_items_twice() {
    let t0 = Instant::now();
    let mut a = Node::new(SyncConfig::default(), t0);
    let (mut b, mut c) = (
        Node::new(SyncConfig::default(), t0),
        Node::new(SyncConfig::default(), t0),
    );
    let key = Keypair::generate_ed25519();
    fill(&mut b.book, &key, 0..2_000);
    fill(&mut c.book, &key, 0..2_000);
    a.sync.handle_subscribed(&a.book, b.id, ORDERBOOK_TOPIC);
    a.sync.handle_subscribed(&a.book, c.id, ORDERBOOK_TOPIC);
    // Both reconcile before either fetches; then b's fetches go first.
    let weights = PenaltyWeights::default();
    let mut fetched_items = 0;
    let mut pending: VecDeque<(PeerId, SyncRequest)> = VecDeque::new();
    let mut events = Vec::new();
    loop {
        while let Some(o) = a.sync.poll_output() {
            match o {
                SyncOutput::Request { peer, request } => pending.push_back((peer, request)),
                SyncOutput::Event(e) => events.push(e),
                SyncOutput::Penalize { .. } => panic!("no penalty"),
            }
        }
        let Some((peer, request)) = pending.pop_front() else {
            break;
        };
        if let SyncRequest::Fetch(f) = &request {
            fetched_items += f.items.len();
        }
        let server = if peer == b.id { &mut b } else { &mut c };
        let answer = server
            .sync
            .handle_request(&server.book, a.id, request)
            .unwrap();
        a.sync
            .handle_response(&mut a.book, peer, answer, &weights, NOW);
    }
    assert_eq!(a.book.len(), 2_000);
    assert_eq!(fetched_items, 2_000, "every item fetched once");
    assert_eq!(synced(&events).len(), 2);
}

#[test]
fn a_pair_snapshot_is_capped_and_filtered() {
    let t0 = Instant::now();
    let mut node = Node::new(SyncConfig::default(), t0);
    let key = Keypair::generate_ed25519();
    fill(&mut node.book, &key, 0..2_500);
    let all = node
        .sync
        .handle_request(
            &node.book,
            PeerId::random(),
            SyncRequest::Snapshot(OrderbookRequest::default()),
        )
        .unwrap();
    let SyncResponse::Items(all) = all else {
        unreachable!()
    };
    assert_eq!(all.orders.len(), SNAPSHOT_LIMIT);
    let other_pair = SyncRequest::Snapshot(OrderbookRequest {
        base: "BTC".into(),
        quote: "rune:1:1".into(),
    });
    assert_eq!(
        node.sync
            .handle_request(&node.book, PeerId::random(), other_pair),
        Some(SyncResponse::Items(OrderbookResponse::default()))
    );
}

#[test]
fn an_imported_snapshot_reports_its_changes_and_refusals() {
    let t0 = Instant::now();
    let mut node = Node::new(SyncConfig::default(), t0);
    let key = Keypair::generate_ed25519();
    let mut source = Orderbook::new(OrderbookConfig::default());
    fill(&mut source, &key, 0..1);
    let stored = source.snapshot(None, SNAPSHOT_LIMIT);
    // An hour and a bit later: the order has expired.
    assert_eq!(
        node.sync.import(&mut node.book, &stored, NOW + 3601),
        (
            0,
            vec![OrderbookError::Invalid(
                darkswap_proto::OrderError::Expired {
                    expires_at: NOW + 3600,
                    now: NOW + 3601
                }
            )]
        )
    );
    assert_eq!(node.sync.import(&mut node.book, &stored, NOW).0, 1);
    assert!(matches!(
        std::iter::from_fn(|| node.sync.poll_output()).collect::<Vec<_>>()[..],
        [SyncOutput::Event(NetworkEvent::OrderbookChanged(
            OrderbookChange::Added(_)
        ))]
    ));
}

#[test]
fn the_item_of_an_order_changes_with_its_version() {
    let id = OrderId::of_body(b"x");
    let live = crate::sync::items::item(
        &id,
        &Holding::Live {
            created_at: 5,
            update: None,
        },
    );
    let updated = crate::sync::items::item(
        &id,
        &Holding::Live {
            created_at: 5,
            update: Some((1, 9)),
        },
    );
    let cancelled = crate::sync::items::item(&id, &Holding::Cancelled { cancelled_at: 7 });
    assert_eq!(live.0, 5);
    assert_eq!(updated.0, 9);
    assert_ne!(live.1, updated.1);
    assert_ne!(live.1, cancelled.1);
    assert_ne!(updated.1, cancelled.1);
}

#[test]
fn fetches_stay_pipelined_and_answers_may_come_in_any_order() {
    let t0 = Instant::now();
    let config = SyncConfig::default()
        .with_fetch_batch(10)
        .with_fetch_pipeline(3);
    let (mut joiner, mut full) = (Node::new(config.clone(), t0), Node::new(config, t0));
    fill(&mut full.book, &Keypair::generate_ed25519(), 0..95);
    joiner
        .sync
        .handle_subscribed(&joiner.book, full.id, ORDERBOOK_TOPIC);
    let weights = PenaltyWeights::default();
    let (mut pending, mut most_pending, mut synced) = (Vec::new(), 0, Vec::new());
    loop {
        while let Some(output) = joiner.sync.poll_output() {
            match output {
                SyncOutput::Request {
                    request: request @ SyncRequest::Fetch(_),
                    ..
                } => pending.push(request),
                SyncOutput::Request { request, .. } => {
                    let answer = full.sync.handle_request(&full.book, joiner.id, request);
                    joiner.sync.handle_response(
                        &mut joiner.book,
                        full.id,
                        answer.unwrap(),
                        &weights,
                        NOW,
                    );
                }
                SyncOutput::Event(NetworkEvent::OrderbookSynced { changes, .. }) => {
                    synced.push(changes)
                }
                SyncOutput::Event(_) => {}
                SyncOutput::Penalize { .. } => panic!("an honest peer was penalised"),
            }
        }
        most_pending = most_pending.max(pending.len());
        // The newest fetch is answered first.
        let Some(fetch) = pending.pop() else { break };
        let answer = full.sync.handle_request(&full.book, joiner.id, fetch);
        joiner
            .sync
            .handle_response(&mut joiner.book, full.id, answer.unwrap(), &weights, NOW);
    }
    assert_eq!(most_pending, 3, "three fetches in flight at once");
    assert_eq!(synced, [95], "the session ends once, after the last answer");
    assert_eq!(joiner.holdings(), full.holdings());
}

#[test]
fn one_forged_item_in_a_batch_is_refused_and_the_rest_are_merged() {
    let t0 = Instant::now();
    let (mut a, mut b) = (
        Node::new(SyncConfig::default(), t0),
        Node::new(SyncConfig::default(), t0),
    );
    fill(&mut b.book, &Keypair::generate_ed25519(), 0..40);
    a.sync.handle_subscribed(&a.book, b.id, ORDERBOOK_TOPIC);
    let outputs = drive_tampering(&mut a, &mut b, |items| {
        // The last byte of an Ed25519 signature is in its scalar half.
        let order = items.orders[17].order.as_mut().unwrap();
        *order.signature.last_mut().unwrap() ^= 1;
    });
    assert_eq!(a.book.len(), 39);
    assert!(matches!(
        &outputs[39],
        SyncOutput::Event(NetworkEvent::OrderbookSynced { changes: 39, rejected, .. })
            if rejected == &[OrderbookError::Invalid(darkswap_proto::OrderError::BadSignature)]
    ));
}
