//! No mutation of a valid swap PSBT makes a side accept a transaction that
//! breaks its terms: for random terms and random mutations, each side's
//! checker either refuses, or the transaction (judged by an independent
//! oracle below, from the true prevouts and holdings) still gives that side
//! at least what it buys and takes at most what it sells (plus, for the
//! taker, a fee within its bound).

mod common;

use common::{oracle::*, *};
use darkswap_trade::{AssetAmount, KeyKind, Role, check_psbt};
use proptest::prelude::*;

// -------------------------------------------------------------- properties

fn arb_swap() -> impl Strategy<Value = Swap> {
    (
        0u8..4,
        1u128..1_000_000,
        1_000u64..5_000_000,
        0u128..1_000,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(kind, amount, sats, extra, a, b)| {
            let asset = if kind < 2 { RUNE } else { ALKANE };
            let leg = AssetAmount::new(asset, amount);
            let btc = AssetAmount::btc(sats);
            let (maker_gives, taker_gives) = if kind % 2 == 0 {
                (leg, btc)
            } else {
                (btc, leg)
            };
            let k = |p2tr: bool| if p2tr { KeyKind::P2tr } else { KeyKind::P2wpkh };
            swap(maker_gives, taker_gives, k(a), k(b), extra)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_honest_psbt_is_accepted_and_keeps_both_sides_terms(swap in arb_swap()) {
        for role in [Role::Maker, Role::Taker] {
            let checked = check_psbt(&swap.psbt, &swap.trade, role, &swap.index, &policy());
            prop_assert!(checked.is_ok(), "{role:?}: {checked:?}");
            prop_assert!(terms_hold(&swap, &swap.world, &swap.psbt.unsigned_tx, role));
        }
    }

    #[test]
    fn no_mutation_makes_a_side_accept_a_psbt_that_breaks_its_terms(
        swap in arb_swap(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let world = world_of(&swap);
        let mut psbt = swap.psbt.clone();
        for m in &mutations {
            psbt = apply(&swap, &world, &psbt, m);
        }
        for role in [Role::Maker, Role::Taker] {
            if check_psbt(&psbt, &swap.trade, role, &swap.index, &policy()).is_ok() {
                prop_assert!(
                    terms_hold(&swap, &world, &psbt.unsigned_tx, role),
                    "{role:?} accepted a PSBT that breaks its terms: {mutations:?}"
                );
            }
        }
    }
}
