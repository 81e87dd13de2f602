//! Every cheat is refused by the side it would harm, with its own error,
//! before that side signs anything. One refusal per test.

mod common;

use bitcoin::{Amount, ScriptBuf, TxIn, TxOut};
use common::*;
use darkswap_trade::{
    Holdings, InMemoryIndex, PsbtCheckError, Role, WalletError, check_psbt, sign_approved,
};
use ordinals::{Edict, Etching, RuneId, Runestone};

fn check(swap: &Swap, psbt: &bitcoin::Psbt, role: Role) -> Result<(), PsbtCheckError> {
    check_psbt(psbt, &swap.trade, role, &swap.index, &policy()).map(|_| ())
}

fn rune_id() -> RuneId {
    RuneId {
        block: 840_000,
        tx: 7,
    }
}

/// Replaces the runestone output's script.
fn with_runestone(swap: &Swap, script: ScriptBuf) -> bitcoin::Psbt {
    let vout = runestone_vout(&swap.psbt);
    mutate(&swap.psbt, &swap.world, |tx| {
        tx.output[vout].script_pubkey = script;
    })
}

#[test]
fn a_psbt_that_pays_the_maker_less_is_refused_by_the_maker() {
    let swap = maker_sells_runes(1_000, 50_000);
    let taker_change = vout_of(&swap.psbt, &swap.trade.taker.change);
    let cheat = mutate(&swap.psbt, &swap.world, |tx| {
        tx.output[0].value = Amount::from_sat(49_000);
        tx.output[taker_change].value += Amount::from_sat(1_000);
    });
    assert_eq!(
        check(&swap, &cheat, Role::Maker),
        Err(PsbtCheckError::UnderpaidReceive {
            asset: darkswap_trade::Asset::Btc,
            expected: 50_000,
            got: 49_000,
        })
    );
}

#[test]
fn an_extra_output_that_takes_the_takers_funds_is_refused_by_the_taker() {
    let swap = maker_sells_runes(1_000, 50_000);
    let taker_change = vout_of(&swap.psbt, &swap.trade.taker.change);
    let cheat = mutate(&swap.psbt, &swap.world, |tx| {
        tx.output[taker_change].value -= Amount::from_sat(7_000);
        tx.output.insert(
            2,
            TxOut {
                value: Amount::from_sat(7_000),
                script_pubkey: stranger(),
            },
        );
    });
    assert_eq!(
        check(&swap, &cheat, Role::Taker),
        Err(PsbtCheckError::ExtraOutputTakesFunds {
            vout: 2,
            value: Amount::from_sat(7_000),
        })
    );
}

#[test]
fn a_change_output_paid_to_the_other_party_is_refused_by_its_owner() {
    let swap = maker_sells_runes(1_000, 50_000);
    let taker_change = vout_of(&swap.psbt, &swap.trade.taker.change);
    let maker_receive = swap.trade.maker.receive.clone();
    let cheat = mutate(&swap.psbt, &swap.world, |tx| {
        tx.output[taker_change].script_pubkey = maker_receive;
    });
    assert!(matches!(
        check(&swap, &cheat, Role::Taker),
        Err(PsbtCheckError::OverspendsBtc { .. })
    ));
}

#[test]
fn an_own_input_replaced_by_another_is_refused() {
    let swap = maker_sells_runes(1_000, 50_000);
    let own = swap.trade.maker.inputs[0].outpoint;
    let other = swap
        .maker
        .utxos()
        .iter()
        .find(|u| swap.trade.maker.input(&u.outpoint).is_none())
        .expect("the maker has a UTXO it did not offer")
        .outpoint;
    let cheat = mutate(&swap.psbt, &swap.world, |tx| {
        tx.input[0].previous_output = other;
    });
    assert_eq!(
        check(&swap, &cheat, Role::Maker),
        Err(PsbtCheckError::OwnInputMissing(own))
    );
}

#[test]
fn a_counterparty_input_swapped_for_a_strangers_is_refused() {
    let swap = maker_sells_runes(1_000, 50_000);
    let n = swap.trade.maker.inputs.len();
    let theirs = swap.trade.taker.inputs[0].outpoint;
    let cheat = mutate(&swap.psbt, &swap.world, |tx| {
        tx.input[n].previous_output = outpoint("a stranger's coins");
    });
    assert_eq!(
        check(&swap, &cheat, Role::Maker),
        Err(PsbtCheckError::ForeignInputSwapped(theirs))
    );
}

#[test]
fn an_added_input_nobody_offered_is_refused() {
    let swap = maker_sells_runes(1_000, 50_000);
    let cheat = mutate(&swap.psbt, &swap.world, |tx| {
        tx.input.push(TxIn {
            previous_output: outpoint("a stranger's coins"),
            ..Default::default()
        });
    });
    assert_eq!(
        check(&swap, &cheat, Role::Taker),
        Err(PsbtCheckError::UnexpectedInput(outpoint(
            "a stranger's coins"
        )))
    );
}

