//! This node's own orders: signed with its identity key, put in the book,
//! published, re-announced every refresh interval so peers keep them past
//! their TTL, updated and cancelled.
//!
//! An update changes an open order's amount, price and/or expiry with a
//! signed [`OrderUpdate`] whose sequence is one above the one the book
//! holds, so peers apply it and take no older one after it. The book keeps
//! the latest update with its order: a peer that joins later gets both by
//! sync, and every re-announcement publishes the update again after the
//! order, so a peer that missed it on gossip catches up at the next
//! refresh. An update may shorten an order's life but not extend it past
//! the expiry the order was signed with: after that, peers refuse the
//! order's announcements (and sync answers) as expired, so the order would
//! leave their books whatever the update said.
//!
//! Sans-IO: the shell calls [`OwnOrders::create`], [`OwnOrders::update`],
//! [`OwnOrders::cancel`] and [`OwnOrders::restore`] for the user, [`OwnOrders::handle_timeout`] when
//! [`OwnOrders::poll_timeout`] is due, and performs what
//! [`OwnOrders::poll_output`] yields (publish a message, report a change).

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use darkswap_proto::{
    Message, NewOrder, Order, OrderCancel, OrderCreate, OrderId, OrderUpdate, SignedOrder,
    UpdateFields, identity::Keypair,
};
use web_time::Instant;

use crate::{
    Now, PeerId,
    event::NetworkEvent,
    orderbook::{Orderbook, OrderbookError},
};

/// Shortest re-announcement interval honoured: a smaller setting would turn
/// the refresh into a busy loop.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// Why an operation on an own order failed. Exhaustive on purpose: the
/// SDK's facet errors mirror it variant for variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnOrderError {
    /// The book refused it (invalid terms, full, cancelled before, ...).
    #[error("order refused: {0}")]
    Refused(#[from] OrderbookError),
    /// The order is not one of this node's own (or no longer open).
    #[error("order {0} is not one of this node's orders")]
    NotOwnOrder(OrderId),
    /// An update asked for an expiry after the one the order was signed
    /// with; peers would drop the order then anyway (see the module docs).
    #[error(
        "expiry {requested} is after the order's signed expiry {signed}: \
         create a new order for a longer life"
    )]
    ExpiryBeyondSigned {
        /// The expiry asked for, unix seconds.
        requested: u64,
        /// The expiry the order was signed with, unix seconds.
        signed: u64,
    },
}

/// What an update changes in one of this node's orders: each field given
/// replaces the order's current value, the others stay as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderChanges {
    /// New remaining base amount, smallest unit.
    pub amount: Option<u64>,
    /// New price: quote units per 10^8 base units.
    pub price: Option<u64>,
    /// New expiry, unix seconds: after now, and no later than the expiry
    /// the order was signed with.
    pub expires_at: Option<u64>,
}

impl OrderChanges {
    /// Sets the new amount.
    pub fn with_amount(mut self, amount: u64) -> Self {
        self.amount = Some(amount);
        self
    }

    /// Sets the new price.
    pub fn with_price(mut self, price: u64) -> Self {
        self.price = Some(price);
        self
    }

    /// Sets the new expiry, unix seconds.
    pub fn with_expires_at(mut self, expires_at: u64) -> Self {
        self.expires_at = Some(expires_at);
        self
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnOrdersOutput {
    /// Publish this message on the orderbook topic. Publishing may fail for
    /// want of peers: they get the order by sync or at the next refresh.
    Publish(Message),
    /// Publish this re-announcement on the orderbook topic, in the
    /// background: after whatever else waits (see [`crate::paced`]).
    Republish(Message),
    /// Publish this fill notice (an update or a cancel) on the trade topic,
    /// which carries only makers' fill notices. A peer that misses it gets
    /// it by sync or with the next refresh, like any update.
    PublishFill(Message),
    /// Report this.
    Event(NetworkEvent),
}

/// What a fill notice did to one of this node's orders.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "a return value, made once per completed trade"
)]
pub enum FillNotice {
    /// Some remains: the order now offers `order.amount`.
    Updated {
        /// The order as it now stands.
        order: Order,
        /// The update as signed (what a store keeps).
        update: OrderUpdate,
    },
    /// Nothing remains: the order is cancelled.
    Filled(OrderCancel),
}

impl FillNotice {
    /// Base units the order still offers.
    pub fn remaining(&self) -> u64 {
        match self {
            FillNotice::Updated { order, .. } => order.amount,
            FillNotice::Filled(_) => 0,
        }
    }

    /// The notice as published.
    pub fn message(&self) -> Message {
        match self {
            FillNotice::Updated { update, .. } => Message::OrderUpdate(update.clone()),
            FillNotice::Filled(cancel) => Message::OrderCancel(cancel.clone()),
        }
    }
}

