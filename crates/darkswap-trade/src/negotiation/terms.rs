//! The terms of a fill of an order: what each side gives for `amount` base
//! units at the order's price.

use darkswap_proto::{Order, PRICE_SCALE, Side};

use crate::{AssetAmount, Terms, TermsError};

/// Why an order cannot be filled with an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    /// Zero, or more than the order offers.
    #[error("fill of {amount} outside 1..={max}")]
    Amount {
        /// The amount asked.
        amount: u64,
        /// The order's amount.
        max: u64,
    },
    /// The quote amount rounds to zero.
    #[error("a fill of {0} is worth nothing at this price")]
    Worthless(u64),
    /// The legs make no trade (e.g. no BTC leg).
    #[error(transparent)]
    Terms(#[from] TermsError),
}

/// The terms of filling `amount` base units of `order`. The quote amount is
/// `amount × price / PRICE_SCALE`, rounded in the maker's favour (up when
/// the taker pays it, down when the maker does).
pub fn for_fill(order: &Order, amount: u64) -> Result<Terms, FillError> {
    if amount == 0 || amount > order.amount {
        return Err(FillError::Amount {
            amount,
            max: order.amount,
        });
    }
    let value = u128::from(amount) * u128::from(order.price);
    let scale = u128::from(PRICE_SCALE);
    let (maker_gives, taker_gives) = match order.side {
        // The maker sells base: the taker pays the quote, rounded up.
        Side::Sell => (
            AssetAmount::new(order.base, u128::from(amount)),
            AssetAmount::new(order.quote, value.div_ceil(scale)),
        ),
        // The maker buys base: it pays the quote, rounded down.
        Side::Buy => (
            AssetAmount::new(order.quote, value / scale),
            AssetAmount::new(order.base, u128::from(amount)),
        ),
    };
    if maker_gives.amount == 0 || taker_gives.amount == 0 {
        return Err(FillError::Worthless(amount));
    }
    Ok(Terms::new(maker_gives, taker_gives)?)
}