#[test]
fn a_prevout_that_lies_about_an_amount_is_refused() {
    let swap = maker_sells_runes(1_000, 50_000);
    let mut cheat = swap.psbt.clone();
    let n = swap.trade.maker.inputs.len();
    if let Some(prevout) = cheat.inputs[n].witness_utxo.as_mut() {
        prevout.value += Amount::from_sat(10_000);
    }
    assert_eq!(
        check(&swap, &cheat, Role::Maker),
        Err(PsbtCheckError::PrevoutMismatch(
            swap.trade.taker.inputs[0].outpoint
        ))
    );
}

#[test]
fn an_edict_to_the_wrong_output_underpays_the_rune_buyer() {
    let swap = maker_sells_runes(1_000, 50_000);
    let maker_change = vout_of(&swap.psbt, &swap.trade.maker.change) as u32;
    let cheat = with_runestone(
        &swap,
        Runestone {
            edicts: vec![Edict {
                id: rune_id(),
                amount: 1_000,
                output: maker_change,
            }],
            pointer: Some(maker_change),
            ..Default::default()
        }
        .encipher(),
    );
    assert_eq!(
        check(&swap, &cheat, Role::Taker),
        Err(PsbtCheckError::UnderpaidReceive {
            asset: RUNE,
            expected: 1_000,
            got: 0,
        })
    );
}

#[test]
fn a_pointer_that_sends_the_sellers_rune_change_to_the_buyer_is_refused_by_the_seller() {
    let swap = maker_sells_runes(1_000, 50_000);
    let cheat = with_runestone(
        &swap,
        Runestone {
            edicts: vec![Edict {
                id: rune_id(),
                amount: 1_000,
                output: 1,
            }],
            pointer: Some(1),
            ..Default::default()
        }
        .encipher(),
    );
    assert_eq!(
        check(&swap, &cheat, Role::Maker),
        Err(PsbtCheckError::RunestoneSendsElsewhere {
            asset: RUNE,
            allowed: 1_000,
            lost: 1_500,
        })
    );
}

#[test]
fn a_missing_pointer_lets_the_default_output_take_the_sellers_rune_change() {
    // The taker sells: without the pointer its leftover runes fall to the
    // first non-OP_RETURN output, the maker's receive output.
    let swap = taker_sells_runes(1_000, 50_000);
    let cheat = with_runestone(
        &swap,
        Runestone {
            edicts: vec![Edict {
                id: rune_id(),
                amount: 1_000,
                output: 0,
            }],
            ..Default::default()
        }
        .encipher(),
    );
    assert_eq!(
        check(&swap, &cheat, Role::Taker),
        Err(PsbtCheckError::RunestoneSendsElsewhere {
            asset: RUNE,
            allowed: 1_000,
            lost: 1_500,
        })
    );
}

#[test]
fn a_cenotaph_that_would_burn_the_runes_is_refused() {
    let swap = maker_sells_runes(1_000, 50_000);
    // OP_RETURN OP_13, then the unknown even tag 126 ("cenotaph").
    let cheat = with_runestone(
        &swap,
        ScriptBuf::from_bytes(vec![0x6a, 0x5d, 0x02, 0x7e, 0x01]),
    );
    assert!(matches!(
        check(&swap, &cheat, Role::Maker),
        Err(PsbtCheckError::Cenotaph(_))
    ));
}

#[test]
fn a_truncated_runestone_is_a_cenotaph_and_refused() {
    let swap = maker_sells_runes(1_000, 50_000);
    let mut bytes = swap.psbt.unsigned_tx.output[runestone_vout(&swap.psbt)]
        .script_pubkey
        .to_bytes();
    // Drop the edict's last varint and fix the push length: a body whose
    // length is not a multiple of four is a cenotaph.
    bytes.pop();
    bytes[2] -= 1;
    let cheat = with_runestone(&swap, ScriptBuf::from_bytes(bytes));
    assert!(matches!(
        check(&swap, &cheat, Role::Taker),
        Err(PsbtCheckError::Cenotaph(_))
    ));
}

#[test]
fn a_runestone_that_etches_is_refused() {
    let swap = maker_sells_runes(1_000, 50_000);
    let cheat = with_runestone(
        &swap,
        Runestone {
            etching: Some(Etching::default()),
            ..Default::default()
        }
        .encipher(),
    );
    assert_eq!(
        check(&swap, &cheat, Role::Maker),
        Err(PsbtCheckError::RunestoneEtchesOrMints)
    );
}

#[test]
fn a_runestone_with_an_unknown_field_is_refused() {
    let swap = taker_sells_runes(1_000, 50_000);
    let mut bytes = swap.psbt.unsigned_tx.output[runestone_vout(&swap.psbt)]
        .script_pubkey
        .to_bytes();
    // Prepend the odd tag 127 (ignored by ord, read by other protocols).
    bytes.splice(3..3, [0x7f, 0x00]);
    bytes[2] += 2;
    let cheat = with_runestone(&swap, ScriptBuf::from_bytes(bytes));
    assert_eq!(
        check(&swap, &cheat, Role::Maker),
        Err(PsbtCheckError::NonCanonicalRunestone)
    );
}

