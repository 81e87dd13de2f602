//! The swarm task's side of trades: messages of `/darkswap/trade/1.0.0`
//! into the negotiation, its outputs onto the network, the wallet, the
//! asset index and the broadcaster.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
};

use darkswap_core::{
    NetworkEvent, Now,
    own_orders::FillNotice,
    proto::{Order, OrderId, SignedTradeMessage},
    reputation::PenaltyReason,
    trade::TradeId,
};
use darkswap_trade::{
    InMemoryIndex, Wallet,
    bitcoin::Txid,
    negotiation::{TradeRecord, TradeSummary, Trades, TradesOutput},
};
use futures::future::BoxFuture;
use libp2p::{PeerId, request_response, request_response::OutboundRequestId};

use super::SwarmTask;
use crate::{
    command::TradeCommand,
    error::TradeCommandError,
    network::TradeInfo,
    trade::{Broadcaster, HoldingsSource, TradeStore, Trading},
};

/// Times a trade message is sent when its connection closes under it (a
/// relayed connection replaced by a direct one, a circuit that ended);
/// after that the trade's deadline decides.
const SEND_ATTEMPTS: u8 = 3;

/// What the node trades with, and its trades.
pub(super) struct TradingState {
    pub(super) trades: Trades,
    /// Messages sent and not yet received, with their attempts so far.
    in_flight: HashMap<OutboundRequestId, (PeerId, SignedTradeMessage, u8)>,
    /// Messages waiting for the one in flight to the same peer: each
    /// request is its own stream, so two sent at once may be read in
    /// either order, and a step read before the one it follows is refused.
    /// One at a time per peer keeps the steps in order (the receiver
    /// answers a step's receipt only once it took the step in).
    waiting: HashMap<PeerId, VecDeque<SignedTradeMessage>>,
    wallet: Arc<Mutex<dyn Wallet + Send>>,
    holdings: Arc<dyn HoldingsSource>,
    broadcaster: Arc<dyn Broadcaster>,
    store: Option<Arc<dyn TradeStore>>,
    /// Trades whose last record could not be stored: their messages are
    /// not sent (a restart would not know what they said).
    unrecorded: HashSet<TradeId>,
}

impl TradingState {
    /// The trading state, with the stored trades of `trading` back.
    pub(super) fn new(key: darkswap_core::Keypair, trading: &Trading, now: Now) -> Self {
        let mut state = TradingState {
            trades: Trades::new(key, trading.negotiation.clone(), trading.max_trades)
                .with_policy(trading.policy.clone()),
            in_flight: HashMap::new(),
            waiting: HashMap::new(),
            wallet: trading.wallet.clone(),
            holdings: trading.holdings.clone(),
            broadcaster: trading.broadcaster.clone(),
            store: trading.store.clone(),
            unrecorded: HashSet::new(),
        };
        for record in &trading.restored {
            state.with_wallet(|trades, wallet| {
                trades.restore(record.clone(), wallet, now.instant, now.unix_secs())
            });
        }
        state
    }

    /// Runs `f` with the trades and the wallet; a wallet whose lock was
    /// poisoned by a panic elsewhere is still usable (its state is a set
    /// of UTXOs, consistent at every step).
    fn with_wallet<T>(&mut self, f: impl FnOnce(&mut Trades, &mut dyn Wallet) -> T) -> T {
        let mut wallet = self.wallet.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut self.trades, &mut *wallet)
    }
}

/// The answer of an asset index look-up or a broadcast, back on the task.
pub(super) enum TradeIo {
    Holdings {
        trade: TradeId,
        result: Result<InMemoryIndex, String>,
    },
    Broadcast {
        trade: TradeId,
        result: Result<Txid, String>,
    },
}

pub(super) type TradeIoFuture = BoxFuture<'static, TradeIo>;

impl SwarmTask {
    pub(super) fn on_trade_command(&mut self, command: TradeCommand) {
        let now = super::now();
        match command {
            TradeCommand::Take {
                order_id,
                amount,
                reply,
            } => {
                let _ = reply.send(self.take_order(order_id, amount, now));
            }
            TradeCommand::Cancel { trade_id, reply } => {
                let _ = reply.send(self.cancel_trade(trade_id, now));
            }
            TradeCommand::List { reply } => {
                let _ = reply.send(self.trade_infos());
            }
        }
    }

