//! The write policy on virtual time: no database, no node, no sleeps.

use std::time::{Duration, Instant, UNIX_EPOCH};

use darkswap_p2p::{
    BanReason, Keypair, NetworkEvent, OrderbookChange, OrderbookConfig, OrderbookError, PeerId,
    core::{Now, orderbook::Orderbook},
};
use darkswap_proto::{
    Asset, Message, NewOrder, OrderCancel, OrderCreate, OrderId, OrderUpdate, OrderbookResponse,
    Side, SignedOrder, UpdateFields,
};

use super::{Journal, Write};
use crate::store::Tombstone;

const INTERVAL: Duration = Duration::from_secs(2);
const TTL: Duration = Duration::from_secs(600);
/// Unix seconds at the start of every test.
const START: u64 = 1_800_000_000;

fn start() -> Now {
    Now::new(Instant::now(), UNIX_EPOCH + Duration::from_secs(START))
}

fn journal() -> Journal {
    Journal::new(INTERVAL, TTL)
}

fn drain(journal: &mut Journal) -> Vec<Write> {
    std::iter::from_fn(|| journal.poll_write()).collect()
}

fn order(key: &Keypair, nonce: u64) -> SignedOrder {
    NewOrder {
        side: Side::Sell,
        base: Asset::Btc,
        quote: "rune:1:0".parse().unwrap(),
        amount: 5,
        price: 9,
        created_at: START - 10,
        expires_at: START + 3600,
        nonce,
    }
    .sign(key)
    .unwrap()
}

fn book_changed() -> NetworkEvent {
    NetworkEvent::OrderbookChanged(OrderbookChange::Cancelled {
        order_id: OrderId::of_body(b"x"),
        maker: PeerId::random(),
    })
}

fn banned() -> NetworkEvent {
    NetworkEvent::PeerBanned {
        peer_id: PeerId::random(),
        until: None,
        reason: BanReason::Manual,
    }
}

/// The SaveBook a save at `now` yields.
fn save_book(now: Now) -> Write {
    Write::SaveBook {
        forget_tombstones_before: now.unix_secs() - TTL.as_secs(),
    }
}

#[test]
fn a_changed_book_is_saved_once_one_interval_after_its_first_change() {
    let mut j = journal();
    let t0 = start();
    j.handle_event(&book_changed(), t0);
    j.handle_event(&book_changed(), t0.after(Duration::from_secs(1)));
    assert_eq!(j.poll_timeout(), Some(t0.instant + INTERVAL));
    j.handle_timeout(t0.after(INTERVAL - Duration::from_millis(1)));
    assert_eq!(drain(&mut j), vec![]);
    let due = t0.after(INTERVAL);
    j.handle_timeout(due);
    assert_eq!(drain(&mut j), vec![save_book(due)]);
    assert_eq!(j.poll_timeout(), None);
    j.handle_timeout(due.after(INTERVAL * 10));
    assert_eq!(drain(&mut j), vec![]);
}

#[test]
fn book_changes_the_node_dropped_still_get_the_book_saved() {
    let mut j = journal();
    let t0 = start();
    j.handle_event(&NetworkEvent::EventsDropped { count: 5_000 }, t0);
    assert_eq!(j.poll_timeout(), Some(t0.instant + INTERVAL));
    let due = t0.after(INTERVAL);
    j.handle_timeout(due);
    assert_eq!(drain(&mut j), vec![save_book(due)]);
}

#[test]
fn events_that_change_nothing_stored_write_nothing() {
    let mut j = journal();
    let t0 = start();
    for event in [
        NetworkEvent::PeerConnected(PeerId::random()),
        NetworkEvent::PeerDisconnected(PeerId::random()),
    ] {
        j.handle_event(&event, t0);
    }
    assert_eq!(j.poll_timeout(), None);
    assert_eq!(drain(&mut j), vec![]);
}

#[test]
fn a_failed_book_save_is_tried_again_one_interval_later() {
    let mut j = journal();
    let t0 = start();
    j.handle_event(&book_changed(), t0);
    let due = t0.after(INTERVAL);
    j.handle_timeout(due);
    let save = drain(&mut j).remove(0);
    j.handle_written(&save, false, due);
    assert_eq!(j.poll_timeout(), Some(due.instant + INTERVAL));
    let again = due.after(INTERVAL);
    j.handle_timeout(again);
    assert_eq!(drain(&mut j), vec![save_book(again)]);
}

#[test]
fn a_ban_beginning_or_ending_is_saved_at_once_and_queued_only_once() {
    let mut j = journal();
    let t0 = start();
    j.handle_event(&banned(), t0);
    j.handle_event(
        &NetworkEvent::PeerUnbanned {
            peer_id: PeerId::random(),
        },
        t0,
    );
    assert_eq!(drain(&mut j), vec![Write::SaveBans]);
    assert_eq!(j.poll_timeout(), None);
}

