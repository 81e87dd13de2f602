//! Whole swaps, one per kind of leg: build, both sides check, both sign only
//! their own inputs, combine, finalize, and Bitcoin Core's script check
//! passes for every input.

mod common;

use bitcoin::{Amount, Psbt};
use common::*;
use darkswap_trade::{
    AssetAmount, KeyKind, Role, check_psbt, finalize, sign_approved, verify_consensus,
};
use ordinals::{Artifact, Edict, RuneId, Runestone};

/// Runs the whole flow and returns the final transaction's prevouts and
/// transaction after checking it with libbitcoinconsensus.
fn complete(swap: &Swap) -> darkswap_trade::Finalized {
    let approved_maker = check_psbt(&swap.psbt, &swap.trade, Role::Maker, &swap.index, &policy())
        .expect("the maker accepts the honest PSBT");
    let approved_taker = check_psbt(&swap.psbt, &swap.trade, Role::Taker, &swap.index, &policy())
        .expect("the taker accepts the honest PSBT");
    assert_eq!(approved_maker.txid(), approved_taker.txid());

    // Each side signs its own copy, as two peers would.
    let mut maker_copy: Psbt = swap.psbt.clone();
    sign_approved(&swap.maker, &mut maker_copy, &approved_maker).expect("maker signs");
    let mut taker_copy: Psbt = swap.psbt.clone();
    sign_approved(&swap.taker, &mut taker_copy, &approved_taker).expect("taker signs");

    // Only its own inputs carry its signatures.
    for (i, input) in maker_copy.inputs.iter().enumerate() {
        let signed = !input.partial_sigs.is_empty() || input.tap_key_sig.is_some();
        assert_eq!(
            signed,
            approved_maker.own_inputs().contains(&i),
            "input {i}"
        );
    }

    taker_copy.combine(maker_copy).expect("same transaction");
    let finalized = finalize(taker_copy).expect("every input is signed");
    verify_consensus(&finalized.tx, &finalized.prevouts).expect("Bitcoin Core accepts every input");
    finalized
}

fn runestone(tx: &bitcoin::Transaction) -> Runestone {
    match Runestone::decipher(tx) {
        Some(Artifact::Runestone(r)) => r,
        other => panic!("expected a runestone, got {other:?}"),
    }
}

fn rune_id() -> RuneId {
    RuneId {
        block: 840_000,
        tx: 7,
    }
}

#[test]
fn a_maker_sells_runes_for_sats_and_both_sign_a_valid_swap() {
    let swap = maker_sells_runes(1_000, 50_000);
    let done = complete(&swap);
    let tx = &done.tx;
    // The taker gets the runes on its receive output (1), the maker's rune
    // change goes to its change output through the pointer.
    let maker_change = vout_of(&swap.psbt, &swap.trade.maker.change) as u32;
    assert_eq!(
        runestone(tx),
        Runestone {
            edicts: vec![Edict {
                id: rune_id(),
                amount: 1_000,
                output: 1
            }],
            pointer: Some(maker_change),
            ..Default::default()
        }
    );
    assert_eq!(tx.output[0].value, Amount::from_sat(50_000));
    assert_eq!(tx.output[0].script_pubkey, swap.trade.maker.receive);
}

#[test]
fn a_maker_buys_runes_with_sats_and_both_sign_a_valid_swap() {
    let swap = taker_sells_runes(2_500, 123_456);
    let done = complete(&swap);
    let taker_change = vout_of(&swap.psbt, &swap.trade.taker.change) as u32;
    assert_eq!(
        runestone(&done.tx),
        Runestone {
            edicts: vec![Edict {
                id: rune_id(),
                amount: 2_500,
                output: 0
            }],
            pointer: Some(taker_change),
            ..Default::default()
        }
    );
    assert_eq!(done.tx.output[1].value, Amount::from_sat(123_456));
}

#[test]
fn a_seller_with_exactly_the_runes_sold_needs_no_rune_change() {
    let swap = swap(
        AssetAmount::new(RUNE, 4_000),
        AssetAmount::btc(10_000),
        KeyKind::P2tr,
        KeyKind::P2tr,
        0,
    );
    let done = complete(&swap);
    assert_eq!(runestone(&done.tx).pointer, None);
}

#[test]
fn alkanes_swap_whole_both_ways_and_the_pointer_names_the_buyer() {
    for (maker_gives, taker_gives, buyer_vout) in [
        (AssetAmount::new(ALKANE, 21), AssetAmount::btc(70_000), 1),
        (AssetAmount::btc(70_000), AssetAmount::new(ALKANE, 21), 0),
    ] {
        let swap = swap(
            maker_gives,
            taker_gives,
            KeyKind::P2wpkh,
            KeyKind::P2wpkh,
            0,
        );
        let done = complete(&swap);
        assert_eq!(
            runestone(&done.tx),
            Runestone {
                pointer: Some(buyer_vout),
                ..Default::default()
            }
        );
    }
}

#[test]
fn the_taker_pays_the_fee_and_the_makers_terms_are_exact() {
    let swap = maker_sells_runes(1_000, 50_000);
    let approved =
        check_psbt(&swap.psbt, &swap.trade, Role::Taker, &swap.index, &policy()).unwrap();
    let tx = &swap.psbt.unsigned_tx;
    let sum_own = |offer: &darkswap_trade::Offer| -> u64 {
        offer.inputs.iter().map(|i| i.prevout.value.to_sat()).sum()
    };
    let paid_to = |offer: &darkswap_trade::Offer| -> u64 {
        tx.output
            .iter()
            .filter(|o| offer.owns_script(&o.script_pubkey))
            .map(|o| o.value.to_sat())
            .sum()
    };
    // The maker's sats: +50,000 exactly.
    assert_eq!(
        paid_to(&swap.trade.maker) as i64 - sum_own(&swap.trade.maker) as i64,
        50_000
    );
    // The taker's: -50,000 and the fee.
    assert_eq!(
        sum_own(&swap.trade.taker) as i64 - paid_to(&swap.trade.taker) as i64,
        50_000 + approved.fee().to_sat() as i64
    );
    // About 2 sat/vB on a transaction of four inputs and five outputs.
    assert!(approved.fee() > Amount::from_sat(800) && approved.fee() < Amount::from_sat(1_200));
}
