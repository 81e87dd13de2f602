//! The wire is the contract: each type writes the JSON the API has always
//! written (the README's names), and reads it back.

use std::time::{Duration, UNIX_EPOCH};

use darkswap_p2p::{BanReason, BannedPeer, NetworkEvent, OrderbookChange, PeerId, PenaltyReason};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::*;

/// `value` writes `wire`, and `wire` reads back as `value`.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    value: &T,
    wire: Value,
) {
    assert_eq!(serde_json::to_value(value).unwrap(), wire);
    assert_eq!(&serde_json::from_value::<T>(wire).unwrap(), value);
}

fn order() -> Order {
    Order {
        id: "ab".repeat(32),
        maker: "12D3KooWmaker".into(),
        side: "sell".into(),
        base: "BTC".into(),
        quote: "rune:1:0".into(),
        amount: 5,
        price: 9,
        created_at: 10,
        expires_at: 20,
    }
}

fn order_json() -> Value {
    json!({
        "id": "ab".repeat(32), "maker": "12D3KooWmaker", "side": "sell", "base": "BTC",
        "quote": "rune:1:0", "amount": 5, "price": 9, "created_at": 10, "expires_at": 20,
    })
}

#[test]
fn orders_and_the_book_keep_their_wire_names() {
    round_trip(&order(), order_json());
    round_trip(
        &Orderbook {
            base: "BTC".into(),
            quote: "rune:1:0".into(),
            bids: vec![],
            asks: vec![order()],
        },
        json!({ "base": "BTC", "quote": "rune:1:0", "bids": [], "asks": [order_json()] }),
    );
    round_trip(
        &CreateOrder {
            side: "buy".into(),
            base: "BTC".into(),
            quote: "alkane:2:1".into(),
            amount: 7,
            price: 9,
            expires_in: 3600,
        },
        json!({ "side": "buy", "base": "BTC", "quote": "alkane:2:1", "amount": 7, "price": 9, "expires_in": 3600 }),
    );
}

#[test]
fn a_create_with_an_unknown_field_is_refused() {
    let wire = json!({ "side": "buy", "base": "BTC", "quote": "BTC", "amount": 1, "price": 1, "expires_in": 1, "pad": 0 });
    let error = serde_json::from_value::<CreateOrder>(wire).unwrap_err();
    assert!(error.to_string().contains("pad"), "{error}");
}

#[test]
fn an_update_sends_only_the_fields_given_and_its_id_in_the_path() {
    let update = UpdateOrder {
        id: "ab".into(),
        amount: Some(7),
        price: None,
        expires_in_secs: Some(60),
    };
    assert_eq!(
        serde_json::to_value(&update).unwrap(),
        json!({ "amount": 7, "expires_in_secs": 60 })
    );
    assert_eq!(update.path(), "/v1/orders/ab");
    assert_eq!(UpdateOrder::ROUTE, CancelOrder::ROUTE);
    let read: UpdateOrder = serde_json::from_value(json!({ "price": 3 })).unwrap();
    assert_eq!(
        (read.amount, read.price, read.expires_in_secs),
        (None, Some(3), None)
    );
    let error = serde_json::from_value::<UpdateOrder>(json!({ "id": "ab" })).unwrap_err();
    assert!(error.to_string().contains("id"), "{error}");
}

