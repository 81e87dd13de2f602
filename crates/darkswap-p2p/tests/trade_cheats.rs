//! A hostile trader over the network: a raw libp2p peer (`RawTrader`) runs
//! the honest negotiation against a real node but cheats in what it sends
//! (as a taker against a maker node, and once as a maker against a taker
//! node). Each PSBT cheat is refused before the maker signs anything: the
//! maker cancels, its coins are free again, nothing is broadcast, and the
//! cheat costs reputation. Steps that are forged, out of order, replayed
//! with changes, sent by a third peer, or for a trade never proposed are
//! refused and change nothing: the trade then goes on as if they had never
//! come.

use std::sync::{Arc, Mutex};

use darkswap_p2p::{
    Network, NetworkEvent, PeerId, Trading,
    core::{
        reputation::PenaltyReason,
        trade::{TradeId, TradeState},
    },
    darkswap_trade::{
        InMemoryIndex, KeyWallet, Trade,
        bitcoin::{Amount, OutPoint, Psbt, ScriptBuf, TxOut, Txid, hashes::Hash},
    },
    proto::{
        Asset, Order, OrderCreate, OrderbookResponse, PsbtFinalize, SignedTradeMessage,
        TradeAccept, TradePayload,
    },
};
use darkswap_testkit::{
    EVENT_TIMEOUT, RawTrader,
    raw_trade::{body_of, resign, with_psbt},
    spawn_node, test_config,
    trade::{RecordingBroadcaster, TEST_RUNE, funded_wallet, rune_sale},
    wait_for,
};
use libp2p::Multiaddr;
use ordinals::{Edict, RuneId, Runestone};

/// A real maker node with an open order, and a raw trader connected to it.
struct Stage {
    maker: Network,
    maker_id: PeerId,
    maker_addr: Multiaddr,
    wallet: Arc<Mutex<KeyWallet>>,
    broadcaster: RecordingBroadcaster,
    index: InMemoryIndex,
    order: Order,
    raw: RawTrader,
}

/// The honest steps of a trade up to the PSBT, as the raw trader has them.
struct Steps {
    id: TradeId,
    propose: SignedTradeMessage,
    accept: SignedTradeMessage,
    create: SignedTradeMessage,
}

impl Stage {
    async fn open() -> Self {
        let mut index = InMemoryIndex::new();
        let maker_wallet = funded_wallet(1, 1_000, 20_000, &mut index);
        let raw_wallet = funded_wallet(5, 0, 200_000, &mut index);
        let wallet = Arc::new(Mutex::new(maker_wallet));
        let broadcaster = RecordingBroadcaster::default();
        let trading = Trading::new(
            wallet.clone(),
            Arc::new(index.clone()),
            Arc::new(broadcaster.clone()),
        );
        let (maker, maker_addr) = spawn_node(test_config().with_trading(trading)).await;
        let (order, _) = maker.orderbook().create(rune_sale()).await.unwrap();
        let mut raw = RawTrader::new(raw_wallet, index.clone());
        raw.connect(maker_addr.clone()).await;
        Stage {
            maker_id: maker.local_peer_id(),
            maker,
            maker_addr,
            wallet,
            broadcaster,
            index,
            order,
            raw,
        }
    }

    /// Proposes half the order and takes the maker's accept in.
    async fn until_psbt(&mut self) -> Steps {
        let id = self.raw.take(&self.order, 500);
        let propose = self.raw.next_step();
        self.raw.send(self.maker_id, propose.clone()).await;
        let (from, accept) = self.raw.receive().await;
        assert_eq!(from, self.maker_id);
        assert!(
            matches!(body_of(&accept).payload, Some(TradePayload::Accept(_))),
            "the maker accepts: {:?}",
            body_of(&accept).payload
        );
        self.raw.feed(from, &accept);
        let create = self.raw.next_step();
        Steps {
            id,
            propose,
            accept,
            create,
        }
    }

