//! One trade's negotiation, for one side: the steps of `docs/trade.md`,
//! each answered within its deadline, every message signed, checked against
//! the step it must be, and the PSBT checked before this side signs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bitcoin::{OutPoint, Psbt, Transaction, Txid};
use darkswap_proto::{
    Order, OrderId, PsbtBroadcast, PsbtCreate, PsbtFinalize, PsbtSign, SignedTradeMessage,
    TradeAccept, TradeCancel, TradeMessageBody, TradePayload, TradePropose, TradeSignature,
    VerifiedTradeMessage,
    identity::{Keypair, PeerId},
};
use web_time::Instant;

mod record;

pub use record::TradeRecord;

use super::{
    NegotiationConfig, Refusal, RefusalReason, TradeError, TradeId, TradeOutput, TradeState, step,
    terms, wire,
};
use crate::{
    Approved, InMemoryIndex, Offer, OfferRequest, Role, Terms, Trade, Wallet, build_psbt,
    check_psbt, finalize, sign_approved,
};

/// See the module docs. Inputs: the constructors, [`TradeSession::handle_message`],
/// [`TradeSession::handle_holdings`], [`TradeSession::handle_broadcast`],
/// [`TradeSession::cancel`] and [`TradeSession::handle_timeout`]; outputs:
/// [`TradeSession::poll_output`].
#[derive(Debug)]
pub struct TradeSession {
    id: TradeId,
    order_id: OrderId,
    role: Role,
    key: Keypair,
    me: PeerId,
    peer: PeerId,
    terms: Terms,
    /// This side's offer, and the trade once both are known.
    own_offer: Offer,
    trade: Option<Trade>,
    index: Option<InMemoryIndex>,
    /// A PSBT that came before the holdings it is checked with.
    pending_psbt: Option<Psbt>,
    /// What this side approved; it signs that and nothing else.
    approved: Option<Approved>,
    /// The finished transaction, once finalized.
    final_tx: Option<Transaction>,
    /// Whether a party has signed: no cancel from then on.
    signed: bool,
    state: TradeState,
    /// Body bytes of each step received, to tell a retransmission (same
    /// bytes, answered again) from a replay or a conflict.
    received: BTreeMap<u32, Vec<u8>>,
    /// Each message this side sent, by step, to send again unchanged.
    sent: BTreeMap<u32, SignedTradeMessage>,
    step_deadline: Instant,
    deadline: Instant,
    /// `deadline` in unix seconds, for the record.
    deadline_unix: u64,
    /// Base units of the order the trade fills.
    amount: u64,
    config: NegotiationConfig,
    out: VecDeque<TradeOutput>,
}

/// What a message did to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// It moved the trade on.
    Progress,
    /// It was a retransmission of a step already handled: this side's
    /// answer to it was sent again, nothing changed.
    Duplicate,
}

impl TradeSession {
    /// The taker's side: take `amount` (base units) of `order` with
    /// `offer`, as trade `id`. Sends the proposal.
    #[allow(clippy::too_many_arguments)]
    pub fn take(
        id: TradeId,
        key: Keypair,
        order: &Order,
        amount: u64,
        offer: Offer,
        config: NegotiationConfig,
        now: Instant,
        unix_now: u64,
    ) -> Result<Self, TradeError> {
        let terms = terms::for_fill(order, amount)?;
        let mut session = TradeSession::new(
            id,
            order.id,
            Role::Taker,
            key,
            order.maker,
            terms,
            offer,
            amount,
            config,
            now,
            unix_now,
        );
        session.state = TradeState::Proposed;
        let propose = TradePropose {
            trade_id: id.to_vec(),
            order_id: order.id.as_bytes().to_vec(),
            amount,
            price: order.price,
            created_at: unix_now,
            expires_at: unix_now + session.config.trade_timeout.as_secs(),
            offer: Some(wire::offer_to_wire(&session.own_offer)),
        };
        session.send(step::PROPOSE, TradePayload::Propose(propose), unix_now)?;
        Ok(session)
    }

