//! A node's trades: two takers racing for one order, a silent maker, a
//! completed fill, forged and misrouted messages.

mod common;

use std::{collections::HashMap, time::Duration};

use common::{RUNE, maker_sells_runes, uncommitted};
use darkswap_proto::{
    Asset, NewOrder, Order, PRICE_SCALE, Side, SignedTradeMessage, TradePayload,
    identity::{Keypair, PeerId},
};
use darkswap_trade::{
    InMemoryIndex, KeyWallet,
    negotiation::{
        NegotiationConfig, Proposal, ProposalPolicy, RefusalReason, TradeError, TradeId,
        TradeRecord, TradeState, Trades, TradesOutput,
    },
};
use web_time::Instant;

const NOW: u64 = 1_800_000_000;

/// A node: its trades and its wallet.
struct Node {
    key: Keypair,
    trades: Trades,
    wallet: KeyWallet,
}

impl Node {
    fn new(wallet: KeyWallet) -> Self {
        let key = Keypair::generate_ed25519();
        Node {
            trades: Trades::new(key.clone(), NegotiationConfig::default(), 8),
            key,
            wallet,
        }
    }

    fn id(&self) -> PeerId {
        self.key.public().to_peer_id()
    }
}

/// Nodes on a wire that delivers every message, answering index look-ups
/// from `index` and broadcasts at once.
struct Net {
    nodes: Vec<Node>,
    index: InMemoryIndex,
    t0: Instant,
    /// Per node, the states its trades went through, the fills and the
    /// penalties it asked for.
    states: HashMap<(usize, TradeId), Vec<TradeState>>,
    filled: Vec<(usize, u64)>,
    penalties: Vec<(usize, PeerId, &'static str)>,
    broadcasts: usize,
    /// Per node and trade, every record it asked to store.
    records: HashMap<(usize, TradeId), Vec<TradeRecord>>,
    /// Messages stored before they were sent: each send must find its
    /// message in the record stored just before it.
    unrecorded_sends: usize,
}

impl Net {
    fn run(&mut self) {
        loop {
            let mut wire: Vec<(PeerId, PeerId, SignedTradeMessage)> = Vec::new();
            for (i, node) in self.nodes.iter_mut().enumerate() {
                let from = node.key.public().to_peer_id();
                let mut last_record: Option<TradeRecord> = None;
                while let Some(output) = node.trades.poll_output() {
                    match output {
                        TradesOutput::Persist(record) => {
                            self.records
                                .entry((i, record.id))
                                .or_default()
                                .push(record.clone());
                            last_record = Some(record);
                        }
                        TradesOutput::Send { peer, message } => {
                            // A refusal without a session has nothing to
                            // keep; every other message is stored first.
                            let stored = last_record
                                .as_ref()
                                .is_some_and(|r| r.sent.values().any(|m| *m == message));
                            let refusal = message.verify().is_ok_and(|v| {
                                matches!(v.body.payload, Some(TradePayload::Reject(_)))
                            });
                            if !stored && !refusal {
                                self.unrecorded_sends += 1;
                            }
                            wire.push((from, peer, message))
                        }
                        TradesOutput::LookUpHoldings { trade, .. } => {
                            let _ = node.trades.handle_holdings(
                                trade,
                                self.index.clone(),
                                &mut node.wallet,
                                NOW,
                            );
                        }
                        TradesOutput::Broadcast { trade, tx } => {
                            self.broadcasts += 1;
                            let _ = node.trades.handle_broadcast(
                                trade,
                                Ok(tx.compute_txid()),
                                &mut node.wallet,
                                NOW,
                            );
                        }
                        TradesOutput::StateChanged { trade, state, .. } => {
                            self.states.entry((i, trade)).or_default().push(state)
                        }
                        TradesOutput::Filled { amount, .. } => self.filled.push((i, amount)),
                        TradesOutput::Penalize { peer, reason } => {
                            self.penalties.push((i, peer, reason))
                        }
                    }
                }
            }
            if wire.is_empty() {
                return;
            }
            for (from, to, message) in wire {
                if let Some(node) = self.nodes.iter_mut().find(|n| n.id() == to) {
                    let _ =
                        node.trades
                            .handle_message(from, &message, &mut node.wallet, self.t0, NOW);
                }
            }
        }
    }

