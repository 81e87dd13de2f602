use super::*;
use darkswap_proto::{
    Asset, Disconnect, NewOrder, OrderCancel, OrderCreate, OrderUpdate, PRICE_SCALE, Ping, Side,
    TradeAccept, UpdateFields, encode, identity::Keypair,
};

use crate::orderbook::{OrderbookChange, OrderbookConfig};

const NOW: u64 = 1_800_000_000;

fn order(key: &Keypair) -> Message {
    let signed = NewOrder {
        side: Side::Buy,
        base: Asset::Btc,
        quote: "rune:1:0".parse().unwrap(),
        amount: 10,
        price: PRICE_SCALE,
        created_at: NOW,
        expires_at: NOW + 60,
        nonce: 1,
    }
    .sign(key)
    .unwrap();
    Message::OrderCreate(OrderCreate::from_order(signed))
}

#[test]
fn orderbook_topic_accepts_only_valid_signed_orders() {
    let key = Keypair::generate_ed25519();
    let msg = order(&key);
    assert_eq!(
        validate_gossip(ORDERBOOK_TOPIC, &encode(&msg), 1 << 20, NOW),
        Ok(msg.clone())
    );
    assert!(matches!(
        validate_gossip(ORDERBOOK_TOPIC, &encode(&msg), 1 << 20, NOW + 60),
        Err(ValidationError::Order {
            error: OrderError::Expired { .. },
            ..
        })
    ));
    let ping = Message::Ping(Ping::default());
    assert!(matches!(
        validate_gossip(ORDERBOOK_TOPIC, &encode(&ping), 1 << 20, NOW),
        Err(ValidationError::WrongTopic { kind: "ping", .. })
    ));
    let empty = Message::OrderCreate(OrderCreate::default());
    assert_eq!(
        validate_gossip(ORDERBOOK_TOPIC, &encode(&empty), 1 << 20, NOW),
        Err(ValidationError::MissingOrder)
    );
    let Message::OrderCreate(OrderCreate {
        order: Some(mut forged),
        ..
    }) = msg
    else {
        unreachable!()
    };
    forged.signature[3] ^= 0x40;
    let forged = Message::OrderCreate(OrderCreate::from_order(forged));
    assert!(matches!(
        validate_gossip(ORDERBOOK_TOPIC, &encode(&forged), 1 << 20, NOW),
        Err(ValidationError::Order {
            error: OrderError::BadSignature,
            ..
        })
    ));
}

#[test]
fn cancels_are_verified_on_any_topic() {
    let key = Keypair::generate_ed25519();
    let mut cancel = OrderCancel::sign(darkswap_proto::OrderId::of_body(b"x"), NOW, &key).unwrap();
    let good = Message::OrderCancel(cancel.clone());
    assert!(validate_gossip(ORDERBOOK_TOPIC, &encode(&good), 1 << 20, NOW).is_ok());
    cancel.signature[0] ^= 1;
    let bad = Message::OrderCancel(cancel);
    assert!(validate_gossip("some/other/topic", &encode(&bad), 1 << 20, NOW).is_err());
}

#[test]
fn trade_topic_and_garbage() {
    let accept = Message::TradeAccept(TradeAccept {
        trade_id: vec![1; 16],
        offer: None,
    });
    // Trade steps never travel on gossip.
    assert!(matches!(
        validate_gossip(TRADE_TOPIC, &encode(&accept), 1 << 20, NOW),
        Err(ValidationError::WrongTopic { .. })
    ));
    let key = Keypair::generate_ed25519();
    assert!(matches!(
        validate_gossip(TRADE_TOPIC, &encode(&order(&key)), 1 << 20, NOW),
        Err(ValidationError::WrongTopic { .. })
    ));
    // A maker's fill notice does.
    let filled = Message::OrderCancel(
        OrderCancel::sign(darkswap_proto::OrderId::of_body(b"x"), NOW, &key).unwrap(),
    );
    assert!(validate_gossip(TRADE_TOPIC, &encode(&filled), 1 << 20, NOW).is_ok());
    assert!(matches!(
        validate_gossip(TRADE_TOPIC, b"\xff\xff\xff", 1 << 20, NOW),
        Err(ValidationError::Decode(_))
    ));
    assert!(matches!(
        validate_gossip(TRADE_TOPIC, &encode(&accept), 3, NOW),
        Err(ValidationError::Decode(_))
    ));
}

