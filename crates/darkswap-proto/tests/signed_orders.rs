//! Orders, cancels and updates verify only as signed by their maker; any
//! change to any signed field is detected.

use darkswap_proto::identity::Keypair;
use darkswap_proto::*;
use prost::Message as _;

const NOW: u64 = 1_800_000_000;

fn new_order() -> NewOrder {
    NewOrder {
        side: Side::Sell,
        base: "rune:840000:3".parse().unwrap(),
        quote: Asset::Btc,
        amount: 1_000,
        price: 25 * PRICE_SCALE,
        created_at: NOW,
        expires_at: NOW + 3600,
        nonce: 42,
    }
}

#[test]
fn a_signed_order_verifies_with_its_terms() {
    let key = Keypair::generate_ed25519();
    let signed = new_order().sign(&key).unwrap();
    let order = signed.verify().unwrap();
    assert_eq!(order.maker, key.public().to_peer_id());
    assert_eq!(order.id, signed.id());
    assert_eq!(order.side, Side::Sell);
    assert_eq!(
        order.base,
        Asset::Rune {
            block: 840_000,
            tx: 3
        }
    );
    assert_eq!(
        (order.amount, order.price, order.nonce),
        (1_000, 25 * PRICE_SCALE, 42)
    );
    order.check_time(NOW + 10).unwrap();
    // Survives the wire.
    let msg = Message::OrderCreate(OrderCreate::from_order(signed.clone()));
    let Message::OrderCreate(OrderCreate {
        order: Some(back), ..
    }) = decode(&encode(&msg)).unwrap()
    else {
        panic!("wrong variant")
    };
    assert_eq!(back.verify().unwrap(), order);
}

#[test]
fn order_ids_differ_by_nonce() {
    let key = Keypair::generate_ed25519();
    let a = new_order().sign(&key).unwrap();
    let b = NewOrder {
        nonce: 43,
        ..new_order()
    }
    .sign(&key)
    .unwrap();
    assert_ne!(a.id(), b.id());
    assert_eq!(a.id().to_string().parse::<OrderId>().unwrap(), a.id());
}

/// Re-encodes the body with one field changed and the old signature kept.
fn tampered(signed: &SignedOrder, change: impl FnOnce(&mut OrderBody)) -> SignedOrder {
    let mut body = OrderBody::decode(&signed.body[..]).unwrap();
    change(&mut body);
    SignedOrder {
        body: body.encode_to_vec(),
        ..signed.clone()
    }
}

#[test]
fn tampering_with_any_signed_field_is_detected() {
    let key = Keypair::generate_ed25519();
    let other = Keypair::generate_ed25519();
    let signed = new_order().sign(&key).unwrap();
    type Change = Box<dyn FnOnce(&mut OrderBody)>;
    let cases: Vec<(&str, Change)> = vec![
        ("side", Box::new(|b| b.side = 1)),
        ("base", Box::new(|b| b.base = "rune:840000:4".into())),
        ("quote", Box::new(|b| b.quote = "alkane:2:1".into())),
        ("amount", Box::new(|b| b.amount += 1)),
        ("price", Box::new(|b| b.price -= 1)),
        ("created_at", Box::new(|b| b.created_at -= 1)),
        ("expires_at", Box::new(|b| b.expires_at += 1)),
        ("nonce", Box::new(|b| b.nonce ^= 1)),
    ];
    for (field, change) in cases {
        assert_eq!(
            tampered(&signed, change).verify(),
            Err(OrderError::BadSignature),
            "field {field}"
        );
    }
    // Claiming someone else as maker: the key no longer matches the maker.
    let moved = tampered(&signed, |b| {
        b.maker = other.public().to_peer_id().to_bytes()
    });
    assert_eq!(moved.verify(), Err(OrderError::MakerMismatch));
    // Swapping in another key.
    let rekeyed = SignedOrder {
        public_key: other.public().encode_protobuf(),
        ..signed.clone()
    };
    assert_eq!(rekeyed.verify(), Err(OrderError::MakerMismatch));
    // Re-signing with another key but keeping the maker.
    let mut sig = signed.clone();
    sig.signature[0] ^= 0x01;
    assert_eq!(sig.verify(), Err(OrderError::BadSignature));
    let mut truncated = signed.clone();
    truncated.signature.truncate(10);
    assert_eq!(truncated.verify(), Err(OrderError::BadSignature));
    // Garbage keys and bodies.
    let garbage_key = SignedOrder {
        public_key: vec![1, 2, 3],
        ..signed.clone()
    };
    assert_eq!(garbage_key.verify(), Err(OrderError::InvalidPublicKey));
    let garbage_body = SignedOrder {
        body: vec![0xff, 0xff],
        ..signed.clone()
    };
    assert!(matches!(
        garbage_body.verify(),
        Err(OrderError::MalformedBody(_))
    ));
}

