//! Where a transaction sends the runes and alkanes its inputs hold.
//!
//! Runestones are decoded by the `ordinals` crate (ord's own code). What the
//! indexer then does with them is not exported by that crate, so
//! [`allocate`] follows `ord`'s `RuneUpdater::index_runes` step by step:
//! edicts in order against the unallocated balances, `output == outputs.len()`
//! splitting among every non-`OP_RETURN` output, then the rest to the
//! pointer or the first non-`OP_RETURN` output, with anything landing on an
//! `OP_RETURN` burned and a cenotaph burning everything.
//!
//! Trades only move runes, so a runestone that etches or mints is refused
//! (whether a mint succeeds depends on chain state the checker does not
//! have), and so is a runestone whose bytes are not exactly what
//! `Runestone::encipher` writes for what it decodes to: that rules out
//! unknown odd tags, which runes indexers skip but other protocols read
//! (alkanes' protostones live in one).
//!
//! Alkanes: a transaction built here carries no protostone, and under the
//! protorunes rules the alkanes an input holds then follow the runestone's
//! pointer, or the first non-`OP_RETURN` output without one. That rule is
//! trusted, not verified here: see `docs/trade.md`.

use bitcoin::{Transaction, TxOut};
use darkswap_proto::Asset;
use ordinals::{Artifact, Edict, RuneId, Runestone};

use crate::Holdings;

/// The `ordinals` id of a rune asset.
pub(crate) fn rune_id(asset: Asset) -> Option<RuneId> {
    match asset {
        Asset::Rune { block, tx } => Some(RuneId { block, tx }),
        _ => None,
    }
}

fn asset_of(id: RuneId) -> Asset {
    Asset::Rune {
        block: id.block,
        tx: id.tx,
    }
}

/// Where each output's runes and alkanes end up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Allocation {
    /// What each output holds after the transaction, by output index.
    pub(crate) outputs: Vec<Holdings>,
    /// What is burned (sent to an `OP_RETURN`, or by a cenotaph).
    pub(crate) burned: Holdings,
}

/// Why the runestone of a transaction is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunestoneRefusal {
    /// A malformed runestone: every rune of every input is burned.
    Cenotaph(String),
    /// The runestone etches or mints.
    EtchesOrMints,
    /// Its bytes are not the canonical encoding of what it decodes to, or a
    /// second runestone-looking output exists.
    NonCanonical,
    /// Balances overflow `u128`.
    Overflow,
}

/// Whether `txout` looks like a runestone: `OP_RETURN OP_13 ...`.
pub(crate) fn is_runestone_output(txout: &TxOut) -> bool {
    let bytes = txout.script_pubkey.as_bytes();
    bytes.first() == Some(&bitcoin::opcodes::all::OP_RETURN.to_u8())
        && bytes.get(1) == Some(&Runestone::MAGIC_NUMBER.to_u8())
}

fn add(holdings: &mut Holdings, asset: Asset, amount: u128) -> Result<(), RunestoneRefusal> {
    if amount == 0 {
        return Ok(());
    }
    let slot = holdings.entry(asset).or_default();
    *slot = slot.checked_add(amount).ok_or(RunestoneRefusal::Overflow)?;
    Ok(())
}

/// Decodes the runestone of `tx`, if any, and refuses one a trade must not
/// carry. `Ok(None)`: no runestone at all.
pub(crate) fn trade_runestone(tx: &Transaction) -> Result<Option<Runestone>, RunestoneRefusal> {
    let candidates: Vec<&TxOut> = tx
        .output
        .iter()
        .filter(|o| is_runestone_output(o))
        .collect();
    match Runestone::decipher(tx) {
        None if candidates.is_empty() => Ok(None),
        // An OP_13 output ord does not read (e.g. after the first): refuse
        // rather than guess which one other indexers would pick.
        None => Err(RunestoneRefusal::NonCanonical),
        Some(Artifact::Cenotaph(cenotaph)) => Err(RunestoneRefusal::Cenotaph(
            cenotaph
                .flaw
                .map_or_else(|| "cenotaph".to_owned(), |flaw| flaw.to_string()),
        )),
        Some(Artifact::Runestone(runestone)) => {
            if runestone.etching.is_some() || runestone.mint.is_some() {
                return Err(RunestoneRefusal::EtchesOrMints);
            }
            let canonical =
                candidates.len() == 1 && candidates[0].script_pubkey == runestone.encipher();
            if !canonical {
                return Err(RunestoneRefusal::NonCanonical);
            }
            Ok(Some(runestone))
        }
    }
}