    /// A request of `/darkswap/trade/1.0.0` or its outcome.
    pub(super) fn on_trade(&mut self, event: request_response::Event<SignedTradeMessage, ()>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                // The receipt says the step arrived; what it means comes
                // as a step of its own.
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .trade
                    .as_mut()
                    .map(|t| t.send_response(channel, ()));
                self.sync_own_orders();
                let now = super::now();
                let Some(state) = self.trading.as_mut() else {
                    return;
                };
                let result = state.with_wallet(|trades, wallet| {
                    trades.handle_message(peer, &request, wallet, now.instant, now.unix_secs())
                });
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "trade message refused");
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                error,
                request_id,
                ..
            } => {
                let retry = self
                    .trading
                    .as_mut()
                    .and_then(|s| s.in_flight.remove(&request_id))
                    .filter(|(_, _, attempts)| *attempts < SEND_ATTEMPTS);
                tracing::debug!(%peer, %error, again = retry.is_some(), "trade message not delivered");
                match retry {
                    Some((peer, message, attempts)) => self.request(peer, message, attempts + 1),
                    None => self.send_next_trade_message(peer),
                }
            }
            request_response::Event::Message {
                peer,
                message: request_response::Message::Response { request_id, .. },
                ..
            } => {
                if let Some(state) = self.trading.as_mut() {
                    state.in_flight.remove(&request_id);
                }
                self.send_next_trade_message(peer);
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "trade request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
        self.perform_trade_outputs();
    }

    /// An index look-up or a broadcast finished.
    pub(super) fn on_trade_io(&mut self, io: TradeIo) {
        let unix = super::now().unix_secs();
        let Some(state) = self.trading.as_mut() else {
            return;
        };
        let result = match io {
            TradeIo::Holdings { trade, result } => match result {
                Ok(index) => state.with_wallet(|trades, wallet| {
                    trades.handle_holdings(trade, index, wallet, unix)
                }),
                Err(error) => {
                    tracing::warn!(%trade, %error, "asset index look-up failed");
                    state.with_wallet(|trades, wallet| {
                        trades.cancel(trade, "index_unavailable", wallet, unix)
                    })
                }
            },
            TradeIo::Broadcast { trade, result } => state
                .with_wallet(|trades, wallet| trades.handle_broadcast(trade, result, wallet, unix)),
        };
        if let Err(error) = result {
            tracing::debug!(%error, "trade step failed");
        }
        self.perform_trade_outputs();
    }

    /// Takes `amount` of `order_id` from the book.
    pub(super) fn take_order(
        &mut self,
        order_id: OrderId,
        amount: u64,
        now: Now,
    ) -> Result<TradeId, TradeCommandError> {
        if self.trading.is_none() {
            return Err(TradeCommandError::NotTrading);
        }
        let order: Order = self
            .book
            .get(&order_id)
            .ok_or(TradeCommandError::UnknownOrder(order_id))?;
        if order.maker == *self.swarm.local_peer_id() {
            return Err(TradeCommandError::OwnOrder(order_id));
        }
        let state = self.trading.as_mut().ok_or(TradeCommandError::NotTrading)?;
        let id = random_trade_id()?;
        state
            .with_wallet(|trades, wallet| {
                trades.take(id, &order, amount, wallet, now.instant, now.unix_secs())
            })
            .map_err(TradeCommandError::Trade)?;
        self.perform_trade_outputs();
        Ok(id)
    }

    /// Cancels one of this node's trades.
    pub(super) fn cancel_trade(
        &mut self,
        trade: TradeId,
        now: Now,
    ) -> Result<(), TradeCommandError> {
        let state = self.trading.as_mut().ok_or(TradeCommandError::NotTrading)?;
        let result = state.with_wallet(|trades, wallet| {
            trades.cancel(trade, "cancelled", wallet, now.unix_secs())
        });
        self.perform_trade_outputs();
        result.map_err(TradeCommandError::Trade)
    }

    /// Every trade of this node.
    pub(super) fn trade_infos(&self) -> Vec<TradeInfo> {
        self.trading
            .as_ref()
            .map(|s| s.trades.summaries().into_iter().map(trade_info).collect())
            .unwrap_or_default()
    }

    /// A connection to a peer was established (the first, or another one
    /// such as a direct connection after a hole punch): each running trade
    /// with it sends its last message once more, so a step lost with a
    /// connection or a restart is not waited for until its deadline.
    pub(super) fn on_trade_peer_connected(&mut self, peer: PeerId) {
        if let Some(state) = self.trading.as_mut() {
            state.trades.handle_connected(peer);
        }
        self.perform_trade_outputs();
    }

    /// The trade timers.
    pub(super) fn on_trade_timeout(&mut self, now: Now) {
        if let Some(state) = self.trading.as_mut() {
            state.with_wallet(|trades, wallet| {
                trades.handle_timeout(wallet, now.instant, now.unix_secs())
            });
        }
        self.perform_trade_outputs();
    }

    /// Keeps the registry's own orders those of the book: it answers
    /// proposals only for orders this node still offers.
    fn sync_own_orders(&mut self) {
        let Some(state) = self.trading.as_mut() else {
            return;
        };
        let own: Vec<Order> = self
            .own_orders
            .orders(&self.book)
            .into_iter()
            .map(|(order, _)| order)
            .collect();
        let gone: Vec<OrderId> = state
            .trades
            .order_ids()
            .filter(|id| !own.iter().any(|o| o.id == **id))
            .copied()
            .collect();
        for id in gone {
            state.trades.remove_order(&id);
        }
        for order in own {
            state.trades.set_order(order);
        }
    }

    /// Does what the trades ask.
    pub(super) fn perform_trade_outputs(&mut self) {
        loop {
            let Some(output) = self.trading.as_mut().and_then(|s| s.trades.poll_output()) else {
                return;
            };
            match output {
                TradesOutput::Persist(record) => self.persist_trade(&record),
                TradesOutput::Send { peer, message } => {
                    let unrecorded = self.trading.as_ref().is_some_and(|s| {
                        !s.unrecorded.is_empty()
                            && trade_of(&message).is_none_or(|id| s.unrecorded.contains(&id))
                    });
                    if unrecorded {
                        tracing::error!(%peer, "trade message not sent: its trade is not stored");
                    } else {
                        self.send_trade_message(peer, message);
                    }
                }
                TradesOutput::LookUpHoldings { trade, outpoints } => {
                    if let Some(state) = &self.trading {
                        let lookup = state.holdings.holdings(outpoints.into_iter().collect());
                        self.trade_io.push(Box::pin(async move {
                            TradeIo::Holdings {
                                trade,
                                result: lookup.await,
                            }
                        }));
                    }
                }
                TradesOutput::Broadcast { trade, tx } => {
                    if let Some(state) = &self.trading {
                        let broadcast = state.broadcaster.broadcast(tx);
                        self.trade_io.push(Box::pin(async move {
                            TradeIo::Broadcast {
                                trade,
                                result: broadcast.await,
                            }
                        }));
                    }
                }
                TradesOutput::StateChanged {
                    trade,
                    order,
                    role,
                    state,
                } => {
                    let peer_id = self.trading.as_ref().and_then(|s| s.trades.peer(&trade));
                    if let Some(peer_id) = peer_id {
                        self.emit(NetworkEvent::TradeUpdated {
                            trade_id: trade,
                            order_id: order,
                            peer_id,
                            role,
                            state,
                        });
                    }
                }
                TradesOutput::Filled { order, amount } => self.publish_fill(order, amount),
                TradesOutput::Penalize { peer, reason } => {
                    tracing::debug!(%peer, reason, "trade misbehaviour");
                    self.penalize(peer, penalty_of(reason));
                }
            }
        }
    }
}

