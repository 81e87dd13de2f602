//! No sequence of messages makes a maker sign a PSBT that breaks its terms:
//! after an honest start, the maker's session gets random sequences of
//! honest, mutated, replayed, misnumbered, foreign and late messages. It
//! signs at most once, and whatever it signs keeps its terms, judged by the
//! independent oracle of `common::oracle` from the true prevouts and
//! holdings.

mod common;

use common::{oracle::*, *};
use darkswap_proto::{
    Asset, NewOrder, PRICE_SCALE, PsbtCreate, PsbtFinalize, Side, SignedTradeMessage, TradeCancel,
    TradeMessageBody, TradePayload, identity::Keypair,
};
use darkswap_trade::{
    KeyWallet, OfferRequest, Role, Wallet,
    negotiation::{NegotiationConfig, TradeId, TradeOutput, TradeSession, for_fill, step},
};
use proptest::prelude::*;
use web_time::Instant;

const NOW: u64 = 1_800_000_000;

#[derive(Debug, Clone)]
enum Action {
    /// The taker's honest PSBT, at step 3.
    Honest,
    /// The PSBT mutated, at step 3, signed by the taker.
    Mutated(Vec<Mutation>),
    /// The PSBT mutated, at another step.
    Misnumbered(u32, Vec<Mutation>),
    /// The PSBT mutated, signed by a stranger in its own name.
    Stranger(Vec<Mutation>),
    /// A message delivered before, again.
    Replay(usize),
    /// A PSBT "signed by both", mutated, at step 5.
    Finalize(Vec<Mutation>),
    /// The taker gives up.
    Cancel,
}

fn action() -> impl Strategy<Value = Action> {
    let mutations = || proptest::collection::vec(mutation(), 1..3);
    prop_oneof![
        Just(Action::Honest),
        mutations().prop_map(Action::Mutated),
        (0u32..9, mutations()).prop_map(|(s, m)| Action::Misnumbered(s, m)),
        mutations().prop_map(Action::Stranger),
        (0usize..8).prop_map(Action::Replay),
        mutations().prop_map(Action::Finalize),
        Just(Action::Cancel),
    ]
}

/// The maker's session after an honest proposal and accept, and the
/// taker's honest PSBT.
struct Start {
    swap: Swap,
    taker_key: Keypair,
    maker: TradeSession,
    maker_wallet: KeyWallet,
    psbt: bitcoin::Psbt,
    body: TradeMessageBody,
}