/// Where `tx` sends the runes and alkanes of its inputs, given what each
/// input holds (`inputs[i]` for `tx.input[i]`).
pub(crate) fn allocate(
    tx: &Transaction,
    inputs: &[Holdings],
) -> Result<Allocation, RunestoneRefusal> {
    let runestone = trade_runestone(tx)?;

    // Unallocated balances, runes and alkanes apart: edicts move runes only.
    let mut runes: std::collections::BTreeMap<RuneId, u128> = Default::default();
    let mut alkanes = Holdings::new();
    for holdings in inputs {
        for (&asset, &amount) in holdings {
            match rune_id(asset) {
                Some(id) => {
                    let slot = runes.entry(id).or_default();
                    *slot = slot.checked_add(amount).ok_or(RunestoneRefusal::Overflow)?;
                }
                None => add(&mut alkanes, asset, amount)?,
            }
        }
    }

    let outputs_len = tx.output.len();
    let mut outputs = vec![Holdings::new(); outputs_len];
    let non_op_return: Vec<usize> = tx
        .output
        .iter()
        .enumerate()
        .filter(|(_, o)| !o.script_pubkey.is_op_return())
        .map(|(vout, _)| vout)
        .collect();

    if let Some(runestone) = &runestone {
        for &Edict { id, amount, output } in &runestone.edicts {
            // `ordinals` turns an edict past the outputs into a cenotaph, so
            // `output <= outputs_len` here; id 0:0 names an etching, and
            // there is none.
            let output = output as usize;
            if id == RuneId::default() {
                continue;
            }
            let Some(balance) = runes.get_mut(&id) else {
                continue;
            };
            let asset = asset_of(id);
            if output == outputs_len {
                if non_op_return.is_empty() {
                    continue;
                }
                if amount == 0 {
                    let count = non_op_return.len() as u128;
                    let each = *balance / count;
                    let remainder = (*balance % count) as usize;
                    for (i, &vout) in non_op_return.iter().enumerate() {
                        let share = if i < remainder { each + 1 } else { each };
                        *balance -= share;
                        add(&mut outputs[vout], asset, share)?;
                    }
                } else {
                    for &vout in &non_op_return {
                        let share = amount.min(*balance);
                        *balance -= share;
                        add(&mut outputs[vout], asset, share)?;
                    }
                }
            } else {
                let share = if amount == 0 {
                    *balance
                } else {
                    amount.min(*balance)
                };
                *balance -= share;
                if let Some(slot) = outputs.get_mut(output) {
                    add(slot, asset, share)?;
                }
            }
        }
    }

    // Everything left over goes to the pointer, or the first non-OP_RETURN
    // output; with neither it is burned.
    let mut burned = Holdings::new();
    let default = runestone
        .as_ref()
        .and_then(|r| r.pointer)
        .map(|p| p as usize)
        .or_else(|| non_op_return.first().copied());
    let leftovers = runes
        .into_iter()
        .map(|(id, amount)| (asset_of(id), amount))
        .chain(alkanes);
    for (asset, amount) in leftovers {
        match default.and_then(|vout| outputs.get_mut(vout)) {
            Some(slot) => add(slot, asset, amount)?,
            None => add(&mut burned, asset, amount)?,
        }
    }

    // Whatever sits on an OP_RETURN output is burned.
    for (vout, txout) in tx.output.iter().enumerate() {
        if txout.script_pubkey.is_op_return() {
            for (asset, amount) in std::mem::take(&mut outputs[vout]) {
                add(&mut burned, asset, amount)?;
            }
        }
    }

    Ok(Allocation { outputs, burned })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::{Amount, ScriptBuf, absolute::LockTime, transaction::Version};

    const ID: RuneId = RuneId {
        block: 840_000,
        tx: 7,
    };

    fn rune() -> Asset {
        asset_of(ID)
    }

    fn tx(runestone: Option<&Runestone>, outputs: usize) -> Transaction {
        let mut output: Vec<TxOut> = (0..outputs)
            .map(|i| TxOut {
                value: Amount::from_sat(1000),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51, i as u8]),
            })
            .collect();
        if let Some(r) = runestone {
            output.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: r.encipher(),
            });
        }
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![],
            output,
        }
    }

    fn holding(amount: u128) -> Vec<Holdings> {
        vec![Holdings::from([(rune(), amount)])]
    }

    #[test]
    fn an_edict_moves_its_amount_and_the_pointer_takes_the_rest() {
        let r = Runestone {
            edicts: vec![Edict {
                id: ID,
                amount: 30,
                output: 1,
            }],
            pointer: Some(2),
            ..Default::default()
        };
        let a = allocate(&tx(Some(&r), 3), &holding(100)).unwrap();
        assert_eq!(a.outputs[1], Holdings::from([(rune(), 30)]));
        assert_eq!(a.outputs[2], Holdings::from([(rune(), 70)]));
        assert!(a.outputs[0].is_empty() && a.burned.is_empty());
    }

    #[test]
    fn without_a_runestone_everything_goes_to_the_first_output() {
        let a = allocate(&tx(None, 2), &holding(100)).unwrap();
        assert_eq!(a.outputs[0], Holdings::from([(rune(), 100)]));
    }

    #[test]
    fn an_edict_to_the_op_return_burns() {
        let r = Runestone {
            edicts: vec![Edict {
                id: ID,
                amount: 0,
                output: 2,
            }],
            ..Default::default()
        };
        let a = allocate(&tx(Some(&r), 2), &holding(100)).unwrap();
        assert_eq!(a.burned, Holdings::from([(rune(), 100)]));
    }

    #[test]
    fn an_edict_to_all_outputs_splits_like_ord() {
        let r = Runestone {
            edicts: vec![Edict {
                id: ID,
                amount: 0,
                // One past the last output (three, then the runestone).
                output: 4,
            }],
            ..Default::default()
        };
        let a = allocate(&tx(Some(&r), 3), &holding(100)).unwrap();
        let got: Vec<u128> = a.outputs[..3].iter().map(|h| h[&rune()]).collect();
        assert_eq!(got, [34, 33, 33]);
    }

    #[test]
    fn cenotaphs_mints_and_odd_encodings_are_refused() {
        let mut t = tx(None, 1);
        t.output.push(TxOut {
            value: Amount::ZERO,
            // OP_RETURN OP_13 with a push of an unknown even tag (2^7 - 2).
            script_pubkey: ScriptBuf::from_bytes(vec![0x6a, 0x5d, 0x02, 0x7e, 0x01]),
        });
        assert!(matches!(
            allocate(&t, &[]),
            Err(RunestoneRefusal::Cenotaph(_))
        ));

        let mint = Runestone {
            mint: Some(ID),
            ..Default::default()
        };
        assert_eq!(
            allocate(&tx(Some(&mint), 1), &[]),
            Err(RunestoneRefusal::EtchesOrMints)
        );

        // An unknown odd tag (127) is skipped by ord but is not canonical.
        let mut odd = tx(None, 1);
        odd.output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(vec![0x6a, 0x5d, 0x02, 0x7f, 0x01]),
        });
        assert_eq!(allocate(&odd, &[]), Err(RunestoneRefusal::NonCanonical));
    }
}
