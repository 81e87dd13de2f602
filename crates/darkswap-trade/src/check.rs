//! Checking a swap PSBT against the agreed trade, for one side, before that
//! side signs anything.
//!
//! The check does not compare the PSBT with what [`crate::build_psbt`] would
//! write: it works out from the PSBT itself what the side gives and gets,
//! and refuses anything that gives it less or takes more than the terms say.
//! What it trusts, and why, is listed in `docs/trade.md`: the side's own
//! prevouts (its wallet's), the counterparty's prevouts as stated in the
//! PSBT and its offer, and the asset index for runes and alkanes.

use std::collections::BTreeSet;

use bitcoin::{Amount, OutPoint, Psbt, Transaction, TxOut, Txid, absolute::LockTime};
use darkswap_proto::Asset;

use crate::{
    AssetIndex, Holdings, Role, Trade,
    runes::{self, RunestoneRefusal},
};

/// Largest fee a checker accepts unless [`CheckPolicy::with_max_fee`] says
/// otherwise: 50,000 sat.
pub const DEFAULT_MAX_FEE: Amount = Amount::from_sat(50_000);

/// A side's local limits, not negotiated with the counterparty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckPolicy {
    /// Largest total fee (inputs minus outputs) accepted. Default
    /// [`DEFAULT_MAX_FEE`]. The taker pays it; the maker refuses a larger
    /// one too, so no transaction it signs lingers unconfirmable or wastes
    /// the counterparty's funds through a bug.
    pub max_fee: Amount,
}

impl Default for CheckPolicy {
    fn default() -> Self {
        CheckPolicy {
            max_fee: DEFAULT_MAX_FEE,
        }
    }
}

impl CheckPolicy {
    /// Sets the largest accepted fee.
    pub fn with_max_fee(mut self, max_fee: Amount) -> Self {
        self.max_fee = max_fee;
        self
    }
}

