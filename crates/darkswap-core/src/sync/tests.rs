use darkswap_proto::{Message, OrderCreate, identity::Keypair};

use super::*;
use crate::{
    fixtures::{NOW, create},
    orderbook::{OrderbookChange, OrderbookConfig},
    protocols::TRADE_TOPIC,
};

fn outputs(sync: &mut OrderbookSync) -> Vec<SyncOutput> {
    std::iter::from_fn(|| sync.poll_output()).collect()
}

fn book_with(orders: &[Message]) -> Orderbook {
    let mut book = Orderbook::new(OrderbookConfig::default());
    for m in orders {
        book.apply(m, NOW).unwrap();
    }
    book
}

#[test]
fn each_peer_is_asked_once_per_connection_when_it_joins_the_orderbook_topic() {
    let mut sync = OrderbookSync::new();
    let peer = PeerId::random();
    sync.handle_subscribed(peer, TRADE_TOPIC);
    assert!(outputs(&mut sync).is_empty(), "only the orderbook topic");
    sync.handle_subscribed(peer, ORDERBOOK_TOPIC);
    assert_eq!(
        outputs(&mut sync),
        vec![SyncOutput::Request {
            peer,
            request: OrderbookRequest::default()
        }]
    );
    sync.handle_subscribed(peer, ORDERBOOK_TOPIC);
    assert!(outputs(&mut sync).is_empty(), "once per connection");
    sync.handle_disconnected(&peer);
    sync.handle_subscribed(peer, ORDERBOOK_TOPIC);
    assert_eq!(outputs(&mut sync).len(), 1, "asked again after a reconnect");
}

#[test]
fn a_request_gets_the_book_or_one_pair_of_it() {
    let key = Keypair::generate_ed25519();
    let (a, _) = create(&key, 1);
    let (b, _) = create(&key, 2);
    let book = book_with(&[a, b]);
    let sync = OrderbookSync::new();
    assert_eq!(
        sync.handle_request(&book, &OrderbookRequest::default())
            .orders
            .len(),
        2
    );
    let other_pair = OrderbookRequest {
        base: "BTC".into(),
        quote: "rune:1:1".into(),
    };
    assert!(sync.handle_request(&book, &other_pair).orders.is_empty());
}

#[test]
fn a_snapshot_is_merged_and_reported_once_with_each_change() {
    let key = Keypair::generate_ed25519();
    let (a, _) = create(&key, 1);
    let (b, _) = create(&key, 2);
    let theirs = book_with(&[a, b]).snapshot(None, SNAPSHOT_LIMIT);
    let mut mine = book_with(&[]);
    let mut sync = OrderbookSync::new();
    let peer = PeerId::random();
    sync.handle_response(&mut mine, peer, &theirs, &PenaltyWeights::default(), NOW);
    let out = outputs(&mut sync);
    assert_eq!(out.len(), 3);
    assert!(out[..2].iter().all(|o| matches!(
        o,
        SyncOutput::Event(NetworkEvent::OrderbookChanged(OrderbookChange::Added(_)))
    )));
    assert_eq!(
        out[2],
        SyncOutput::Event(NetworkEvent::OrderbookSynced {
            peer_id: peer,
            changes: 2,
            rejected: vec![]
        })
    );
    assert_eq!(mine.len(), 2);
}

#[test]
fn a_snapshot_with_forgeries_costs_its_sender_one_penalty() {
    let key = Keypair::generate_ed25519();
    let (good, _) = create(&key, 1);
    let mut forged = Vec::new();
    for nonce in 2..5 {
        let Message::OrderCreate(OrderCreate {
            order: Some(mut order),
            ..
        }) = create(&key, nonce).0
        else {
            unreachable!()
        };
        order.signature[0] ^= 1;
        forged.push(OrderCreate::from_order(order));
    }
    let mut snapshot = book_with(&[good]).snapshot(None, SNAPSHOT_LIMIT);
    snapshot.orders.extend(forged);
    let mut mine = book_with(&[]);
    let mut sync = OrderbookSync::new();
    let peer = PeerId::random();
    sync.handle_response(&mut mine, peer, &snapshot, &PenaltyWeights::default(), NOW);
    let out = outputs(&mut sync);
    assert!(matches!(
        &out[1],
        SyncOutput::Event(NetworkEvent::OrderbookSynced { changes: 1, rejected, .. })
            if rejected.len() == 3
    ));
    assert_eq!(
        out[2..],
        [SyncOutput::Penalize {
            peer,
            reason: PenaltyReason::InvalidSignature
        }]
    );
}

#[test]
fn a_broken_frame_is_penalised_and_a_lost_stream_is_not() {
    let mut sync = OrderbookSync::new();
    let peer = PeerId::random();
    sync.handle_subscribed(peer, ORDERBOOK_TOPIC);
    outputs(&mut sync);
    sync.handle_outbound_failure(peer, SyncFailure::Io);
    assert!(outputs(&mut sync).is_empty());
    sync.handle_subscribed(peer, ORDERBOOK_TOPIC);
    assert_eq!(
        outputs(&mut sync).len(),
        1,
        "a failed request is asked again"
    );
    sync.handle_outbound_failure(peer, SyncFailure::InvalidData);
    sync.handle_inbound_failure(peer, SyncFailure::InvalidData);
    assert_eq!(
        outputs(&mut sync),
        vec![
            SyncOutput::Penalize {
                peer,
                reason: PenaltyReason::ProtocolViolation
            };
            2
        ]
    );
}

#[test]
fn an_imported_snapshot_reports_its_changes_and_refusals() {
    let key = Keypair::generate_ed25519();
    let (a, _) = create(&key, 1);
    let stored = book_with(&[a]).snapshot(None, SNAPSHOT_LIMIT);
    let mut book = book_with(&[]);
    let mut sync = OrderbookSync::new();
    // An hour and a bit later: the order has expired.
    assert_eq!(
        sync.import(&mut book, &stored, NOW + 3601),
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
    assert_eq!(sync.import(&mut book, &stored, NOW).0, 1);
    assert!(matches!(
        outputs(&mut sync)[..],
        [SyncOutput::Event(NetworkEvent::OrderbookChanged(
            OrderbookChange::Added(_)
        ))]
    ));
}
