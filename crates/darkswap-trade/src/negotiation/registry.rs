//! Every trade a node runs, as maker and as taker: routes messages to their
//! session, answers proposals for the node's own orders, keeps each order's
//! amount under negotiation reserved so two takers cannot both fill it, and
//! tells the wallet when a trade's UTXOs are free again or spent.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use bitcoin::{OutPoint, Transaction, Txid};
use darkswap_proto::{
    Order, OrderId, SignedTradeMessage, TradePayload,
    identity::{Keypair, PeerId},
};
use web_time::Instant;

use super::{
    NegotiationConfig, Outpoints, Refusal, RefusalReason, TradeError, TradeId, TradeOutput,
    TradeRecord, TradeSession, TradeState, recovered::Recovered, terms,
};
use crate::{InMemoryIndex, OfferRequest, Role, Wallet};

/// A proposal for one of this node's orders that the order allows (it is
/// open, the amount remains, the price is the order's), put to the
/// maker's [`ProposalPolicy`].
#[derive(Debug, Clone, Copy)]
pub struct Proposal<'a> {
    /// The trade it would start.
    pub trade: TradeId,
    /// Who proposes.
    pub taker: PeerId,
    /// The order.
    pub order: &'a Order,
    /// Base units asked.
    pub amount: u64,
}

/// The maker's say over proposals its orders allow: accept, or refuse with
/// a reason the taker is told (usually [`RefusalReason::Declined`]). The
/// default accepts every proposal.
pub trait ProposalPolicy: Send + Sync + std::fmt::Debug {
    /// Whether to take `proposal` up.
    fn decide(&self, proposal: &Proposal<'_>) -> Result<(), RefusalReason>;
}

/// The default policy: every proposal the order allows is accepted.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl ProposalPolicy for AcceptAll {
    fn decide(&self, _: &Proposal<'_>) -> Result<(), RefusalReason> {
        Ok(())
    }
}

/// One trade as listed: running, ended or recovered after a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct TradeSummary {
    /// The trade.
    pub id: TradeId,
    /// The order it fills.
    pub order_id: OrderId,
    /// The counterparty.
    pub peer: PeerId,
    /// This node's side.
    pub role: Role,
    /// Where it stands.
    pub state: TradeState,
    /// The finished transaction's id, once there is one.
    pub txid: Option<Txid>,
}

/// What the shell must do for the node's trades.
#[derive(Debug, Clone)]
pub enum TradesOutput {
    /// Send `message` to `peer` on `/darkswap/trade/1.0.0`.
    Send {
        /// The counterparty.
        peer: PeerId,
        /// The signed message.
        message: SignedTradeMessage,
    },
    /// Look these outpoints up in the asset index, then call
    /// [`Trades::handle_holdings`].
    LookUpHoldings {
        /// The trade.
        trade: TradeId,
        /// What to look up.
        outpoints: Outpoints,
    },
    /// Broadcast `tx`, then call [`Trades::handle_broadcast`].
    Broadcast {
        /// The trade.
        trade: TradeId,
        /// The transaction.
        tx: Transaction,
    },
    /// A trade's state changed.
    StateChanged {
        /// The trade.
        trade: TradeId,
        /// The order it fills.
        order: OrderId,
        /// This node's role.
        role: Role,
        /// The new state.
        state: TradeState,
    },
    /// Store this record of a trade before doing anything that follows it
    /// (see [`TradeRecord`]): it precedes every message the trade sends.
    Persist(TradeRecord),
    /// One of this node's orders was filled by `amount` base units: the
    /// shell lowers the order (or drops it) and tells the network.
    Filled {
        /// The order.
        order: OrderId,
        /// Base units filled.
        amount: u64,
    },
    /// `peer` misbehaved in a trade (a cheat or a forgery): lower its
    /// reputation.
    Penalize {
        /// The peer.
        peer: PeerId,
        /// What it did (a [`TradeError::code`]).
        reason: &'static str,
    },
}

/// See the module docs.
#[derive(Debug)]
pub struct Trades {
    key: Keypair,
    me: PeerId,
    config: NegotiationConfig,
    /// Trades run at once at most; a maker refuses more as busy.
    max_trades: usize,
    sessions: HashMap<TradeId, TradeSession>,
    /// Trades brought back from their records after a restart.
    recovered: HashMap<TradeId, Recovered>,
    /// The maker's say over proposals.
    policy: Arc<dyn ProposalPolicy>,
    /// This node's own orders, by id.
    orders: HashMap<OrderId, Order>,
    /// Base amount of each own order under negotiation.
    reserved: HashMap<OrderId, u64>,
    /// The base amount each running maker trade fills.
    fills: HashMap<TradeId, u64>,
    /// Base amount of each own order filled by completed trades (until the
    /// order itself says less remains).
    filled: HashMap<OrderId, u64>,
    out: VecDeque<TradesOutput>,
}