/// A validator, an empty book and the two peers a message comes from.
fn judge() -> (GossipValidator, Orderbook, PeerId, PeerId) {
    (
        GossipValidator::new(1 << 20),
        Orderbook::new(OrderbookConfig::default()),
        PeerId::random(),
        PeerId::random(),
    )
}

fn gossip<'a>(
    topic: &'a str,
    data: &'a [u8],
    author: PeerId,
    forwarder: PeerId,
) -> GossipMessage<'a> {
    GossipMessage {
        topic,
        data,
        author: Some(author),
        forwarder,
    }
}

#[test]
fn a_valid_order_is_accepted_applied_and_reported_with_its_change() {
    let (v, mut book, author, forwarder) = judge();
    let key = Keypair::generate_ed25519();
    let msg = order(&key);
    let data = encode(&msg);
    let verdict = v.handle_message(
        &mut book,
        gossip(ORDERBOOK_TOPIC, &data, author, forwarder),
        NOW,
    );
    assert_eq!(verdict.acceptance, Acceptance::Accept);
    assert_eq!(verdict.penalty, None);
    assert_eq!(verdict.events.len(), 2);
    assert_eq!(
        verdict.events[0],
        NetworkEvent::MessageReceived {
            peer_id: author,
            topic: ORDERBOOK_TOPIC.into(),
            message: msg
        }
    );
    assert!(matches!(
        verdict.events[1],
        NetworkEvent::OrderbookChanged(OrderbookChange::Added(_))
    ));
    assert_eq!(book.len(), 1);

    let again = v.handle_message(
        &mut book,
        gossip(ORDERBOOK_TOPIC, &data, author, forwarder),
        NOW,
    );
    assert_eq!(again.acceptance, Acceptance::Accept);
    assert_eq!(again.events.len(), 1, "a duplicate changes nothing");
}

#[test]
fn a_forgery_is_rejected_and_costs_the_forwarder() {
    let (v, mut book, author, forwarder) = judge();
    let Message::OrderCreate(OrderCreate {
        order: Some(mut forged),
        ..
    }) = order(&Keypair::generate_ed25519())
    else {
        unreachable!()
    };
    forged.signature[3] ^= 0x40;
    let data = encode(&Message::OrderCreate(OrderCreate::from_order(forged)));
    let verdict = v.handle_message(
        &mut book,
        gossip(ORDERBOOK_TOPIC, &data, author, forwarder),
        NOW,
    );
    assert_eq!(verdict.acceptance, Acceptance::Reject);
    assert_eq!(verdict.penalty, Some(PenaltyReason::InvalidSignature));
    assert!(matches!(
        &verdict.events[..],
        [NetworkEvent::InvalidMessage { peer_id, .. }] if *peer_id == forwarder
    ));
    assert!(book.is_empty());
}

#[test]
fn an_expired_order_is_rejected_without_a_penalty() {
    let (v, mut book, author, forwarder) = judge();
    let data = encode(&order(&Keypair::generate_ed25519()));
    let verdict = v.handle_message(
        &mut book,
        gossip(ORDERBOOK_TOPIC, &data, author, forwarder),
        NOW + 60,
    );
    assert_eq!(verdict.acceptance, Acceptance::Reject);
    assert_eq!(verdict.penalty, None, "clock skew is no offence");
}

#[test]
fn a_cancel_by_someone_else_is_rejected_and_a_late_create_ignored() {
    let (v, mut book, author, forwarder) = judge();
    let maker = Keypair::generate_ed25519();
    let msg = order(&maker);
    let Message::OrderCreate(OrderCreate {
        order: Some(signed),
        ..
    }) = &msg
    else {
        unreachable!()
    };
    let id = signed.id();
    book.apply(&msg, NOW).unwrap();

    let thief = OrderCancel::sign(id, NOW, &Keypair::generate_ed25519()).unwrap();
    let data = encode(&Message::OrderCancel(thief));
    let verdict = v.handle_message(
        &mut book,
        gossip(ORDERBOOK_TOPIC, &data, author, forwarder),
        NOW,
    );
    assert_eq!(verdict.acceptance, Acceptance::Reject, "never forwarded");
    assert_eq!(verdict.penalty, Some(PenaltyReason::InvalidOrder));
    assert_eq!(
        verdict.events,
        vec![NetworkEvent::OrderbookRejected {
            peer_id: forwarder,
            error: OrderbookError::NotMaker
        }]
    );
    assert_eq!(book.len(), 1);

    let cancel = OrderCancel::sign(id, NOW, &maker).unwrap();
    book.apply(&Message::OrderCancel(cancel), NOW).unwrap();
    let data = encode(&msg);
    let late = v.handle_message(
        &mut book,
        gossip(ORDERBOOK_TOPIC, &data, author, forwarder),
        NOW,
    );
    assert_eq!(late.acceptance, Acceptance::Ignore, "honest lateness");
    assert_eq!(late.penalty, None);
}

