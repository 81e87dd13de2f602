//! `proto_envelope`: bytes as a peer sends them (a gossip payload, a
//! request-response frame) through the envelope decoder with its size limit,
//! then through signed-order verification of whatever decodes: the path of
//! `darkswap_p2p::validate_gossip` and of the orderbook sync.
//!
//! Beyond "no panic" it asserts:
//! - the size limit: an input over the limit is refused as `TooLarge` and
//!   never parsed; at the limit it decodes as without one;
//! - decode ∘ encode is the identity, and encoding is canonical (encoding a
//!   decoded message again gives the same bytes);
//! - a batch that decodes holds at most `MAX_BATCH_LEN` messages and
//!   round-trips;
//! - every verified order, cancel and update satisfies the documented rules
//!   (distinct assets, amounts and prices in range, expiry after creation,
//!   id = SHA-256 of the body, canonical asset spelling).
//!
//! A fuzzer cannot forge signatures, so mutated signed messages stop at
//! signature verification. A malicious maker can sign anything, though: so
//! every signed body that decodes is also re-signed by a fixed "fuzz maker"
//! key and verified again. That reaches the term checks with arbitrary
//! bodies, and asserts that an honestly signed body is never refused on
//! signature grounds and has exactly one encoding (re-signing the verified
//! terms through the public API gives the same body, hence the same id).

use std::sync::LazyLock;

use darkswap_proto::{
    Asset, BatchedMessage, CancelBody, DecodeError, Disconnect, MAX_AMOUNT, MAX_BATCH_LEN,
    MAX_MESSAGE_SIZE, Message, NewOrder, Order, OrderBody, OrderCancel, OrderCreate, OrderError,
    OrderId, OrderUpdate, OrderbookRequest, OrderbookResponse, PRICE_SCALE, Ping, PsbtCreate, Side,
    SignedOrder, TradeAccept, TradePropose, UpdateBody, UpdateFields, batch_messages, decode,
    decode_batch, decode_with_limit, encode, encode_batch, identity::Keypair,
};
use prost::Message as _;

use crate::SEED_NOW;

/// Domain tags of the signatures (docs/protocol.md, "Signed orders").
const ORDER_TAG: &[u8] = b"darkswap/order/v1";
const CANCEL_TAG: &[u8] = b"darkswap/order-cancel/v1";
const UPDATE_TAG: &[u8] = b"darkswap/order-update/v1";

fn key(byte: u8) -> Keypair {
    // A 32-byte array is always a valid Ed25519 secret key.
    Keypair::ed25519_from_bytes([byte; 32]).unwrap_or_else(|e| panic!("ed25519 key: {e}"))
}

/// The malicious maker: signs whatever body the fuzzer produced.
static FUZZ_MAKER: LazyLock<Keypair> = LazyLock::new(|| key(0x5a));

/// Runs one input through the decoder and verification.
pub fn check(data: &[u8]) {
    check_limit(data);
    if let Ok(message) = decode(data) {
        check_message(&message);
    }
    if let Ok(messages) = decode_batch(data, MAX_MESSAGE_SIZE) {
        check_batch(messages);
    }
}

fn check_limit(data: &[u8]) {
    match (decode_with_limit(data, data.len()), decode(data)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("an input at the limit decodes differently: {a:?} vs {b:?}"),
    }
    if let Some(max) = data.len().checked_sub(1) {
        match decode_with_limit(data, max) {
            Err(DecodeError::TooLarge { size, max: m }) => {
                assert_eq!((size, m), (data.len(), max));
            }
            other => panic!("an input over the limit was not refused as too large: {other:?}"),
        }
    }
}

fn check_message(message: &Message) {
    let bytes = encode(message);
    let again = decode(&bytes)
        .unwrap_or_else(|e| panic!("a re-encoded {} does not decode: {e}", message.kind()));
    assert_eq!(&again, message, "decode(encode(m)) != m");
    assert_eq!(encode(&again), bytes, "the encoding is not canonical");
    let _ = (
        message.priority(),
        message.is_orderbook(),
        message.is_trade(),
    );
    match message {
        Message::OrderCreate(create) => check_create(create),
        Message::OrderCancel(cancel) => check_cancel(cancel),
        Message::OrderUpdate(update) => check_update(update),
        Message::OrderbookResponse(response) => {
            response.orders.iter().for_each(check_create);
            response.cancels.iter().for_each(check_cancel);
            response.updates.iter().for_each(check_update);
        }
        _ => {}
    }
}

fn check_batch(messages: Vec<Message>) {
    assert!(messages.len() <= MAX_BATCH_LEN, "a batch over the limit");
    let bytes = encode_batch(&batch_messages(messages.clone()));
    match decode_batch(&bytes, usize::MAX) {
        Ok(again) => assert_eq!(again, messages, "a batch does not round-trip"),
        Err(e) => panic!("a re-encoded batch does not decode: {e}"),
    }
}