/// Why a side refuses to sign a PSBT. One variant per way a counterparty
/// (or a bug) could make the transaction break the terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PsbtCheckError {
    /// The PSBT's input or output maps do not match its transaction.
    #[error("malformed PSBT: {0}")]
    Malformed(&'static str),
    /// A transaction version other than 2.
    #[error("transaction version {0}, expected 2")]
    UnexpectedVersion(i32),
    /// A lock time that would keep the transaction out of the next block.
    #[error("lock time {0} set")]
    LockTimeSet(LockTime),
    /// The same outpoint spent twice.
    #[error("input {0} spent twice")]
    DuplicateInput(OutPoint),
    /// One of the side's offered inputs is not spent: replaced or removed.
    #[error("own offered input {0} is missing (replaced or removed)")]
    OwnInputMissing(OutPoint),
    /// One of the counterparty's agreed inputs is not spent: replaced or
    /// removed.
    #[error("the counterparty's agreed input {0} is missing (swapped or removed)")]
    ForeignInputSwapped(OutPoint),
    /// An input neither party offered.
    #[error("input {0} was offered by neither party")]
    UnexpectedInput(OutPoint),
    /// An input without `witness_utxo`.
    #[error("input {0} has no witness_utxo")]
    MissingPrevout(usize),
    /// An input's `witness_utxo` (or `non_witness_utxo`) differs from the
    /// prevout its party offered.
    #[error("input {0}: prevout in the PSBT differs from the one offered")]
    PrevoutMismatch(OutPoint),
    /// One of the side's own inputs asks for a sighash type other than ALL:
    /// a signature with it would not commit to the whole transaction.
    #[error("own input {0} asks for a sighash type other than ALL")]
    UnsafeSighash(usize),
    /// The asset index does not know an input's outpoint.
    #[error("the asset index does not know {0}")]
    IndexMissing(OutPoint),
    /// The asset index says an input holds other assets than its party
    /// claimed.
    #[error("input {outpoint} holds {indexed:?} per the index, {claimed:?} claimed")]
    HoldingsMismatch {
        /// The input.
        outpoint: OutPoint,
        /// What its party claimed.
        claimed: Holdings,
        /// What the index says.
        indexed: Holdings,
    },
    /// An output paying neither party (nor the zero-value runestone).
    #[error("output {vout} of {value} pays neither party")]
    ExtraOutputTakesFunds {
        /// The output.
        vout: usize,
        /// Its value.
        value: Amount,
    },
    /// Outputs worth more than the inputs: an invalid transaction.
    #[error("outputs {outputs} exceed inputs {inputs}")]
    OutputsExceedInputs {
        /// Sum of input values (as the PSBT states them).
        inputs: Amount,
        /// Sum of output values.
        outputs: Amount,
    },
    /// A fee above the side's bound.
    #[error("fee {fee} above the bound {max}")]
    FeeAboveBound {
        /// The fee.
        fee: Amount,
        /// The bound ([`CheckPolicy::max_fee`]).
        max: Amount,
    },
    /// No runestone although a rune or an alkane changes hands.
    #[error("no runestone in a trade of runes or alkanes")]
    RunestoneMissing,
    /// A malformed runestone: it would burn every rune of every input.
    #[error("cenotaph ({0}): it burns every rune of the inputs")]
    Cenotaph(String),
    /// The runestone etches or mints.
    #[error("the runestone etches or mints")]
    RunestoneEtchesOrMints,
    /// The runestone is not the canonical encoding of what it decodes to
    /// (unknown fields, such as a protostone), or there are two.
    #[error("the runestone is not canonical")]
    NonCanonicalRunestone,
    /// The side gets less of the asset it buys than agreed (net of what it
    /// put in itself; BTC also net of its fee share).
    #[error("receives {got} of {asset}, {expected} agreed")]
    UnderpaidReceive {
        /// The asset bought.
        asset: Asset,
        /// The agreed amount.
        expected: u128,
        /// What the transaction gives it.
        got: u128,
    },
    /// The side loses more sats than its BTC leg (plus the fee, for the
    /// taker).
    #[error("spends {spent} of its bitcoin, {allowed} allowed")]
    OverspendsBtc {
        /// What the terms allow.
        allowed: Amount,
        /// What the transaction takes.
        spent: Amount,
    },
    /// The runestone (or the default-output rule where it is silent) sends
    /// the side's runes or alkanes away beyond what it sells.
    #[error("the runestone sends away {lost} of its {asset}, {allowed} allowed")]
    RunestoneSendsElsewhere {
        /// The asset.
        asset: Asset,
        /// What the terms let leave.
        allowed: u128,
        /// What leaves.
        lost: u128,
    },
    /// Amounts too large to add up.
    #[error("amount overflow")]
    AmountOverflow,
}

/// A PSBT one side checked and may sign: returned by [`check_psbt`] and
/// required by [`crate::sign_approved`], so nothing is signed unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    role: Role,
    txid: Txid,
    prevouts: Vec<TxOut>,
    own_inputs: Vec<usize>,
    fee: Amount,
}

impl Approved {
    /// The side that checked.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The id of the transaction approved.
    pub fn txid(&self) -> Txid {
        self.txid
    }

    /// The prevouts of every input, in order, as checked.
    pub fn prevouts(&self) -> &[TxOut] {
        &self.prevouts
    }

    /// Indices of the side's own inputs: the ones it signs.
    pub fn own_inputs(&self) -> &[usize] {
        &self.own_inputs
    }

    /// The fee the transaction pays.
    pub fn fee(&self) -> Amount {
        self.fee
    }
}

fn sum(values: impl IntoIterator<Item = Amount>) -> Result<Amount, PsbtCheckError> {
    values.into_iter().try_fold(Amount::ZERO, |acc, v| {
        acc.checked_add(v).ok_or(PsbtCheckError::AmountOverflow)
    })
}

