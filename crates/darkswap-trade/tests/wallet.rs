//! The built-in key wallet: what it offers and what it refuses to sign.

mod common;

use bitcoin::Amount;
use common::*;
use darkswap_trade::{
    AssetAmount, BuildOptions, KeyKind, OfferRequest, Role, Terms, Wallet, WalletError,
};

#[test]
fn an_offer_holds_the_asset_sold_and_enough_plain_coins_but_not_unrelated_runes() {
    let swap = maker_sells_runes(1_000, 50_000);
    let offer = &swap.trade.maker;
    assert_eq!(offer.claimed(RUNE), Some(1_500));
    assert_eq!(offer.claimed(OTHER_RUNE), Some(0));
    assert_eq!(
        offer.receive,
        swap.maker.address(0).unwrap().script_pubkey()
    );
    assert_eq!(offer.change, swap.maker.address(1).unwrap().script_pubkey());
    let taker = &swap.trade.taker;
    assert!(taker.inputs.iter().all(|i| i.holdings.is_empty()));
    assert!(taker.sats().unwrap() >= 50_000 + FEE_RESERVE.to_sat());
}

#[test]
fn a_wallet_without_enough_runes_says_how_many_it_has() {
    // The fixture's own offer committed the wallet's UTXOs: free them.
    let mut maker = uncommitted(maker_sells_runes(1_000, 50_000).maker);
    let terms = Terms::new(AssetAmount::new(RUNE, 9_999), AssetAmount::btc(1)).unwrap();
    let request =
        OfferRequest::for_trade(&terms, Role::Maker, &BuildOptions::default(), Amount::ZERO);
    assert!(matches!(
        maker.offer(&request),
        Err(WalletError::NotEnoughAsset {
            available: 1_500,
            ..
        })
    ));
}

#[test]
fn a_wallet_signs_none_of_the_counterpartys_inputs() {
    let swap = maker_sells_runes(1_000, 50_000);
    let mut psbt = swap.psbt.clone();
    let theirs = swap.trade.maker.inputs.len();
    assert!(matches!(
        swap.maker.sign_inputs(&mut psbt, &[theirs]),
        Err(WalletError::NotOwnInput(i)) if i == theirs
    ));
}

#[test]
fn a_wallet_refuses_a_utxo_that_does_not_pay_it() {
    let mut wallet = wallet(50, KeyKind::P2tr);
    let stranger_utxo = swap(
        AssetAmount::new(RUNE, 1),
        AssetAmount::btc(1_000),
        KeyKind::P2wpkh,
        KeyKind::P2wpkh,
        0,
    )
    .world[0]
        .clone();
    assert!(matches!(
        wallet.add_utxo(stranger_utxo),
        Err(WalletError::NotOwnScript)
    ));
}
