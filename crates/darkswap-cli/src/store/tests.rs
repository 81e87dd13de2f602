//! The store against a real SQLite file in a temporary directory.

use super::*;
use darkswap_proto::{Asset, NewOrder, Side, identity::Keypair};

#[test]
fn orders_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    let order = NewOrder {
        side: Side::Buy,
        base: Asset::Btc,
        quote: "rune:1:0".parse().unwrap(),
        amount: 1,
        price: 1,
        created_at: 10,
        expires_at: 20,
        nonce: 0,
    }
    .sign(&key)
    .unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put(&order).unwrap();
        store.put(&order).unwrap();
    }
    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(store.own_orders().unwrap(), vec![order.clone()]);
    store.forget(&[order.id()]).unwrap();
    assert!(store.own_orders().unwrap().is_empty());
}

#[test]
fn the_book_is_replaced_whole_and_bad_rows_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    let order = |nonce| {
        NewOrder {
            side: Side::Sell,
            base: Asset::Btc,
            quote: "alkane:2:1".parse().unwrap(),
            amount: 5,
            price: 9,
            created_at: 10,
            expires_at: 20,
            nonce,
        }
        .sign(&key)
        .unwrap()
    };
    let (first, second) = (order(1), order(2));
    let cancel = darkswap_proto::OrderCancel::sign(first.id(), 11, &key).unwrap();
    let book = OrderbookResponse {
        orders: vec![darkswap_proto::OrderCreate::from_order(second.clone())],
        updates: vec![],
        cancels: vec![cancel],
    };
    {
        let mut store = Store::open(dir.path()).unwrap();
        store
            .save_book(&OrderbookResponse {
                orders: vec![darkswap_proto::OrderCreate::from_order(first)],
                ..Default::default()
            })
            .unwrap();
        store.save_book(&book).unwrap();
        store
            .conn
            .execute("INSERT INTO book (message) VALUES (x'ffff')", [])
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.load_book().unwrap(), (book, 1));
}

#[test]
fn bans_are_replaced_whole_and_bad_rows_are_skipped() {
    use darkswap_p2p::{BanReason, PenaltyReason};
    let dir = tempfile::tempdir().unwrap();
    let timed = BannedPeer {
        peer_id: PeerId::random(),
        until: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
        reason: BanReason::Misbehaviour(PenaltyReason::InvalidSignature),
        bans: 3,
    };
    let forever = BannedPeer {
        peer_id: PeerId::random(),
        until: None,
        reason: BanReason::Manual,
        bans: 0,
    };
    {
        let mut store = Store::open(dir.path()).unwrap();
        store.save_bans(std::slice::from_ref(&timed)).unwrap();
        store.save_bans(&[timed.clone(), forever.clone()]).unwrap();
        store
            .conn
            .execute(
                "INSERT INTO bans (peer_id, until, reason, bans) VALUES ('nope', 1, 'manual', 0)",
                [],
            )
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let (mut bans, unreadable) = store.load_bans().unwrap();
    bans.sort_by_key(|b| b.peer_id);
    let mut want = vec![timed.clone(), forever];
    want.sort_by_key(|b| b.peer_id);
    assert_eq!((bans, unreadable), (want, 1));
    // A sub-second expiry is rounded up, never down.
    let mut store = store;
    let t = UNIX_EPOCH + Duration::from_millis(1_800_000_000_001);
    store
        .save_bans(&[BannedPeer {
            until: Some(t),
            ..timed
        }])
        .unwrap();
    assert_eq!(
        store.load_bans().unwrap().0[0].until,
        Some(UNIX_EPOCH + Duration::from_secs(1_800_000_001))
    );
}

fn own_order(key: &Keypair, nonce: u64) -> SignedOrder {
    NewOrder {
        side: Side::Sell,
        base: Asset::Btc,
        quote: "rune:1:0".parse().unwrap(),
        amount: 3,
        price: 7,
        created_at: 10,
        expires_at: 20,
        nonce,
    }
    .sign(key)
    .unwrap()
}

fn tombstone(key: &Keypair, order: &SignedOrder, cancelled_at: u64) -> Tombstone {
    Tombstone {
        id: order.id(),
        cancel: OrderCancel::sign(order.id(), cancelled_at, key).unwrap(),
        cancelled_at,
    }
}

#[test]
fn a_cancel_forgets_the_order_and_keeps_its_tombstone_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    let (kept, cancelled) = (own_order(&key, 1), own_order(&key, 2));
    let stone = tombstone(&key, &cancelled, 15);
    {
        let mut store = Store::open(dir.path()).unwrap();
        store.put(&kept).unwrap();
        store.put(&cancelled).unwrap();
        store.cancel(&stone).unwrap();
        // A second cancel of the same order replaces, never duplicates.
        store.cancel(&stone).unwrap();
    }
    let stored = Store::open(dir.path()).unwrap().load().unwrap();
    assert_eq!(stored.own_orders, vec![kept]);
    assert_eq!(stored.tombstones, vec![stone]);
    assert_eq!(stored.unreadable, 0);
}