    /// Whether any of the maker's coins is committed to a trade.
    fn maker_coins_committed(&self) -> bool {
        let wallet = self.wallet.lock().unwrap();
        wallet
            .utxos()
            .iter()
            .any(|u| wallet.is_committed(&u.outpoint))
    }

    /// Waits until the maker penalised the raw trader for `reason`.
    async fn wait_penalty(&mut self, reason: PenaltyReason) {
        let raw = self.raw.peer_id();
        wait_for(&mut self.maker, "the cheat's penalty", EVENT_TIMEOUT, |e| {
            matches!(e, NetworkEvent::PeerPenalized { peer_id, reason: r, .. }
                if *peer_id == raw && *r == reason)
            .then_some(())
        })
        .await;
    }

    /// The maker's trade `id` as it lists it.
    async fn maker_state(&self, id: TradeId) -> TradeState {
        let trades = self.maker.trades().list().await.unwrap();
        trades
            .iter()
            .find(|t| t.trade_id == id)
            .map(|t| t.state.clone())
            .expect("the maker lists the trade")
    }
}

/// Where `script` is paid in `psbt` (its largest output, for a script paid
/// twice).
fn vout_of(psbt: &Psbt, script: &ScriptBuf) -> usize {
    psbt.unsigned_tx
        .output
        .iter()
        .enumerate()
        .filter(|(_, o)| o.script_pubkey == *script)
        .max_by_key(|(_, o)| o.value)
        .map(|(n, _)| n)
        .expect("an output pays the script")
}