    fn last_state(&self, node: usize, trade: TradeId) -> Option<&TradeState> {
        self.states.get(&(node, trade)).and_then(|s| s.last())
    }
}

/// A maker (node 0) with an order of 1,000 runes at 50 sat, and two takers.
fn market() -> (Net, Order) {
    let first = maker_sells_runes(500, 25_000);
    let second = maker_sells_runes(500, 25_000);
    let maker = Node::new(uncommitted(first.maker));
    let order = NewOrder {
        side: Side::Sell,
        base: RUNE,
        quote: Asset::Btc,
        amount: 1_000,
        price: 50 * PRICE_SCALE,
        created_at: NOW,
        expires_at: NOW + 3600,
        nonce: 9,
    }
    .sign(&maker.key)
    .unwrap()
    .verify()
    .unwrap();
    let mut net = Net {
        nodes: vec![
            maker,
            Node::new(uncommitted(first.taker)),
            Node::new(uncommitted(second.taker)),
        ],
        index: first.index,
        t0: Instant::now(),
        states: HashMap::new(),
        filled: Vec::new(),
        penalties: Vec::new(),
        broadcasts: 0,
        records: HashMap::new(),
        unrecorded_sends: 0,
    };
    net.nodes[0].trades.set_order(order.clone());
    (net, order)
}

fn take(net: &mut Net, taker: usize, trade: u8, order: &Order, amount: u64) -> TradeId {
    let id = TradeId::new([trade; 32]);
    let node = &mut net.nodes[taker];
    node.trades
        .take(id, order, amount, &mut node.wallet, net.t0, NOW)
        .unwrap();
    id
}

#[test]
fn two_takers_race_for_one_order_and_the_second_is_refused() {
    let (mut net, order) = market();
    let first = take(&mut net, 1, 1, &order, 600);
    let second = take(&mut net, 2, 2, &order, 600);
    net.run();
    assert_eq!(net.last_state(1, first), Some(&TradeState::Completed));
    assert_eq!(net.last_state(0, first), Some(&TradeState::Completed));
    assert_eq!(
        net.last_state(2, second),
        Some(&TradeState::Rejected(RefusalReason::AmountAboveRemaining))
    );
    assert_eq!(net.broadcasts, 1);
    assert_eq!(
        net.unrecorded_sends, 0,
        "every message stored before it left"
    );
    // The maker filled 600 of 1,000: 400 left for the next taker.
    assert_eq!(net.filled, [(0, 600)]);
    assert_eq!(net.nodes[0].trades.available(&order.id), Some(400));
    assert!(net.penalties.is_empty());
}

#[test]
fn a_silent_maker_times_out_and_the_takers_utxos_are_free_again() {
    let (mut net, order) = market();
    let id = take(&mut net, 1, 1, &order, 500);
    // The maker never answers: drop what the taker sends.
    while net.nodes[1].trades.poll_output().is_some() {}
    let due = net.nodes[1].trades.poll_timeout().unwrap();
    assert_eq!(due, net.t0 + Duration::from_secs(30));
    let node = &mut net.nodes[1];
    node.trades.handle_timeout(&mut node.wallet, due, NOW + 30);
    assert!(matches!(
        node.trades.get(&id).unwrap().state(),
        TradeState::TimedOut { .. }
    ));
    // The same wallet can fund the same trade again: its UTXOs were
    // released (it holds just enough for two such takes at once).
    take(&mut net, 1, 2, &order, 500);
    take(&mut net, 1, 3, &order, 500);
    let node = &mut net.nodes[1];
    let err = node
        .trades
        .take(
            TradeId::new([4; 32]),
            &order,
            500,
            &mut node.wallet,
            net.t0,
            NOW,
        )
        .unwrap_err();
    assert!(matches!(err, TradeError::Wallet(_)), "{err:?}");
}

#[test]
fn a_proposal_for_an_unknown_order_is_refused_as_gone() {
    let (mut net, mut order) = market();
    order.id = darkswap_proto::OrderId::of_body(b"not an order of this maker");
    let id = take(&mut net, 1, 1, &order, 500);
    net.run();
    assert_eq!(
        net.last_state(1, id),
        Some(&TradeState::Rejected(RefusalReason::OrderGone))
    );
}

#[test]
fn a_message_sent_in_another_peers_name_costs_its_sender() {
    let (mut net, order) = market();
    take(&mut net, 1, 1, &order, 500);
    // The proposal, after the record stored before it.
    let Some(message) =
        std::iter::from_fn(|| net.nodes[1].trades.poll_output()).find_map(|o| match o {
            TradesOutput::Send { message, .. } => Some(message),
            _ => None,
        })
    else {
        panic!("the proposal")
    };
    // Taker 2 relays taker 1's proposal as if it were its own stream.
    let impostor = net.nodes[2].id();
    let maker = &mut net.nodes[0];
    let result = maker
        .trades
        .handle_message(impostor, &message, &mut maker.wallet, net.t0, NOW);
    assert_eq!(result, Err(TradeError::WrongPeer));
    assert!(matches!(
        maker.trades.poll_output(),
        Some(TradesOutput::Penalize { peer, reason: "wrong_peer" }) if peer == impostor
    ));
    // A forged signature.
    let mut forged = message.clone();
    forged.signature[5] ^= 1;
    let taker = net.nodes[1].id();
    let maker = &mut net.nodes[0];
    assert!(matches!(
        maker
            .trades
            .handle_message(taker, &forged, &mut maker.wallet, net.t0, NOW),
        Err(TradeError::Message(_))
    ));
    assert!(matches!(
        maker.trades.poll_output(),
        Some(TradesOutput::Penalize {
            reason: "forged",
            ..
        })
    ));
    // The genuine one, from its sender, is answered.
    maker
        .trades
        .handle_message(taker, &message, &mut maker.wallet, net.t0, NOW)
        .unwrap();
    assert_eq!(maker.trades.available(&order.id), Some(500));
}

/// The maker's record once it signed: its last message is its PSBT
/// signature, and the taker's PSBT (step 3) is the last step it received.
fn signed_maker_record(net: &Net, trade: TradeId) -> TradeRecord {
    net.records[&(0, trade)]
        .iter()
        .find(|r| r.signed && r.role == darkswap_trade::Role::Maker)
        .cloned()
        .expect("the maker stored its trade when it signed")
}

/// A maker restarted from `record`: a fresh registry and a fresh wallet
/// (its UTXOs uncommitted), as a new process has.
fn restarted_maker(net: &Net, order: &Order, record: &TradeRecord) -> (Trades, KeyWallet) {
    let mut wallet = uncommitted(maker_sells_runes(500, 25_000).maker);
    let mut maker = Trades::new(net.nodes[0].key.clone(), NegotiationConfig::default(), 8);
    maker.set_order(order.clone());
    maker.restore(record.clone(), &mut wallet, net.t0, NOW + 5);
    (maker, wallet)
}

/// The message the taker of trade `id` sent at `step`.
fn taker_sent(net: &Net, id: TradeId, step: u32) -> SignedTradeMessage {
    net.records[&(1, id)]
        .iter()
        .rev()
        .find_map(|r| r.sent.get(&step).cloned())
        .expect("the taker stored the message")
}

fn drain(trades: &mut Trades) -> Vec<TradesOutput> {
    std::iter::from_fn(|| trades.poll_output()).collect()
}

#[test]
fn a_maker_restarted_after_signing_answers_the_same_signature_and_sees_the_trade_through() {
    let (mut net, order) = market();
    let id = take(&mut net, 1, 1, &order, 500);
    net.run();
    assert_eq!(net.unrecorded_sends, 0);
    let record = signed_maker_record(&net, id);
    let signature = record.sent[&4].clone();
    let (mut maker, mut wallet) = restarted_maker(&net, &order, &record);
    // Its last message goes out again, unchanged (it may not have left).
    let outputs = drain(&mut maker);
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, TradesOutput::Send { message, .. } if *message == signature)),
        "{outputs:?}"
    );
    // The UTXO it signed for is offered to no one else, and the order
    // stays reserved for the trade.
    assert!(wallet.is_committed(&record.own_outpoints[0]));
    assert_eq!(maker.available(&order.id), Some(500));

    // The taker's PSBT sent again: the very same signature comes back.
    let taker = net.nodes[1].id();
    maker
        .handle_message(
            taker,
            &taker_sent(&net, id, 3),
            &mut wallet,
            net.t0,
            NOW + 5,
        )
        .unwrap();
    let again = drain(&mut maker);
    assert!(
        matches!(&again[..], [TradesOutput::Send { message, .. }] if *message == signature),
        "{again:?}"
    );
    // The taker's key signing something else at a step it already sent
    // is a conflict, and another PSBT's transaction is refused: the maker
    // takes nothing but the transaction of the PSBT it signed.
    let taker_key = net.nodes[1].key.clone();
    let resigned = |original: &SignedTradeMessage, payload: Option<TradePayload>| {
        let mut body = original.verify().unwrap().body;
        body.payload = payload;
        body.sign(&taker_key).unwrap()
    };
    let psbt_create = taker_sent(&net, id, 3);
    let other_psbt = {
        let (mut net2, order2) = market();
        let id2 = take(&mut net2, 1, 1, &order2, 400);
        net2.run();
        taker_sent(&net2, id2, 5).verify().unwrap().body.payload
    };
    assert_eq!(
        maker.handle_message(
            taker,
            &resigned(&psbt_create, other_psbt.clone()),
            &mut wallet,
            net.t0,
            NOW + 5
        ),
        Err(TradeError::Conflicting { step: 3 })
    );
    let finalize = taker_sent(&net, id, 5);
    assert_eq!(
        maker.handle_message(
            taker,
            &resigned(&finalize, other_psbt),
            &mut wallet,
            net.t0,
            NOW + 5
        ),
        Err(TradeError::PsbtChanged)
    );
    assert!(
        drain(&mut maker)
            .iter()
            .all(|o| matches!(o, TradesOutput::Penalize { .. }))
    );
    // The finished transaction of the PSBT it signed, then its broadcast:
    // the trade completes with a receipt and the fill, and nothing is
    // signed but the receipt message.
    maker
        .handle_message(taker, &finalize, &mut wallet, net.t0, NOW + 6)
        .unwrap();
    maker
        .handle_message(
            taker,
            &taker_sent(&net, id, 6),
            &mut wallet,
            net.t0,
            NOW + 7,
        )
        .unwrap();
    let outputs = drain(&mut maker);
    let sent: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            TradesOutput::Send { message, .. } => message.verify().ok(),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1);
    assert!(matches!(
        sent[0].body.payload,
        Some(TradePayload::Receipt(_))
    ));
    assert!(outputs.iter().any(|o| matches!(
        o,
        TradesOutput::StateChanged {
            state: TradeState::Completed,
            ..
        }
    )));
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, TradesOutput::Filled { amount: 500, .. }))
    );
    assert!(!wallet.is_committed(&record.own_outpoints[0]), "spent");
}