fn signed(v: u128) -> Result<i128, PsbtCheckError> {
    i128::try_from(v).map_err(|_| PsbtCheckError::AmountOverflow)
}

/// Checks `psbt` for `role` against `trade`: its own inputs are the ones it
/// offered, every input holds what its party claimed per `index`, every
/// output pays one of the two parties, the fee is within `policy`, the
/// runestone is one a trade may carry, and the side ends up with at least
/// what it buys while losing no more than what it sells (plus the fee for
/// the taker). Refuses with the first problem found.
pub fn check_psbt<I: AssetIndex + ?Sized>(
    psbt: &Psbt,
    trade: &Trade,
    role: Role,
    index: &I,
    policy: &CheckPolicy,
) -> Result<Approved, PsbtCheckError> {
    let tx = &psbt.unsigned_tx;
    if psbt.inputs.len() != tx.input.len() {
        return Err(PsbtCheckError::Malformed("input maps do not match inputs"));
    }
    if psbt.outputs.len() != tx.output.len() {
        return Err(PsbtCheckError::Malformed(
            "output maps do not match outputs",
        ));
    }
    if tx.version != bitcoin::transaction::Version::TWO {
        return Err(PsbtCheckError::UnexpectedVersion(tx.version.0));
    }
    if tx.lock_time != LockTime::ZERO {
        return Err(PsbtCheckError::LockTimeSet(tx.lock_time));
    }

    let own = trade.offer(role);
    let foreign = trade.offer(role.other());
    let prevouts = check_inputs(psbt, own, foreign)?;

    // Holdings of every input, per the index, must be what was claimed.
    let mut holdings = Vec::with_capacity(tx.input.len());
    for txin in &tx.input {
        let outpoint = txin.previous_output;
        let offered = own
            .input(&outpoint)
            .or_else(|| foreign.input(&outpoint))
            .ok_or(PsbtCheckError::UnexpectedInput(outpoint))?;
        let indexed = index
            .holdings(&outpoint)
            .ok_or(PsbtCheckError::IndexMissing(outpoint))?;
        // An index may list an asset with a zero balance; that is no asset.
        let indexed: Holdings = indexed.into_iter().filter(|(_, n)| *n > 0).collect();
        if indexed != offered.holdings {
            return Err(PsbtCheckError::HoldingsMismatch {
                outpoint,
                claimed: offered.holdings.clone(),
                indexed,
            });
        }
        holdings.push(indexed);
    }

    // Every output pays a party, or is the zero-value runestone.
    for (vout, txout) in tx.output.iter().enumerate() {
        let party =
            own.owns_script(&txout.script_pubkey) || foreign.owns_script(&txout.script_pubkey);
        let runestone = runes::is_runestone_output(txout) && txout.value == Amount::ZERO;
        if !party && !runestone {
            return Err(PsbtCheckError::ExtraOutputTakesFunds {
                vout,
                value: txout.value,
            });
        }
    }

    let inputs = sum(prevouts.iter().map(|p| p.value))?;
    let outputs = sum(tx.output.iter().map(|o| o.value))?;
    let fee = inputs
        .checked_sub(outputs)
        .ok_or(PsbtCheckError::OutputsExceedInputs { inputs, outputs })?;
    if fee > policy.max_fee {
        return Err(PsbtCheckError::FeeAboveBound {
            fee,
            max: policy.max_fee,
        });
    }

    let refusal = |r: RunestoneRefusal| match r {
        RunestoneRefusal::Cenotaph(flaw) => PsbtCheckError::Cenotaph(flaw),
        RunestoneRefusal::EtchesOrMints => PsbtCheckError::RunestoneEtchesOrMints,
        RunestoneRefusal::NonCanonical => PsbtCheckError::NonCanonicalRunestone,
        RunestoneRefusal::Overflow => PsbtCheckError::AmountOverflow,
    };
    if runes::trade_runestone(tx).map_err(refusal)?.is_none() {
        // Terms always have one non-BTC leg.
        return Err(PsbtCheckError::RunestoneMissing);
    }
    let allocation = runes::allocate(tx, &holdings).map_err(refusal)?;

    let own_inputs: Vec<usize> = tx
        .input
        .iter()
        .enumerate()
        .filter(|(_, txin)| own.input(&txin.previous_output).is_some())
        .map(|(i, _)| i)
        .collect();
    let fee_share = if role == trade.terms.fee_payer() {
        fee
    } else {
        Amount::ZERO
    };
    check_btc_flow(tx, trade, role, &prevouts, &own_inputs, fee_share)?;
    check_asset_flow(tx, trade, role, &holdings, &own_inputs, &allocation)?;

    Ok(Approved {
        role,
        txid: tx.compute_txid(),
        prevouts,
        own_inputs,
        fee,
    })
}

