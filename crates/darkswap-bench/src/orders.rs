//! Signed orders for the in-process measures.

use darkswap_proto::{Asset, NewOrder, OrderCreate, PRICE_SCALE, Side};
use libp2p_identity::Keypair;

/// `orders` signed order creates, valid for an hour, `per_maker` by each
/// fresh maker key in turn.
pub(crate) fn signed_creates(orders: usize, per_maker: usize) -> anyhow::Result<Vec<OrderCreate>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let per_maker = per_maker.max(1);
    let mut key = Keypair::generate_ed25519();
    (0..orders)
        .map(|i| {
            if i > 0 && i % per_maker == 0 {
                key = Keypair::generate_ed25519();
            }
            let nonce = i as u64;
            let order = NewOrder {
                side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
                base: "rune:840000:3".parse()?,
                quote: Asset::Btc,
                amount: 1_000 + nonce,
                price: (20 + nonce % 10) * PRICE_SCALE,
                created_at: now,
                expires_at: now + 3600,
                nonce,
            }
            .sign(&key)?;
            Ok(OrderCreate::from_order(order))
        })
        .collect()
}