impl Trades {
    /// The trades of the node whose identity is `key`; at most
    /// `max_trades` at once.
    pub fn new(key: Keypair, config: NegotiationConfig, max_trades: usize) -> Self {
        Trades {
            me: key.public().to_peer_id(),
            key,
            config,
            max_trades,
            sessions: HashMap::new(),
            recovered: HashMap::new(),
            policy: Arc::new(AcceptAll),
            orders: HashMap::new(),
            reserved: HashMap::new(),
            fills: HashMap::new(),
            filled: HashMap::new(),
            out: VecDeque::new(),
        }
    }

    /// Puts every proposal the orders allow to `policy` before accepting
    /// it (default: [`AcceptAll`]).
    pub fn with_policy(mut self, policy: Arc<dyn ProposalPolicy>) -> Self {
        self.policy = policy;
        self
    }

    /// One of this node's orders, as the book holds it (created, restored,
    /// updated). Fills of completed trades whose notice is not out yet
    /// stay deducted from it (see [`Trades::fill_published`]).
    pub fn set_order(&mut self, order: Order) {
        self.orders.insert(order.id, order);
    }

    /// The fill notice of `amount` filled base units of own order
    /// `order.id` is out: `order` now offers only what remains, so those
    /// units are no longer deducted from it.
    pub fn fill_published(&mut self, order: Order, amount: u64) {
        if let Some(filled) = self.filled.get_mut(&order.id) {
            *filled = filled.saturating_sub(amount);
            if *filled == 0 {
                self.filled.remove(&order.id);
            }
        }
        self.orders.insert(order.id, order);
    }

    /// One of this node's orders is gone (cancelled, expired).
    pub fn remove_order(&mut self, id: &OrderId) {
        self.orders.remove(id);
        self.filled.remove(id);
    }

    /// The ids of the own orders this registry knows.
    pub fn order_ids(&self) -> impl Iterator<Item = &OrderId> {
        self.orders.keys()
    }

    /// What remains of own order `id` for a new trade: its amount less
    /// what completed trades filled and running ones reserve.
    pub fn available(&self, id: &OrderId) -> Option<u64> {
        let order = self.orders.get(id)?;
        let reserved = self.reserved.get(id).copied().unwrap_or(0);
        let filled = self.filled.get(id).copied().unwrap_or(0);
        Some(order.amount.saturating_sub(reserved).saturating_sub(filled))
    }

    /// A trade's session.
    pub fn get(&self, id: &TradeId) -> Option<&TradeSession> {
        self.sessions.get(id)
    }

    /// Every trade, running or ended.
    pub fn iter(&self) -> impl Iterator<Item = &TradeSession> {
        self.sessions.values()
    }

    /// Takes `amount` base units of `order` (another node's) as trade `id`,
    /// with inputs from `wallet`.
    pub fn take(
        &mut self,
        id: TradeId,
        order: &Order,
        amount: u64,
        wallet: &mut dyn Wallet,
        now: Instant,
        unix_now: u64,
    ) -> Result<(), TradeError> {
        if self.sessions.contains_key(&id) || self.recovered.contains_key(&id) {
            return Err(TradeError::Conflicting { step: 1 });
        }
        let terms = terms::for_fill(order, amount)?;
        let request = OfferRequest::for_trade(
            &terms,
            Role::Taker,
            &self.config.build,
            self.config.fee_reserve,
        );
        let offer = wallet
            .offer(&request)
            .map_err(|e| TradeError::Wallet(e.to_string()))?;
        let outpoints: Vec<OutPoint> = offer.inputs.iter().map(|i| i.outpoint).collect();
        match TradeSession::take(
            id,
            self.key.clone(),
            order,
            amount,
            offer,
            self.config.clone(),
            now,
            unix_now,
        ) {
            Ok(session) => {
                self.sessions.insert(id, session);
                self.drain(id, wallet);
                Ok(())
            }
            Err(error) => {
                wallet.release(&outpoints);
                Err(error)
            }
        }
    }

