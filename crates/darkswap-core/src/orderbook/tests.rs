use super::*;
use darkswap_proto::{NewOrder, PRICE_SCALE, UpdateFields, identity::Keypair};

const NOW: u64 = 1_800_000_000;

fn new_order(side: Side, price: u64, nonce: u64) -> NewOrder {
    NewOrder {
        side,
        base: Asset::Btc,
        quote: "rune:840000:3".parse().unwrap(),
        amount: 100,
        price,
        created_at: NOW + nonce,
        expires_at: NOW + 3600,
        nonce,
    }
}

fn create(key: &Keypair, side: Side, price: u64, nonce: u64) -> (Message, OrderId) {
    let signed = new_order(side, price, nonce).sign(key).unwrap();
    let id = signed.id();
    (Message::OrderCreate(OrderCreate::from_order(signed)), id)
}

fn book() -> Orderbook {
    Orderbook::new(OrderbookConfig::default())
}

#[test]
fn add_duplicate_cancel_and_replay() {
    let key = Keypair::generate_ed25519();
    let mut b = book();
    let (msg, id) = create(&key, Side::Sell, PRICE_SCALE, 1);
    assert!(matches!(
        b.apply(&msg, NOW),
        Ok(Some(OrderbookChange::Added(_)))
    ));
    assert_eq!(
        b.apply(&msg, NOW + 1),
        Ok(None),
        "duplicate changes nothing"
    );
    let cancel = Message::OrderCancel(OrderCancel::sign(id, NOW + 2, &key).unwrap());
    assert!(matches!(
        b.apply(&cancel, NOW + 2),
        Ok(Some(OrderbookChange::Cancelled { .. }))
    ));
    assert_eq!(
        b.apply(&cancel, NOW + 3),
        Ok(None),
        "replayed cancel changes nothing"
    );
    assert_eq!(
        b.apply(&msg, NOW + 4),
        Err(OrderbookError::Cancelled(id)),
        "replayed create cannot resurrect"
    );
    assert!(b.is_empty());
}

#[test]
fn cancel_before_create_wins() {
    let key = Keypair::generate_ed25519();
    let mut b = book();
    let (msg, id) = create(&key, Side::Buy, PRICE_SCALE, 1);
    let cancel = Message::OrderCancel(OrderCancel::sign(id, NOW, &key).unwrap());
    assert_eq!(b.apply(&cancel, NOW), Ok(None));
    assert_eq!(b.apply(&msg, NOW), Err(OrderbookError::Cancelled(id)));
}

#[test]
fn only_the_maker_cancels_or_updates() {
    let (maker, other) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let mut b = book();
    let (msg, id) = create(&maker, Side::Buy, PRICE_SCALE, 1);
    b.apply(&msg, NOW).unwrap();
    let foreign = Message::OrderCancel(OrderCancel::sign(id, NOW, &other).unwrap());
    assert_eq!(b.apply(&foreign, NOW), Err(OrderbookError::NotMaker));
    let fields = UpdateFields {
        sequence: 1,
        amount: 5,
        price: 2,
        expires_at: NOW + 100,
        updated_at: NOW,
    };
    let foreign = Message::OrderUpdate(OrderUpdate::sign(id, fields, &other).unwrap());
    assert_eq!(b.apply(&foreign, NOW), Err(OrderbookError::NotMaker));
    assert_eq!(b.len(), 1);
}

#[test]
fn updates_apply_in_sequence_order() {
    let key = Keypair::generate_ed25519();
    let mut b = book();
    let (msg, id) = create(&key, Side::Sell, PRICE_SCALE, 1);
    b.apply(&msg, NOW).unwrap();
    let upd = |seq, amount| {
        let fields = UpdateFields {
            sequence: seq,
            amount,
            price: 3,
            expires_at: NOW + 100,
            updated_at: NOW,
        };
        Message::OrderUpdate(OrderUpdate::sign(id, fields, &key).unwrap())
    };
    assert!(
        matches!(b.apply(&upd(2, 50), NOW), Ok(Some(OrderbookChange::Updated(o))) if o.amount == 50)
    );
    assert_eq!(b.apply(&upd(2, 50), NOW), Ok(None));
    assert_eq!(
        b.apply(&upd(1, 70), NOW),
        Err(OrderbookError::StaleUpdate { got: 1, have: 2 })
    );
    assert_eq!(b.get(&id).unwrap().amount, 50);
    let unknown = OrderId::of_body(b"nope");
    let fields = UpdateFields {
        sequence: 1,
        amount: 1,
        price: 1,
        expires_at: NOW + 9,
        updated_at: NOW,
    };
    let m = Message::OrderUpdate(OrderUpdate::sign(unknown, fields, &key).unwrap());
    assert_eq!(b.apply(&m, NOW), Err(OrderbookError::UnknownOrder(unknown)));
}