/// Panics if an honestly signed part was refused for its signature.
fn assert_not_signature_error(kind: &str, result: Result<(), OrderError>) {
    if let Err(
        e @ (OrderError::InvalidMaker
        | OrderError::InvalidPublicKey
        | OrderError::MakerMismatch
        | OrderError::BadSignature
        | OrderError::MalformedBody(_)),
    ) = result
    {
        panic!("an honestly signed {kind} was refused: {e}");
    }
}

fn sign_raw(tag: &[u8], body: &[u8]) -> Vec<u8> {
    FUZZ_MAKER
        .sign(&[tag, body].concat())
        .unwrap_or_else(|e| panic!("ed25519 signing: {e}"))
}

fn fuzz_maker_bytes() -> Vec<u8> {
    FUZZ_MAKER.public().to_peer_id().to_bytes()
}

fn check_create(create: &OrderCreate) {
    if let Ok(announced) = create.verify() {
        let signed = create.order.as_ref();
        assert!(
            signed.is_some(),
            "an order create without an order verified"
        );
        if let Some(signed) = signed {
            check_order(&announced.order, signed);
        }
        assert!(announced.last_vouched() >= announced.order.created_at);
        for now in [0, announced.last_vouched(), u64::MAX] {
            let _ = announced.check_time(now);
        }
    }
    let Some(signed) = &create.order else { return };
    let Ok(mut body) = OrderBody::decode(signed.body.as_slice()) else {
        return;
    };
    body.maker = fuzz_maker_bytes();
    let body = body.encode_to_vec();
    let resigned = SignedOrder {
        signature: sign_raw(ORDER_TAG, &body),
        public_key: FUZZ_MAKER.public().encode_protobuf(),
        body,
    };
    let verified = resigned.verify();
    assert_not_signature_error("order", verified.as_ref().map(|_| ()).map_err(Clone::clone));
    let Ok(order) = verified else { return };
    check_order(&order, &resigned);
    assert_eq!(order.maker, FUZZ_MAKER.public().to_peer_id());
    // One order, one encoding: the public API signs the same body.
    let again = NewOrder {
        side: order.side,
        base: order.base,
        quote: order.quote,
        amount: order.amount,
        price: order.price,
        created_at: order.created_at,
        expires_at: order.expires_at,
        nonce: order.nonce,
    }
    .sign(&FUZZ_MAKER)
    .unwrap_or_else(|e| panic!("verified terms do not sign: {e}"));
    assert_eq!(again.body, resigned.body, "one order with two encodings");
    let announced = OrderCreate::announce(resigned, create.announced_at, &FUZZ_MAKER)
        .and_then(|c| c.verify())
        .unwrap_or_else(|e| panic!("an honest announcement was refused: {e}"));
    assert_eq!(announced.announced_at, Some(create.announced_at));
}

fn check_order(order: &Order, signed: &SignedOrder) {
    assert_eq!(order.id, signed.id());
    assert_eq!(order.id, OrderId::of_body(&signed.body));
    assert_eq!(order.id.to_string().parse::<OrderId>(), Ok(order.id));
    assert_ne!(order.base, order.quote, "an order between one asset");
    assert!(
        (1..=MAX_AMOUNT).contains(&order.amount),
        "amount out of range"
    );
    assert!(
        (1..=MAX_AMOUNT).contains(&order.price),
        "price out of range"
    );
    assert!(
        order.expires_at > order.created_at,
        "expiry before creation"
    );
    for asset in [order.base, order.quote] {
        assert_eq!(asset.to_string().parse::<Asset>(), Ok(asset));
    }
    assert_eq!(order.side.to_string().parse::<Side>(), Ok(order.side));
    assert!(order.is_expired(order.expires_at));
    assert!(!order.is_expired(order.expires_at - 1));
    assert!(order.check_time(order.expires_at).is_err());
    for now in [0, order.created_at, u64::MAX] {
        let _ = order.check_time(now);
    }
}