#[test]
fn a_failed_ban_save_is_tried_again_one_interval_later() {
    let mut j = journal();
    let t0 = start();
    j.handle_event(&banned(), t0);
    let save = drain(&mut j).remove(0);
    j.handle_written(&save, false, t0);
    assert_eq!(j.poll_timeout(), Some(t0.instant + INTERVAL));
    j.handle_timeout(t0.after(INTERVAL));
    assert_eq!(drain(&mut j), vec![Write::SaveBans]);
}

#[test]
fn a_ban_made_by_hand_is_written_before_its_answer_and_replaces_a_retry() {
    let mut j = journal();
    let t0 = start();
    j.handle_written(&Write::SaveBans, false, t0);
    assert_eq!(j.handle_bans_changed(), Write::SaveBans);
    assert_eq!(j.poll_timeout(), None);
    assert_eq!(drain(&mut j), vec![]);
}

#[test]
fn expired_orders_are_forgotten_and_the_book_saved() {
    let mut j = journal();
    let t0 = start();
    let ids = vec![OrderId::of_body(b"a"), OrderId::of_body(b"b")];
    j.handle_event(
        &NetworkEvent::OrderbookChanged(OrderbookChange::Expired(ids.clone())),
        t0,
    );
    assert_eq!(drain(&mut j), vec![Write::ForgetOwnOrders(ids)]);
    assert_eq!(j.poll_timeout(), Some(t0.instant + INTERVAL));
}

#[test]
fn a_created_order_is_written_before_its_answer() {
    let key = Keypair::generate_ed25519();
    let mut j = journal();
    let signed = order(&key, 1);
    assert_eq!(j.handle_created(signed.clone()), Write::PutOwnOrder(signed));
    assert_eq!(drain(&mut j), vec![]);
}

#[test]
fn a_cancel_is_written_before_its_answer_as_a_tombstone_signed_by_the_maker() {
    let key = Keypair::generate_ed25519();
    let mut j = journal();
    let id = order(&key, 1).id();
    let now = start();
    // The cancel the node signed and published, handed to the journal.
    let cancel = OrderCancel::sign(id, now.unix_secs(), &key).unwrap();
    let Ok(Write::Cancel(stone)) = j.handle_cancelled(cancel) else {
        panic!("a cancel writes a tombstone");
    };
    assert_eq!((stone.id, stone.cancelled_at), (id, START));
    let verified = stone.cancel.verify().unwrap();
    assert_eq!(verified.order_id, id);
    assert_eq!(verified.maker, key.public().to_peer_id());
    assert_eq!(verified.cancelled_at, START);
    assert_eq!(drain(&mut j), vec![]);
}

#[test]
fn a_fill_notice_is_written_at_once_as_an_update_or_a_tombstone() {
    let key = Keypair::generate_ed25519();
    let mut j = journal();
    let id = order(&key, 1).id();
    let now = start();
    let fields = UpdateFields {
        sequence: 1,
        amount: 2,
        price: 9,
        expires_at: START + 3600,
        updated_at: START,
    };
    let update = OrderUpdate::sign(id, fields, &key).unwrap();
    let filled = |remaining, notice| NetworkEvent::OrderFilled {
        order_id: id,
        amount: 3,
        remaining,
        notice,
    };
    j.handle_event(&filled(2, Some(Message::OrderUpdate(update.clone()))), now);
    assert_eq!(drain(&mut j), vec![Write::PutOwnUpdate { id, update }]);
    let cancel = OrderCancel::sign(id, START, &key).unwrap();
    j.handle_event(&filled(0, Some(Message::OrderCancel(cancel.clone()))), now);
    assert_eq!(
        drain(&mut j),
        vec![Write::Cancel(Tombstone {
            id,
            cancel,
            cancelled_at: START
        })]
    );
    // No notice (the order had expired): nothing to keep.
    j.handle_event(&filled(0, None), now);
    assert_eq!(drain(&mut j), vec![]);
}

#[test]
fn shutdown_saves_the_book_and_the_bans_once_each_whatever_is_queued() {
    let mut j = journal();
    let t0 = start();
    j.handle_event(&book_changed(), t0);
    j.handle_event(&banned(), t0);
    j.handle_shutdown(t0);
    assert_eq!(drain(&mut j), vec![save_book(t0), Write::SaveBans]);
    assert_eq!(j.poll_timeout(), None);
}

/// A stored book as the periodic save left it: `orders` announced.
fn stored_book(orders: &[&SignedOrder]) -> OrderbookResponse {
    OrderbookResponse {
        orders: orders
            .iter()
            .map(|o| OrderCreate::from_order((*o).clone()))
            .collect(),
        ..OrderbookResponse::default()
    }
}

