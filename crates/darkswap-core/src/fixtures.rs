//! Orders and clocks for the unit tests of this crate.

use std::time::Duration;

use darkswap_proto::{
    Asset, Message, NewOrder, OrderCreate, OrderId, PRICE_SCALE, Side, identity::Keypair,
};
use web_time::{Instant, UNIX_EPOCH};

use crate::time::Now;

/// The unix second the tests live at.
pub(crate) const NOW: u64 = 1_800_000_000;

/// A reading of both clocks at [`NOW`] (the instant is arbitrary).
pub(crate) fn now() -> Now {
    Now::new(Instant::now(), UNIX_EPOCH + Duration::from_secs(NOW))
}

/// An order for the BTC / rune pair, valid for an hour from `created_at`.
pub(crate) fn new_order(side: Side, created_at: u64, nonce: u64) -> NewOrder {
    NewOrder {
        side,
        base: Asset::Btc,
        quote: "rune:840000:3".parse().expect("asset"),
        amount: 100,
        price: PRICE_SCALE,
        created_at,
        expires_at: created_at + 3600,
        nonce,
    }
}

/// A signed order create by `key`, without announcement, and its id.
pub(crate) fn create(key: &Keypair, nonce: u64) -> (Message, OrderId) {
    let signed = new_order(Side::Sell, NOW, nonce)
        .sign(key)
        .expect("sign order");
    let id = signed.id();
    (Message::OrderCreate(OrderCreate::from_order(signed)), id)
}