    /// A message `from` a peer on `/darkswap/trade/1.0.0`.
    pub fn handle_message(
        &mut self,
        from: PeerId,
        message: &SignedTradeMessage,
        wallet: &mut dyn Wallet,
        now: Instant,
        unix_now: u64,
    ) -> Result<(), TradeError> {
        let verified = match message.verify() {
            Ok(verified) => verified,
            Err(error) => {
                self.penalize(from, "forged");
                return Err(TradeError::Message(error));
            }
        };
        if verified.sender != from {
            // Relayed in someone else's name: the stream's peer is the
            // sender, or the message is not its to send.
            self.penalize(from, "wrong_peer");
            return Err(TradeError::WrongPeer);
        }
        if verified.recipient != self.me {
            return Err(TradeError::NotForMe);
        }
        let id = TradeId::from_slice(&verified.body.trade_id).ok_or(TradeError::WrongTrade)?;
        if let Some(recovered) = self.recovered.get_mut(&id) {
            let result = recovered.handle_message(&verified, unix_now).map(|_| ());
            if let Err(error) = &result
                && error.is_misbehaviour()
            {
                self.penalize(from, error.code());
            }
            self.drain_recovered(id, wallet);
            return result;
        }
        let result = match self.sessions.get_mut(&id) {
            Some(session) => session
                .handle_message(&verified, wallet, now, unix_now)
                .map(|_| ()),
            None => match &verified.body.payload {
                Some(TradePayload::Propose(_)) => {
                    self.answer_proposal(id, &verified, wallet, now, unix_now);
                    Ok(())
                }
                _ => Err(TradeError::WrongTrade),
            },
        };
        if let Err(error) = &result
            && error.is_misbehaviour()
        {
            self.penalize(from, error.code());
        }
        if self.sessions.contains_key(&id) {
            self.drain(id, wallet);
        }
        result
    }

    /// The asset index's answer for [`TradesOutput::LookUpHoldings`].
    pub fn handle_holdings(
        &mut self,
        trade: TradeId,
        index: InMemoryIndex,
        wallet: &mut dyn Wallet,
        unix_now: u64,
    ) -> Result<(), TradeError> {
        let session = self
            .sessions
            .get_mut(&trade)
            .ok_or(TradeError::WrongTrade)?;
        let result = session.handle_holdings(index, wallet, unix_now);
        self.drain(trade, wallet);
        result
    }

    /// The broadcaster's answer for [`TradesOutput::Broadcast`].
    pub fn handle_broadcast(
        &mut self,
        trade: TradeId,
        result: Result<Txid, String>,
        wallet: &mut dyn Wallet,
        unix_now: u64,
    ) -> Result<(), TradeError> {
        if let Some(recovered) = self.recovered.get_mut(&trade) {
            recovered.handle_broadcast(result);
            self.drain_recovered(trade, wallet);
            return Ok(());
        }
        let session = self
            .sessions
            .get_mut(&trade)
            .ok_or(TradeError::WrongTrade)?;
        let result = session.handle_broadcast(result, unix_now);
        self.drain(trade, wallet);
        result
    }

    /// Cancels a trade of this node (refused once a party signed).
    pub fn cancel(
        &mut self,
        trade: TradeId,
        reason: &str,
        wallet: &mut dyn Wallet,
        unix_now: u64,
    ) -> Result<(), TradeError> {
        if let Some(recovered) = self.recovered.get(&trade) {
            let state = &recovered.record().state;
            return Err(if state.is_final() {
                TradeError::Ended(state.clone())
            } else {
                TradeError::Restarted
            });
        }
        let session = self
            .sessions
            .get_mut(&trade)
            .ok_or(TradeError::WrongTrade)?;
        let result = session.cancel(reason, unix_now);
        self.drain(trade, wallet);
        result
    }