#[test]
fn an_order_signed_by_someone_else_for_the_maker_is_refused() {
    let maker = Keypair::generate_ed25519();
    let forger = Keypair::generate_ed25519();
    // The forger signs a body naming the maker with its own key.
    let mut body = OrderBody::decode(&new_order().sign(&maker).unwrap().body[..]).unwrap();
    body.nonce = 7;
    let forged_body = body.encode_to_vec();
    let forged = SignedOrder {
        signature: forger
            .sign(&[b"darkswap/order/v1".as_slice(), &forged_body].concat())
            .unwrap(),
        body: forged_body,
        public_key: forger.public().encode_protobuf(),
    };
    assert_eq!(forged.verify(), Err(OrderError::MakerMismatch));
}

#[test]
fn invalid_terms_are_refused_at_signing_and_verification() {
    let key = Keypair::generate_ed25519();
    assert_eq!(
        NewOrder {
            amount: 0,
            ..new_order()
        }
        .sign(&key),
        Err(OrderError::ZeroAmount)
    );
    assert_eq!(
        NewOrder {
            price: 0,
            ..new_order()
        }
        .sign(&key),
        Err(OrderError::ZeroPrice)
    );
    assert_eq!(
        NewOrder {
            quote: new_order().base,
            ..new_order()
        }
        .sign(&key),
        Err(OrderError::SameAsset)
    );
    assert_eq!(
        NewOrder {
            expires_at: NOW,
            ..new_order()
        }
        .sign(&key),
        Err(OrderError::InvalidExpiry)
    );

    // A maker that signs bad terms by hand is still refused by receivers.
    let sign_raw = |body: OrderBody| {
        let body = body.encode_to_vec();
        let signature = key
            .sign(&[b"darkswap/order/v1".as_slice(), &body].concat())
            .unwrap();
        SignedOrder {
            body,
            public_key: key.public().encode_protobuf(),
            signature,
        }
    };
    let good = OrderBody::decode(&new_order().sign(&key).unwrap().body[..]).unwrap();
    let cases = [
        (
            OrderBody {
                amount: 0,
                ..good.clone()
            },
            OrderError::ZeroAmount,
        ),
        (
            OrderBody {
                price: 0,
                ..good.clone()
            },
            OrderError::ZeroPrice,
        ),
        (
            OrderBody {
                side: 0,
                ..good.clone()
            },
            OrderError::UnspecifiedSide,
        ),
        (
            OrderBody {
                side: 9,
                ..good.clone()
            },
            OrderError::UnspecifiedSide,
        ),
        (
            OrderBody {
                expires_at: good.created_at,
                ..good.clone()
            },
            OrderError::InvalidExpiry,
        ),
        (
            OrderBody {
                quote: good.base.clone(),
                ..good.clone()
            },
            OrderError::SameAsset,
        ),
        (
            // -5 written by a client that uses signed integers.
            OrderBody {
                amount: (-5i64) as u64,
                ..good.clone()
            },
            OrderError::OutOfRange {
                field: "amount",
                value: (-5i64) as u64,
            },
        ),
        (
            OrderBody {
                price: MAX_AMOUNT + 1,
                ..good.clone()
            },
            OrderError::OutOfRange {
                field: "price",
                value: MAX_AMOUNT + 1,
            },
        ),
    ];
    for (body, want) in cases {
        assert_eq!(sign_raw(body).verify(), Err(want));
    }
    // The largest amount is fine.
    assert!(
        sign_raw(OrderBody {
            amount: MAX_AMOUNT,
            ..good.clone()
        })
        .verify()
        .is_ok()
    );
    let bad_asset = sign_raw(OrderBody {
        base: "doge".into(),
        ..good.clone()
    });
    assert!(matches!(
        bad_asset.verify(),
        Err(OrderError::InvalidAsset(AssetError::Unknown(_)))
    ));
    assert_eq!(bad_asset.verify().unwrap_err().reason(), "invalid_asset");
}