fn tombstone(j: &mut Journal, key: &Keypair, order: &SignedOrder, at: Now) -> Tombstone {
    let cancel = OrderCancel::sign(order.id(), at.unix_secs(), key).unwrap();
    match j.handle_cancelled(cancel) {
        Ok(Write::Cancel(stone)) => stone,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cancelled_order_is_not_given_back_at_restart_and_late_copies_are_refused() {
    let (key, other) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let mut j = journal();
    let now = start();
    let (kept, cancelled, theirs) = (order(&key, 1), order(&key, 2), order(&other, 3));
    let stone = tombstone(&mut j, &key, &cancelled, now);

    let restore = j.restore(
        vec![kept.clone(), cancelled.clone()],
        vec![],
        stored_book(&[&kept, &cancelled, &theirs]),
        vec![stone.clone()],
        now,
    );
    assert_eq!(restore.own_orders, vec![kept.clone()]);
    assert_eq!(restore.forget_own_orders, vec![cancelled.id()]);
    assert_eq!(restore.book.cancels, vec![stone.cancel]);
    assert_eq!(
        restore.book,
        OrderbookResponse {
            cancels: restore.book.cancels.clone(),
            ..stored_book(&[&kept, &theirs])
        }
    );

    // The node's book, given this, refuses the copy a peer sends late.
    let mut book = Orderbook::new(OrderbookConfig::default());
    let (_, refused) = book.merge(&restore.book, START);
    assert_eq!(refused, vec![]);
    let late = Message::OrderCreate(OrderCreate::from_order(cancelled.clone()));
    assert_eq!(
        book.apply(&late, START),
        Err(OrderbookError::Cancelled(cancelled.id()))
    );
    assert!(book.get(&kept.id()).is_some() && book.get(&theirs.id()).is_some());
}

#[test]
fn a_tombstone_older_than_the_ttl_is_forgotten_but_its_order_stays_out() {
    let key = Keypair::generate_ed25519();
    let mut j = journal();
    let cancelled = order(&key, 1);
    let stone = tombstone(&mut j, &key, &cancelled, start());
    let later = start().after(TTL + Duration::from_secs(1));

    let restore = j.restore(
        vec![cancelled.clone()],
        vec![],
        stored_book(&[&cancelled]),
        vec![stone.clone()],
        later,
    );
    assert!(restore.forget_tombstones_before > stone.cancelled_at);
    assert_eq!(restore.book, OrderbookResponse::default());
    assert_eq!(restore.own_orders, vec![]);
    assert_eq!(restore.forget_own_orders, vec![cancelled.id()]);
}

#[test]
fn a_tombstone_exactly_one_ttl_old_still_counts() {
    let key = Keypair::generate_ed25519();
    let mut j = journal();
    let cancelled = order(&key, 1);
    let stone = tombstone(&mut j, &key, &cancelled, start());
    let restore = j.restore(
        vec![],
        vec![],
        stored_book(&[]),
        vec![stone.clone()],
        start().after(TTL),
    );
    assert_eq!(restore.forget_tombstones_before, stone.cancelled_at);
    assert_eq!(restore.book.cancels, vec![stone.cancel]);
}

fn update(key: &Keypair, order: &SignedOrder, sequence: u64, expires_at: u64) -> OrderUpdate {
    let fields = UpdateFields {
        sequence,
        amount: 2,
        price: 3,
        expires_at,
        updated_at: START - 5,
    };
    OrderUpdate::sign(order.id(), fields, key).unwrap()
}

#[test]
fn an_update_waits_for_its_write_and_comes_back_after_the_stored_book() {
    let key = Keypair::generate_ed25519();
    let mut j = journal();
    let own = order(&key, 1);
    let (old, latest) = (
        update(&key, &own, 1, START + 3600),
        update(&key, &own, 2, START + 1800),
    );
    assert_eq!(
        j.handle_updated(own.id(), latest.clone()),
        Write::PutOwnUpdate {
            id: own.id(),
            update: latest.clone()
        }
    );
    assert!(drain(&mut j).is_empty(), "the answer performs it");

    // The stored book was saved before the latest update: the stored
    // update comes after it, so the order ends as last answered.
    let mut stored = stored_book(&[&own]);
    stored.updates.push(old);
    let restore = j.restore(
        vec![own.clone()],
        vec![latest.clone()],
        stored,
        vec![],
        start(),
    );
    assert_eq!(restore.own_orders, vec![own.clone()]);
    assert_eq!(restore.book.updates.last(), Some(&latest));
    let mut book = Orderbook::new(OrderbookConfig::default());
    let (_, refused) = book.merge(&restore.book, START);
    assert_eq!(refused, vec![]);
    let now = book.get(&own.id()).unwrap();
    assert_eq!(
        (now.amount, now.price, now.expires_at),
        (2, 3, START + 1800)
    );
}

#[test]
fn an_own_order_whose_update_ended_it_is_forgotten_at_restart() {
    let key = Keypair::generate_ed25519();
    let mut j = journal();
    let (ended, cancelled) = (order(&key, 1), order(&key, 2));
    let short = update(&key, &ended, 1, START + 60);
    let stone = tombstone(&mut j, &key, &cancelled, start());
    let restore = j.restore(
        vec![ended.clone(), cancelled.clone()],
        vec![short, update(&key, &cancelled, 1, START + 60)],
        stored_book(&[&ended]),
        vec![stone],
        start().after(Duration::from_secs(61)),
    );
    assert_eq!(restore.own_orders, vec![]);
    assert_eq!(
        restore.forget_own_orders,
        vec![ended.id(), cancelled.id()],
        "not brought back with its longer signed expiry"
    );
    assert!(restore.book.orders.is_empty());
    assert!(restore.book.updates.is_empty());
}
