//! An independent judge of a swap transaction, and random mutations of a
//! swap PSBT, shared by the property tests of the checker and of the
//! negotiation.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxOut};
use darkswap_trade::{Asset, DEFAULT_MAX_FEE, Holdings, OfferedInput, Role};
use ordinals::{Artifact, Edict, RuneId, Runestone};
use proptest::prelude::*;

use super::*;

// ------------------------------------------------------------------ oracle

/// Where the runes and alkanes of `tx`'s inputs end up, per the runes
/// protocol as ord implements it (written again here, on purpose, rather
/// than calling the crate's allocator).
pub fn oracle_allocation(tx: &Transaction, held: &[Holdings]) -> Vec<Holdings> {
    let mut unallocated: BTreeMap<Asset, u128> = BTreeMap::new();
    for h in held {
        for (a, n) in h {
            *unallocated.entry(*a).or_default() += n;
        }
    }
    let mut out = vec![Holdings::new(); tx.output.len()];
    let spendable: Vec<usize> = (0..tx.output.len())
        .filter(|&v| !tx.output[v].script_pubkey.is_op_return())
        .collect();
    let artifact = Runestone::decipher(tx);
    if let Some(Artifact::Cenotaph(_)) = artifact {
        return out; // everything burned
    }
    let runestone = match artifact {
        Some(Artifact::Runestone(r)) => Some(r),
        _ => None,
    };
    let give = |out: &mut Vec<Holdings>, v: usize, a: Asset, n: u128| {
        if n > 0 {
            *out[v].entry(a).or_default() += n;
        }
    };
    if let Some(r) = &runestone {
        for e in &r.edicts {
            let asset = Asset::Rune {
                block: e.id.block,
                tx: e.id.tx,
            };
            let Some(balance) = unallocated.get_mut(&asset) else {
                continue;
            };
            let output = e.output as usize;
            if output == tx.output.len() {
                if spendable.is_empty() {
                    continue;
                }
                if e.amount == 0 {
                    let each = *balance / spendable.len() as u128;
                    let rem = (*balance % spendable.len() as u128) as usize;
                    for (i, &v) in spendable.iter().enumerate() {
                        let n = each + u128::from(i < rem);
                        *balance -= n;
                        give(&mut out, v, asset, n);
                    }
                } else {
                    for &v in &spendable {
                        let n = e.amount.min(*balance);
                        *balance -= n;
                        give(&mut out, v, asset, n);
                    }
                }
            } else {
                let n = if e.amount == 0 {
                    *balance
                } else {
                    e.amount.min(*balance)
                };
                *balance -= n;
                give(&mut out, output, asset, n);
            }
        }
    }
    let target = runestone
        .as_ref()
        .and_then(|r| r.pointer)
        .map(|p| p as usize)
        .or_else(|| spendable.first().copied());
    if let Some(v) = target {
        for (a, n) in unallocated {
            give(&mut out, v, a, n);
        }
    }
    for (v, o) in tx.output.iter().enumerate() {
        if o.script_pubkey.is_op_return() {
            out[v].clear();
        }
    }
    out
}

/// Whether `tx` keeps `role`'s terms, judged from the true state of the
/// world. An invalid transaction (unknown input, outputs above inputs)
/// moves nothing and so keeps every term.
pub fn terms_hold(swap: &Swap, world: &[OfferedInput], tx: &Transaction, role: Role) -> bool {
    let truth: Option<Vec<&OfferedInput>> = tx
        .input
        .iter()
        .map(|i| world.iter().find(|u| u.outpoint == i.previous_output))
        .collect();
    let Some(truth) = truth else { return true };
    let total_in: u64 = truth.iter().map(|u| u.prevout.value.to_sat()).sum();
    let total_out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    if total_out > total_in {
        return true;
    }
    let fee = total_in - total_out;
    let wallet = match role {
        Role::Maker => &swap.maker,
        Role::Taker => &swap.taker,
    };
    let mine = |s: &ScriptBuf| wallet.owns(s);
    let held: Vec<Holdings> = truth.iter().map(|u| u.holdings.clone()).collect();
    let alloc = oracle_allocation(tx, &held);

    let mut net: BTreeMap<Asset, i128> = BTreeMap::new();
    for (u, h) in truth.iter().zip(&held) {
        if mine(&u.prevout.script_pubkey) {
            *net.entry(Asset::Btc).or_default() -= i128::from(u.prevout.value.to_sat());
            for (a, n) in h {
                *net.entry(*a).or_default() -= *n as i128;
            }
        }
    }
    for (o, h) in tx.output.iter().zip(&alloc) {
        if mine(&o.script_pubkey) {
            *net.entry(Asset::Btc).or_default() += i128::from(o.value.to_sat());
            for (a, n) in h {
                *net.entry(*a).or_default() += *n as i128;
            }
        }
    }
    let terms = swap.trade.terms;
    let (gets, gives) = (terms.gets(role), terms.gives(role));
    let fee_share = if role == terms.fee_payer() {
        if fee > DEFAULT_MAX_FEE.to_sat() {
            return false;
        }
        i128::from(fee)
    } else {
        0
    };
    net.entry(gets.asset).or_default();
    net.iter().all(|(&asset, &n)| {
        let btc_fee = if asset == Asset::Btc { fee_share } else { 0 };
        if asset == gets.asset {
            n + btc_fee >= gets.amount as i128
        } else if asset == gives.asset {
            -n <= gives.amount as i128 + btc_fee
        } else {
            -n <= btc_fee
        }
    })
}

// --------------------------------------------------------------- mutations

