//! Every message type survives encode → decode unchanged, and no input makes
//! the decoder panic.

use darkswap_proto::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..64)
}

fn signed_order() -> impl Strategy<Value = SignedOrder> {
    (bytes(), bytes(), bytes()).prop_map(|(body, public_key, signature)| SignedOrder {
        body,
        public_key,
        signature,
    })
}

fn cancel() -> impl Strategy<Value = OrderCancel> {
    (bytes(), bytes(), bytes()).prop_map(|(body, public_key, signature)| OrderCancel {
        body,
        public_key,
        signature,
    })
}

fn update() -> impl Strategy<Value = OrderUpdate> {
    (bytes(), bytes(), bytes()).prop_map(|(body, public_key, signature)| OrderUpdate {
        body,
        public_key,
        signature,
    })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(nonce, timestamp_ms)| Message::Ping(Ping {
            nonce,
            timestamp_ms
        })),
        (any::<u64>(), any::<u64>()).prop_map(|(nonce, timestamp_ms)| Message::Pong(Pong {
            nonce,
            timestamp_ms
        })),
        (".{0,40}", any::<u64>())
            .prop_map(|(reason, sent_at)| Message::Disconnect(Disconnect { reason, sent_at })),
        proptest::option::of(signed_order()).prop_map(|order| Message::OrderCreate(OrderCreate {
            order,
            announced_at: 0,
            announcement_signature: vec![]
        })),
        (signed_order(), any::<u64>(), bytes()).prop_map(
            |(o, announced_at, announcement_signature)| {
                Message::OrderCreate(OrderCreate {
                    order: Some(o),
                    announced_at,
                    announcement_signature,
                })
            }
        ),
        cancel().prop_map(Message::OrderCancel),
        update().prop_map(Message::OrderUpdate),
        ("[a-z0-9:]{0,20}", "[a-z0-9:]{0,20}")
            .prop_map(|(base, quote)| Message::OrderbookRequest(OrderbookRequest { base, quote })),
        (
            vec(signed_order().prop_map(OrderCreate::from_order), 0..4),
            vec(update(), 0..3),
            vec(cancel(), 0..3)
        )
            .prop_map(|(orders, updates, cancels)| {
                Message::OrderbookResponse(OrderbookResponse {
                    orders,
                    updates,
                    cancels,
                })
            }),
        (
            bytes(),
            bytes(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(trade_id, order_id, amount, price, created_at, expires_at)| {
                    Message::TradePropose(TradePropose {
                        trade_id,
                        order_id,
                        amount,
                        price,
                        created_at,
                        expires_at,
                        offer: None,
                    })
                }
            ),
        bytes().prop_map(|trade_id| Message::TradeAccept(TradeAccept {
            trade_id,
            offer: None,
        })),
        (bytes(), ".{0,20}")
            .prop_map(|(trade_id, reason)| Message::TradeReject(TradeReject { trade_id, reason })),
        (bytes(), ".{0,20}")
            .prop_map(|(trade_id, reason)| Message::TradeCancel(TradeCancel { trade_id, reason })),
        (bytes(), bytes()).prop_map(|(trade_id, signature)| Message::TradeSignature(
            TradeSignature {
                trade_id,
                signature
            }
        )),
        (bytes(), bytes())
            .prop_map(|(trade_id, psbt)| Message::PsbtCreate(PsbtCreate { trade_id, psbt })),
        (bytes(), bytes())
            .prop_map(|(trade_id, psbt)| Message::PsbtUpdate(PsbtUpdate { trade_id, psbt })),
        (bytes(), bytes())
            .prop_map(|(trade_id, psbt)| Message::PsbtSign(PsbtSign { trade_id, psbt })),
        (bytes(), bytes())
            .prop_map(|(trade_id, psbt)| Message::PsbtFinalize(PsbtFinalize { trade_id, psbt })),
        (bytes(), bytes(), bytes()).prop_map(|(trade_id, transaction, txid)| {
            Message::PsbtBroadcast(PsbtBroadcast {
                trade_id,
                transaction,
                txid,
            })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_round_trips(msg in message()) {
        let bytes = encode(&msg);
        prop_assert_eq!(decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn batches_round_trip(msgs in vec(message(), 0..16)) {
        let bytes = encode_batch(&batch_messages(msgs.clone()));
        prop_assert_eq!(decode_batch(&bytes, MAX_MESSAGE_SIZE).unwrap(), msgs);
    }

    #[test]
    fn arbitrary_bytes_never_panic(junk in vec(any::<u8>(), 0..512)) {
        let _ = decode(&junk);
        let _ = decode_batch(&junk, MAX_MESSAGE_SIZE);
    }

    #[test]
    fn truncated_messages_are_errors_not_panics(msg in message(), cut in 0usize..1000) {
        let bytes = encode(&msg);
        let cut = cut % bytes.len().max(1);
        // A prefix either decodes to something or is a typed error.
        let _ = decode(&bytes[..cut]);
    }
}

#[test]
fn the_schema_covers_every_seed_message_type() {
    let kinds = [
        "ping",
        "pong",
        "disconnect",
        "order_create",
        "order_cancel",
        "order_update",
        "orderbook_request",
        "orderbook_response",
        "trade_propose",
        "trade_accept",
        "trade_reject",
        "trade_cancel",
        "trade_signature",
        "psbt_create",
        "psbt_update",
        "psbt_sign",
        "psbt_finalize",
        "psbt_broadcast",
    ];
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        let m = message().new_tree(&mut runner).unwrap().current();
        seen.insert(m.kind());
    }
    assert_eq!(seen, kinds.into_iter().collect());
}
