use darkswap_proto::Side;

use super::*;
use crate::{
    fixtures::{NOW, new_order, now},
    orderbook::{OrderbookChange, OrderbookConfig},
};

const REFRESH: Duration = Duration::from_secs(180);

fn setup() -> (OwnOrders, Orderbook, Keypair, Now) {
    let key = Keypair::generate_ed25519();
    let t0 = now();
    let own = OwnOrders::new(key.clone(), REFRESH, t0);
    (own, Orderbook::new(OrderbookConfig::default()), key, t0)
}

fn outputs(own: &mut OwnOrders) -> Vec<OwnOrdersOutput> {
    std::iter::from_fn(|| own.poll_output()).collect()
}

fn published(out: &[OwnOrdersOutput]) -> Vec<&Message> {
    out.iter()
        .filter_map(|o| match o {
            // On the orderbook topic, at once or in the background.
            OwnOrdersOutput::Publish(m) | OwnOrdersOutput::Republish(m) => Some(m),
            OwnOrdersOutput::PublishFill(_) | OwnOrdersOutput::Event(_) => None,
        })
        .collect()
}

#[test]
fn a_created_order_is_signed_by_the_node_put_in_the_book_and_published() {
    let (mut own, mut book, key, t0) = setup();
    let (order, signed) = own
        .create(&mut book, &new_order(Side::Buy, NOW, 1), t0)
        .unwrap();
    assert_eq!(order.maker, key.public().to_peer_id());
    assert_eq!(signed.verify().unwrap(), order);
    assert_eq!(book.get(&order.id), Some(order.clone()));
    assert_eq!(own.orders(&book), vec![(order.clone(), signed)]);
    let out = outputs(&mut own);
    assert_eq!(
        out[0],
        OwnOrdersOutput::Event(NetworkEvent::OrderbookChanged(OrderbookChange::Added(
            order.clone()
        )))
    );
    let [Message::OrderCreate(create)] = published(&out)[..] else {
        panic!("one create published: {out:?}");
    };
    let announced = create.verify().unwrap();
    assert_eq!(announced.order, order);
    // In the second the node started, it dates the announcement the next
    // one: a node restarted within the second it said goodbye is not taken
    // for a late copy of what it had out.
    assert_eq!(announced.announced_at, Some(NOW + 1));
    let (later, _) = own
        .create(&mut book, &new_order(Side::Buy, NOW, 2), t0.after(REFRESH))
        .unwrap();
    let later_out = outputs(&mut own);
    let [Message::OrderCreate(create)] = published(&later_out)[..] else {
        panic!("one create published: {later_out:?}");
    };
    let announced = create.verify().unwrap();
    assert_eq!(announced.order, later);
    assert_eq!(
        announced.announced_at,
        Some(NOW + REFRESH.as_secs()),
        "announced by its maker now"
    );
}

#[test]
fn invalid_terms_and_others_orders_are_refused() {
    let (mut own, mut book, _, t0) = setup();
    let mut bad = new_order(Side::Buy, NOW, 1);
    bad.amount = 0;
    assert!(matches!(
        own.create(&mut book, &bad, t0),
        Err(OwnOrderError::Refused(OrderbookError::Invalid(_)))
    ));
    let theirs = new_order(Side::Buy, NOW, 2)
        .sign(&Keypair::generate_ed25519())
        .unwrap();
    let id = theirs.id();
    assert_eq!(
        own.restore(&mut book, theirs, t0),
        Err(OwnOrderError::NotOwnOrder(id))
    );
    assert!(book.is_empty());
    assert!(outputs(&mut own).is_empty());
}

#[test]
fn a_cancel_leaves_a_tombstone_so_the_order_cannot_be_restored() {
    let (mut own, mut book, key, t0) = setup();
    let (order, signed) = own
        .create(&mut book, &new_order(Side::Sell, NOW, 1), t0)
        .unwrap();
    outputs(&mut own);
    let cancel = own.cancel(&mut book, order.id, t0).unwrap();
    let out = outputs(&mut own);
    assert_eq!(cancel.verify().unwrap().order_id, order.id);
    assert_eq!(
        out[0],
        OwnOrdersOutput::Event(NetworkEvent::OrderbookChanged(OrderbookChange::Cancelled {
            order_id: order.id,
            maker: key.public().to_peer_id()
        }))
    );
    assert!(matches!(published(&out)[..], [Message::OrderCancel(c)] if *c == cancel));
    assert!(!own.contains(&order.id));
    assert_eq!(
        own.cancel(&mut book, order.id, t0),
        Err(OwnOrderError::NotOwnOrder(order.id)),
        "a second cancel is not ours any more"
    );
    assert_eq!(
        own.restore(&mut book, signed, t0),
        Err(OwnOrderError::Refused(OrderbookError::Cancelled(order.id)))
    );
}