    /// The maker's side: answer `proposal` (step 1, verified, addressed to
    /// this node) for its own `order`, of which `available` base units are
    /// not reserved by other trades. Accepts with an offer from `wallet`,
    /// or returns the refusal to send.
    #[allow(clippy::too_many_arguments)]
    pub fn accept(
        key: Keypair,
        proposal: &VerifiedTradeMessage,
        order: &Order,
        available: u64,
        wallet: &mut dyn Wallet,
        config: NegotiationConfig,
        now: Instant,
        unix_now: u64,
    ) -> Result<Self, Refusal> {
        let signer = key.clone();
        let refuse = |reason| Refusal::new(&signer, proposal, reason, unix_now);
        let Some(TradePayload::Propose(propose)) = &proposal.body.payload else {
            return Err(refuse(RefusalReason::InvalidOffer));
        };
        let Some(id) = TradeId::from_slice(&proposal.body.trade_id) else {
            return Err(refuse(RefusalReason::InvalidOffer));
        };
        if proposal.body.step != step::PROPOSE
            || proposal.body.order_id != order.id.as_bytes()
            || propose.order_id != proposal.body.order_id
            || propose.trade_id != proposal.body.trade_id
        {
            return Err(refuse(RefusalReason::InvalidOffer));
        }
        if propose.price != order.price {
            return Err(refuse(RefusalReason::TermsChanged));
        }
        if propose.amount > available {
            return Err(refuse(RefusalReason::AmountAboveRemaining));
        }
        if propose.amount < config.min_fill.min(available) {
            return Err(refuse(RefusalReason::BelowMinimum));
        }
        let Ok(terms) = terms::for_fill(order, propose.amount) else {
            return Err(refuse(RefusalReason::BelowMinimum));
        };
        let Some(Ok(taker_offer)) = propose.offer.as_ref().map(wire::offer_from_wire) else {
            return Err(refuse(RefusalReason::InvalidOffer));
        };
        let request =
            OfferRequest::for_trade(&terms, Role::Maker, &config.build, config.fee_reserve);
        let Ok(own_offer) = wallet.offer(&request) else {
            return Err(refuse(RefusalReason::MakerBusy));
        };
        let mut session = TradeSession::new(
            id,
            order.id,
            Role::Maker,
            key,
            proposal.sender,
            terms,
            own_offer,
            propose.amount,
            config,
            now,
            unix_now,
        );
        session
            .received
            .insert(step::PROPOSE, proposal.body_bytes());
        let accept = TradeAccept {
            trade_id: id.to_vec(),
            offer: Some(wire::offer_to_wire(&session.own_offer)),
        };
        session
            .send(step::ACCEPT, TradePayload::Accept(accept), unix_now)
            .map_err(|_| refuse(RefusalReason::InvalidOffer))?;
        session.set_trade(taker_offer);
        session.set_state(TradeState::Accepted);
        Ok(session)
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        id: TradeId,
        order_id: OrderId,
        role: Role,
        key: Keypair,
        peer: PeerId,
        terms: Terms,
        own_offer: Offer,
        amount: u64,
        config: NegotiationConfig,
        now: Instant,
        unix_now: u64,
    ) -> Self {
        TradeSession {
            deadline_unix: unix_now.saturating_add(config.trade_timeout.as_secs()),
            amount,
            id,
            order_id,
            role,
            me: key.public().to_peer_id(),
            key,
            peer,
            terms,
            own_offer,
            trade: None,
            index: None,
            pending_psbt: None,
            approved: None,
            final_tx: None,
            signed: false,
            state: TradeState::Proposed,
            received: BTreeMap::new(),
            sent: BTreeMap::new(),
            step_deadline: now + config.step_timeout,
            deadline: now + config.trade_timeout,
            config,
            out: VecDeque::new(),
        }
    }

    /// The last message this side sent.
    pub fn last_sent(&self) -> Option<&SignedTradeMessage> {
        self.sent.values().next_back()
    }

    /// The trade's id.
    pub fn id(&self) -> TradeId {
        self.id
    }

    /// The order it fills.
    pub fn order_id(&self) -> OrderId {
        self.order_id
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The other side.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The agreed exchange.
    pub fn terms(&self) -> &Terms {
        &self.terms
    }

    /// The terms and both offers, once both sides made theirs.
    pub fn trade(&self) -> Option<&Trade> {
        self.trade.as_ref()
    }

    /// Where the negotiation stands.
    pub fn state(&self) -> &TradeState {
        &self.state
    }

    /// The UTXOs this side committed to the trade.
    pub fn own_outpoints(&self) -> Vec<OutPoint> {
        self.own_offer.inputs.iter().map(|i| i.outpoint).collect()
    }

    /// Whether a party has signed (no cancel any more: the transaction may
    /// still be completed by whoever holds the signatures).
    pub fn is_signed(&self) -> bool {
        self.signed
    }

    /// The finished transaction, once both signed.
    pub fn transaction(&self) -> Option<&Transaction> {
        self.final_tx.as_ref()
    }

    /// When [`TradeSession::handle_timeout`] is next due; `None` once the
    /// trade ended.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.state.is_final()).then(|| self.step_deadline.min(self.deadline))
    }