#[test]
fn rejections_have_stable_reason_labels() {
    let key = Keypair::generate_ed25519();
    let signed = new_order().sign(&key).unwrap();
    let mut forged = signed.clone();
    forged.signature[3] ^= 0x10;
    assert_eq!(forged.verify().unwrap_err().reason(), "bad_signature");
    let negative = OrderError::OutOfRange {
        field: "amount",
        value: u64::MAX,
    };
    assert_eq!(negative.reason(), "invalid_amount");
    assert_eq!(OrderError::ZeroAmount.reason(), "invalid_amount");
    assert_eq!(OrderError::ZeroPrice.reason(), "invalid_price");
    let order = signed.verify().unwrap();
    assert_eq!(
        order.check_time(order.expires_at).unwrap_err().reason(),
        "expired"
    );
}

#[test]
fn time_rules() {
    let key = Keypair::generate_ed25519();
    let order = new_order().sign(&key).unwrap().verify().unwrap();
    assert!(matches!(
        order.check_time(NOW + 3600),
        Err(OrderError::Expired { .. })
    ));
    assert!(order.check_time(NOW - MAX_CLOCK_SKEW_SECS).is_ok());
    assert!(matches!(
        order.check_time(NOW - MAX_CLOCK_SKEW_SECS - 1),
        Err(OrderError::FromTheFuture { .. })
    ));
}

#[test]
fn cancels_are_signed_by_the_maker() {
    let key = Keypair::generate_ed25519();
    let order = new_order().sign(&key).unwrap();
    let cancel = OrderCancel::sign(order.id(), NOW + 5, &key).unwrap();
    let verified = cancel.verify().unwrap();
    assert_eq!(verified.order_id, order.id());
    assert_eq!(verified.maker, key.public().to_peer_id());
    assert_eq!(verified.cancelled_at, NOW + 5);

    let mut body = CancelBody::decode(&cancel.body[..]).unwrap();
    body.cancelled_at += 1;
    let t = OrderCancel {
        body: body.encode_to_vec(),
        ..cancel.clone()
    };
    assert_eq!(t.verify(), Err(OrderError::BadSignature));
    let mut body = CancelBody::decode(&cancel.body[..]).unwrap();
    body.order_id[0] ^= 1;
    let t = OrderCancel {
        body: body.encode_to_vec(),
        ..cancel.clone()
    };
    assert_eq!(t.verify(), Err(OrderError::BadSignature));
    let other = Keypair::generate_ed25519();
    let t = OrderCancel {
        public_key: other.public().encode_protobuf(),
        ..cancel
    };
    assert_eq!(t.verify(), Err(OrderError::MakerMismatch));
}

#[test]
fn updates_are_signed_and_checked() {
    let key = Keypair::generate_ed25519();
    let order = new_order().sign(&key).unwrap();
    let fields = UpdateFields {
        sequence: 1,
        amount: 500,
        price: 26 * PRICE_SCALE,
        expires_at: NOW + 7200,
        updated_at: NOW + 1,
    };
    let update = OrderUpdate::sign(order.id(), fields, &key).unwrap();
    let verified = update.verify().unwrap();
    assert_eq!(verified.fields, fields);
    assert_eq!(verified.order_id, order.id());
    verified.check_time(NOW + 2).unwrap();
    assert!(verified.check_time(NOW + 7200).is_err());

    for change in [
        Box::new(|b: &mut UpdateBody| b.sequence += 1) as Box<dyn Fn(&mut UpdateBody)>,
        Box::new(|b| b.amount += 1),
        Box::new(|b| b.price += 1),
        Box::new(|b| b.expires_at += 1),
        Box::new(|b| b.updated_at += 1),
        Box::new(|b| b.order_id[5] ^= 1),
    ] {
        let mut body = UpdateBody::decode(&update.body[..]).unwrap();
        change(&mut body);
        let t = OrderUpdate {
            body: body.encode_to_vec(),
            ..update.clone()
        };
        assert_eq!(t.verify(), Err(OrderError::BadSignature));
    }
    assert_eq!(
        OrderUpdate::sign(
            order.id(),
            UpdateFields {
                amount: 0,
                ..fields
            },
            &key
        ),
        Err(OrderError::ZeroAmount)
    );
}