    /// When [`Trades::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(TradeSession::poll_timeout)
            .chain(self.recovered.values().filter_map(Recovered::poll_timeout))
            .min()
    }

    /// Ends every trade whose deadline passed.
    pub fn handle_timeout(&mut self, wallet: &mut dyn Wallet, now: Instant, unix_now: u64) {
        let due: Vec<TradeId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.poll_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(session) = self.sessions.get_mut(&id) {
                session.handle_timeout(now, unix_now);
            }
            self.drain(id, wallet);
        }
        let due: Vec<TradeId> = self
            .recovered
            .iter()
            .filter(|(_, r)| r.poll_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(recovered) = self.recovered.get_mut(&id) {
                recovered.handle_timeout(now);
            }
            self.drain_recovered(id, wallet);
        }
    }

    /// The next thing the shell must do.
    pub fn poll_output(&mut self) -> Option<TradesOutput> {
        self.out.pop_front()
    }

    /// A proposal for a trade this node does not run yet: for one of its
    /// own orders, with enough of it left and room for one more trade.
    fn answer_proposal(
        &mut self,
        id: TradeId,
        proposal: &darkswap_proto::VerifiedTradeMessage,
        wallet: &mut dyn Wallet,
        now: Instant,
        unix_now: u64,
    ) {
        let order_id = OrderId::from_bytes(&proposal.body.order_id).ok();
        let order = order_id.and_then(|id| self.orders.get(&id)).cloned();
        let running = self
            .sessions
            .values()
            .filter(|s| !s.state().is_final())
            .count();
        let asked = match &proposal.body.payload {
            Some(TradePayload::Propose(p)) => p.amount,
            _ => 0,
        };
        let refused = match &order {
            None => Some(RefusalReason::OrderGone),
            Some(_) if running >= self.max_trades => Some(RefusalReason::MakerBusy),
            // The policy is asked only about what the order allows.
            Some(order)
                if asked <= self.available(&order.id).unwrap_or(0)
                    && proposal_matches(order, proposal) =>
            {
                self.policy
                    .decide(&Proposal {
                        trade: id,
                        taker: proposal.sender,
                        order,
                        amount: asked,
                    })
                    .err()
            }
            Some(_) => None,
        };
        let outcome = match (refused, order) {
            (None, Some(order)) => {
                let available = self.available(&order.id).unwrap_or(0);
                TradeSession::accept(
                    self.key.clone(),
                    proposal,
                    &order,
                    available,
                    wallet,
                    self.config.clone(),
                    now,
                    unix_now,
                )
            }
            (reason, _) => Err(Refusal::of(
                &self.key,
                proposal,
                reason.unwrap_or(RefusalReason::OrderGone),
                unix_now,
            )),
        };
        match outcome {
            Ok(session) => {
                if let Some(TradePayload::Propose(p)) = &proposal.body.payload {
                    *self.reserved.entry(session.order_id()).or_default() += p.amount;
                    self.fills.insert(id, p.amount);
                }
                self.sessions.insert(id, session);
            }
            Err(refusal) => {
                if let Some(message) = refusal.message {
                    self.out.push_back(TradesOutput::Send {
                        peer: proposal.sender,
                        message,
                    });
                }
            }
        }
    }

    /// Moves a session's outputs to the node's, and settles a trade that
    /// ended: its reservation, its UTXOs and, for the maker, the fill.
    fn drain(&mut self, id: TradeId, wallet: &mut dyn Wallet) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let outputs: Vec<TradeOutput> = std::iter::from_fn(|| session.poll_output()).collect();
        let stored = outputs.iter().any(|o| {
            matches!(
                o,
                TradeOutput::Send { .. } | TradeOutput::StateChanged(_) | TradeOutput::Broadcast(_)
            )
        });
        let record = stored.then(|| session.record());
        let (order, role) = (session.order_id(), session.role());
        let (outpoints, signed) = (session.own_outpoints(), session.is_signed());
        if let Some(record) = record {
            self.out.push_back(TradesOutput::Persist(record));
        }
        if let Some(state) = self.forward(id, order, role, outputs) {
            self.settle(id, order, state, signed, &outpoints, wallet);
        }
    }

    /// A trade ended in `state`: its reservation, its UTXOs and, for the
    /// maker, the fill.
    fn settle(
        &mut self,
        id: TradeId,
        order: OrderId,
        state: TradeState,
        signed: bool,
        outpoints: &[OutPoint],
        wallet: &mut dyn Wallet,
    ) {
        if let Some(amount) = self.fills.remove(&id) {
            if let Some(reserved) = self.reserved.get_mut(&order) {
                *reserved = reserved.saturating_sub(amount);
            }
            if state == TradeState::Completed {
                *self.filled.entry(order).or_default() += amount;
                self.out.push_back(TradesOutput::Filled { order, amount });
            }
        }
        match state {
            TradeState::Completed => wallet.spent(outpoints),
            // Once a party signed, the transaction may still be completed
            // by whoever holds the signatures: the UTXOs stay committed
            // until the wallet sees them spent or the user frees them.
            _ if signed => {}
            _ => wallet.release(outpoints),
        }
    }

    /// Brings a stored trade back after a restart (see [`TradeRecord`]):
    /// its UTXOs stay committed if a party had signed, a maker's order
    /// stays reserved for it, and a running one sends its last message and
    /// broadcasts its finished transaction again.
    pub fn restore(
        &mut self,
        record: TradeRecord,
        wallet: &mut dyn Wallet,
        now: Instant,
        unix_now: u64,
    ) {
        let id = record.id;
        if self.sessions.contains_key(&id) || self.recovered.contains_key(&id) {
            return;
        }
        if !record.state.is_final() {
            if record.signed {
                wallet.commit(&record.own_outpoints);
            }
            if record.role == Role::Maker {
                *self.reserved.entry(record.order_id).or_default() += record.amount;
                self.fills.insert(id, record.amount);
            }
        }
        let mut recovered = Recovered::new(record, self.key.clone(), now, unix_now);
        recovered.start();
        self.recovered.insert(id, recovered);
        self.drain_recovered(id, wallet);
    }

    /// `peer` connected (again): each running trade with it sends its last
    /// message once more. The peer takes a message it has as a
    /// retransmission and answers it again, so whichever side missed a
    /// step gets it.
    pub fn handle_connected(&mut self, peer: PeerId) {
        let sessions = self
            .sessions
            .values()
            .filter(|s| s.peer() == peer && !s.state().is_final())
            .filter_map(TradeSession::last_sent);
        let recovered = self
            .recovered
            .values()
            .map(Recovered::record)
            .filter(|r| r.peer == peer && !r.state.is_final())
            .filter_map(TradeRecord::last_sent);
        let again: Vec<SignedTradeMessage> = sessions.chain(recovered).cloned().collect();
        for message in again {
            self.out.push_back(TradesOutput::Send { peer, message });
        }
    }

    /// The counterparty of trade `id`, running, ended or recovered.
    pub fn peer(&self, id: &TradeId) -> Option<PeerId> {
        self.sessions
            .get(id)
            .map(TradeSession::peer)
            .or_else(|| self.recovered.get(id).map(|r| r.record().peer))
    }

    /// Every trade, running, ended and recovered.
    pub fn summaries(&self) -> Vec<TradeSummary> {
        let sessions = self.sessions.values().map(|s| TradeSummary {
            id: s.id(),
            order_id: s.order_id(),
            peer: s.peer(),
            role: s.role(),
            state: s.state().clone(),
            txid: s.transaction().map(Transaction::compute_txid),
        });
        let recovered = self.recovered.values().map(|r| {
            let record = r.record();
            TradeSummary {
                id: record.id,
                order_id: record.order_id,
                peer: record.peer,
                role: record.role,
                state: record.state.clone(),
                txid: r.txid(),
            }
        });
        sessions.chain(recovered).collect()
    }

    fn drain_recovered(&mut self, id: TradeId, wallet: &mut dyn Wallet) {
        let Some(recovered) = self.recovered.get_mut(&id) else {
            return;
        };
        let outputs: Vec<TradeOutput> = std::iter::from_fn(|| recovered.poll_output()).collect();
        let record = recovered.record().clone();
        if outputs
            .iter()
            .any(|o| matches!(o, TradeOutput::StateChanged(_)))
        {
            self.out.push_back(TradesOutput::Persist(record.clone()));
        }
        let ended = self.forward(id, record.order_id, record.role, outputs);
        if let Some(state) = ended {
            self.settle(
                id,
                record.order_id,
                state,
                record.signed,
                &record.own_outpoints,
                wallet,
            );
        }
    }

    /// Moves one trade's outputs to the node's; the state it ended in, if
    /// it ended.
    fn forward(
        &mut self,
        id: TradeId,
        order: OrderId,
        role: Role,
        outputs: Vec<TradeOutput>,
    ) -> Option<TradeState> {
        let mut ended = None;
        for output in outputs {
            self.out.push_back(match output {
                TradeOutput::Send { peer, message } => TradesOutput::Send { peer, message },
                TradeOutput::LookUpHoldings(outpoints) => TradesOutput::LookUpHoldings {
                    trade: id,
                    outpoints,
                },
                TradeOutput::Broadcast(tx) => TradesOutput::Broadcast { trade: id, tx },
                TradeOutput::StateChanged(state) => {
                    if state.is_final() {
                        ended = Some(state.clone());
                    }
                    TradesOutput::StateChanged {
                        trade: id,
                        order,
                        role,
                        state,
                    }
                }
            });
        }
        ended
    }

    fn penalize(&mut self, peer: PeerId, reason: &'static str) {
        self.out.push_back(TradesOutput::Penalize { peer, reason });
    }
}

/// Whether a proposal's price is the order's: a proposal at another price
/// is refused as `terms_changed` by the session, before any policy.
fn proposal_matches(order: &Order, proposal: &darkswap_proto::VerifiedTradeMessage) -> bool {
    matches!(&proposal.body.payload, Some(TradePayload::Propose(p)) if p.price == order.price)
}
