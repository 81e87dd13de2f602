//! Building the swap PSBT from both offers.
//!
//! One transaction carries both legs. Layout (see `docs/trade.md`):
//!
//! - inputs: the maker's offered inputs, then the taker's, in offer order;
//! - output 0: the maker's receive output, output 1: the taker's; each holds
//!   the BTC leg if that party gets BTC, or `postage` sats of its own if it
//!   gets the asset (the asset then lands there);
//! - then the maker's change, then the taker's, each only when non-zero or
//!   when it must carry the seller's leftover runes;
//! - last, the runestone `OP_RETURN` (value 0).
//!
//! The taker pays the whole fee out of its change.

use bitcoin::{
    Amount, FeeRate, OutPoint, Psbt, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Weight,
    Witness, absolute::LockTime, transaction::InputWeightPrediction, transaction::Version,
};
use darkswap_proto::Asset;
use ordinals::{Edict, Runestone};

use crate::{Offer, Role, Trade, runes::rune_id};

/// Postage the builder puts on an output that receives a rune or an alkane,
/// unless [`BuildOptions::with_postage`] says otherwise: 546 sat, dust-free
/// for every standard script.
pub const DEFAULT_POSTAGE: Amount = Amount::from_sat(546);

/// Fee rate of [`BuildOptions::default`]: 2 sat/vB.
pub const DEFAULT_FEE_RATE: FeeRate = FeeRate::from_sat_per_vb_u32(2);

/// How the builder funds the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BuildOptions {
    /// Fee rate of the finished transaction, on its predicted weight.
    /// Default [`DEFAULT_FEE_RATE`].
    pub fee_rate: FeeRate,
    /// Sats on the output that receives the rune or alkane, paid by its
    /// receiver to itself. Default [`DEFAULT_POSTAGE`].
    pub postage: Amount,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            fee_rate: DEFAULT_FEE_RATE,
            postage: DEFAULT_POSTAGE,
        }
    }
}

impl BuildOptions {
    /// Sets the fee rate.
    pub fn with_fee_rate(mut self, fee_rate: FeeRate) -> Self {
        self.fee_rate = fee_rate;
        self
    }

    /// Sets the postage.
    pub fn with_postage(mut self, postage: Amount) -> Self {
        self.postage = postage;
        self
    }
}

/// Why the swap PSBT cannot be built from these offers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An offered input pays to a script whose witness size cannot be
    /// predicted (only P2WPKH and P2TR key-path inputs are supported).
    #[error("input {0} is neither P2WPKH nor P2TR")]
    UnsupportedInput(OutPoint),
    /// The same outpoint offered twice.
    #[error("input {0} offered twice")]
    DuplicateInput(OutPoint),
    /// An offered input holds an asset other than the one its party sells.
    #[error("input {outpoint} of the {role:?} holds {asset}, which it does not sell")]
    UnsoldAssetInInput {
        /// The party.
        role: Role,
        /// The input.
        outpoint: OutPoint,
        /// The asset.
        asset: Asset,
    },
    /// The seller's inputs hold less of the asset than it sells.
    #[error("the {role:?} offers {offered} of {asset} but sells {amount}")]
    NotEnoughAsset {
        /// The seller.
        role: Role,
        /// The asset.
        asset: Asset,
        /// What its inputs hold.
        offered: u128,
        /// What it sells.
        amount: u128,
    },
    /// Alkanes move whole: without a protostone every alkane of the inputs
    /// lands on one output, so the seller's alkane inputs must hold exactly
    /// the amount sold.
    #[error(
        "alkane {asset}: inputs hold {offered} but exactly {amount} is sold (no alkane change)"
    )]
    AlkaneChangeUnsupported {
        /// The alkane.
        asset: Asset,
        /// What the inputs hold.
        offered: u128,
        /// What is sold.
        amount: u128,
    },
    /// A party's inputs do not cover what it pays (and, for the taker, the
    /// fee).
    #[error("the {role:?} brings {available} but needs {needed}")]
    InsufficientFunds {
        /// The party.
        role: Role,
        /// What it needs.
        needed: Amount,
        /// What its inputs hold.
        available: Amount,
    },
    /// A change output would be dust (or would carry runes below dust).
    #[error("the {role:?}'s change of {change} is below dust ({dust})")]
    ChangeBelowDust {
        /// The party.
        role: Role,
        /// The change.
        change: Amount,
        /// The dust limit of its change script.
        dust: Amount,
    },
    /// An amount or the fee does not fit in an amount of sats.
    #[error("amount overflow")]
    FeeOverflow,
    /// The PSBT encoder refused the unsigned transaction (it only refuses
    /// non-empty script_sigs or witnesses, which the builder never writes).
    #[error("PSBT: {0}")]
    Psbt(String),
}