#[test]
fn open_orders_are_re_announced_when_the_refresh_is_due() {
    let (mut own, mut book, _, t0) = setup();
    let (kept, _) = own
        .create(&mut book, &new_order(Side::Sell, NOW, 1), t0)
        .unwrap();
    // Expires before the first refresh.
    let mut short = new_order(Side::Sell, NOW, 2);
    short.expires_at = NOW + 60;
    own.create(&mut book, &short, t0).unwrap();
    outputs(&mut own);

    assert_eq!(own.poll_timeout(), t0.instant + REFRESH);
    own.handle_timeout(&mut book, t0.after(REFRESH - Duration::from_secs(1)));
    assert!(outputs(&mut own).is_empty(), "not due yet");

    let t1 = t0.after(REFRESH);
    own.handle_timeout(&mut book, t1);
    let out = outputs(&mut own);
    let [Message::OrderCreate(create)] = published(&out)[..] else {
        panic!("only the open order is re-announced: {out:?}");
    };
    assert!(
        out.iter()
            .all(|o| matches!(o, OwnOrdersOutput::Republish(_) | OwnOrdersOutput::Event(_))),
        "a re-announcement goes out in the background: {out:?}"
    );
    let announced = create.verify().unwrap();
    assert_eq!(announced.order.id, kept.id);
    assert_eq!(announced.announced_at, Some(t1.unix_secs()));
    assert_eq!(own.poll_timeout(), t1.instant + REFRESH);
    assert_eq!(own.orders(&book).len(), 1, "the expired one is forgotten");
}

#[test]
fn the_refresh_interval_has_a_floor() {
    let t0 = now();
    let own = OwnOrders::new(Keypair::generate_ed25519(), Duration::ZERO, t0);
    assert_eq!(own.poll_timeout(), t0.instant + MIN_REFRESH_INTERVAL);
}