    /// The next thing the shell must do.
    pub fn poll_output(&mut self) -> Option<TradeOutput> {
        self.out.pop_front()
    }

    /// A message from the network, verified by
    /// [`SignedTradeMessage::verify`]. A message that is not the next step
    /// of this trade from its counterparty is refused and changes nothing.
    pub fn handle_message(
        &mut self,
        message: &VerifiedTradeMessage,
        wallet: &mut dyn Wallet,
        now: Instant,
        unix_now: u64,
    ) -> Result<Handled, TradeError> {
        let body = &message.body;
        if body.trade_id != self.id.as_slice() || body.order_id != self.order_id.as_bytes() {
            return Err(TradeError::WrongTrade);
        }
        if message.sender != self.peer {
            return Err(TradeError::WrongPeer);
        }
        if message.recipient != self.me {
            return Err(TradeError::NotForMe);
        }
        let bytes = message.body_bytes();
        if let Some(seen) = self.received.get(&body.step) {
            if *seen != bytes {
                return Err(TradeError::Conflicting { step: body.step });
            }
            // The peer did not get what followed: send it all again.
            for answer in self.sent.range(body.step + 1..).map(|(_, m)| m.clone()) {
                self.out.push_back(TradeOutput::Send {
                    peer: self.peer,
                    message: answer,
                });
            }
            return Ok(Handled::Duplicate);
        }
        if self.state.is_final() {
            return Err(TradeError::Ended(self.state.clone()));
        }
        let Some(payload) = &body.payload else {
            return Err(TradeError::UnexpectedPayload { step: body.step });
        };
        if let TradePayload::Cancel(cancel) = payload {
            // A cancel follows the sender's own last step.
            let last_received = self.received.keys().next_back().copied().unwrap_or(0);
            if body.step <= last_received {
                return Err(TradeError::Replayed { step: body.step });
            }
            if self.signed {
                return Err(TradeError::AlreadySigned);
            }
            self.received.insert(body.step, bytes);
            self.set_state(TradeState::Cancelled {
                by_me: false,
                reason: cancel.reason.clone(),
            });
            return Ok(Handled::Progress);
        }
        let expected = self.expected_step();
        if body.step != expected {
            return Err(if body.step < expected {
                TradeError::Replayed { step: body.step }
            } else {
                TradeError::OutOfOrder {
                    expected,
                    got: body.step,
                }
            });
        }
        self.received.insert(body.step, bytes);
        let result = self.handle_step(body.step, payload, wallet, unix_now);
        if result.is_ok() {
            self.step_deadline = now + self.config.step_timeout;
        }
        if let Err(error) = &result {
            // A step that breaks the terms ends the trade before this side
            // signs anything; a malformed one is only refused.
            if error.ends_trade() {
                self.fail(error, unix_now);
            } else {
                self.received.remove(&body.step);
            }
        }
        result.map(|()| Handled::Progress)
    }

    /// The holdings of every outpoint of the trade, from the asset index
    /// (asked for by [`TradeOutput::LookUpHoldings`]).
    pub fn handle_holdings(
        &mut self,
        index: InMemoryIndex,
        wallet: &mut dyn Wallet,
        unix_now: u64,
    ) -> Result<(), TradeError> {
        if self.state.is_final() || self.index.is_some() {
            return Ok(());
        }
        self.index = Some(index);
        let result = match self.role {
            Role::Taker => self.create_psbt(unix_now),
            Role::Maker => match self.pending_psbt.take() {
                Some(psbt) => self.sign_as_maker(psbt, wallet, unix_now),
                None => Ok(()),
            },
        };
        if let Err(error) = &result {
            self.fail(error, unix_now);
        }
        result
    }