fn start() -> Start {
    let swap = maker_sells_runes(500, 25_000);
    let (maker_key, taker_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let order = NewOrder {
        side: Side::Sell,
        base: RUNE,
        quote: Asset::Btc,
        amount: 1_000,
        price: 50 * PRICE_SCALE,
        created_at: NOW,
        expires_at: NOW + 3600,
        nonce: 1,
    }
    .sign(&maker_key)
    .unwrap()
    .verify()
    .unwrap();
    let config = NegotiationConfig::default();
    let mut taker_wallet = uncommitted(swap.taker.clone());
    let mut maker_wallet = uncommitted(swap.maker.clone());
    let offer = taker_wallet
        .offer(&OfferRequest::for_trade(
            &for_fill(&order, 500).unwrap(),
            Role::Taker,
            &config.build,
            config.fee_reserve,
        ))
        .unwrap();
    let t0 = Instant::now();
    let mut taker = TradeSession::take(
        TradeId::new([1; 32]),
        taker_key.clone(),
        &order,
        500,
        offer,
        config.clone(),
        t0,
        NOW,
    )
    .unwrap();
    let sent = |s: &mut TradeSession| -> Vec<SignedTradeMessage> {
        std::iter::from_fn(|| s.poll_output())
            .filter_map(|o| match o {
                TradeOutput::Send { message, .. } => Some(message),
                _ => None,
            })
            .collect()
    };
    let proposal = sent(&mut taker).remove(0).verify().unwrap();
    let mut maker = TradeSession::accept(
        maker_key,
        &proposal,
        &order,
        1_000,
        &mut maker_wallet,
        config,
        t0,
        NOW,
    )
    .unwrap();
    maker
        .handle_holdings(swap.index.clone(), &mut maker_wallet, NOW)
        .unwrap();
    let accept = sent(&mut maker).remove(0).verify().unwrap();
    taker
        .handle_message(&accept, &mut taker_wallet, t0, NOW)
        .unwrap();
    taker
        .handle_holdings(swap.index.clone(), &mut taker_wallet, NOW)
        .unwrap();
    let create = sent(&mut taker).remove(0).verify().unwrap();
    let Some(TradePayload::PsbtCreate(payload)) = &create.body.payload else {
        panic!("the taker sends its PSBT")
    };
    let psbt = bitcoin::Psbt::deserialize(&payload.psbt).unwrap();
    Start {
        swap,
        taker_key,
        maker,
        maker_wallet,
        psbt,
        body: create.body,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn no_sequence_of_messages_makes_the_maker_sign_a_psbt_that_breaks_its_terms(
        actions in proptest::collection::vec(action(), 1..6),
    ) {
        let Start { swap, taker_key, mut maker, mut maker_wallet, psbt, body } = start();
        let world = world_of(&swap);
        let stranger = Keypair::generate_ed25519();
        let t0 = Instant::now();
        let mut delivered: Vec<SignedTradeMessage> = Vec::new();
        let mut first_signature: Option<SignedTradeMessage> = None;
        for action in &actions {
            let mutated = |ms: &[Mutation]| {
                ms.iter().fold(psbt.clone(), |p, m| apply(&swap, &world, &p, m))
            };
            let create = |p: &bitcoin::Psbt| TradePayload::PsbtCreate(PsbtCreate {
                trade_id: body.trade_id.clone(),
                psbt: p.serialize(),
            });
            let (key, body) = match action {
                Action::Honest => (&taker_key, TradeMessageBody { ..body.clone() }),
                Action::Mutated(ms) => (&taker_key, TradeMessageBody {
                    payload: Some(create(&mutated(ms))),
                    ..body.clone()
                }),
                Action::Misnumbered(step, ms) => (&taker_key, TradeMessageBody {
                    step: *step,
                    payload: Some(create(&mutated(ms))),
                    ..body.clone()
                }),
                Action::Stranger(ms) => (&stranger, TradeMessageBody {
                    sender: stranger.public().to_peer_id().to_bytes(),
                    payload: Some(create(&mutated(ms))),
                    ..body.clone()
                }),
                Action::Replay(k) => match delivered.get(*k) {
                    Some(m) => {
                        let m = m.verify().unwrap();
                        let _ = maker.handle_message(&m, &mut maker_wallet, t0, NOW);
                        continue;
                    }
                    None => continue,
                },
                Action::Finalize(ms) => (&taker_key, TradeMessageBody {
                    step: step::PSBT_FINALIZE,
                    payload: Some(TradePayload::PsbtFinalize(PsbtFinalize {
                        trade_id: body.trade_id.clone(),
                        psbt: mutated(ms).serialize(),
                    })),
                    ..body.clone()
                }),
                Action::Cancel => (&taker_key, TradeMessageBody {
                    step: step::PSBT_CREATE + 4,
                    payload: Some(TradePayload::Cancel(TradeCancel {
                        trade_id: body.trade_id.clone(),
                        reason: "no".into(),
                    })),
                    ..body.clone()
                }),
            };
            let signed = body.sign(key).unwrap();
            let _ = maker.handle_message(&signed.verify().unwrap(), &mut maker_wallet, t0, NOW);
            delivered.push(signed);
            while let Some(output) = maker.poll_output() {
                let TradeOutput::Send { message, .. } = output else { continue };
                let Some(TradePayload::PsbtSign(sign)) = message.verify().unwrap().body.payload
                else {
                    continue;
                };
                // Signed once: any later PsbtSign is the same message sent
                // again (a retransmitted step 3).
                match &first_signature {
                    Some(first) => prop_assert_eq!(first, &message),
                    None => first_signature = Some(message.clone()),
                }
                let signed_psbt = bitcoin::Psbt::deserialize(&sign.psbt).unwrap();
                prop_assert!(
                    terms_hold(&swap, &world, &signed_psbt.unsigned_tx, Role::Maker),
                    "the maker signed a PSBT that breaks its terms after {actions:?}"
                );
            }
        }
        prop_assert_eq!(first_signature.is_some(), maker.is_signed());
    }
}