impl SwarmTask {
    /// Stores `record` before what follows it is done. A trade that cannot
    /// be stored sends nothing more and is cancelled if nobody signed yet
    /// (a restart would not know what it said); once signed, it waits for
    /// its deadline.
    fn persist_trade(&mut self, record: &TradeRecord) {
        let Some(state) = self.trading.as_mut() else {
            return;
        };
        let Some(store) = state.store.clone() else {
            return;
        };
        match store.save(record) {
            Ok(()) => {
                state.unrecorded.remove(&record.id);
            }
            Err(error) => {
                tracing::error!(trade = %record.id, %error, "cannot store a trade; it stops here");
                if state.unrecorded.insert(record.id) && !record.state.is_final() {
                    let unix = super::now().unix_secs();
                    let _ = state.with_wallet(|trades, wallet| {
                        trades.cancel(record.id, "store_failed", wallet, unix)
                    });
                }
            }
        }
    }

    /// A trade filled `amount` of own order `order`: the maker's signed
    /// fill notice goes into the book and out on the trade topic, and the
    /// registry offers only what remains.
    fn publish_fill(&mut self, order: OrderId, amount: u64) {
        let now = super::now();
        let (remaining, notice) = match self.own_orders.fill(&mut self.book, order, amount, now) {
            Ok(notice) => {
                if let Some(state) = self.trading.as_mut() {
                    match &notice {
                        FillNotice::Updated { order, .. } => {
                            state.trades.fill_published(order.clone(), amount);
                        }
                        FillNotice::Filled(_) => state.trades.remove_order(&order),
                    }
                }
                (notice.remaining(), Some(notice.message()))
            }
            Err(error) => {
                // The order expired or was cancelled while the trade ran:
                // it leaves the books anyway.
                tracing::info!(%order, %error, "no fill notice for this order");
                let remaining = self
                    .trading
                    .as_ref()
                    .and_then(|s| s.trades.available(&order))
                    .unwrap_or(0);
                (remaining, None)
            }
        };
        self.emit(NetworkEvent::OrderFilled {
            order_id: order,
            amount,
            remaining,
            notice,
        });
        self.perform_outputs();
    }