#[test]
fn expiry_and_ttl_drop_orders() {
    let key = Keypair::generate_ed25519();
    let config = OrderbookConfig {
        ttl: Duration::from_secs(600),
        ..Default::default()
    };
    let mut b = Orderbook::new(config);
    let (alive, alive_id) = create(&key, Side::Sell, PRICE_SCALE, 1);
    let (ghost, ghost_id) = create(&key, Side::Sell, PRICE_SCALE, 2);
    b.apply(&alive, NOW).unwrap();
    b.apply(&ghost, NOW).unwrap();
    // Someone replays the ghost: no maker signature, no new life.
    b.apply(&ghost, NOW + 500).unwrap();
    // The maker re-announces the other one.
    let Message::OrderCreate(OrderCreate {
        order: Some(signed),
        ..
    }) = alive
    else {
        unreachable!()
    };
    let announced = OrderCreate::announce(signed, NOW + 500, &key).unwrap();
    b.apply(&Message::OrderCreate(announced), NOW + 500)
        .unwrap();
    assert_eq!(
        b.prune(NOW + 603),
        Some(OrderbookChange::Expired(vec![ghost_id]))
    );
    assert!(b.get(&alive_id).is_some());
    // Replayed after it dropped out (by gossip, a sync or an old
    // database), the ghost's stale announcement does not bring it back.
    assert_eq!(
        b.apply(&ghost, NOW + 604),
        Err(OrderbookError::NotRefreshed {
            order_id: ghost_id,
            last_vouched: NOW + 2,
        })
    );
    assert!(b.get(&ghost_id).is_none());
    assert_eq!(
        b.prune(NOW + 3600),
        Some(OrderbookChange::Expired(vec![alive_id]))
    );
    assert_eq!(b.prune(NOW + 3601), None);
}

#[test]
fn invalid_messages_are_refused() {
    let key = Keypair::generate_ed25519();
    let mut b = book();
    let (msg, _) = create(&key, Side::Sell, PRICE_SCALE, 1);
    assert!(matches!(
        b.apply(&msg, NOW + 3600),
        Err(OrderbookError::Invalid(OrderError::Expired { .. }))
    ));
    let Message::OrderCreate(OrderCreate {
        order: Some(mut s), ..
    }) = msg
    else {
        unreachable!()
    };
    s.signature[0] ^= 1;
    let forged = Message::OrderCreate(OrderCreate::from_order(s));
    assert_eq!(
        b.apply(&forged, NOW),
        Err(OrderbookError::Invalid(OrderError::BadSignature))
    );
    assert_eq!(
        b.apply(&Message::Ping(Default::default()), NOW),
        Err(OrderbookError::NotAnOrderMessage)
    );
    assert!(b.is_empty());
}

#[test]
fn limits_hold() {
    let key = Keypair::generate_ed25519();
    let mut b = Orderbook::new(OrderbookConfig {
        max_orders_per_maker: 2,
        max_orders: 3,
        ..Default::default()
    });
    let mut first = None;
    for n in 0..2 {
        let (message, order) = create(&key, Side::Buy, PRICE_SCALE, n);
        b.apply(&message, NOW).unwrap();
        first.get_or_insert(order);
    }
    let third = create(&key, Side::Buy, PRICE_SCALE, 9).0;
    let refused = b.apply(&third, NOW).unwrap_err();
    assert_eq!(refused, OrderbookError::MakerLimit { limit: 2 });
    assert_eq!(refused.reason(), "maker_limit");
    // A cancel frees the maker's slot.
    let cancel = OrderCancel::sign(first.unwrap(), NOW, &key).unwrap();
    b.apply(&Message::OrderCancel(cancel), NOW).unwrap();
    b.apply(&third, NOW).unwrap();
    // The book's own limit is named apart from the maker's.
    let other = Keypair::generate_ed25519();
    b.apply(&create(&other, Side::Buy, PRICE_SCALE, 9).0, NOW)
        .unwrap();
    let refused = b
        .apply(&create(&other, Side::Buy, PRICE_SCALE, 10).0, NOW)
        .unwrap_err();
    assert_eq!(refused, OrderbookError::BookFull { limit: 3 });
    assert_eq!(refused.reason(), "book_full");
    // Expiry frees slots too: nothing of the counts is left behind.
    b.prune(NOW + 10 * 24 * 3600);
    assert!(b.is_empty());
    for n in 0..2 {
        b.apply(&create(&key, Side::Buy, PRICE_SCALE, 20 + n).0, NOW)
            .unwrap();
    }
}