/// Outputs 0 and 1 are the maker's and the taker's receive outputs.
fn receive_vout(role: Role) -> u32 {
    match role {
        Role::Maker => 0,
        Role::Taker => 1,
    }
}

fn weight_prediction(input: &crate::OfferedInput) -> Result<InputWeightPrediction, BuildError> {
    let script = &input.prevout.script_pubkey;
    if script.is_p2wpkh() {
        Ok(InputWeightPrediction::P2WPKH_MAX)
    } else if script.is_p2tr() {
        Ok(InputWeightPrediction::P2TR_KEY_DEFAULT_SIGHASH)
    } else {
        Err(BuildError::UnsupportedInput(input.outpoint))
    }
}

/// The BTC one party puts into outputs other than its change. With one BTC
/// leg, the party that gives BTC is the one that gets the asset: it pays the
/// BTC leg to the other's receive output and the postage of its own receive
/// output. The party that gives the asset puts nothing there.
fn committed(trade: &Trade, role: Role, postage: Amount) -> Result<Amount, BuildError> {
    let gives = trade.terms.gives(role);
    if gives.asset == Asset::Btc {
        // Terms::new bounds a BTC leg by MAX_MONEY, so it fits a u64.
        let leg = u64::try_from(gives.amount).map_err(|_| BuildError::FeeOverflow)?;
        Amount::from_sat(leg)
            .checked_add(postage)
            .ok_or(BuildError::FeeOverflow)
    } else {
        Ok(Amount::ZERO)
    }
}

/// The value of `role`'s receive output: the BTC leg if it gets BTC, the
/// postage of its own sats if it gets the asset.
fn receive_value(trade: &Trade, role: Role, postage: Amount) -> Result<Amount, BuildError> {
    let gets = trade.terms.gets(role);
    if gets.asset == Asset::Btc {
        let leg = u64::try_from(gets.amount).map_err(|_| BuildError::FeeOverflow)?;
        Ok(Amount::from_sat(leg))
    } else {
        Ok(postage)
    }
}