/// This node's open orders. See the module docs.
#[derive(Debug)]
pub struct OwnOrders {
    key: Keypair,
    local_peer_id: PeerId,
    orders: HashMap<OrderId, SignedOrder>,
    refresh_interval: Duration,
    next_refresh: Instant,
    /// The earliest time (unix seconds) an announcement is dated: the
    /// second after this node started. Peers refuse announcements dated up
    /// to the second a maker said it left (late copies of what it had
    /// out); a node restarted within that second must not look like one.
    first_second: u64,
    out: VecDeque<OwnOrdersOutput>,
}

impl OwnOrders {
    /// Orders signed with `key`, re-announced every `refresh_interval` (at
    /// least [`MIN_REFRESH_INTERVAL`]) from `now` on.
    pub fn new(key: Keypair, refresh_interval: Duration, now: Now) -> Self {
        let refresh_interval = refresh_interval.max(MIN_REFRESH_INTERVAL);
        OwnOrders {
            local_peer_id: key.public().to_peer_id(),
            key,
            orders: HashMap::new(),
            refresh_interval,
            next_refresh: now.instant + refresh_interval,
            first_second: now.unix_secs().saturating_add(1),
            out: VecDeque::new(),
        }
    }

    /// Signs `order`, puts it in `book` and publishes it. Returns the order
    /// as the book holds it and as signed (what a store keeps).
    pub fn create(
        &mut self,
        book: &mut Orderbook,
        order: &NewOrder,
        now: Now,
    ) -> Result<(Order, SignedOrder), OwnOrderError> {
        let signed = order.sign(&self.key).map_err(OrderbookError::Invalid)?;
        let order = self.restore(book, signed.clone(), now)?;
        Ok((order, signed))
    }

    /// Takes back one of this node's signed orders (e.g. from storage after
    /// a restart): if it is still valid and signed by this node, it returns
    /// to the book and to the re-announcement schedule.
    pub fn restore(
        &mut self,
        book: &mut Orderbook,
        signed: SignedOrder,
        now: Now,
    ) -> Result<Order, OwnOrderError> {
        let order = signed.verify().map_err(OrderbookError::Invalid)?;
        if order.maker != self.local_peer_id {
            return Err(OwnOrderError::NotOwnOrder(order.id));
        }
        let message = Message::OrderCreate(self.announce(signed.clone(), now)?);
        self.apply(book, &message, now)?;
        self.orders.insert(order.id, signed);
        self.out.push_back(OwnOrdersOutput::Publish(message));
        Ok(order)
    }

    /// Cancels one of this node's orders: a signed cancel goes into the book
    /// (a tombstone, so no late copy brings it back) and out to peers.
    /// Returns the cancel as published (what a store keeps so that a
    /// restart does not bring the order back).
    pub fn cancel(
        &mut self,
        book: &mut Orderbook,
        id: OrderId,
        now: Now,
    ) -> Result<OrderCancel, OwnOrderError> {
        let cancel = self.sign_cancel(book, id, now)?;
        self.out
            .push_back(OwnOrdersOutput::Publish(Message::OrderCancel(
                cancel.clone(),
            )));
        Ok(cancel)
    }

    fn sign_cancel(
        &mut self,
        book: &mut Orderbook,
        id: OrderId,
        now: Now,
    ) -> Result<OrderCancel, OwnOrderError> {
        if !self.orders.contains_key(&id) {
            return Err(OwnOrderError::NotOwnOrder(id));
        }
        let cancel =
            OrderCancel::sign(id, now.unix_secs(), &self.key).map_err(OrderbookError::Invalid)?;
        self.apply(book, &Message::OrderCancel(cancel.clone()), now)?;
        self.orders.remove(&id);
        Ok(cancel)
    }

    /// Changes the amount, price and/or expiry of one of this node's open
    /// orders: signs an update one sequence above the one the book holds,
    /// applies it to `book` and publishes it. Returns the order as it now
    /// stands and the update as signed (what a store keeps so that a
    /// restart brings the update back). A cancelled own order is refused as
    /// [`OrderbookError::Cancelled`] while the book keeps its tombstone.
    pub fn update(
        &mut self,
        book: &mut Orderbook,
        id: OrderId,
        changes: OrderChanges,
        now: Now,
    ) -> Result<(Order, OrderUpdate), OwnOrderError> {
        let (order, update) = self.sign_update(book, id, changes, now)?;
        self.out
            .push_back(OwnOrdersOutput::Publish(Message::OrderUpdate(
                update.clone(),
            )));
        Ok((order, update))
    }

    /// A trade filled `amount` base units of own order `id`: what remains
    /// is announced with a signed update, or the order is cancelled when
    /// nothing remains. The notice goes out on the trade topic
    /// ([`OwnOrdersOutput::PublishFill`]) so every book shows the remaining
    /// amount.
    pub fn fill(
        &mut self,
        book: &mut Orderbook,
        id: OrderId,
        amount: u64,
        now: Now,
    ) -> Result<FillNotice, OwnOrderError> {
        let current = book
            .get(&id)
            .filter(|_| self.orders.contains_key(&id))
            .ok_or(OwnOrderError::NotOwnOrder(id))?;
        let remaining = current.amount.saturating_sub(amount);
        let notice = if remaining == 0 {
            FillNotice::Filled(self.sign_cancel(book, id, now)?)
        } else {
            let changes = OrderChanges::default().with_amount(remaining);
            let (order, update) = self.sign_update(book, id, changes, now)?;
            FillNotice::Updated { order, update }
        };
        self.out
            .push_back(OwnOrdersOutput::PublishFill(notice.message()));
        Ok(notice)
    }