#[test]
fn a_restarted_maker_left_alone_times_out_and_keeps_what_it_signed_for_committed() {
    let (mut net, order) = market();
    let id = take(&mut net, 1, 1, &order, 500);
    net.run();
    let record = signed_maker_record(&net, id);
    let (mut maker, mut wallet) = restarted_maker(&net, &order, &record);
    drain(&mut maker);
    // A finished transaction from another market's trade (same trade id,
    // another order and taker) moves nothing.
    let other = {
        let (mut net2, order2) = market();
        let id2 = take(&mut net2, 1, 1, &order2, 400);
        net2.run();
        taker_sent(&net2, id2, 5)
    };
    let taker = net.nodes[1].id();
    assert!(
        maker
            .handle_message(taker, &other, &mut wallet, net.t0, NOW + 5)
            .is_err()
    );
    let due = maker.poll_timeout().unwrap();
    maker.handle_timeout(&mut wallet, due, NOW + 300);
    let outputs = drain(&mut maker);
    assert!(outputs.iter().any(|o| matches!(
        o,
        TradesOutput::StateChanged {
            state: TradeState::TimedOut { .. },
            ..
        }
    )));
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, TradesOutput::Persist(r) if r.state.is_final()))
    );
    // A signature is out: whoever holds it may still complete the
    // transaction, so the UTXO stays committed.
    assert!(wallet.is_committed(&record.own_outpoints[0]));
    assert_eq!(
        maker.available(&order.id),
        Some(1_000),
        "the reservation is released"
    );
    assert!(matches!(
        maker.summaries()[0].state,
        TradeState::TimedOut { .. }
    ));
}