    /// Sends `message` to `peer` once nothing else is in flight to it.
    fn send_trade_message(&mut self, peer: PeerId, message: SignedTradeMessage) {
        let Some(state) = self.trading.as_mut() else {
            return;
        };
        if state.in_flight.values().any(|(p, _, _)| *p == peer) {
            state.waiting.entry(peer).or_default().push_back(message);
        } else {
            self.request(peer, message, 1);
        }
    }

    /// The one in flight to `peer` is done: the next waiting goes.
    fn send_next_trade_message(&mut self, peer: PeerId) {
        let next = self.trading.as_mut().and_then(|s| {
            let queue = s.waiting.get_mut(&peer)?;
            let next = queue.pop_front();
            if queue.is_empty() {
                s.waiting.remove(&peer);
            }
            next
        });
        if let Some(message) = next {
            self.request(peer, message, 1);
        }
    }

    fn request(&mut self, peer: PeerId, message: SignedTradeMessage, attempt: u8) {
        let Some(behaviour) = self.swarm.behaviour_mut().trade.as_mut() else {
            return;
        };
        let id = behaviour.send_request(&peer, message.clone());
        if let Some(state) = self.trading.as_mut() {
            state.in_flight.insert(id, (peer, message, attempt));
        }
    }
}

/// A forged trade message is a forgery like a forged order; a cheat in a
/// PSBT or a step out of line is a protocol violation.
fn penalty_of(reason: &str) -> PenaltyReason {
    match reason {
        "forged" | "wrong_peer" => PenaltyReason::InvalidSignature,
        _ => PenaltyReason::ProtocolViolation,
    }
}

fn trade_info(summary: TradeSummary) -> TradeInfo {
    TradeInfo {
        trade_id: summary.id,
        order_id: summary.order_id,
        peer_id: summary.peer,
        role: summary.role,
        state: summary.state,
        txid: summary.txid.map(|t| t.to_string()),
    }
}

/// The trade a message of this node belongs to. Verifying the signature
/// is the crate's one way to read the body; it costs microseconds, and
/// only messages of trades that failed to be stored ask.
fn trade_of(message: &SignedTradeMessage) -> Option<TradeId> {
    let verified = message.verify().ok()?;
    TradeId::from_slice(&verified.body.trade_id)
}

/// A fresh trade id: 32 random bytes from the OS.
fn random_trade_id() -> Result<TradeId, TradeCommandError> {
    use rand::RngCore as _;
    let mut id = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut id)
        .map_err(|e| TradeCommandError::Randomness(e.to_string()))?;
    Ok(TradeId::new(id))
}
