//! Helpers for this crate's integration tests (signed orders, event shapes).
#![allow(dead_code, unreachable_pub)]

use std::time::{SystemTime, UNIX_EPOCH};

use darkswap_p2p::{Keypair, Network, NetworkEvent, ORDERBOOK_TOPIC, PeerId, TRADE_TOPIC};
use darkswap_proto::{Asset, Message, NewOrder, OrderCreate, PRICE_SCALE, Side};
use darkswap_testkit::{EVENT_TIMEOUT, wait_for};

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn order_message(key: &Keypair, nonce: u64) -> Message {
    let now = now();
    let order = NewOrder {
        side: Side::Sell,
        base: "rune:840000:3".parse().unwrap(),
        quote: Asset::Btc,
        amount: 1_000 + nonce,
        price: 25 * PRICE_SCALE,
        created_at: now,
        expires_at: now + 600,
        nonce,
    }
    .sign(key)
    .unwrap();
    Message::OrderCreate(OrderCreate { order: Some(order) })
}

/// Waits until `peer` has subscribed to both DarkSwap topics.
pub async fn wait_subscribed(net: &mut Network, peer: PeerId) {
    let mut missing: std::collections::HashSet<&str> = [ORDERBOOK_TOPIC, TRADE_TOPIC].into();
    wait_for(
        net,
        &format!("{peer} subscribed to the DarkSwap topics"),
        EVENT_TIMEOUT,
        |e| {
            if let NetworkEvent::PeerSubscribed { peer_id, topic } = e
                && *peer_id == peer
            {
                missing.remove(topic.as_str());
            }
            missing.is_empty().then_some(())
        },
    )
    .await
}

pub async fn wait_message(net: &mut Network, from: PeerId, topic: &str) -> Message {
    wait_for(
        net,
        &format!("message from {from} on {topic}"),
        EVENT_TIMEOUT,
        |e| match e {
            NetworkEvent::MessageReceived {
                peer_id,
                topic: t,
                message,
            } if *peer_id == from && t == topic => Some(message.clone()),
            _ => None,
        },
    )
    .await
}
