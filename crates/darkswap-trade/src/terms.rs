//! What two parties agreed to swap, and what each of them brings to the
//! transaction: the inputs it offers and the scripts it is paid to.

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::{OutPoint, ScriptBuf, TxOut};
use darkswap_proto::Asset;

/// Non-BTC assets held by one output, smallest units by asset. Empty for a
/// plain bitcoin output. BTC never appears here: an output's sats are its
/// `TxOut::value`.
pub type Holdings = BTreeMap<Asset, u128>;

/// One party of a trade (the taker builds the PSBT and pays the fee).
pub use darkswap_core::trade::Role;

/// An amount of one asset: satoshis for BTC, the smallest unit for a rune or
/// an alkane. `u128` because rune balances are `u128` in the runes protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AssetAmount {
    /// The asset.
    pub asset: Asset,
    /// How much of it, smallest unit.
    pub amount: u128,
}

impl AssetAmount {
    /// `amount` of `asset`.
    pub fn new(asset: Asset, amount: u128) -> Self {
        AssetAmount { asset, amount }
    }

    /// `sats` satoshis.
    pub fn btc(sats: u64) -> Self {
        AssetAmount::new(Asset::Btc, u128::from(sats))
    }
}

/// Why two legs do not make a trade this crate can build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TermsError {
    /// Both legs are the same asset.
    #[error("both legs are {0}: a trade swaps two different assets")]
    SameAsset(Asset),
    /// Neither leg is BTC. Someone must bring sats for the fee and postage,
    /// and the checks are written for one BTC leg against one asset leg.
    #[error("one leg must be BTC; {0} for {1} is not supported")]
    NoBtcLeg(Asset, Asset),
    /// A leg of zero.
    #[error("a leg of zero {0}")]
    ZeroAmount(Asset),
    /// A BTC leg above the 21 million BTC supply.
    #[error("{0} sat is more bitcoin than exists")]
    BtcAmountTooLarge(u128),
}

/// The agreed exchange: what the maker gives and what the taker gives. Each
/// party gets what the other gives. The taker pays the network fee, on top of
/// its leg; the maker's side of the terms is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    maker_gives: AssetAmount,
    taker_gives: AssetAmount,
}

impl Terms {
    /// Validates a pair of legs: two different assets, exactly one of them
    /// BTC, both non-zero, the BTC leg within the coin supply.
    pub fn new(maker_gives: AssetAmount, taker_gives: AssetAmount) -> Result<Self, TermsError> {
        let (m, t) = (maker_gives.asset, taker_gives.asset);
        if m == t {
            return Err(TermsError::SameAsset(m));
        }
        if m != Asset::Btc && t != Asset::Btc {
            return Err(TermsError::NoBtcLeg(m, t));
        }
        for leg in [maker_gives, taker_gives] {
            if leg.amount == 0 {
                return Err(TermsError::ZeroAmount(leg.asset));
            }
            if leg.asset == Asset::Btc
                && leg.amount > u128::from(bitcoin::Amount::MAX_MONEY.to_sat())
            {
                return Err(TermsError::BtcAmountTooLarge(leg.amount));
            }
        }
        Ok(Terms {
            maker_gives,
            taker_gives,
        })
    }

    /// What `role` gives.
    pub fn gives(&self, role: Role) -> AssetAmount {
        match role {
            Role::Maker => self.maker_gives,
            Role::Taker => self.taker_gives,
        }
    }

    /// What `role` gets: what the other party gives.
    pub fn gets(&self, role: Role) -> AssetAmount {
        self.gives(role.other())
    }

    /// Who pays the network fee: always the taker, who chose to trade now
    /// and at which fee rate; the maker's price stays firm.
    pub fn fee_payer(&self) -> Role {
        Role::Taker
    }

    /// The non-BTC leg, and the role that gives it.
    pub fn asset_leg(&self) -> (Role, AssetAmount) {
        if self.maker_gives.asset == Asset::Btc {
            (Role::Taker, self.taker_gives)
        } else {
            (Role::Maker, self.maker_gives)
        }
    }
}