#[test]
fn book_is_sorted_by_price_then_time() {
    let key = Keypair::generate_ed25519();
    let mut b = book();
    for (side, price, nonce) in [
        (Side::Buy, 5, 1),
        (Side::Buy, 7, 2),
        (Side::Buy, 7, 3),
        (Side::Sell, 9, 4),
        (Side::Sell, 8, 5),
    ] {
        b.apply(&create(&key, side, price, nonce).0, NOW + 10)
            .unwrap();
    }
    let book = b.book(Asset::Btc, "rune:840000:3".parse().unwrap());
    let bids: Vec<(u64, u64)> = book.bids.iter().map(|o| (o.price, o.nonce)).collect();
    let asks: Vec<(u64, u64)> = book.asks.iter().map(|o| (o.price, o.nonce)).collect();
    assert_eq!(bids, vec![(7, 2), (7, 3), (5, 1)]);
    assert_eq!(asks, vec![(8, 5), (9, 4)]);
    assert!(
        b.book(Asset::Btc, "rune:1:1".parse().unwrap())
            .bids
            .is_empty()
    );
}

#[test]
fn snapshot_and_merge_converge() {
    let (k1, k2) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let mut a = book();
    let (o1, id1) = create(&k1, Side::Buy, 5, 1);
    let (o2, id2) = create(&k2, Side::Sell, 6, 2);
    let (o3, id3) = create(&k2, Side::Sell, 7, 3);
    for m in [&o1, &o2, &o3] {
        a.apply(m, NOW).unwrap();
    }
    a.apply(
        &Message::OrderCancel(OrderCancel::sign(id3, NOW, &k2).unwrap()),
        NOW,
    )
    .unwrap();
    let fields = UpdateFields {
        sequence: 1,
        amount: 42,
        price: 6,
        expires_at: NOW + 99,
        updated_at: NOW,
    };
    a.apply(
        &Message::OrderUpdate(OrderUpdate::sign(id2, fields, &k2).unwrap()),
        NOW,
    )
    .unwrap();

    // b saw the cancelled order earlier, and must drop it on merge.
    let mut b = book();
    b.apply(&o3, NOW).unwrap();
    let snap = a.snapshot(None, 100);
    let (changes, rejected) = b.merge(&snap, NOW + 1);
    assert!(rejected.is_empty(), "{rejected:?}");
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, OrderbookChange::Cancelled { order_id, .. } if *order_id == id3))
    );
    assert_eq!(b.get(&id2).unwrap().amount, 42);
    assert!(b.get(&id1).is_some() && b.get(&id3).is_none());
    let pair = (Asset::Btc, "rune:840000:3".parse().unwrap());
    assert_eq!(a.book(pair.0, pair.1), b.book(pair.0, pair.1));
    // Merging again changes nothing.
    assert_eq!(b.merge(&snap, NOW + 2), (vec![], vec![]));
}

#[test]
fn a_cancel_of_a_long_lived_order_is_forgotten_once_no_old_announcement_counts() {
    let key = Keypair::generate_ed25519();
    let mut b = book();
    let ttl = b.config().ttl.as_secs();
    let month = NewOrder {
        expires_at: NOW + 30 * 86_400,
        ..new_order(Side::Sell, PRICE_SCALE, 1)
    };
    let signed = month.sign(&key).unwrap();
    let id = signed.id();
    let msg = Message::OrderCreate(OrderCreate::from_order(signed));
    b.apply(&msg, NOW + 1).unwrap();
    let cancel = Message::OrderCancel(OrderCancel::sign(id, NOW + 2, &key).unwrap());
    b.apply(&cancel, NOW + 2).unwrap();
    // Until the TTL and the clock skew have passed, a copy of the create
    // could still be taken: the tombstone refuses it.
    let horizon = NOW + 2 + ttl + MAX_CLOCK_SKEW_SECS;
    b.prune(horizon - 1);
    assert_eq!(b.snapshot(None, 10).cancels.len(), 1);
    assert_eq!(
        b.apply(&msg, horizon - 1),
        Err(OrderbookError::Cancelled(id))
    );
    // Then the copy is too old anyway, and the tombstone goes: a month of
    // create/cancel churn does not keep a month of tombstones.
    b.prune(horizon);
    assert!(b.snapshot(None, 10).cancels.is_empty());
    assert!(matches!(
        b.apply(&msg, horizon),
        Err(OrderbookError::NotRefreshed { order_id, .. }) if order_id == id
    ));
    assert!(b.is_empty());
}

