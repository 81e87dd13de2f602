//! The consensus check refuses what Bitcoin Core would refuse, with a typed
//! error naming the input.

mod common;

use bitcoin::{Amount, Witness};
use common::*;
use darkswap_trade::{
    ConsensusError, FinalizeError, KeyKind, ScriptFailure, finalize, verify_consensus,
};

/// Flips one bit inside the signature of `input`'s witness.
fn tamper(witness: &Witness) -> Witness {
    let mut items: Vec<Vec<u8>> = witness.iter().map(<[u8]>::to_vec).collect();
    // Byte 10 lies inside r of a DER signature and inside R of a Schnorr one.
    items[0][10] ^= 0x01;
    Witness::from_slice(&items)
}

#[test]
fn a_tampered_p2wpkh_signature_fails_the_consensus_check() {
    let swap = maker_sells_runes(1_000, 50_000);
    let mut done = finalize(sign_both(&swap)).unwrap();
    assert!(done.prevouts[0].script_pubkey.is_p2wpkh());
    done.tx.input[0].witness = tamper(&done.tx.input[0].witness);
    assert_eq!(
        verify_consensus(&done.tx, &done.prevouts),
        Err(ConsensusError::InputInvalid {
            input: 0,
            failure: ScriptFailure::Script,
        })
    );
}

#[test]
fn a_tampered_taproot_signature_fails_the_consensus_check() {
    let swap = swap(
        darkswap_trade::AssetAmount::new(RUNE, 10),
        darkswap_trade::AssetAmount::btc(20_000),
        KeyKind::P2tr,
        KeyKind::P2tr,
        0,
    );
    let mut done = finalize(sign_both(&swap)).unwrap();
    let last = done.tx.input.len() - 1;
    assert!(done.prevouts[last].script_pubkey.is_p2tr());
    done.tx.input[last].witness = tamper(&done.tx.input[last].witness);
    assert_eq!(
        verify_consensus(&done.tx, &done.prevouts),
        Err(ConsensusError::InputInvalid {
            input: last,
            failure: ScriptFailure::Script,
        })
    );
}

#[test]
fn a_prevout_amount_other_than_the_signed_one_fails_the_consensus_check() {
    let swap = maker_sells_runes(1_000, 50_000);
    let mut done = finalize(sign_both(&swap)).unwrap();
    done.prevouts[0].value += Amount::from_sat(1);
    assert!(matches!(
        verify_consensus(&done.tx, &done.prevouts),
        Err(ConsensusError::InputInvalid { input: 0, .. })
    ));
}

#[test]
fn prevouts_must_match_the_inputs_one_to_one() {
    let swap = maker_sells_runes(1_000, 50_000);
    let mut done = finalize(sign_both(&swap)).unwrap();
    let inputs = done.tx.input.len();
    done.prevouts.pop();
    assert_eq!(
        verify_consensus(&done.tx, &done.prevouts),
        Err(ConsensusError::PrevoutCount {
            inputs,
            prevouts: inputs - 1,
        })
    );
}

#[test]
fn a_psbt_signed_by_one_side_only_does_not_finalize() {
    let swap = maker_sells_runes(1_000, 50_000);
    let approved = darkswap_trade::check_psbt(
        &swap.psbt,
        &swap.trade,
        darkswap_trade::Role::Maker,
        &swap.index,
        &policy(),
    )
    .unwrap();
    let mut psbt = swap.psbt.clone();
    darkswap_trade::sign_approved(&swap.maker, &mut psbt, &approved).unwrap();
    let first_taker_input = swap.trade.maker.inputs.len();
    assert_eq!(
        finalize(psbt),
        Err(FinalizeError::Unsigned(first_taker_input))
    );
}