    fn sign_update(
        &mut self,
        book: &mut Orderbook,
        id: OrderId,
        changes: OrderChanges,
        now: Now,
    ) -> Result<(Order, OrderUpdate), OwnOrderError> {
        let Some(signed) = self.orders.get(&id) else {
            return Err(match book.cancelled_by(&id) {
                Some(maker) if maker == self.local_peer_id => OrderbookError::Cancelled(id).into(),
                _ => OwnOrderError::NotOwnOrder(id),
            });
        };
        // Its expiry as signed bounds the update's (see the module docs).
        let signed_expiry = signed.verify().map_err(OrderbookError::Invalid)?.expires_at;
        let unix = now.unix_secs();
        let current = book
            .get(&id)
            .filter(|o| !o.is_expired(unix))
            .ok_or(OwnOrderError::NotOwnOrder(id))?;
        let expires_at = changes.expires_at.unwrap_or(current.expires_at);
        if expires_at > signed_expiry {
            return Err(OwnOrderError::ExpiryBeyondSigned {
                requested: expires_at,
                signed: signed_expiry,
            });
        }
        let sequence = book
            .latest_update(&id)
            .map_or(0, |(_, u)| u.fields.sequence)
            .saturating_add(1);
        let fields = UpdateFields {
            sequence,
            amount: changes.amount.unwrap_or(current.amount),
            price: changes.price.unwrap_or(current.price),
            expires_at,
            updated_at: unix,
        };
        let update = OrderUpdate::sign(id, fields, &self.key).map_err(OrderbookError::Invalid)?;
        self.apply(book, &Message::OrderUpdate(update.clone()), now)?;
        let order = book.get(&id).ok_or(OrderbookError::UnknownOrder(id))?;
        Ok((order, update))
    }

    /// Whether `id` is one of this node's open orders.
    pub fn contains(&self, id: &OrderId) -> bool {
        self.orders.contains_key(id)
    }

    /// The open own orders, as they stand in `book` and as signed.
    pub fn orders(&self, book: &Orderbook) -> Vec<(Order, SignedOrder)> {
        let mut own: Vec<_> = self
            .orders
            .iter()
            .filter_map(|(id, signed)| Some((book.get(id)?, signed.clone())))
            .collect();
        own.sort_by_key(|(order, _)| (order.created_at, order.id));
        own
    }

    /// When [`OwnOrders::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_refresh
    }

    /// Re-announces every open own order when the refresh is due, with a
    /// fresh maker signature, so peers (and this node's own replica) keep
    /// them past their TTL. Orders that expired or left the book are
    /// forgotten.
    pub fn handle_timeout(&mut self, book: &mut Orderbook, now: Now) {
        if now.instant < self.next_refresh {
            return;
        }
        self.next_refresh = now.instant + self.refresh_interval;
        let unix = now.unix_secs();
        self.orders
            .retain(|id, _| book.get(id).is_some_and(|o| !o.is_expired(unix)));
        let mut own: Vec<SignedOrder> = self.orders.values().cloned().collect();
        own.sort_by_key(SignedOrder::id);
        for signed in own {
            let id = signed.id();
            let Ok(create) = self.announce(signed, now) else {
                continue;
            };
            let message = Message::OrderCreate(create);
            // A refusal here (the book filled up, say) leaves the order to
            // peers that still hold it; the next refresh tries again.
            let _ = self.apply(book, &message, now);
            self.out.push_back(OwnOrdersOutput::Republish(message));
            // The update in force goes out after its order, for peers that
            // missed it (a peer that has it takes it as a duplicate).
            if let Some((update, _)) = book.latest_update(&id) {
                let update = Message::OrderUpdate(update.clone());
                self.out.push_back(OwnOrdersOutput::Republish(update));
            }
        }
    }

    /// The next thing the shell must do.
    pub fn poll_output(&mut self) -> Option<OwnOrdersOutput> {
        self.out.pop_front()
    }

    /// The order with a fresh announcement signed by this node, dated no
    /// earlier than the second after it started (at most a second ahead,
    /// well within the clock skew peers allow).
    fn announce(&self, signed: SignedOrder, now: Now) -> Result<OrderCreate, OrderbookError> {
        let at = now.unix_secs().max(self.first_second);
        OrderCreate::announce(signed, at, &self.key).map_err(OrderbookError::Invalid)
    }

    fn apply(
        &mut self,
        book: &mut Orderbook,
        message: &Message,
        now: Now,
    ) -> Result<(), OrderbookError> {
        if let Some(change) = book.apply(message, now.unix_secs())? {
            self.out
                .push_back(OwnOrdersOutput::Event(NetworkEvent::OrderbookChanged(
                    change,
                )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