/// The inputs are exactly both offers' (each once), with the prevouts
/// offered, and the side's own ask for no weaker sighash than ALL. Returns
/// the prevouts in input order.
fn check_inputs(
    psbt: &Psbt,
    own: &crate::Offer,
    foreign: &crate::Offer,
) -> Result<Vec<TxOut>, PsbtCheckError> {
    let tx = &psbt.unsigned_tx;
    let mut spent = BTreeSet::new();
    for txin in &tx.input {
        if !spent.insert(txin.previous_output) {
            return Err(PsbtCheckError::DuplicateInput(txin.previous_output));
        }
    }
    for offered in &own.inputs {
        // The counterparty listing one of our outpoints as its own would
        // make its accounting, and ours, count it twice.
        if foreign.input(&offered.outpoint).is_some() {
            return Err(PsbtCheckError::DuplicateInput(offered.outpoint));
        }
        if !spent.contains(&offered.outpoint) {
            return Err(PsbtCheckError::OwnInputMissing(offered.outpoint));
        }
    }
    for offered in &foreign.inputs {
        if !spent.contains(&offered.outpoint) {
            return Err(PsbtCheckError::ForeignInputSwapped(offered.outpoint));
        }
    }

    let mut prevouts = Vec::with_capacity(tx.input.len());
    for (i, (txin, input)) in tx.input.iter().zip(&psbt.inputs).enumerate() {
        let outpoint = txin.previous_output;
        let is_own = own.input(&outpoint).is_some();
        let offered = own
            .input(&outpoint)
            .or_else(|| foreign.input(&outpoint))
            .ok_or(PsbtCheckError::UnexpectedInput(outpoint))?;
        let prevout = input
            .witness_utxo
            .as_ref()
            .ok_or(PsbtCheckError::MissingPrevout(i))?;
        if *prevout != offered.prevout {
            return Err(PsbtCheckError::PrevoutMismatch(outpoint));
        }
        if let Some(full) = &input.non_witness_utxo {
            // A full previous transaction proves the amount by its txid:
            // when given, it must agree.
            let agrees = full.compute_txid() == outpoint.txid
                && full.output.get(outpoint.vout as usize) == Some(prevout);
            if !agrees {
                return Err(PsbtCheckError::PrevoutMismatch(outpoint));
            }
        }
        if is_own {
            // 0x00 is taproot's DEFAULT, 0x01 is ALL; anything else (NONE,
            // SINGLE, ANYONECANPAY) would let others change what we signed.
            if let Some(ty) = input.sighash_type
                && ty.to_u32() > 1
            {
                return Err(PsbtCheckError::UnsafeSighash(i));
            }
        }
        prevouts.push(prevout.clone());
    }
    Ok(prevouts)
}

/// Adds amounts as `i128`, refusing what overflows.
fn total(mut amounts: impl Iterator<Item = u128>) -> Result<i128, PsbtCheckError> {
    amounts.try_fold(0i128, |acc, n| {
        acc.checked_add(signed(n)?)
            .ok_or(PsbtCheckError::AmountOverflow)
    })
}