#[test]
fn tombstones_are_forgotten_by_age_and_bad_rows_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    let (old, young) = (own_order(&key, 1), own_order(&key, 2));
    let mut store = Store::open(dir.path()).unwrap();
    store.cancel(&tombstone(&key, &old, 100)).unwrap();
    store.cancel(&tombstone(&key, &young, 200)).unwrap();
    store
        .conn
        .execute(
            "INSERT INTO cancelled_orders (id, message, cancelled_at) VALUES (x'00', x'ffff', 150)",
            [],
        )
        .unwrap();
    let (stones, unreadable) = store.tombstones().unwrap();
    assert_eq!((stones.len(), unreadable), (2, 1));
    store.forget_tombstones_before(200).unwrap();
    let (stones, unreadable) = store.tombstones().unwrap();
    assert_eq!(stones, vec![tombstone(&key, &young, 200)]);
    assert_eq!(unreadable, 0);
}

#[test]
fn the_latest_update_of_an_own_order_is_kept_and_goes_with_its_order() {
    use darkswap_proto::UpdateFields;
    let dir = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    let order = |nonce| {
        NewOrder {
            side: Side::Sell,
            base: Asset::Btc,
            quote: "rune:1:0".parse().unwrap(),
            amount: 5,
            price: 9,
            created_at: 10,
            expires_at: 100,
            nonce,
        }
        .sign(&key)
        .unwrap()
    };
    let update = |order: &SignedOrder, sequence| {
        let fields = UpdateFields {
            sequence,
            amount: 4,
            price: 8,
            expires_at: 90,
            updated_at: 11,
        };
        OrderUpdate::sign(order.id(), fields, &key).unwrap()
    };
    let (expiring, cancelled) = (order(1), order(2));
    let latest = update(&expiring, 2);
    {
        let store = Store::open(dir.path()).unwrap();
        store.put(&expiring).unwrap();
        store.put(&cancelled).unwrap();
        store
            .put_update(&expiring.id(), &update(&expiring, 1))
            .unwrap();
        store.put_update(&expiring.id(), &latest).unwrap();
        store
            .put_update(&cancelled.id(), &update(&cancelled, 1))
            .unwrap();
    }
    let mut store = Store::open(dir.path()).unwrap();
    let stored = store.load().unwrap();
    assert_eq!(stored.own_updates.len(), 2);
    assert!(stored.own_updates.contains(&latest), "one row per order");

    let cancel = darkswap_proto::OrderCancel::sign(cancelled.id(), 12, &key).unwrap();
    store
        .cancel(&Tombstone {
            id: cancelled.id(),
            cancel,
            cancelled_at: 12,
        })
        .unwrap();
    assert_eq!(store.own_updates().unwrap(), (vec![latest], 0));
    store.forget(&[expiring.id()]).unwrap();
    assert_eq!(store.own_updates().unwrap(), (vec![], 0));
}