    /// The broadcaster's answer for [`TradeOutput::Broadcast`] (taker).
    pub fn handle_broadcast(
        &mut self,
        result: Result<Txid, String>,
        unix_now: u64,
    ) -> Result<(), TradeError> {
        if self.role != Role::Taker || self.state != TradeState::Finalized {
            return Ok(());
        }
        let Some(tx) = self.final_tx.clone() else {
            return Ok(());
        };
        match result {
            Ok(txid) if txid == tx.compute_txid() => {
                let broadcast = PsbtBroadcast {
                    trade_id: self.id.to_vec(),
                    transaction: bitcoin::consensus::serialize(&tx),
                    txid: txid.to_byte_array_vec(),
                };
                self.send(
                    step::BROADCAST,
                    TradePayload::PsbtBroadcast(broadcast),
                    unix_now,
                )?;
                self.set_state(TradeState::Broadcast);
                Ok(())
            }
            Ok(other) => {
                let error = TradeError::Broadcast(format!("broadcaster reported {other}"));
                self.fail(&error, unix_now);
                Err(error)
            }
            Err(reason) => {
                let error = TradeError::Broadcast(reason);
                self.fail(&error, unix_now);
                Err(error)
            }
        }
    }

    /// This side gives up, with `reason`; refused once a party has signed.
    pub fn cancel(&mut self, reason: &str, unix_now: u64) -> Result<(), TradeError> {
        if self.state.is_final() {
            return Err(TradeError::Ended(self.state.clone()));
        }
        if self.signed {
            return Err(TradeError::AlreadySigned);
        }
        self.send_cancel(reason, unix_now);
        self.set_state(TradeState::Cancelled {
            by_me: true,
            reason: reason.to_owned(),
        });
        Ok(())
    }

    /// Ends the trade if the peer let its step's deadline, or the whole
    /// negotiation's, pass.
    pub fn handle_timeout(&mut self, now: Instant, unix_now: u64) {
        if self.state.is_final() || now < self.step_deadline.min(self.deadline) {
            return;
        }
        if !self.signed {
            self.send_cancel("timeout", unix_now);
        }
        let waiting_for = self.state.clone();
        self.set_state(TradeState::TimedOut {
            waiting_for: Box::new(waiting_for),
        });
    }

    fn handle_step(
        &mut self,
        step: u32,
        payload: &TradePayload,
        wallet: &mut dyn Wallet,
        unix_now: u64,
    ) -> Result<(), TradeError> {
        match (self.role, payload) {
            (Role::Taker, TradePayload::Accept(accept)) if step == step::ACCEPT => {
                let offer = accept
                    .offer
                    .as_ref()
                    .ok_or_else(|| TradeError::InvalidOffer("no offer".into()))?;
                let offer = wire::offer_from_wire(offer).map_err(TradeError::InvalidOffer)?;
                self.set_trade(offer);
                self.set_state(TradeState::Accepted);
                Ok(())
            }
            (Role::Taker, TradePayload::Reject(reject)) if step == step::ACCEPT => {
                let reason = RefusalReason::from_code(&reject.reason);
                self.set_state(TradeState::Rejected(reason));
                Ok(())
            }
            (Role::Maker, TradePayload::PsbtCreate(create)) if step == step::PSBT_CREATE => {
                let psbt = wire::psbt_from_wire(&create.psbt).map_err(TradeError::InvalidPsbt)?;
                if self.index.is_none() {
                    self.pending_psbt = Some(psbt);
                    return Ok(());
                }
                self.sign_as_maker(psbt, wallet, unix_now)
            }
            (Role::Taker, TradePayload::PsbtSign(sign)) if step == step::PSBT_SIGN => {
                let psbt = wire::psbt_from_wire(&sign.psbt).map_err(TradeError::InvalidPsbt)?;
                self.finish_as_taker(psbt, wallet, unix_now)
            }
            (Role::Maker, TradePayload::PsbtFinalize(fin)) if step == step::PSBT_FINALIZE => {
                let psbt = wire::psbt_from_wire(&fin.psbt).map_err(TradeError::InvalidPsbt)?;
                let tx = self.finalize_checked(psbt)?;
                self.final_tx = Some(tx);
                self.set_state(TradeState::Finalized);
                Ok(())
            }
            (Role::Maker, TradePayload::PsbtBroadcast(b)) if step == step::BROADCAST => {
                let ours = self
                    .final_tx
                    .as_ref()
                    .map(Transaction::compute_txid)
                    .ok_or(TradeError::UnexpectedPayload { step })?;
                if b.txid != ours.to_byte_array_vec() {
                    return Err(TradeError::PsbtChanged);
                }
                let receipt = TradeSignature {
                    trade_id: self.id.to_vec(),
                    signature: Vec::new(),
                };
                self.send(step::RECEIPT, TradePayload::Receipt(receipt), unix_now)?;
                self.set_state(TradeState::Completed);
                Ok(())
            }
            (Role::Taker, TradePayload::Receipt(_)) if step == step::RECEIPT => {
                self.set_state(TradeState::Completed);
                Ok(())
            }
            _ => Err(TradeError::UnexpectedPayload { step }),
        }
    }