/// One UTXO a party offers to spend in the trade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedInput {
    /// The UTXO.
    pub outpoint: OutPoint,
    /// The output it spends: its value and script. For one's own inputs this
    /// comes from one's wallet; for the counterparty's, from its offer.
    pub prevout: TxOut,
    /// The non-BTC assets the offering party says the UTXO holds. Checked
    /// against the asset index before anyone signs.
    pub holdings: Holdings,
}

/// What one party brings to a trade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The UTXOs it spends, in the order they appear in the transaction.
    pub inputs: Vec<OfferedInput>,
    /// Where it is paid the asset it gets.
    pub receive: ScriptBuf,
    /// Where its change goes: leftover sats and, for the seller of a rune,
    /// the runes it does not sell. May equal `receive`.
    pub change: ScriptBuf,
}

impl Offer {
    /// Whether `script` is one this party is paid to.
    pub fn owns_script(&self, script: &bitcoin::Script) -> bool {
        self.receive.as_script() == script || self.change.as_script() == script
    }

    /// The offered input spending `outpoint`, if any.
    pub fn input(&self, outpoint: &OutPoint) -> Option<&OfferedInput> {
        self.inputs.iter().find(|i| i.outpoint == *outpoint)
    }

    /// Total sats of the offered inputs, `None` on overflow.
    pub fn sats(&self) -> Option<u64> {
        self.inputs
            .iter()
            .try_fold(0u64, |sum, i| sum.checked_add(i.prevout.value.to_sat()))
    }

    /// Total of `asset` the offered inputs claim to hold, `None` on overflow.
    pub fn claimed(&self, asset: Asset) -> Option<u128> {
        self.inputs.iter().try_fold(0u128, |sum, i| {
            sum.checked_add(i.holdings.get(&asset).copied().unwrap_or(0))
        })
    }
}

/// Everything both parties agreed on before the PSBT is built: the terms and
/// both offers. The PSBT's builder and both checkers work from the same
/// `Trade`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trade {
    /// The exchange.
    pub terms: Terms,
    /// The maker's inputs and scripts.
    pub maker: Offer,
    /// The taker's inputs and scripts.
    pub taker: Offer,
}

impl Trade {
    /// The offer of `role`.
    pub fn offer(&self, role: Role) -> &Offer {
        match role {
            Role::Maker => &self.maker,
            Role::Taker => &self.taker,
        }
    }

    /// Every outpoint either party offers: what the caller looks up in its
    /// asset index before checking (see [`crate::InMemoryIndex`]).
    pub fn outpoints(&self) -> BTreeSet<OutPoint> {
        self.maker
            .inputs
            .iter()
            .chain(&self.taker.inputs)
            .map(|i| i.outpoint)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNE: Asset = Asset::Rune {
        block: 840_000,
        tx: 1,
    };

    #[test]
    fn terms_need_one_btc_leg_of_two_different_non_zero_assets() {
        let alkane = Asset::Alkane { block: 2, tx: 1 };
        assert_eq!(
            Terms::new(AssetAmount::btc(1), AssetAmount::btc(2)),
            Err(TermsError::SameAsset(Asset::Btc))
        );
        assert_eq!(
            Terms::new(AssetAmount::new(RUNE, 1), AssetAmount::new(alkane, 1)),
            Err(TermsError::NoBtcLeg(RUNE, alkane))
        );
        assert_eq!(
            Terms::new(AssetAmount::new(RUNE, 0), AssetAmount::btc(2)),
            Err(TermsError::ZeroAmount(RUNE))
        );
        assert!(matches!(
            Terms::new(
                AssetAmount::new(RUNE, 1),
                AssetAmount::new(Asset::Btc, u128::MAX)
            ),
            Err(TermsError::BtcAmountTooLarge(_))
        ));
        let terms = Terms::new(AssetAmount::new(RUNE, 5), AssetAmount::btc(7)).unwrap();
        assert_eq!(terms.gets(Role::Taker), AssetAmount::new(RUNE, 5));
        assert_eq!(terms.asset_leg(), (Role::Maker, AssetAmount::new(RUNE, 5)));
    }
}