/// The update messages among `out`, verified.
fn updates(out: &[OwnOrdersOutput]) -> Vec<darkswap_proto::Update> {
    published(out)
        .into_iter()
        .filter_map(|m| match m {
            Message::OrderUpdate(u) => Some(u.verify().unwrap()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_update_is_signed_with_the_next_sequence_applied_and_published() {
    let (mut own, mut book, key, t0) = setup();
    let (order, _) = own
        .create(&mut book, &new_order(Side::Sell, NOW, 1), t0)
        .unwrap();
    outputs(&mut own);

    let t1 = t0.after(Duration::from_secs(5));
    let changes = OrderChanges::default().with_amount(40).with_price(7);
    let (updated, signed) = own.update(&mut book, order.id, changes, t1).unwrap();
    assert_eq!((updated.amount, updated.price), (40, 7));
    assert_eq!(updated.expires_at, order.expires_at, "expiry unchanged");
    assert_eq!(book.get(&order.id), Some(updated.clone()));
    assert_eq!(own.orders(&book)[0].0, updated, "own orders as they stand");
    let verified = signed.verify().unwrap();
    assert_eq!(verified.maker, key.public().to_peer_id());
    assert_eq!(verified.fields.sequence, 1);
    assert_eq!(verified.fields.updated_at, t1.unix_secs());
    let out = outputs(&mut own);
    assert_eq!(
        out[0],
        OwnOrdersOutput::Event(NetworkEvent::OrderbookChanged(OrderbookChange::Updated(
            updated.clone()
        )))
    );
    assert_eq!(updates(&out), vec![verified]);

    let (again, _) = own
        .update(
            &mut book,
            order.id,
            OrderChanges::default().with_expires_at(NOW + 600),
            t1,
        )
        .unwrap();
    assert_eq!(
        (again.amount, again.price, again.expires_at),
        (40, 7, NOW + 600),
        "fields not given keep the values in force"
    );
    assert_eq!(updates(&outputs(&mut own))[0].fields.sequence, 2);
}

#[test]
fn after_a_restart_the_sequence_continues_from_the_update_the_book_holds() {
    let (mut own, mut book, key, t0) = setup();
    let (order, signed) = own
        .create(&mut book, &new_order(Side::Buy, NOW, 1), t0)
        .unwrap();
    let (_, first) = own
        .update(
            &mut book,
            order.id,
            OrderChanges::default().with_amount(9),
            t0,
        )
        .unwrap();

    // A new life: the order and its stored update come back.
    let mut own = OwnOrders::new(key, REFRESH, t0);
    let mut book = Orderbook::new(OrderbookConfig::default());
    own.restore(&mut book, signed, t0).unwrap();
    book.apply(&Message::OrderUpdate(first), NOW).unwrap();
    let (order, next) = own
        .update(
            &mut book,
            order.id,
            OrderChanges::default().with_price(3),
            t0,
        )
        .unwrap();
    assert_eq!((order.amount, order.price), (9, 3));
    assert_eq!(next.verify().unwrap().fields.sequence, 2);
}

#[test]
fn the_refresh_publishes_the_update_again_so_peers_that_missed_it_catch_up() {
    let (mut own, mut book, _, t0) = setup();
    let (order, _) = own
        .create(&mut book, &new_order(Side::Sell, NOW, 1), t0)
        .unwrap();
    let mut peer = Orderbook::new(OrderbookConfig::default());
    for m in published(&outputs(&mut own)) {
        peer.apply(m, NOW).unwrap();
    }
    own.update(
        &mut book,
        order.id,
        OrderChanges::default().with_amount(1),
        t0,
    )
    .unwrap();
    // The peer misses the update on gossip.
    outputs(&mut own);
    assert_eq!(peer.get(&order.id).unwrap().amount, order.amount);

    let t1 = t0.after(REFRESH);
    own.handle_timeout(&mut book, t1);
    let out = outputs(&mut own);
    let kinds: Vec<&str> = published(&out).iter().map(|m| m.kind()).collect();
    assert_eq!(kinds.len(), 2, "the order, then its update: {kinds:?}");
    assert!(matches!(published(&out)[1], Message::OrderUpdate(_)));
    for m in published(&out) {
        peer.apply(m, t1.unix_secs()).unwrap();
    }
    assert_eq!(peer.get(&order.id), book.get(&order.id));

    // A peer that joins later gets the order with its update by sync.
    let mut late = Orderbook::new(OrderbookConfig::default());
    let (_, refused) = late.merge(&book.snapshot(None, usize::MAX), t1.unix_secs());
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(late.get(&order.id), book.get(&order.id));
    assert_eq!(book.messages_of(&order.id).unwrap().updates.len(), 1);
}

#[test]
fn a_shortened_life_ends_the_order_at_its_new_expiry() {
    let (mut own, mut book, _, t0) = setup();
    let (order, _) = own
        .create(&mut book, &new_order(Side::Sell, NOW, 1), t0)
        .unwrap();
    own.update(
        &mut book,
        order.id,
        OrderChanges::default().with_expires_at(NOW + 60),
        t0,
    )
    .unwrap();
    outputs(&mut own);
    own.handle_timeout(&mut book, t0.after(REFRESH));
    assert!(published(&outputs(&mut own)).is_empty(), "not re-announced");
    assert!(own.orders(&book).is_empty());
}

#[test]
fn updates_of_others_unknown_cancelled_or_invalid_orders_are_refused() {
    let (mut own, mut book, _, t0) = setup();
    let change = OrderChanges::default().with_amount(5);
    let (theirs, their_id) = crate::fixtures::create(&Keypair::generate_ed25519(), 7);
    book.apply(&theirs, NOW).unwrap();
    assert_eq!(
        own.update(&mut book, their_id, change, t0),
        Err(OwnOrderError::NotOwnOrder(their_id))
    );
    let unknown = OrderId::of_body(b"nothing");
    assert_eq!(
        own.update(&mut book, unknown, change, t0),
        Err(OwnOrderError::NotOwnOrder(unknown))
    );

    let (order, _) = own
        .create(&mut book, &new_order(Side::Sell, NOW, 1), t0)
        .unwrap();
    let zero = OrderChanges::default().with_amount(0);
    assert!(matches!(
        own.update(&mut book, order.id, zero, t0),
        Err(OwnOrderError::Refused(OrderbookError::Invalid(
            darkswap_proto::OrderError::ZeroAmount
        )))
    ));
    let past = OrderChanges::default().with_expires_at(NOW);
    assert!(matches!(
        own.update(&mut book, order.id, past, t0),
        Err(OwnOrderError::Refused(OrderbookError::Invalid(
            darkswap_proto::OrderError::InvalidExpiry
        )))
    ));
    let longer = OrderChanges::default().with_expires_at(order.expires_at + 1);
    assert_eq!(
        own.update(&mut book, order.id, longer, t0),
        Err(OwnOrderError::ExpiryBeyondSigned {
            requested: order.expires_at + 1,
            signed: order.expires_at
        })
    );
    outputs(&mut own);

    own.cancel(&mut book, order.id, t0).unwrap();
    outputs(&mut own);
    assert_eq!(
        own.update(&mut book, order.id, change, t0),
        Err(OwnOrderError::Refused(OrderbookError::Cancelled(order.id)))
    );
    assert!(
        outputs(&mut own).is_empty(),
        "nothing published for a refusal"
    );
    assert!(book.latest_update(&order.id).is_none());
}

fn fill_notices(out: &[OwnOrdersOutput]) -> Vec<&Message> {
    out.iter()
        .filter_map(|o| match o {
            OwnOrdersOutput::PublishFill(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[test]
fn a_partial_fill_is_announced_on_the_trade_topic_as_an_update_with_what_remains() {
    let (mut own, mut book, key, t0) = setup();
    let (order, _) = own
        .create(&mut book, &new_order(Side::Sell, NOW, 1), t0)
        .unwrap();
    outputs(&mut own);
    let notice = own.fill(&mut book, order.id, order.amount / 4, t0).unwrap();
    let remaining = order.amount - order.amount / 4;
    assert_eq!(notice.remaining(), remaining);
    assert_eq!(book.get(&order.id).unwrap().amount, remaining);
    let out = outputs(&mut own);
    assert!(published(&out).is_empty(), "not on the orderbook topic");
    let [Message::OrderUpdate(update)] = fill_notices(&out)[..] else {
        panic!("one update on the trade topic: {out:?}");
    };
    assert_eq!(Message::OrderUpdate(update.clone()), notice.message());
    let update = update.verify().unwrap();
    assert_eq!(update.maker, key.public().to_peer_id());
    assert_eq!(
        (update.fields.amount, update.fields.sequence),
        (remaining, 1)
    );
    // A second fill counts from what remains, one sequence on.
    let FillNotice::Updated { update, .. } = own.fill(&mut book, order.id, 1, t0).unwrap() else {
        panic!("some remains");
    };
    let update = update.verify().unwrap();
    assert_eq!(
        (update.fields.amount, update.fields.sequence),
        (remaining - 1, 2)
    );
}

#[test]
fn a_complete_fill_cancels_the_order_on_the_trade_topic() {
    let (mut own, mut book, _, t0) = setup();
    let (order, _) = own
        .create(&mut book, &new_order(Side::Sell, NOW, 1), t0)
        .unwrap();
    outputs(&mut own);
    let notice = own.fill(&mut book, order.id, order.amount, t0).unwrap();
    assert!(matches!(notice, FillNotice::Filled(_)));
    assert_eq!(notice.remaining(), 0);
    assert_eq!(book.get(&order.id), None);
    assert!(!own.contains(&order.id));
    let out = outputs(&mut own);
    let [Message::OrderCancel(cancel)] = fill_notices(&out)[..] else {
        panic!("one cancel on the trade topic: {out:?}");
    };
    assert_eq!(cancel.verify().unwrap().order_id, order.id);
    // Nothing more to fill.
    assert_eq!(
        own.fill(&mut book, order.id, 1, t0),
        Err(OwnOrderError::NotOwnOrder(order.id))
    );
}
