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
    let own = OwnOrders::new(key.clone(), REFRESH, t0.instant);
    (own, Orderbook::new(OrderbookConfig::default()), key, t0)
}

fn outputs(own: &mut OwnOrders) -> Vec<OwnOrdersOutput> {
    std::iter::from_fn(|| own.poll_output()).collect()
}

fn published(out: &[OwnOrdersOutput]) -> Vec<&Message> {
    out.iter()
        .filter_map(|o| match o {
            OwnOrdersOutput::Publish(m) => Some(m),
            OwnOrdersOutput::Event(_) => None,
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
    assert_eq!(
        announced.announced_at,
        Some(NOW),
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
    let announced = create.verify().unwrap();
    assert_eq!(announced.order.id, kept.id);
    assert_eq!(announced.announced_at, Some(t1.unix_secs()));
    assert_eq!(own.poll_timeout(), t1.instant + REFRESH);
    assert_eq!(own.orders(&book).len(), 1, "the expired one is forgotten");
}

#[test]
fn the_refresh_interval_has_a_floor() {
    let t0 = now();
    let own = OwnOrders::new(Keypair::generate_ed25519(), Duration::ZERO, t0.instant);
    assert_eq!(own.poll_timeout(), t0.instant + MIN_REFRESH_INTERVAL);
}