#[test]
fn a_trade_restarted_with_its_finished_transaction_broadcasts_it_again_and_completes() {
    let (mut net, order) = market();
    let id = take(&mut net, 1, 1, &order, 500);
    net.run();
    // The taker's record once it held the finished transaction, before
    // the broadcast came back.
    let mut record = net.records[&(1, id)]
        .iter()
        .find(|r| r.final_tx.is_some())
        .cloned()
        .expect("a record with the transaction");
    record.state = TradeState::Finalized;
    let tx = record.final_tx.clone().unwrap();
    let second = maker_sells_runes(500, 25_000);
    let mut wallet = uncommitted(second.taker);
    let mut taker = Trades::new(net.nodes[1].key.clone(), NegotiationConfig::default(), 8);
    taker.restore(record, &mut wallet, Instant::now(), NOW + 5);
    let outputs: Vec<_> = std::iter::from_fn(|| taker.poll_output()).collect();
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, TradesOutput::Broadcast { tx: t, .. } if *t == tx)),
        "{outputs:?}"
    );
    taker
        .handle_broadcast(id, Ok(tx.compute_txid()), &mut wallet, NOW + 6)
        .unwrap();
    let outputs: Vec<_> = std::iter::from_fn(|| taker.poll_output()).collect();
    assert!(outputs.iter().any(|o| matches!(
        o,
        TradesOutput::StateChanged {
            state: TradeState::Completed,
            ..
        }
    )));
    assert_eq!(taker.summaries()[0].txid, Some(tx.compute_txid()));
}