/// The raw trader builds the honest PSBT, changes it with `edit` and sends
/// it; the maker must refuse it before signing. Returns why its trade
/// failed.
async fn psbt_cheat(edit: impl FnOnce(&Trade, &mut Psbt)) -> String {
    let mut s = Stage::open().await;
    let steps = s.until_psbt().await;
    assert!(
        s.maker_coins_committed(),
        "the maker's coins are held for the trade"
    );
    let trade = s.raw.trade(steps.id);
    let cheat = with_psbt(&s.raw.key, &steps.create, |psbt| edit(&trade, psbt));
    s.raw.send(s.maker_id, cheat).await;

    // The maker cancels instead of signing: its next step is the cancel.
    let (_, answer) = s.raw.receive().await;
    let Some(TradePayload::Cancel(cancel)) = body_of(&answer).payload else {
        panic!("the maker cancels, it sent {:?}", body_of(&answer).payload);
    };
    assert_eq!(cancel.reason, "psbt_refused");
    s.wait_penalty(PenaltyReason::ProtocolViolation).await;
    let TradeState::Failed { reason } = s.maker_state(steps.id).await else {
        panic!("the maker's trade failed");
    };
    assert!(
        !s.maker_coins_committed(),
        "the maker's coins are free again"
    );
    assert!(
        s.broadcaster.got.lock().unwrap().is_empty(),
        "nothing broadcast"
    );
    // The whole order is there for the next taker.
    let own = s.maker.orderbook().own_orders().await.unwrap();
    assert_eq!(own[0].0.amount, 1_000);
    s.maker.shutdown().await.unwrap();
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psbt_that_pays_the_maker_less_is_refused_before_it_signs() {
    let reason = psbt_cheat(|trade, psbt| {
        let paid = vout_of(psbt, &trade.maker.receive);
        let change = vout_of(psbt, &trade.taker.change);
        let tx = &mut psbt.unsigned_tx;
        tx.output[paid].value -= Amount::from_sat(1_000);
        tx.output[change].value += Amount::from_sat(1_000);
    })
    .await;
    assert!(
        reason.contains("receives 24000 of BTC, 25000 agreed"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runestone_that_sends_the_makers_runes_elsewhere_is_refused_before_it_signs() {
    let reason = psbt_cheat(|trade, psbt| {
        let to_taker = vout_of(psbt, &trade.taker.receive) as u32;
        let Asset::Rune { block, tx } = TEST_RUNE else {
            unreachable!()
        };
        // The 500 sold, and the seller's 500 left over, all to the taker.
        let runestone = Runestone {
            edicts: vec![Edict {
                id: RuneId { block, tx },
                amount: 500,
                output: to_taker,
            }],
            pointer: Some(to_taker),
            ..Default::default()
        };
        let vout = psbt
            .unsigned_tx
            .output
            .iter()
            .position(|o| o.script_pubkey.is_op_return())
            .expect("the honest PSBT has its runestone");
        psbt.unsigned_tx.output[vout].script_pubkey = runestone.encipher();
    })
    .await;
    assert!(
        reason.contains("sends away 1000 of its rune:840000:3, 500 allowed"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psbt_with_the_takers_input_swapped_is_refused_before_it_signs() {
    let reason = psbt_cheat(|trade, psbt| {
        let theirs = trade.taker.inputs[0].outpoint;
        let input = psbt
            .unsigned_tx
            .input
            .iter_mut()
            .find(|i| i.previous_output == theirs)
            .expect("the taker's input");
        input.previous_output = OutPoint {
            txid: Txid::from_byte_array([7; 32]),
            vout: 0,
        };
    })
    .await;
    assert!(reason.contains("agreed input"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fee_above_the_bound_is_refused_before_the_maker_signs() {
    let reason = psbt_cheat(|trade, psbt| {
        let change = vout_of(psbt, &trade.taker.change);
        psbt.unsigned_tx.output[change].value -= Amount::from_sat(60_000);
    })
    .await;
    assert!(reason.contains("above the bound"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_out_of_order_replayed_and_foreign_steps_change_nothing() {
    let mut s = Stage::open().await;
    let steps = s.until_psbt().await;
    let maker = s.maker_id;
    let key = s.raw.key.clone();

    // A forged step: one bit of the signature flipped.
    let mut forged = steps.create.clone();
    forged.signature[5] ^= 1;
    s.raw.send(maker, forged).await;
    s.wait_penalty(PenaltyReason::InvalidSignature).await;

    // A step out of order: the finished PSBT before the unsigned one.
    let early = resign(&key, &steps.create, |body| {
        body.step = 5;
        let Some(TradePayload::PsbtCreate(create)) = body.payload.take() else {
            unreachable!()
        };
        body.payload = Some(TradePayload::PsbtFinalize(PsbtFinalize {
            trade_id: create.trade_id,
            psbt: create.psbt,
        }));
    });
    s.raw.send(maker, early).await;

    // The proposal again, the same bytes: a retransmission, answered with
    // the same accept.
    s.raw.send(maker, steps.propose.clone()).await;
    let (_, again) = s.raw.receive().await;
    assert_eq!(again, steps.accept, "a retransmission is answered the same");

    // The proposal replayed with other bytes: a conflict and a cheat.
    let changed = resign(&key, &steps.propose, |body| body.sent_at += 1);
    s.raw.send(maker, changed).await;
    s.wait_penalty(PenaltyReason::ProtocolViolation).await;

    // A third peer sends the PSBT step of this trade in its own name, and
    // an accept for a trade nobody proposed.
    let mut index = s.index.clone();
    let mut third = RawTrader::new(funded_wallet(9, 0, 100_000, &mut index), index);
    third.connect(s.maker_addr.clone()).await;
    let third_id = third.peer_id().to_bytes();
    let theirs = resign(&third.key, &steps.create, |body| {
        body.sender = third_id.clone();
    });
    third.send(maker, theirs).await;
    let never = resign(&third.key, &steps.create, |body| {
        let id = TradeId::new([9; 32]).to_vec();
        body.trade_id = id.clone();
        body.step = 2;
        body.sender = third_id.clone();
        body.payload = Some(TradePayload::Accept(TradeAccept {
            trade_id: id,
            ..Default::default()
        }));
    });
    third.send(maker, never).await;

    // Nothing changed: one trade, still waiting for its PSBT, which the
    // maker signs when the honest step comes. Its answer is the first
    // message after the retransmitted accept: none of the refused steps
    // was answered.
    let listed = s.maker.trades().list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(s.maker_state(steps.id).await, TradeState::Accepted);
    s.raw.send(maker, steps.create.clone()).await;
    let (_, signed) = s.raw.receive().await;
    assert!(
        matches!(body_of(&signed).payload, Some(TradePayload::PsbtSign(_))),
        "the maker signs the honest PSBT: {:?}",
        body_of(&signed).payload
    );
    assert_eq!(s.maker_state(steps.id).await, TradeState::MakerSigned);
    s.maker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_that_signs_a_psbt_with_an_extra_output_is_refused_before_the_taker_signs() {
    // The raw peer is the maker this time: its order reaches the honest
    // taker's book, it answers the proposal honestly, then signs a PSBT
    // with one more output that takes 7,000 sat of the taker's change.
    let mut index = InMemoryIndex::new();
    let raw_wallet = funded_wallet(5, 1_000, 20_000, &mut index);
    let taker_wallet = Arc::new(Mutex::new(funded_wallet(1, 0, 200_000, &mut index)));
    let broadcaster = RecordingBroadcaster::default();
    let trading = Trading::new(
        taker_wallet.clone(),
        Arc::new(index.clone()),
        Arc::new(broadcaster.clone()),
    );
    let (mut taker, taker_addr) = spawn_node(test_config().with_trading(trading)).await;
    let taker_id = taker.local_peer_id();
    let mut raw = RawTrader::new(raw_wallet, index);
    let signed = rune_sale().sign(&raw.key).unwrap();
    let order = signed.verify().unwrap();
    let announced = OrderCreate::announce(signed, darkswap_testkit::now(), &raw.key).unwrap();
    let (added, refused) = taker
        .orderbook()
        .import(OrderbookResponse {
            orders: vec![announced],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((added, refused.len()), (1, 0));
    raw.offer_order(order.clone());
    raw.connect(taker_addr).await;

    let id = taker.trades().take(order.id, 500).await.unwrap();
    let (from, propose) = raw.receive().await;
    assert_eq!(from, taker_id);
    raw.feed(from, &propose);
    let accept = raw.next_step();
    raw.send(taker_id, accept).await;
    let (_, create) = raw.receive().await;
    raw.feed(taker_id, &create);
    let sign = raw.next_step();
    assert!(matches!(
        body_of(&sign).payload,
        Some(TradePayload::PsbtSign(_))
    ));
    let trade = raw.trade(id);
    let stranger = ScriptBuf::new_op_return([7u8; 20]);
    let cheat = with_psbt(&raw.key, &sign, |psbt| {
        let change = vout_of(psbt, &trade.taker.change);
        psbt.unsigned_tx.output[change].value -= Amount::from_sat(7_000);
        psbt.unsigned_tx.output.push(TxOut {
            value: Amount::from_sat(7_000),
            script_pubkey: stranger,
        });
        psbt.outputs.push(Default::default());
    });
    raw.send(taker_id, cheat).await;

    let (_, answer) = raw.receive().await;
    let Some(TradePayload::Cancel(cancel)) = body_of(&answer).payload else {
        panic!("the taker cancels, it sent {:?}", body_of(&answer).payload);
    };
    assert_eq!(cancel.reason, "psbt_changed");
    let raw_id = raw.peer_id();
    wait_for(&mut taker, "the cheat's penalty", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::PeerPenalized { peer_id, reason: PenaltyReason::ProtocolViolation, .. }
            if *peer_id == raw_id)
        .then_some(())
    })
    .await;
    let listed = taker.trades().list().await.unwrap();
    assert!(
        matches!(listed[0].state, TradeState::Failed { .. }),
        "{listed:?}"
    );
    {
        let wallet = taker_wallet.lock().unwrap();
        assert!(
            wallet
                .utxos()
                .iter()
                .all(|u| !wallet.is_committed(&u.outpoint)),
            "the taker's coins are free again"
        );
    }
    assert!(
        broadcaster.got.lock().unwrap().is_empty(),
        "nothing broadcast"
    );
    taker.shutdown().await.unwrap();
}