#[test]
fn announcements_are_signed_by_the_maker() {
    let key = Keypair::generate_ed25519();
    let other = Keypair::generate_ed25519();
    let signed = new_order().sign(&key).unwrap();
    let bare = OrderCreate::from_order(signed.clone()).verify().unwrap();
    assert_eq!(bare.announced_at, None);
    assert_eq!(bare.last_vouched(), NOW);

    let announced = OrderCreate::announce(signed.clone(), NOW + 100, &key).unwrap();
    let v = announced.verify().unwrap();
    assert_eq!(v.announced_at, Some(NOW + 100));
    assert_eq!(v.last_vouched(), NOW + 100);
    v.check_time(NOW + 100).unwrap();
    assert!(matches!(v.check_time(NOW), Ok(())), "within the clock skew");
    assert!(matches!(
        v.check_time(NOW - 1000),
        Err(OrderError::FromTheFuture { .. })
    ));

    // A replayer cannot move the announcement forward...
    let moved = OrderCreate {
        announced_at: NOW + 200,
        ..announced.clone()
    };
    assert_eq!(moved.verify(), Err(OrderError::BadSignature));
    // ...nor announce someone else's order.
    let foreign = OrderCreate::announce(signed.clone(), NOW + 100, &other).unwrap();
    assert_eq!(foreign.verify(), Err(OrderError::BadSignature));
    let half = OrderCreate {
        announcement_signature: vec![],
        ..announced
    };
    assert_eq!(half.verify(), Err(OrderError::BadSignature));
}

#[test]
fn a_batch_agrees_with_one_by_one_verification() {
    let keys: Vec<_> = (0..3).map(|_| Keypair::generate_ed25519()).collect();
    let creates: Vec<_> = (0..30u64)
        .map(|n| {
            let key = &keys[(n % 3) as usize];
            let order = NewOrder {
                nonce: n,
                ..new_order()
            }
            .sign(key)
            .unwrap();
            // Two signatures each: the order and its announcement.
            OrderCreate::announce(order, NOW + n, key).unwrap()
        })
        .collect();
    let cancel = OrderCancel::sign(creates[0].order.as_ref().unwrap().id(), NOW, &keys[0]).unwrap();

    // All valid: the batch holds 61 signatures and verifies, with the same
    // results as one by one.
    let mut batch = SignatureBatch::new();
    let batched: Vec<_> = creates
        .iter()
        .map(|c| c.verify_batched(&mut batch).unwrap())
        .collect();
    assert_eq!(
        cancel.verify_batched(&mut batch).unwrap(),
        cancel.verify().unwrap()
    );
    assert_eq!(batch.len(), 61);
    batch.verify().unwrap();
    let single: Vec<_> = creates.iter().map(|c| c.verify().unwrap()).collect();
    assert_eq!(batched, single);

    // One bad announcement signature: the batch fails, and one-by-one
    // verification finds exactly that one.
    let mut forged = creates.clone();
    forged[7].announcement_signature[3] ^= 0x40;
    let mut batch = SignatureBatch::new();
    for c in &forged {
        c.verify_batched(&mut batch).unwrap();
    }
    assert_eq!(batch.verify(), Err(BatchError::Invalid));
    let refused: Vec<_> = forged
        .iter()
        .enumerate()
        .filter(|(_, c)| c.verify().is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(refused, [7]);
    assert_eq!(forged[7].verify(), Err(OrderError::BadSignature));

    // What is not a signature (terms, the maker's key) is checked before
    // anything is queued.
    let mut batch = SignatureBatch::new();
    let stranger = Keypair::generate_ed25519();
    let mut wrong_key = creates[1].order.clone().unwrap();
    wrong_key.public_key = stranger.public().encode_protobuf();
    assert_eq!(
        wrong_key.verify_batched(&mut batch),
        Err(OrderError::MakerMismatch)
    );
    assert!(batch.is_empty());
    SignatureBatch::new().verify().unwrap();
}