#[test]
fn a_maker_that_leaves_takes_its_orders_until_it_announces_them_again() {
    let (leaver, stayer) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let maker = leaver.public().to_peer_id();
    let mut b = book();
    let signed = new_order(Side::Sell, PRICE_SCALE, 1).sign(&leaver).unwrap();
    let id = signed.id();
    let late_copy = Message::OrderCreate(OrderCreate::from_order(signed.clone()));
    let (other, other_id) = create(&stayer, Side::Buy, PRICE_SCALE, 2);
    b.apply(&late_copy, NOW + 1).unwrap();
    b.apply(&other, NOW + 2).unwrap();

    assert_eq!(
        b.maker_left(maker, NOW + 10, NOW + 10),
        Some(OrderbookChange::Expired(vec![id]))
    );
    assert_eq!(b.get(&id), None);
    assert!(b.get(&other_id).is_some(), "other makers' orders stay");
    assert_eq!(b.maker_left(maker, NOW + 10, NOW + 11), None, "said twice");

    // A peer that did not hear it offers the old copy back.
    assert_eq!(
        b.apply(&late_copy, NOW + 12),
        Err(OrderbookError::MakerLeft {
            order_id: id,
            left_at: NOW + 10,
        })
    );
    assert_eq!(
        OrderbookError::MakerLeft {
            order_id: id,
            left_at: 0
        }
        .reason(),
        "maker_left"
    );

    // Back: the maker announces the order again, in the second it left or
    // later.
    let back = Message::OrderCreate(OrderCreate::announce(signed, NOW + 10, &leaver).unwrap());
    assert!(matches!(
        b.apply(&back, NOW + 20),
        Ok(Some(OrderbookChange::Added(_)))
    ));
}

#[test]
fn a_copy_from_the_second_the_maker_left_stays_out_and_a_newer_announcement_returns() {
    // Timestamps are whole seconds: the maker announces, and leaves, in
    // second NOW + 10. A copy of that very announcement still in flight
    // (gossip, a sync) must not bring the order back.
    let leaver = Keypair::generate_ed25519();
    let maker = leaver.public().to_peer_id();
    let mut b = book();
    let signed = new_order(Side::Sell, PRICE_SCALE, 1).sign(&leaver).unwrap();
    let id = signed.id();
    let announced =
        Message::OrderCreate(OrderCreate::announce(signed.clone(), NOW + 10, &leaver).unwrap());
    b.apply(&announced, NOW + 10).unwrap();
    assert_eq!(
        b.maker_left(maker, NOW + 10, NOW + 10),
        Some(OrderbookChange::Expired(vec![id]))
    );
    assert_eq!(
        b.apply(&announced, NOW + 10),
        Err(OrderbookError::MakerLeft {
            order_id: id,
            left_at: NOW + 10,
        })
    );
    // An order it never had on this book, announced in that second, is
    // taken: that is a maker back at once as far as this book can tell.
    let (other, other_id) = {
        let s = new_order(Side::Sell, PRICE_SCALE, 2).sign(&leaver).unwrap();
        let id = s.id();
        (
            Message::OrderCreate(OrderCreate::announce(s, NOW + 10, &leaver).unwrap()),
            id,
        )
    };
    assert!(matches!(
        b.apply(&other, NOW + 10),
        Ok(Some(OrderbookChange::Added(o))) if o.id == other_id
    ));
    // The next announcement of the first order is the maker back.
    let back = Message::OrderCreate(OrderCreate::announce(signed, NOW + 11, &leaver).unwrap());
    assert!(matches!(
        b.apply(&back, NOW + 11),
        Ok(Some(OrderbookChange::Added(_)))
    ));
}

#[test]
fn a_departure_is_forgotten_once_the_ttl_would_drop_what_it_hides() {
    let key = Keypair::generate_ed25519();
    let maker = key.public().to_peer_id();
    let mut b = book();
    let ttl = b.config().ttl.as_secs();
    b.maker_left(maker, NOW, NOW);
    b.prune(NOW + ttl - 1);
    assert_eq!(b.departures.len(), 1);
    b.prune(NOW + ttl);
    assert!(b.departures.is_empty());
}