#[derive(Debug, Clone)]
pub enum Mutation {
    OutputValue {
        vout: usize,
        delta: i64,
    },
    AddOutput {
        at: usize,
        who: u8,
        value: u64,
    },
    ChangeScript {
        vout: usize,
        who: u8,
    },
    RemoveOutput {
        vout: usize,
    },
    SwapOutputs {
        a: usize,
        b: usize,
    },
    SwapInput {
        input: usize,
        with: usize,
    },
    SwapInputs {
        a: usize,
        b: usize,
    },
    Runestone {
        amount: Option<u128>,
        output: Option<u32>,
        pointer: Option<Option<u32>>,
        extra: Option<(bool, u128, u32)>,
    },
    RunestoneBytes(Vec<u8>),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), -60_000i64..60_000)
            .prop_map(|(vout, delta)| Mutation::OutputValue { vout, delta }),
        (any::<usize>(), 0u8..6, 0u64..60_000).prop_map(|(at, who, value)| Mutation::AddOutput {
            at,
            who,
            value
        }),
        (any::<usize>(), 0u8..6).prop_map(|(vout, who)| Mutation::ChangeScript { vout, who }),
        any::<usize>().prop_map(|vout| Mutation::RemoveOutput { vout }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapOutputs { a, b }),
        (any::<usize>(), any::<usize>())
            .prop_map(|(input, with)| Mutation::SwapInput { input, with }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapInputs { a, b }),
        (
            proptest::option::of(0u128..3_000),
            proptest::option::of(0u32..8),
            proptest::option::of(proptest::option::of(0u32..8)),
            proptest::option::of((any::<bool>(), 0u128..3_000, 0u32..8)),
        )
            .prop_map(|(amount, output, pointer, extra)| Mutation::Runestone {
                amount,
                output,
                pointer,
                extra
            }),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Mutation::RunestoneBytes),
    ]
}

pub fn script(swap: &Swap, who: u8) -> ScriptBuf {
    match who {
        0 => swap.trade.maker.receive.clone(),
        1 => swap.trade.maker.change.clone(),
        2 => swap.trade.taker.receive.clone(),
        3 => swap.trade.taker.change.clone(),
        4 => stranger(),
        _ => ScriptBuf::new_op_return([]),
    }
}

pub fn apply(
    swap: &Swap,
    world: &[OfferedInput],
    psbt: &bitcoin::Psbt,
    m: &Mutation,
) -> bitcoin::Psbt {
    let (rs_vout, rune) = (
        psbt.unsigned_tx
            .output
            .iter()
            .position(|o| o.script_pubkey.is_op_return()),
        match swap.trade.terms.asset_leg().1.asset {
            Asset::Rune { block, tx } => Some(RuneId { block, tx }),
            _ => None,
        },
    );
    mutate(psbt, world, |tx| {
        let outs = tx.output.len().max(1);
        match m.clone() {
            Mutation::OutputValue { vout, delta } => {
                let o = &mut tx.output[vout % outs];
                o.value = Amount::from_sat(o.value.to_sat().saturating_add_signed(delta));
            }
            Mutation::AddOutput { at, who, value } => tx.output.insert(
                at % (tx.output.len() + 1),
                TxOut {
                    value: Amount::from_sat(value),
                    script_pubkey: script(swap, who),
                },
            ),
            Mutation::ChangeScript { vout, who } => {
                tx.output[vout % outs].script_pubkey = script(swap, who);
            }
            Mutation::RemoveOutput { vout } => {
                tx.output.remove(vout % outs);
            }
            Mutation::SwapOutputs { a, b } => tx.output.swap(a % outs, b % outs),
            Mutation::SwapInput { input, with } => {
                let n = tx.input.len();
                tx.input[input % n].previous_output = world[with % world.len()].outpoint;
            }
            Mutation::SwapInputs { a, b } => {
                let n = tx.input.len();
                tx.input.swap(a % n, b % n);
            }
            Mutation::Runestone {
                amount,
                output,
                pointer,
                extra,
            } => {
                let Some(v) = rs_vout else { return };
                let Some(Artifact::Runestone(mut r)) = Runestone::decipher(tx) else {
                    return;
                };
                if let Some(e) = r.edicts.first_mut() {
                    if let Some(a) = amount {
                        e.amount = a;
                    }
                    if let Some(o) = output {
                        e.output = o;
                    }
                }
                if let Some(p) = pointer {
                    r.pointer = p;
                }
                if let Some((other, amount, output)) = extra {
                    let id = if other {
                        RuneId {
                            block: 840_123,
                            tx: 1,
                        }
                    } else {
                        rune.unwrap_or_default()
                    };
                    r.edicts.push(Edict { id, amount, output });
                }
                // Outputs past the end make a cenotaph, which is fine too.
                tx.output[v].script_pubkey = r.encipher();
            }
            Mutation::RunestoneBytes(bytes) => {
                let Some(v) = rs_vout else { return };
                let mut s = vec![0x6a, 0x5d];
                s.push(bytes.len() as u8);
                s.extend(bytes);
                tx.output[v].script_pubkey = ScriptBuf::from_bytes(s);
            }
        }
    })
}

/// The swap's world plus a stranger's coins, so a swapped-in input can be a
/// UTXO nobody in the trade owns (and the index does not know).
pub fn world_of(swap: &Swap) -> Vec<OfferedInput> {
    let mut world = swap.world.clone();
    world.push(OfferedInput {
        outpoint: OutPoint {
            vout: 3,
            ..outpoint("stranger")
        },
        prevout: TxOut {
            value: Amount::from_sat(80_000),
            script_pubkey: stranger(),
        },
        holdings: Holdings::new(),
    });
    world
}