/// Accepts only the takers it lists.
#[derive(Debug)]
struct OnlyFrom(Vec<PeerId>);

impl ProposalPolicy for OnlyFrom {
    fn decide(&self, proposal: &Proposal<'_>) -> Result<(), RefusalReason> {
        assert_eq!(proposal.amount, 300);
        if self.0.contains(&proposal.taker) {
            Ok(())
        } else {
            Err(RefusalReason::Declined)
        }
    }
}

#[test]
fn the_makers_policy_declines_a_proposal_its_order_allows() {
    let (mut net, order) = market();
    let welcome = net.nodes[1].id();
    let key = net.nodes[0].key.clone();
    net.nodes[0].trades = Trades::new(key, NegotiationConfig::default(), 8)
        .with_policy(std::sync::Arc::new(OnlyFrom(vec![welcome])));
    net.nodes[0].trades.set_order(order.clone());
    let declined = take(&mut net, 2, 2, &order, 300);
    let accepted = take(&mut net, 1, 1, &order, 300);
    net.run();
    assert_eq!(
        net.last_state(2, declined),
        Some(&TradeState::Rejected(RefusalReason::Declined))
    );
    assert_eq!(net.last_state(1, accepted), Some(&TradeState::Completed));
    // What the policy declined was never reserved.
    assert_eq!(net.nodes[0].trades.available(&order.id), Some(700));
}

#[test]
fn a_maker_at_its_trade_limit_refuses_the_next_proposal_as_busy() {
    let (mut net, order) = market();
    // One trade at a time.
    let key = net.nodes[0].key.clone();
    net.nodes[0].trades = Trades::new(key, NegotiationConfig::default(), 1);
    net.nodes[0].trades.set_order(order.clone());
    let first = take(&mut net, 1, 1, &order, 300);
    let second = take(&mut net, 2, 2, &order, 300);
    net.run();
    assert_eq!(net.last_state(1, first), Some(&TradeState::Completed));
    assert_eq!(
        net.last_state(2, second),
        Some(&TradeState::Rejected(RefusalReason::MakerBusy))
    );
    // Its first trade done, the maker takes the next one.
    let third = take(&mut net, 2, 3, &order, 300);
    net.run();
    assert_eq!(net.last_state(2, third), Some(&TradeState::Completed));
}
