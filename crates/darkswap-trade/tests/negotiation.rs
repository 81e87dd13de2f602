//! The negotiation state machine, both sides in memory: every step, every
//! refusal, the deadlines, and messages from the wrong peer, for the wrong
//! trade, out of order, replayed, duplicated or forged.

mod common;

use std::time::Duration;

use bitcoin::{Amount, Transaction};
use common::{RUNE, maker_sells_runes, uncommitted};
use darkswap_proto::{
    Asset, NewOrder, Order, PRICE_SCALE, PsbtCreate, Side, SignedTradeMessage, TradeMessageBody,
    TradeMessageError, TradePayload, VerifiedTradeMessage, identity::Keypair,
};
use darkswap_trade::{
    InMemoryIndex, KeyWallet, OfferRequest, Role, Wallet,
    negotiation::{
        Handled, NegotiationConfig, RefusalReason, TradeError, TradeId, TradeOutput, TradeSession,
        TradeState, for_fill, step,
    },
};
use web_time::Instant;

const NOW: u64 = 1_800_000_000;

/// The maker's order: 1,000 units of [`RUNE`] at 50 sat each.
fn order(maker: &Keypair) -> Order {
    NewOrder {
        side: Side::Sell,
        base: RUNE,
        quote: Asset::Btc,
        amount: 1_000,
        price: 50 * PRICE_SCALE,
        created_at: NOW,
        expires_at: NOW + 3600,
        nonce: 1,
    }
    .sign(maker)
    .unwrap()
    .verify()
    .unwrap()
}

/// Both sides of one trade, and what passed between them.
struct Pair {
    t0: Instant,
    maker_key: Keypair,
    taker_key: Keypair,
    order: Order,
    maker_wallet: KeyWallet,
    taker_wallet: KeyWallet,
    index: InMemoryIndex,
    taker: TradeSession,
    maker: Option<TradeSession>,
    /// Messages in flight, oldest first: (to maker?, message).
    wire: Vec<(bool, SignedTradeMessage)>,
    broadcast: Vec<Transaction>,
    /// Every message the maker sent, in order.
    maker_sent: Vec<SignedTradeMessage>,
}

impl Pair {
    /// A taker proposing to take `amount` of the maker's order.
    fn new(amount: u64) -> Self {
        Self::with_config(amount, NegotiationConfig::default())
    }