    /// Taker, both offers and the holdings known: build the PSBT, check it
    /// as the maker will, and send it.
    fn create_psbt(&mut self, unix_now: u64) -> Result<(), TradeError> {
        let (Some(trade), Some(index)) = (&self.trade, &self.index) else {
            return Ok(());
        };
        let psbt = build_psbt(trade, &self.config.build).map_err(TradeError::Build)?;
        let approved = check_psbt(&psbt, trade, Role::Taker, index, &self.config.check)
            .map_err(TradeError::Check)?;
        self.approved = Some(approved);
        let create = PsbtCreate {
            trade_id: self.id.to_vec(),
            psbt: psbt.serialize(),
        };
        self.send(
            step::PSBT_CREATE,
            TradePayload::PsbtCreate(create),
            unix_now,
        )?;
        self.set_state(TradeState::PsbtCreated);
        Ok(())
    }

    /// Maker: check the taker's PSBT against the terms, sign its own inputs
    /// and send it back.
    fn sign_as_maker(
        &mut self,
        mut psbt: Psbt,
        wallet: &mut dyn Wallet,
        unix_now: u64,
    ) -> Result<(), TradeError> {
        let (Some(trade), Some(index)) = (&self.trade, &self.index) else {
            return Ok(());
        };
        let approved = check_psbt(&psbt, trade, Role::Maker, index, &self.config.check)
            .map_err(TradeError::Check)?;
        sign_approved(wallet, &mut psbt, &approved)
            .map_err(|e| TradeError::Wallet(e.to_string()))?;
        self.approved = Some(approved);
        let sign = PsbtSign {
            trade_id: self.id.to_vec(),
            psbt: psbt.serialize(),
        };
        // Signed from here on: whoever holds the signatures may complete.
        self.signed = true;
        self.send(step::PSBT_SIGN, TradePayload::PsbtSign(sign), unix_now)?;
        self.set_state(TradeState::MakerSigned);
        Ok(())
    }

    /// Taker: the maker signed. Check again, sign its own inputs, finalize,
    /// check with the consensus library, send the result and ask for the
    /// broadcast.
    fn finish_as_taker(
        &mut self,
        mut psbt: Psbt,
        wallet: &mut dyn Wallet,
        unix_now: u64,
    ) -> Result<(), TradeError> {
        let (Some(trade), Some(index), Some(approved)) = (&self.trade, &self.index, &self.approved)
        else {
            return Err(TradeError::UnexpectedPayload {
                step: step::PSBT_SIGN,
            });
        };
        if psbt.unsigned_tx.compute_txid() != approved.txid() {
            return Err(TradeError::PsbtChanged);
        }
        // The maker may have added nothing but its signatures.
        let approved = check_psbt(&psbt, trade, Role::Taker, index, &self.config.check)
            .map_err(TradeError::Check)?;
        self.signed = true;
        sign_approved(wallet, &mut psbt, &approved)
            .map_err(|e| TradeError::Wallet(e.to_string()))?;
        let signed_psbt = psbt.serialize();
        let tx = self.finalize_checked(psbt)?;
        let fin = PsbtFinalize {
            trade_id: self.id.to_vec(),
            psbt: signed_psbt,
        };
        self.send(
            step::PSBT_FINALIZE,
            TradePayload::PsbtFinalize(fin),
            unix_now,
        )?;
        self.final_tx = Some(tx.clone());
        self.set_state(TradeState::Finalized);
        self.out.push_back(TradeOutput::Broadcast(tx));
        Ok(())
    }