#[test]
fn status_peers_and_bans_keep_their_wire_names() {
    let ban = Ban {
        peer_id: "12D3KooWbanned".into(),
        until: None,
        reason: "manual".into(),
        bans: 0,
    };
    let ban_json =
        json!({ "peer_id": "12D3KooWbanned", "until": null, "reason": "manual", "bans": 0 });
    round_trip(&ban, ban_json.clone());
    round_trip(
        &Status {
            peer_id: "12D3KooWme".into(),
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            nat_status: "unknown".into(),
            relays: vec![Relay {
                peer_id: "12D3KooWrelay".into(),
                circuit_addr: "/p2p-circuit".into(),
                reserved: true,
                state: "reserved".into(),
                score: 62.5,
                rtt_ms: Some(12),
                sources: vec!["configured".into(), "identify".into()],
            }],
            peers: 2,
            own_orders: 1,
            rejected_messages: 5,
            banned_peers: vec![ban],
        },
        json!({
            "peer_id": "12D3KooWme", "listen_addrs": ["/ip4/127.0.0.1/tcp/4001"],
            "nat_status": "unknown",
            "relays": [{
                "peer_id": "12D3KooWrelay", "circuit_addr": "/p2p-circuit", "reserved": true,
                "state": "reserved", "score": 62.5, "rtt_ms": 12,
                "sources": ["configured", "identify"],
            }],
            "peers": 2, "own_orders": 1, "rejected_messages": 5, "banned_peers": [ban_json],
        }),
    );
    round_trip(
        &Peer {
            peer_id: "12D3KooWpeer".into(),
            address: "/ip4/1.2.3.4/tcp/1".into(),
            path: "direct".into(),
            latency_ms: None,
            connections: vec![
                darkswap_p2p::json::PeerConnection {
                    address: "/ip4/5.6.7.8/tcp/1/p2p/12D3KooWrelay/p2p-circuit".into(),
                    path: "relayed".into(),
                },
                darkswap_p2p::json::PeerConnection {
                    address: "/ip4/1.2.3.4/tcp/1".into(),
                    path: "direct".into(),
                },
            ],
        },
        json!({ "peer_id": "12D3KooWpeer", "address": "/ip4/1.2.3.4/tcp/1", "path": "direct", "latency_ms": null,
                "connections": [
                    { "address": "/ip4/5.6.7.8/tcp/1/p2p/12D3KooWrelay/p2p-circuit", "path": "relayed" },
                    { "address": "/ip4/1.2.3.4/tcp/1", "path": "direct" },
                ] }),
    );
    // The CLI has always sent an absent duration as null; both read.
    round_trip(
        &BanPeer {
            peer_id: "p".into(),
            duration_secs: None,
        },
        json!({ "peer_id": "p", "duration_secs": null }),
    );
    assert_eq!(
        serde_json::from_value::<BanPeer>(json!({ "peer_id": "p" })).unwrap(),
        BanPeer {
            peer_id: "p".into(),
            duration_secs: None
        }
    );
}

#[test]
fn a_ban_ends_no_earlier_than_it_does() {
    let peer = PeerId::random();
    let ban = Ban::from(&BannedPeer {
        peer_id: peer,
        until: Some(UNIX_EPOCH + Duration::from_millis(1_800_000_000_001)),
        reason: BanReason::Misbehaviour(PenaltyReason::InvalidSignature),
        bans: 2,
    });
    assert_eq!(
        serde_json::to_value(&ban).unwrap(),
        json!({ "peer_id": peer.to_string(), "until": 1_800_000_001u64, "reason": "invalid_signature", "bans": 2 })
    );
}

#[test]
fn errors_are_an_error_object_with_code_and_message() {
    round_trip(
        &ErrorBody {
            error: ErrorDetail {
                code: "not_own_order".into(),
                message: "no".into(),
            },
        },
        json!({ "error": { "code": "not_own_order", "message": "no" } }),
    );
}

#[test]
fn events_are_typed_by_their_snake_case_name() {
    let maker = PeerId::random();
    let id = darkswap_proto::OrderId::of_body(b"order");
    let cases = [
        (
            v1_event(NetworkEvent::PeerConnected(maker)),
            json!({ "type": "peer_connected", "peer_id": maker.to_string() }),
        ),
        (
            v1_event(NetworkEvent::OrderbookChanged(OrderbookChange::Cancelled {
                order_id: id,
                maker,
            })),
            json!({ "type": "order_cancelled", "id": id.to_string(), "maker": maker.to_string() }),
        ),
        (
            v1_event(NetworkEvent::OrderbookChanged(OrderbookChange::Expired(
                vec![id],
            ))),
            json!({ "type": "orders_expired", "ids": [id.to_string()] }),
        ),
        (
            v1_event(NetworkEvent::PeerBanned {
                peer_id: maker,
                until: None,
                reason: BanReason::Manual,
            }),
            json!({ "type": "peer_banned", "peer_id": maker.to_string(), "until": null, "reason": "manual" }),
        ),
        (
            v1_event(NetworkEvent::EventsDropped { count: 3 }),
            json!({ "type": "network", "event": "EventsDropped { count: 3 }" }),
        ),
        (
            Event::OrderAdded { order: order() },
            json!({ "type": "order_added", "order": order_json() }),
        ),
        (
            Event::BookSaved { orders: 4 },
            json!({ "type": "book_saved", "orders": 4 }),
        ),
        (
            Event::BansSaved { bans: 1 },
            json!({ "type": "bans_saved", "bans": 1 }),
        ),
        (
            Event::Hello {
                peer_id: "me".into(),
                relays: vec![HelloRelay {
                    peer_id: "r".into(),
                    reserved: false,
                }],
            },
            json!({ "type": "hello", "peer_id": "me", "relays": [{ "peer_id": "r", "reserved": false }] }),
        ),
    ];
    for (event, wire) in cases {
        round_trip(&event, wire);
    }
}