#[test]
fn fill_notices_on_the_trade_topic_reach_the_book() {
    let (v, mut book, author, forwarder) = judge();
    let key = Keypair::generate_ed25519();
    let create = order(&key);
    book.apply(&create, NOW).unwrap();
    let Message::OrderCreate(OrderCreate { order: Some(o), .. }) = &create else {
        unreachable!()
    };
    let update = OrderUpdate::sign(
        o.id(),
        UpdateFields {
            sequence: 1,
            amount: 4,
            price: PRICE_SCALE,
            expires_at: NOW + 60,
            updated_at: NOW,
        },
        &key,
    )
    .unwrap();
    let data = encode(&Message::OrderUpdate(update));
    let verdict = v.handle_message(
        &mut book,
        gossip(TRADE_TOPIC, &data, author, forwarder),
        NOW,
    );
    assert_eq!(verdict.acceptance, Acceptance::Accept);
    assert_eq!(
        book.get(&o.id()).unwrap().amount,
        4,
        "the rest after a fill"
    );
    // A trade step on the topic is refused and costs its forwarder.
    let accept = encode(&Message::TradeAccept(TradeAccept {
        trade_id: vec![1; 16],
        offer: None,
    }));
    let verdict = v.handle_message(
        &mut book,
        gossip(TRADE_TOPIC, &accept, author, forwarder),
        NOW,
    );
    assert_eq!(verdict.acceptance, Acceptance::Reject);
}

#[test]
fn a_disconnect_takes_its_authors_orders_and_only_theirs() {
    let (v, mut book, _, forwarder) = judge();
    let (leaver, stayer) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let author = leaver.public().to_peer_id();
    for key in [&leaver, &stayer] {
        let data = encode(&order(key));
        v.handle_message(
            &mut book,
            gossip(ORDERBOOK_TOPIC, &data, key.public().to_peer_id(), forwarder),
            NOW,
        );
    }
    let bye = encode(&Message::Disconnect(Disconnect {
        reason: "shutdown".into(),
        sent_at: NOW + 5,
    }));

    // On another topic it means nothing to the book.
    let elsewhere = v.handle_message(
        &mut book,
        gossip(TRADE_TOPIC, &bye, author, forwarder),
        NOW + 5,
    );
    assert_eq!(elsewhere.acceptance, Acceptance::Reject);
    assert_eq!(book.len(), 2);

    let verdict = v.handle_message(
        &mut book,
        gossip(ORDERBOOK_TOPIC, &bye, author, forwarder),
        NOW + 5,
    );
    assert_eq!(verdict.acceptance, Acceptance::Accept);
    assert_eq!(verdict.departed, Some(author));
    assert_eq!(verdict.penalty, None);
    assert!(matches!(
        &verdict.events[..],
        [
            NetworkEvent::MessageReceived { peer_id, .. },
            NetworkEvent::OrderbookChanged(OrderbookChange::Expired(gone)),
        ] if *peer_id == author && gone.len() == 1
    ));
    assert_eq!(book.len(), 1, "the other maker's order stays");
}

#[test]
fn a_replayed_disconnect_is_ignored() {
    let (v, mut book, author, forwarder) = judge();
    let old = encode(&Message::Disconnect(Disconnect {
        reason: "shutdown".into(),
        sent_at: NOW,
    }));
    let verdict = v.handle_message(
        &mut book,
        gossip(ORDERBOOK_TOPIC, &old, author, forwarder),
        NOW + DISCONNECT_MAX_AGE_SECS + 1,
    );
    assert_eq!(verdict.acceptance, Acceptance::Ignore);
    assert_eq!(verdict.departed, None);
    assert_eq!(verdict.penalty, None);
}