    /// Finalizes a PSBT signed by both and checks it is the approved
    /// transaction, accepted by Bitcoin Core's script interpreter.
    fn finalize_checked(&self, psbt: Psbt) -> Result<Transaction, TradeError> {
        let approved = self.approved.as_ref().ok_or(TradeError::PsbtChanged)?;
        if psbt.unsigned_tx.compute_txid() != approved.txid() {
            return Err(TradeError::PsbtChanged);
        }
        let finalized = finalize(psbt).map_err(|e| TradeError::Finalize(e.to_string()))?;
        if finalized.prevouts != approved.prevouts() {
            return Err(TradeError::PsbtChanged);
        }
        #[cfg(feature = "consensus")]
        crate::verify_consensus(&finalized.tx, &finalized.prevouts)
            .map_err(|e| TradeError::Consensus(e.to_string()))?;
        Ok(finalized.tx)
    }

    fn set_trade(&mut self, their_offer: Offer) {
        let (maker, taker) = match self.role {
            Role::Maker => (self.own_offer.clone(), their_offer),
            Role::Taker => (their_offer, self.own_offer.clone()),
        };
        let trade = Trade {
            terms: self.terms,
            maker,
            taker,
        };
        self.out
            .push_back(TradeOutput::LookUpHoldings(trade.outpoints()));
        self.trade = Some(trade);
    }

    /// The step the counterparty sends next.
    fn expected_step(&self) -> u32 {
        match (self.role, &self.state) {
            (Role::Taker, TradeState::Proposed) => step::ACCEPT,
            (Role::Taker, TradeState::Accepted | TradeState::PsbtCreated) => step::PSBT_SIGN,
            (Role::Taker, _) => step::RECEIPT,
            (Role::Maker, TradeState::Proposed | TradeState::Accepted) => step::PSBT_CREATE,
            (Role::Maker, TradeState::MakerSigned) => step::PSBT_FINALIZE,
            (Role::Maker, _) => step::BROADCAST,
        }
    }

    fn last_step(&self) -> u32 {
        let received = self.received.keys().next_back().copied().unwrap_or(0);
        let sent = self.sent.keys().next_back().copied().unwrap_or(0);
        received.max(sent)
    }

    fn send(&mut self, step: u32, payload: TradePayload, unix_now: u64) -> Result<(), TradeError> {
        let body = TradeMessageBody {
            trade_id: self.id.to_vec(),
            order_id: self.order_id.as_bytes().to_vec(),
            step,
            sender: self.me.to_bytes(),
            recipient: self.peer.to_bytes(),
            sent_at: unix_now,
            payload: Some(payload),
        };
        let message = body.sign(&self.key).map_err(TradeError::Message)?;
        self.sent.insert(step, message.clone());
        self.out.push_back(TradeOutput::Send {
            peer: self.peer,
            message,
        });
        Ok(())
    }

    fn send_cancel(&mut self, reason: &str, unix_now: u64) {
        let cancel = TradeCancel {
            trade_id: self.id.to_vec(),
            reason: reason.to_owned(),
        };
        // A cancel is never answered: its step only has to follow the
        // last one, so a replayed old cancel is told apart.
        let step = self.last_step() + 1;
        if self
            .send(step, TradePayload::Cancel(cancel), unix_now)
            .is_err()
        {
            tracing::warn!(trade = %self.id, "cannot sign a cancel");
        }
    }

    /// The trade ends on `error`: the peer is told, unless a party signed.
    fn fail(&mut self, error: &TradeError, unix_now: u64) {
        if !self.signed {
            self.send_cancel(error.code(), unix_now);
        }
        self.set_state(TradeState::Failed {
            reason: error.to_string(),
        });
    }

    fn set_state(&mut self, state: TradeState) {
        self.state = state.clone();
        self.out.push_back(TradeOutput::StateChanged(state));
    }
}

/// Outpoints of a set, for [`TradeOutput::LookUpHoldings`].
pub type Outpoints = BTreeSet<OutPoint>;

pub(super) trait BodyBytes {
    fn body_bytes(&self) -> Vec<u8>;
}

impl BodyBytes for VerifiedTradeMessage {
    fn body_bytes(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&self.body)
    }
}

trait TxidBytes {
    fn to_byte_array_vec(&self) -> Vec<u8>;
}

impl TxidBytes for Txid {
    fn to_byte_array_vec(&self) -> Vec<u8> {
        bitcoin::hashes::Hash::to_byte_array(*self).to_vec()
    }
}