fn v1_event(event: NetworkEvent) -> Event {
    Event::from(&event)
}

#[test]
fn paths_fill_in_the_routes_the_router_declares() {
    assert_eq!(CancelOrder { id: "ab".into() }.path(), "/v1/orders/ab");
    assert_eq!(CancelOrder::ROUTE, "/v1/orders/{id}");
    assert_eq!(
        UnbanPeer {
            peer_id: "p".into()
        }
        .path(),
        "/v1/bans/p"
    );
    assert_eq!(UnbanPeer::ROUTE, "/v1/bans/{peer}");
    assert_eq!(
        GetOrderbook {
            base: "BTC".into(),
            quote: "rune:1:0".into()
        }
        .path(),
        "/v1/orderbook?base=BTC&quote=rune:1:0"
    );
    assert_eq!(GetStatus.path(), GetStatus::ROUTE);
    assert_eq!(
        (CreateOrder::ROUTE, ListOwnOrders::ROUTE),
        ("/v1/orders", "/v1/orders")
    );
}

#[test]
fn webrtc_requests_and_answers_keep_their_wire_names() {
    let text = WebRtcMessage {
        text: Some("hi".into()),
        hex: None,
    };
    round_trip(&text, json!({ "text": "hi" }));
    let send = SendWebRtcMessage::new(
        "12D3KooWpeer".into(),
        WebRtcMessage {
            text: None,
            hex: Some("00ff".into()),
        },
    );
    // The peer is in the path only.
    assert_eq!(
        serde_json::to_value(&send).unwrap(),
        json!({ "hex": "00ff" })
    );
    assert_eq!(send.path(), "/v1/webrtc/channels/12D3KooWpeer/messages");
    let sent: SendWebRtcMessage = serde_json::from_value(json!({ "text": "hi" })).unwrap();
    assert_eq!(sent.message(), text);
    // A misspelt field is refused, not dropped.
    assert!(serde_json::from_value::<SendWebRtcMessage>(json!({ "txt": "hi" })).is_err());

    let receive = ReceiveWebRtcMessage {
        peer_id: "12D3KooWpeer".into(),
        wait_ms: 500,
    };
    assert_eq!(
        serde_json::to_value(&receive).unwrap(),
        json!({ "wait_ms": 500 })
    );
    assert_eq!(receive.path(), "/v1/webrtc/channels/12D3KooWpeer/receive");
    let empty: ReceiveWebRtcMessage = serde_json::from_value(json!({})).unwrap();
    assert_eq!(empty.wait_ms, 0);
    // Nothing came: `null`.
    assert_eq!(
        serde_json::from_value::<<ReceiveWebRtcMessage as Endpoint>::Response>(Value::Null)
            .unwrap(),
        None
    );

    round_trip(
        &WebRtcStatus {
            enabled: true,
            signaling: vec![SignalingRelay {
                url: "ws://127.0.0.1:9001/signaling".into(),
                state: "connected".into(),
            }],
            channels: vec![WebRtcChannel {
                peer_id: "12D3KooWpeer".into(),
                path: "relayed".into(),
            }],
        },
        json!({
            "enabled": true,
            "signaling": [{ "url": "ws://127.0.0.1:9001/signaling", "state": "connected" }],
            "channels": [{ "peer_id": "12D3KooWpeer", "path": "relayed" }],
        }),
    );
    assert_eq!(
        CloseWebRtcChannel {
            peer_id: "12D3KooWpeer".into()
        }
        .path(),
        "/v1/webrtc/channels/12D3KooWpeer"
    );
    assert_eq!(OpenWebRtcChannel::ROUTE, "/v1/webrtc/channels");
}