#[test]
fn a_psbt_without_its_runestone_is_refused() {
    let swap = maker_sells_runes(1_000, 50_000);
    let vout = runestone_vout(&swap.psbt);
    let cheat = mutate(&swap.psbt, &swap.world, |tx| {
        tx.output.remove(vout);
    });
    assert_eq!(
        check(&swap, &cheat, Role::Taker),
        Err(PsbtCheckError::RunestoneMissing)
    );
}

#[test]
fn a_fee_above_the_bound_is_refused() {
    let swap = taker_sells_runes(1_000, 50_000);
    let taker_change = vout_of(&swap.psbt, &swap.trade.taker.change);
    let before = check_psbt(&swap.psbt, &swap.trade, Role::Taker, &swap.index, &policy())
        .unwrap()
        .fee();
    let cheat = mutate(&swap.psbt, &swap.world, |tx| {
        tx.output[taker_change].value -= Amount::from_sat(50_000);
    });
    assert_eq!(
        check(&swap, &cheat, Role::Taker),
        Err(PsbtCheckError::FeeAboveBound {
            fee: before + Amount::from_sat(50_000),
            max: darkswap_trade::DEFAULT_MAX_FEE,
        })
    );
}

#[test]
fn an_input_the_index_says_holds_other_runes_is_refused() {
    let swap = maker_sells_runes(1_000, 50_000);
    let rune_input = swap.trade.maker.inputs[0].clone();
    let mut index: InMemoryIndex = swap.index.clone();
    index.insert(rune_input.outpoint, Holdings::from([(OTHER_RUNE, 750)]));
    assert_eq!(
        check_psbt(&swap.psbt, &swap.trade, Role::Taker, &index, &policy()).map(|_| ()),
        Err(PsbtCheckError::HoldingsMismatch {
            outpoint: rune_input.outpoint,
            claimed: rune_input.holdings,
            indexed: Holdings::from([(OTHER_RUNE, 750)]),
        })
    );
}

#[test]
fn an_input_the_index_does_not_know_is_refused() {
    let swap = maker_sells_runes(1_000, 50_000);
    let outpoint = swap.trade.taker.inputs[0].outpoint;
    let mut index = InMemoryIndex::new();
    for o in swap.trade.outpoints() {
        if o != outpoint {
            index.insert(o, swap.index_holdings(o));
        }
    }
    assert_eq!(
        check_psbt(&swap.psbt, &swap.trade, Role::Maker, &index, &policy()).map(|_| ()),
        Err(PsbtCheckError::IndexMissing(outpoint))
    );
}

#[test]
fn an_own_input_asking_for_a_weak_sighash_is_refused() {
    let swap = maker_sells_runes(1_000, 50_000);
    let mut cheat = swap.psbt.clone();
    cheat.inputs[0].sighash_type =
        Some(bitcoin::sighash::EcdsaSighashType::SinglePlusAnyoneCanPay.into());
    assert_eq!(
        check(&swap, &cheat, Role::Maker),
        Err(PsbtCheckError::UnsafeSighash(0))
    );
}

#[test]
fn a_lock_time_is_refused() {
    let swap = maker_sells_runes(1_000, 50_000);
    let lock = bitcoin::absolute::LockTime::from_height(900_000).unwrap();
    let cheat = mutate(&swap.psbt, &swap.world, |tx| tx.lock_time = lock);
    assert_eq!(
        check(&swap, &cheat, Role::Maker),
        Err(PsbtCheckError::LockTimeSet(lock))
    );
}

#[test]
fn a_psbt_changed_after_the_check_is_not_signed() {
    let swap = maker_sells_runes(1_000, 50_000);
    let approved =
        check_psbt(&swap.psbt, &swap.trade, Role::Maker, &swap.index, &policy()).unwrap();
    let mut changed = mutate(&swap.psbt, &swap.world, |tx| {
        tx.output[0].value -= Amount::from_sat(1);
    });
    assert!(matches!(
        sign_approved(&swap.maker, &mut changed, &approved),
        Err(WalletError::NotApproved { .. })
    ));
    assert!(changed.inputs.iter().all(|i| i.partial_sigs.is_empty()));
}

#[test]
fn a_full_previous_transaction_that_does_not_match_the_input_is_refused() {
    let swap = maker_sells_runes(1_000, 50_000);
    let mut cheat = swap.psbt.clone();
    let n = swap.trade.maker.inputs.len();
    // Any transaction whose txid is not the input's: it proves nothing.
    cheat.inputs[n].non_witness_utxo = Some(swap.psbt.unsigned_tx.clone());
    assert_eq!(
        check(&swap, &cheat, Role::Maker),
        Err(PsbtCheckError::PrevoutMismatch(
            swap.trade.taker.inputs[0].outpoint
        ))
    );
}