fn sats(amount: u128) -> Result<Amount, PsbtCheckError> {
    u64::try_from(amount)
        .map(Amount::from_sat)
        .map_err(|_| PsbtCheckError::AmountOverflow)
}

/// The side's net sats: what outputs to its scripts hold minus what its
/// inputs held. It must be at least its BTC leg received, minus its BTC leg
/// given, minus its fee share.
fn check_btc_flow(
    tx: &Transaction,
    trade: &Trade,
    role: Role,
    prevouts: &[TxOut],
    own_inputs: &[usize],
    fee_share: Amount,
) -> Result<(), PsbtCheckError> {
    let own = trade.offer(role);
    let spent = sum(own_inputs.iter().map(|&i| prevouts[i].value))?;
    let received = sum(tx
        .output
        .iter()
        .filter(|o| own.owns_script(&o.script_pubkey))
        .map(|o| o.value))?;
    let net = i128::from(received.to_sat()) - i128::from(spent.to_sat());
    let (gets, gives) = (trade.terms.gets(role), trade.terms.gives(role));
    let fee = i128::from(fee_share.to_sat());
    if gets.asset == Asset::Btc {
        let expected = signed(gets.amount)?;
        if net + fee < expected {
            return Err(PsbtCheckError::UnderpaidReceive {
                asset: Asset::Btc,
                expected: gets.amount,
                got: u128::try_from(net + fee).unwrap_or(0),
            });
        }
    } else {
        let allowed = sats(gives.amount)?
            .checked_add(fee_share)
            .ok_or(PsbtCheckError::AmountOverflow)?;
        if -net > i128::from(allowed.to_sat()) {
            return Err(PsbtCheckError::OverspendsBtc {
                allowed,
                spent: Amount::from_sat(u64::try_from(-net).unwrap_or(u64::MAX)),
            });
        }
    }
    Ok(())
}

/// The side's net runes and alkanes, asset by asset, after the runestone's
/// allocation: at least the amount bought of what it buys, a loss of at most
/// the amount sold of what it sells, and no loss of anything else.
fn check_asset_flow(
    tx: &Transaction,
    trade: &Trade,
    role: Role,
    holdings: &[Holdings],
    own_inputs: &[usize],
    allocation: &runes::Allocation,
) -> Result<(), PsbtCheckError> {
    let own = trade.offer(role);
    let (gets, gives) = (trade.terms.gets(role), trade.terms.gives(role));
    let own_vouts: Vec<usize> = tx
        .output
        .iter()
        .enumerate()
        .filter(|(_, o)| own.owns_script(&o.script_pubkey))
        .map(|(vout, _)| vout)
        .collect();

    let mut assets: BTreeSet<Asset> = own_inputs
        .iter()
        .flat_map(|&i| holdings[i].keys().copied())
        .collect();
    assets.extend(
        own_vouts
            .iter()
            .flat_map(|&v| allocation.outputs[v].keys().copied()),
    );
    if gets.asset != Asset::Btc {
        assets.insert(gets.asset);
    }

    for asset in assets {
        let spent = total(
            own_inputs
                .iter()
                .map(|&i| holdings[i].get(&asset).copied().unwrap_or(0)),
        )?;
        let received = total(
            own_vouts
                .iter()
                .map(|&v| allocation.outputs[v].get(&asset).copied().unwrap_or(0)),
        )?;
        let net = received - spent;
        if asset == gets.asset {
            if net < signed(gets.amount)? {
                return Err(PsbtCheckError::UnderpaidReceive {
                    asset,
                    expected: gets.amount,
                    got: u128::try_from(net).unwrap_or(0),
                });
            }
        } else {
            let allowed = if asset == gives.asset {
                gives.amount
            } else {
                0
            };
            if -net > signed(allowed)? {
                return Err(PsbtCheckError::RunestoneSendsElsewhere {
                    asset,
                    allowed,
                    lost: u128::try_from(-net).unwrap_or(0),
                });
            }
        }
    }
    Ok(())
}