/// Builds the unsigned swap PSBT of `trade`, with every input's
/// `witness_utxo` filled from the offers.
///
/// The builder is deterministic: both parties can run it and get the same
/// PSBT. What makes a PSBT acceptable is not that it came from here but that
/// [`crate::check_psbt`] accepts it.
pub fn build_psbt(trade: &Trade, options: &BuildOptions) -> Result<Psbt, BuildError> {
    let (seller, leg) = trade.terms.asset_leg();
    let buyer = seller.other();

    // Inputs: no outpoint twice, and each party's inputs hold at most the
    // asset it sells.
    let mut seen = std::collections::BTreeSet::new();
    for role in [Role::Maker, Role::Taker] {
        for input in &trade.offer(role).inputs {
            if !seen.insert(input.outpoint) {
                return Err(BuildError::DuplicateInput(input.outpoint));
            }
            for &asset in input.holdings.keys() {
                if role != seller || asset != leg.asset {
                    return Err(BuildError::UnsoldAssetInInput {
                        role,
                        outpoint: input.outpoint,
                        asset,
                    });
                }
            }
        }
    }
    let offered = trade.offer(seller).claimed(leg.asset).unwrap_or(u128::MAX);
    if offered < leg.amount {
        return Err(BuildError::NotEnoughAsset {
            role: seller,
            asset: leg.asset,
            offered,
            amount: leg.amount,
        });
    }
    let is_alkane = matches!(leg.asset, Asset::Alkane { .. });
    if is_alkane && offered != leg.amount {
        return Err(BuildError::AlkaneChangeUnsupported {
            asset: leg.asset,
            offered,
            amount: leg.amount,
        });
    }
    let rune_change = !is_alkane && offered > leg.amount;

    let mut outputs = vec![
        TxOut {
            value: receive_value(trade, Role::Maker, options.postage)?,
            script_pubkey: trade.maker.receive.clone(),
        },
        TxOut {
            value: receive_value(trade, Role::Taker, options.postage)?,
            script_pubkey: trade.taker.receive.clone(),
        },
    ];

    // Predict the weight with both change outputs and the runestone present;
    // a change output dropped later only makes the fee rate a little higher.
    let inputs: Vec<&crate::OfferedInput> = trade
        .maker
        .inputs
        .iter()
        .chain(&trade.taker.inputs)
        .collect();
    let predictions = inputs
        .iter()
        .map(|i| weight_prediction(i))
        .collect::<Result<Vec<_>, _>>()?;
    let runestone_len = 64; // an upper bound for one edict and a pointer
    let script_lens = [
        trade.maker.receive.len(),
        trade.taker.receive.len(),
        trade.maker.change.len(),
        trade.taker.change.len(),
        runestone_len,
    ];
    let weight: Weight = bitcoin::transaction::predict_weight(predictions, script_lens);
    let fee = options
        .fee_rate
        .fee_wu(weight)
        .ok_or(BuildError::FeeOverflow)?;

    let mut seller_change_vout = None;
    for role in [Role::Maker, Role::Taker] {
        let offer: &Offer = trade.offer(role);
        let available = Amount::from_sat(offer.sats().ok_or(BuildError::FeeOverflow)?);
        let mut needed = committed(trade, role, options.postage)?;
        if role == trade.terms.fee_payer() {
            needed = needed.checked_add(fee).ok_or(BuildError::FeeOverflow)?;
        }
        let change = available
            .checked_sub(needed)
            .ok_or(BuildError::InsufficientFunds {
                role,
                needed,
                available,
            })?;
        let carries_runes = role == seller && rune_change;
        if change == Amount::ZERO && !carries_runes {
            continue;
        }
        let dust = offer.change.minimal_non_dust();
        if change < dust {
            return Err(BuildError::ChangeBelowDust { role, change, dust });
        }
        if role == seller {
            seller_change_vout = Some(outputs.len() as u32);
        }
        outputs.push(TxOut {
            value: change,
            script_pubkey: offer.change.clone(),
        });
    }

    // The runestone. A rune: one edict of the amount to the buyer's receive
    // output, the seller's leftover to its change through the pointer. An
    // alkane: no edict, the pointer names the buyer's receive output.
    let buyer_vout = receive_vout(buyer);
    let runestone = match rune_id(leg.asset) {
        Some(id) => Runestone {
            edicts: vec![Edict {
                id,
                amount: leg.amount,
                output: buyer_vout,
            }],
            pointer: if rune_change {
                seller_change_vout
            } else {
                None
            },
            ..Default::default()
        },
        None => Runestone {
            pointer: Some(buyer_vout),
            ..Default::default()
        },
    };
    outputs.push(TxOut {
        value: Amount::ZERO,
        script_pubkey: runestone.encipher(),
    });

    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: inputs
            .iter()
            .map(|i| TxIn {
                previous_output: i.outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    };
    // The transaction has empty script_sigs and witnesses, the only thing
    // from_unsigned_tx refuses.
    let mut psbt = Psbt::from_unsigned_tx(tx).map_err(|e| BuildError::Psbt(e.to_string()))?;
    for (slot, input) in psbt.inputs.iter_mut().zip(&inputs) {
        slot.witness_utxo = Some(input.prevout.clone());
    }
    Ok(psbt)
}