    fn with_config(amount: u64, config: NegotiationConfig) -> Self {
        let fixture = maker_sells_runes(500, 25_000);
        let (maker_key, taker_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let order = order(&maker_key);
        let mut taker_wallet = uncommitted(fixture.taker);
        let terms = for_fill(&order, amount).unwrap();
        let offer = taker_wallet
            .offer(&OfferRequest::for_trade(
                &terms,
                Role::Taker,
                &config.build,
                config.fee_reserve,
            ))
            .unwrap();
        let t0 = Instant::now();
        let taker = TradeSession::take(
            TradeId::new([7; 32]),
            taker_key.clone(),
            &order,
            amount,
            offer,
            config,
            t0,
            NOW,
        )
        .unwrap();
        let mut pair = Pair {
            t0,
            maker_key,
            taker_key,
            order,
            maker_wallet: uncommitted(fixture.maker),
            taker_wallet,
            index: fixture.index,
            taker,
            maker: None,
            wire: Vec::new(),
            broadcast: Vec::new(),
            maker_sent: Vec::new(),
        };
        pair.collect();
        pair
    }

    /// Gathers what both sessions want done: messages onto the wire, index
    /// look-ups and broadcasts answered at once.
    fn collect(&mut self) {
        loop {
            let mut idle = true;
            while let Some(output) = self.taker.poll_output() {
                idle = false;
                match output {
                    TradeOutput::Send { message, .. } => self.wire.push((true, message)),
                    TradeOutput::LookUpHoldings(_) => {
                        let _ = self.taker.handle_holdings(
                            self.index.clone(),
                            &mut self.taker_wallet,
                            NOW,
                        );
                    }
                    TradeOutput::Broadcast(tx) => {
                        let txid = tx.compute_txid();
                        self.broadcast.push(tx);
                        let _ = self.taker.handle_broadcast(Ok(txid), NOW);
                    }
                    TradeOutput::StateChanged(_) => {}
                }
            }
            if let Some(maker) = &mut self.maker {
                while let Some(output) = maker.poll_output() {
                    idle = false;
                    match output {
                        TradeOutput::Send { message, .. } => {
                            self.maker_sent.push(message.clone());
                            self.wire.push((false, message));
                        }
                        TradeOutput::LookUpHoldings(_) => {
                            let _ = maker.handle_holdings(
                                self.index.clone(),
                                &mut self.maker_wallet,
                                NOW,
                            );
                        }
                        TradeOutput::Broadcast(_) => panic!("the maker does not broadcast"),
                        TradeOutput::StateChanged(_) => {}
                    }
                }
            }
            if idle {
                return;
            }
        }
    }

    /// Delivers the oldest message in flight; returns what its receiver
    /// made of it.
    fn deliver_one(&mut self) -> Option<Result<Handled, TradeError>> {
        if self.wire.is_empty() {
            return None;
        }
        let (to_maker, message) = self.wire.remove(0);
        let result = self.deliver(to_maker, &message);
        self.collect();
        Some(result)
    }

    fn deliver(
        &mut self,
        to_maker: bool,
        message: &SignedTradeMessage,
    ) -> Result<Handled, TradeError> {
        let verified = message.verify().expect("signed by its sender");
        if !to_maker {
            return self
                .taker
                .handle_message(&verified, &mut self.taker_wallet, self.t0, NOW);
        }
        match &mut self.maker {
            Some(maker) => maker.handle_message(&verified, &mut self.maker_wallet, self.t0, NOW),
            None => {
                match TradeSession::accept(
                    self.maker_key.clone(),
                    &verified,
                    &self.order,
                    self.order.amount,
                    &mut self.maker_wallet,
                    NegotiationConfig::default(),
                    self.t0,
                    NOW,
                ) {
                    Ok(session) => self.maker = Some(session),
                    Err(refusal) => self.wire.push((false, refusal.message.unwrap())),
                }
                Ok(Handled::Progress)
            }
        }
    }

    /// Delivers everything until nothing is in flight.
    fn run(&mut self) {
        while let Some(result) = self.deliver_one() {
            result.expect("an honest step is taken");
        }
    }

    fn maker(&self) -> &TradeSession {
        self.maker.as_ref().expect("the maker accepted")
    }

    /// A step `payload` signed by `key`, as if sent by it to `recipient`.
    fn forge(
        &self,
        key: &Keypair,
        recipient: &Keypair,
        trade: [u8; 32],
        step: u32,
        payload: TradePayload,
    ) -> VerifiedTradeMessage {
        TradeMessageBody {
            trade_id: trade.to_vec(),
            order_id: self.order.id.as_bytes().to_vec(),
            step,
            sender: key.public().to_peer_id().to_bytes(),
            recipient: recipient.public().to_peer_id().to_bytes(),
            sent_at: NOW,
            payload: Some(payload),
        }
        .sign(key)
        .unwrap()
        .verify()
        .unwrap()
    }
}

#[test]
fn an_honest_trade_runs_every_step_to_completed_on_both_sides() {
    let mut pair = Pair::new(500);
    assert_eq!(pair.taker.state(), &TradeState::Proposed);
    pair.run();
    assert_eq!(pair.taker.state(), &TradeState::Completed);
    assert_eq!(pair.maker().state(), &TradeState::Completed);
    // Broadcast once, the transaction both sides hold (it passed
    // libbitcoinconsensus on both before that).
    assert_eq!(pair.broadcast.len(), 1);
    assert_eq!(pair.taker.transaction(), Some(&pair.broadcast[0]));
    assert_eq!(pair.maker().transaction(), Some(&pair.broadcast[0]));
    // The maker sent accept, its signatures and the receipt: steps 2, 4, 7.
    let steps: Vec<u32> = pair
        .maker_sent
        .iter()
        .map(|m| m.verify().unwrap().body.step)
        .collect();
    assert_eq!(steps, [step::ACCEPT, step::PSBT_SIGN, step::RECEIPT]);
    assert!(
        pair.taker.poll_timeout().is_none(),
        "no timer after the end"
    );
}

#[test]
fn the_maker_refuses_with_a_typed_reason() {
    for (available, price_change, min_fill, reason) in [
        (400, 0, 1, RefusalReason::AmountAboveRemaining),
        (1_000, 1, 1, RefusalReason::TermsChanged),
        (1_000, 0, 600, RefusalReason::BelowMinimum),
    ] {
        let mut pair = Pair::new(500);
        let (_, proposal) = pair.wire.remove(0);
        let mut order = pair.order.clone();
        order.price += price_change;
        let refusal = TradeSession::accept(
            pair.maker_key.clone(),
            &proposal.verify().unwrap(),
            &order,
            available.min(order.amount),
            &mut pair.maker_wallet,
            NegotiationConfig::default().with_min_fill(min_fill),
            pair.t0,
            NOW,
        )
        .unwrap_err();
        assert_eq!(refusal.reason, reason);
        // The taker reads the reason from the maker's signed reject.
        let reject = refusal.message.unwrap().verify().unwrap();
        pair.taker
            .handle_message(&reject, &mut pair.taker_wallet, pair.t0, NOW)
            .unwrap();
        assert_eq!(pair.taker.state(), &TradeState::Rejected(reason));
        assert!(pair.taker.poll_timeout().is_none());
    }
}

#[test]
fn messages_from_a_third_peer_another_trade_or_out_of_order_change_nothing() {
    let mut pair = Pair::new(500);
    pair.deliver_one().unwrap().unwrap(); // the proposal: the maker accepts
    let stranger = Keypair::generate_ed25519();
    let accept = pair.wire[0].1.verify().unwrap();
    let payload = accept.body.payload.clone().unwrap();
    let (maker_key, taker_key) = (pair.maker_key.clone(), pair.taker_key.clone());
    let cases = [
        (
            pair.forge(
                &stranger,
                &taker_key,
                [7; 32],
                step::ACCEPT,
                payload.clone(),
            ),
            TradeError::WrongPeer,
        ),
        (
            pair.forge(
                &maker_key,
                &taker_key,
                [8; 32],
                step::ACCEPT,
                payload.clone(),
            ),
            TradeError::WrongTrade,
        ),
        (
            pair.forge(
                &maker_key,
                &stranger,
                [7; 32],
                step::ACCEPT,
                payload.clone(),
            ),
            TradeError::NotForMe,
        ),
        (
            pair.forge(
                &maker_key,
                &taker_key,
                [7; 32],
                step::PSBT_SIGN,
                payload.clone(),
            ),
            TradeError::OutOfOrder {
                expected: step::ACCEPT,
                got: step::PSBT_SIGN,
            },
        ),
        (
            pair.forge(
                &maker_key,
                &taker_key,
                [7; 32],
                step::ACCEPT,
                TradePayload::PsbtCreate(PsbtCreate::default()),
            ),
            TradeError::UnexpectedPayload { step: step::ACCEPT },
        ),
    ];
    for (message, error) in cases {
        let got = pair
            .taker
            .handle_message(&message, &mut pair.taker_wallet, pair.t0, NOW);
        assert_eq!(got, Err(error));
        assert_eq!(pair.taker.state(), &TradeState::Proposed);
        assert!(
            pair.taker.poll_output().is_none(),
            "nothing sent, nothing changed"
        );
    }
    // The real accept still works after all that.
    pair.run();
    assert_eq!(pair.taker.state(), &TradeState::Completed);
}

#[test]
fn a_retransmitted_step_is_answered_again_and_a_changed_one_is_refused() {
    let mut pair = Pair::new(500);
    let (_, proposal) = pair.wire[0].clone();
    pair.deliver_one().unwrap().unwrap();
    let accept = pair.wire[0].1.clone();
    // The same proposal again: the maker sends the same accept again.
    let maker = pair.maker.as_mut().unwrap();
    let again = maker
        .handle_message(
            &proposal.verify().unwrap(),
            &mut pair.maker_wallet,
            pair.t0,
            NOW,
        )
        .unwrap();
    assert_eq!(again, Handled::Duplicate);
    match maker.poll_output() {
        Some(TradeOutput::Send { message, .. }) => assert_eq!(message, accept),
        other => panic!("expected the accept again, got {other:?}"),
    }
    // A proposal for the same trade with other terms: refused.
    let mut changed = proposal.verify().unwrap().body;
    changed.sent_at += 1;
    let changed = changed.sign(&pair.taker_key).unwrap().verify().unwrap();
    assert_eq!(
        maker.handle_message(&changed, &mut pair.maker_wallet, pair.t0, NOW),
        Err(TradeError::Conflicting {
            step: step::PROPOSE
        })
    );
    pair.run();
    assert_eq!(pair.maker().state(), &TradeState::Completed);
}

#[test]
fn a_psbt_that_pays_the_maker_less_is_refused_before_it_signs() {
    let mut pair = Pair::new(500);
    pair.deliver_one().unwrap().unwrap(); // propose
    pair.deliver_one().unwrap().unwrap(); // accept: the taker builds and sends
    let (to_maker, create) = pair.wire.remove(0);
    assert!(to_maker);
    let body = create.verify().unwrap().body;
    let Some(TradePayload::PsbtCreate(create)) = body.payload.clone() else {
        panic!("expected the PSBT")
    };
    let mut psbt = bitcoin::Psbt::deserialize(&create.psbt).unwrap();
    // Output 0 pays the maker its 25,000 sat; one sat less.
    assert_eq!(pair.maker().terms().gets(Role::Maker).amount, 25_000);
    assert_eq!(psbt.unsigned_tx.output[0].value, Amount::from_sat(25_000));
    psbt.unsigned_tx.output[0].value = Amount::from_sat(24_999);
    let cheat = TradeMessageBody {
        payload: Some(TradePayload::PsbtCreate(PsbtCreate {
            trade_id: create.trade_id,
            psbt: psbt.serialize(),
        })),
        ..body
    };
    let cheat = cheat.sign(&pair.taker_key).unwrap();
    let error = pair.deliver(true, &cheat).unwrap_err();
    assert!(matches!(error, TradeError::Check(_)), "{error:?}");
    assert!(error.is_misbehaviour());
    pair.collect();
    assert!(matches!(pair.maker().state(), TradeState::Failed { .. }));
    assert!(!pair.maker().is_signed());
    // The maker told the taker, and never sent a signature.
    let sent: Vec<_> = pair
        .maker_sent
        .iter()
        .map(|m| m.verify().unwrap().body.payload.unwrap())
        .collect();
    assert!(matches!(
        sent.as_slice(),
        [TradePayload::Accept(_), TradePayload::Cancel(c)] if c.reason == "psbt_refused"
    ));
    pair.run();
    assert!(matches!(
        pair.taker.state(),
        TradeState::Cancelled { by_me: false, .. }
    ));
}

#[test]
fn cancel_works_until_a_party_signed() {
    let mut pair = Pair::new(500);
    pair.deliver_one().unwrap().unwrap(); // propose
    pair.taker.cancel("changed my mind", NOW).unwrap();
    pair.collect();
    pair.wire.retain(|(to_maker, _)| *to_maker); // the accept crosses the cancel
    pair.run();
    assert!(matches!(
        pair.maker().state(),
        TradeState::Cancelled { by_me: false, .. }
    ));
    assert!(matches!(
        pair.taker.state(),
        TradeState::Cancelled { by_me: true, .. }
    ));

    // Once the maker signed, neither side can cancel.
    let mut pair = Pair::new(500);
    for _ in 0..3 {
        pair.deliver_one().unwrap().unwrap(); // propose, accept, PSBT
    }
    assert_eq!(pair.maker().state(), &TradeState::MakerSigned);
    let maker = pair.maker.as_mut().unwrap();
    assert_eq!(maker.cancel("no", NOW), Err(TradeError::AlreadySigned));
    pair.run();
    assert_eq!(pair.taker.state(), &TradeState::Completed);
}

#[test]
fn a_silent_maker_times_the_trade_out_at_the_step_deadline() {
    let config = NegotiationConfig::default()
        .with_step_timeout(Duration::from_secs(30))
        .with_trade_timeout(Duration::from_secs(300));
    let mut pair = Pair::with_config(500, config);
    let due = pair.taker.poll_timeout().unwrap();
    assert_eq!(due, pair.t0 + Duration::from_secs(30));
    pair.taker
        .handle_timeout(due - Duration::from_millis(1), NOW);
    assert_eq!(pair.taker.state(), &TradeState::Proposed);
    pair.taker.handle_timeout(due, NOW + 30);
    assert_eq!(
        pair.taker.state(),
        &TradeState::TimedOut {
            waiting_for: Box::new(TradeState::Proposed)
        }
    );
    // It told the maker (nothing was signed).
    let cancel = std::iter::from_fn(|| pair.taker.poll_output()).find_map(|o| match o {
        TradeOutput::Send { message, .. } => Some(message.verify().unwrap().body),
        _ => None,
    });
    assert!(matches!(
        cancel.and_then(|b| b.payload),
        Some(TradePayload::Cancel(c)) if c.reason == "timeout"
    ));
}

#[test]
fn a_forged_trade_message_does_not_verify() {
    let pair = Pair::new(500);
    let (_, mut proposal) = pair.wire[0].clone();
    proposal.signature[10] ^= 1;
    assert_eq!(proposal.verify(), Err(TradeMessageError::BadSignature));
    // Signed by someone else in the taker's name.
    let (_, proposal) = pair.wire[0].clone();
    let mut stolen = proposal.clone();
    stolen.public_key = Keypair::generate_ed25519().public().encode_protobuf();
    assert_eq!(stolen.verify(), Err(TradeMessageError::SenderMismatch));
    // Nobody signs a body in another's name.
    let body = proposal.verify().unwrap().body;
    assert_eq!(
        body.sign(&pair.maker_key),
        Err(TradeMessageError::NotSender)
    );
}

#[test]
fn a_proposal_whose_offer_does_not_decode_is_refused_as_an_invalid_offer() {
    let mut pair = Pair::new(500);
    let (_, proposal) = pair.wire.remove(0);
    let mut body = proposal.verify().unwrap().body;
    let Some(TradePayload::Propose(propose)) = body.payload.as_mut() else {
        unreachable!()
    };
    // An outpoint of three bytes: not Bitcoin's 36-byte encoding.
    propose.offer.as_mut().unwrap().inputs[0].outpoint = vec![1, 2, 3];
    let proposal = body.sign(&pair.taker_key).unwrap();
    let refusal = TradeSession::accept(
        pair.maker_key.clone(),
        &proposal.verify().unwrap(),
        &pair.order,
        pair.order.amount,
        &mut pair.maker_wallet,
        NegotiationConfig::default(),
        pair.t0,
        NOW,
    )
    .unwrap_err();
    assert_eq!(refusal.reason, RefusalReason::InvalidOffer);
    // Nothing of the maker's is held for it.
    assert!(
        pair.maker_wallet
            .utxos()
            .iter()
            .all(|u| !pair.maker_wallet.is_committed(&u.outpoint))
    );
}

#[test]
fn the_whole_trade_has_one_deadline_even_when_each_step_has_time_left() {
    let config = NegotiationConfig::default()
        .with_step_timeout(Duration::from_secs(30))
        .with_trade_timeout(Duration::from_secs(20));
    let mut pair = Pair::with_config(500, config);
    let due = pair.taker.poll_timeout().unwrap();
    assert_eq!(
        due,
        pair.t0 + Duration::from_secs(20),
        "the earlier of the two"
    );
    // The maker answered and the PSBT is out; the trade deadline still
    // stands, however fresh the last step.
    for _ in 0..2 {
        pair.deliver_one().unwrap().unwrap(); // propose, accept
    }
    assert_eq!(pair.taker.state(), &TradeState::PsbtCreated);
    assert_eq!(
        pair.taker.poll_timeout(),
        Some(pair.t0 + Duration::from_secs(20))
    );
    pair.taker.handle_timeout(due, NOW + 20);
    assert_eq!(
        pair.taker.state(),
        &TradeState::TimedOut {
            waiting_for: Box::new(TradeState::PsbtCreated)
        }
    );
}