fn check_cancel(cancel: &OrderCancel) {
    if let Ok(c) = cancel.verify() {
        let _ = (c.check_time(0), c.check_time(u64::MAX));
    }
    let Ok(mut body) = CancelBody::decode(cancel.body.as_slice()) else {
        return;
    };
    body.maker = fuzz_maker_bytes();
    let body = body.encode_to_vec();
    let resigned = OrderCancel {
        signature: sign_raw(CANCEL_TAG, &body),
        public_key: FUZZ_MAKER.public().encode_protobuf(),
        body,
    };
    let verified = resigned.verify();
    assert_not_signature_error(
        "cancel",
        verified.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let Ok(c) = verified else { return };
    assert_eq!(c.maker, FUZZ_MAKER.public().to_peer_id());
    let again = OrderCancel::sign(c.order_id, c.cancelled_at, &FUZZ_MAKER)
        .unwrap_or_else(|e| panic!("a verified cancel does not sign: {e}"));
    assert_eq!(again.body, resigned.body, "one cancel with two encodings");
    let _ = (c.check_time(0), c.check_time(u64::MAX));
}

fn check_update(update: &OrderUpdate) {
    if let Ok(u) = update.verify() {
        let _ = (u.check_time(0), u.check_time(u64::MAX));
    }
    let Ok(mut body) = UpdateBody::decode(update.body.as_slice()) else {
        return;
    };
    body.maker = fuzz_maker_bytes();
    let body = body.encode_to_vec();
    let resigned = OrderUpdate {
        signature: sign_raw(UPDATE_TAG, &body),
        public_key: FUZZ_MAKER.public().encode_protobuf(),
        body,
    };
    let verified = resigned.verify();
    assert_not_signature_error(
        "update",
        verified.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    let Ok(u) = verified else { return };
    assert_eq!(u.maker, FUZZ_MAKER.public().to_peer_id());
    let f = u.fields;
    assert!((1..=MAX_AMOUNT).contains(&f.amount), "amount out of range");
    assert!((1..=MAX_AMOUNT).contains(&f.price), "price out of range");
    assert!(f.expires_at > f.updated_at, "expiry before the update");
    let again = OrderUpdate::sign(u.order_id, f, &FUZZ_MAKER)
        .unwrap_or_else(|e| panic!("a verified update does not sign: {e}"));
    assert_eq!(again.body, resigned.body, "one update with two encodings");
    assert!(u.check_time(f.expires_at).is_err());
    let _ = (u.check_time(0), u.check_time(u64::MAX));
}

/// Valid envelopes of most message types (orders signed by a fixed key),
/// a batch, and a few refused inputs.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let maker = key(0x01);
    let signed = NewOrder {
        side: Side::Sell,
        base: Asset::Rune {
            block: 840_000,
            tx: 3,
        },
        quote: Asset::Btc,
        amount: 1_000,
        price: 25 * PRICE_SCALE,
        created_at: SEED_NOW,
        expires_at: SEED_NOW + 3600,
        nonce: 42,
    }
    .sign(&maker)
    .unwrap_or_else(|e| panic!("seed order: {e}"));
    let id = signed.id();
    let create = OrderCreate::announce(signed.clone(), SEED_NOW + 60, &maker)
        .unwrap_or_else(|e| panic!("seed announcement: {e}"));
    let cancel = OrderCancel::sign(id, SEED_NOW + 120, &maker)
        .unwrap_or_else(|e| panic!("seed cancel: {e}"));
    let update = OrderUpdate::sign(
        id,
        UpdateFields {
            sequence: 1,
            amount: 500,
            price: 24 * PRICE_SCALE,
            expires_at: SEED_NOW + 7200,
            updated_at: SEED_NOW + 90,
        },
        &maker,
    )
    .unwrap_or_else(|e| panic!("seed update: {e}"));
    let trade_id = vec![7u8; 16];
    let messages = [
        (
            "ping",
            Message::Ping(Ping {
                nonce: 1,
                timestamp_ms: SEED_NOW * 1000,
            }),
        ),
        (
            "disconnect",
            Message::Disconnect(Disconnect {
                reason: "shutting down".into(),
                sent_at: 1_700_000_000,
            }),
        ),
        ("order_create", Message::OrderCreate(create.clone())),
        (
            "order_create_plain",
            Message::OrderCreate(OrderCreate::from_order(signed)),
        ),
        ("order_cancel", Message::OrderCancel(cancel.clone())),
        ("order_update", Message::OrderUpdate(update.clone())),
        (
            "orderbook_request",
            Message::OrderbookRequest(OrderbookRequest {
                base: "rune:840000:3".into(),
                quote: "BTC".into(),
            }),
        ),
        (
            "orderbook_response",
            Message::OrderbookResponse(OrderbookResponse {
                orders: vec![create],
                updates: vec![update],
                cancels: vec![cancel],
            }),
        ),
        (
            "trade_propose",
            Message::TradePropose(TradePropose {
                trade_id: trade_id.clone(),
                order_id: id.as_bytes().to_vec(),
                amount: 100,
                price: 25 * PRICE_SCALE,
                created_at: SEED_NOW + 30,
                expires_at: SEED_NOW + 330,
                offer: None,
            }),
        ),
        (
            "trade_accept",
            Message::TradeAccept(TradeAccept {
                trade_id: trade_id.clone(),
                offer: None,
            }),
        ),
        (
            "psbt_create",
            Message::PsbtCreate(PsbtCreate {
                trade_id,
                psbt: b"psbt\xff\x01\x00".to_vec(),
            }),
        ),
    ];
    let mut seeds: Vec<(&'static str, Vec<u8>)> = messages
        .iter()
        .map(|(name, m)| (*name, encode(m)))
        .collect();
    let batch: BatchedMessage =
        batch_messages(messages[..3].iter().map(|(_, m)| m.clone()).collect());
    seeds.push(("batch", encode_batch(&batch)));
    // Refused: wrong version, empty, truncated varint.
    seeds.push(("version_2", vec![0x08, 0x02, 0x52, 0x00]));
    seeds.push(("empty", Vec::new()));
    seeds.push(("truncated", vec![0x0a, 0x80]));
    seeds
}
