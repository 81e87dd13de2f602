//! The replicated orderbook: a sans-IO state machine fed with signed order
//! messages (from gossip, from a sync response, or local) and the current
//! time. Every node runs the same rules, so every node converges on the same
//! book:
//!
//! - an order, cancel or update counts only if its maker's signature, its
//!   terms and its times verify;
//! - only the maker can cancel or update an order; an update must carry a
//!   higher sequence than the one applied;
//! - a cancel that arrives before its order leaves a tombstone, so the late
//!   create cannot resurrect it;
//! - duplicates and replays change nothing;
//! - orders drop out when they expire, and when their maker has not
//!   re-announced them within `ttl` (orders are bound to a live maker: no
//!   ghost offers nobody can take);
//! - a maker that says it leaves ([`Orderbook::maker_left`]) takes its
//!   orders with it until it announces them again.

use std::{collections::HashMap, time::Duration};

use darkswap_proto::identity::PeerId;
use darkswap_proto::{
    Announced, Asset, Cancel, MAX_CLOCK_SKEW_SECS, Message, Order, OrderCancel, OrderCreate,
    OrderError, OrderId, OrderUpdate, OrderbookResponse, Side, Update,
};

/// Orderbook rules that are a matter of policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderbookConfig {
    /// How often a maker re-announces its open orders. Default: 3 min.
    pub refresh_interval: Duration,
    /// An order not re-announced (or re-synced) for this long is dropped.
    /// Default: 10 min.
    pub ttl: Duration,
    /// Orders kept at most; further new orders are refused. Default: 100 000.
    pub max_orders: usize,
    /// Orders one maker may have in the book. Default: 1 000.
    pub max_orders_per_maker: usize,
}

impl Default for OrderbookConfig {
    fn default() -> Self {
        OrderbookConfig {
            refresh_interval: Duration::from_secs(180),
            ttl: Duration::from_secs(600),
            max_orders: 100_000,
            max_orders_per_maker: 1_000,
        }
    }
}

/// What an accepted message changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrderbookChange {
    /// A new order entered the book.
    Added(Order),
    /// An order's terms changed (the order as it now stands).
    Updated(Order),
    /// An order was cancelled by its maker.
    Cancelled {
        /// The order.
        order_id: OrderId,
        /// Its maker.
        maker: PeerId,
    },
    /// Orders that expired, whose maker stopped re-announcing them, or
    /// whose maker left the network.
    Expired(Vec<OrderId>),
}

/// Why a message was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderbookError {
    /// Not an orderbook message, or one without its order.
    #[error("not an order create, cancel or update")]
    NotAnOrderMessage,
    /// Signature, terms or times do not verify.
    #[error(transparent)]
    Invalid(#[from] OrderError),
    /// A cancel or update signed by someone other than the order's maker.
    #[error("only the maker may cancel or update an order")]
    NotMaker,
    /// An update for an order this node does not have.
    #[error("unknown order {0}")]
    UnknownOrder(OrderId),
    /// An update whose sequence is not above the one applied.
    #[error("stale update (sequence {got}, have {have})")]
    StaleUpdate {
        /// The update's sequence.
        got: u64,
        /// The sequence already applied.
        have: u64,
    },
    /// An order that was cancelled before.
    #[error("order {0} was cancelled")]
    Cancelled(OrderId),
    /// The maker already has as many orders in the book as one maker may
    /// ([`OrderbookConfig::max_orders_per_maker`]).
    #[error("maker limit reached: {limit} orders per maker")]
    MakerLimit {
        /// The limit in force.
        limit: usize,
    },
    /// The book holds as many orders as it may
    /// ([`OrderbookConfig::max_orders`]).
    #[error("orderbook full: {limit} orders")]
    BookFull {
        /// The limit in force.
        limit: usize,
    },
    /// An order announced before its maker said it left the network (see
    /// [`Orderbook::maker_left`]): a copy from a peer that did not hear it
    /// yet.
    #[error("order {order_id} announced before its maker left (at {left_at})")]
    MakerLeft {
        /// The order.
        order_id: OrderId,
        /// When the maker left, unix seconds by its own clock.
        left_at: u64,
    },
    /// An order whose newest maker-signed announcement is older than the
    /// TTL: its maker is presumed gone, so it would be dropped at once.
    #[error("order {order_id} not re-announced since {last_vouched} (TTL passed)")]
    NotRefreshed {
        /// The order.
        order_id: OrderId,
        /// Unix seconds of its newest announcement.
        last_vouched: u64,
    },
}

impl OrderbookError {
    /// A short, stable label for metrics: `not_order_message`, `not_maker`,
    /// `unknown_order`, `stale_update`, `cancelled`, `maker_limit`, `book_full`,
    /// `maker_left`, `not_refreshed`,
    /// or the [`OrderError::reason`] of a failed signature or term check.
    pub fn reason(&self) -> &'static str {
        match self {
            OrderbookError::NotAnOrderMessage => "not_order_message",
            OrderbookError::Invalid(e) => e.reason(),
            OrderbookError::NotMaker => "not_maker",
            OrderbookError::UnknownOrder(_) => "unknown_order",
            OrderbookError::StaleUpdate { .. } => "stale_update",
            OrderbookError::Cancelled(_) => "cancelled",
            OrderbookError::MakerLimit { .. } => "maker_limit",
            OrderbookError::BookFull { .. } => "book_full",
            OrderbookError::MakerLeft { .. } => "maker_left",
            OrderbookError::NotRefreshed { .. } => "not_refreshed",
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// The order with its newest announcement.
    create: OrderCreate,
    order: Order,
    update: Option<(OrderUpdate, Update)>,
    last_seen: u64,
}

impl Entry {
    /// The order with its latest update applied.
    fn current(&self) -> Order {
        let mut o = self.order.clone();
        if let Some((_, u)) = &self.update {
            o.amount = u.fields.amount;
            o.price = u.fields.price;
            o.expires_at = u.fields.expires_at;
        }
        o
    }
}

#[derive(Debug, Clone)]
struct Tombstone {
    cancel: OrderCancel,
    maker: PeerId,
    /// When the maker cancelled, unix seconds.
    cancelled_at: u64,
    /// Kept until then: by that time a late create would be expired, or
    /// too old to be taken ([`OrderbookError::NotRefreshed`]).
    keep_until: u64,
}

/// A maker that said it left, remembered until its orders from before
/// would be too old to take anyway.
#[derive(Debug, Clone)]
struct Departure {
    /// When it left, unix seconds by its own clock.
    left_at: u64,
    keep_until: u64,
    /// Orders it had on the book that were vouched for in or after the
    /// second it left, with that vouch. Timestamps are whole seconds, so
    /// `left_at` alone cannot tell a late copy announced in that second
    /// (gossip or a sync still in flight) from a maker that came back in
    /// it; a copy no newer than the one the departure removed is the
    /// former. Only orders vouched in the last second or so land here.
    recent: Vec<(OrderId, u64)>,
}

impl Departure {
    /// Whether an announcement of `id` vouched at `vouch` was made before
    /// the maker left.
    fn hides(&self, id: &OrderId, vouch: u64) -> bool {
        vouch < self.left_at
            || self
                .recent
                .iter()
                .any(|(gone, seen)| gone == id && vouch <= *seen)
    }
}

/// Makers remembered as gone at most: each needs a gossipsub-signed message
/// of its own, but peer ids cost nothing to make.
const MAX_DEPARTURES: usize = 10_000;

/// What a book holds of one order: see [`Orderbook::holdings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holding {
    /// The order is in the book.
    Live {
        /// When it was created, unix seconds.
        created_at: u64,
        /// The sequence and time of the update applied, if any.
        update: Option<(u64, u64)>,
    },
    /// The maker cancelled it.
    Cancelled {
        /// When, unix seconds.
        cancelled_at: u64,
    },
}

/// Bids and asks of one pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    /// Buy orders, best (highest) price first, then oldest first.
    pub bids: Vec<Order>,
    /// Sell orders, best (lowest) price first, then oldest first.
    pub asks: Vec<Order>,
}

/// The replicated orderbook. See the module docs for its rules.
#[derive(Debug, Clone)]
pub struct Orderbook {
    config: OrderbookConfig,
    entries: HashMap<OrderId, Entry>,
    tombstones: HashMap<OrderId, Tombstone>,
    /// Orders in the book by maker (makers with none are absent), so the
    /// per-maker limit costs no scan of the book.
    per_maker: HashMap<PeerId, usize>,
    departures: HashMap<PeerId, Departure>,
    /// Counts changes to what the book holds (orders, their updates, its
    /// tombstones), so a view built from it knows when it is stale.
    generation: u64,
}

impl Orderbook {
    /// An empty book.
    pub fn new(config: OrderbookConfig) -> Self {
        Orderbook {
            config,
            entries: HashMap::new(),
            tombstones: HashMap::new(),
            per_maker: HashMap::new(),
            departures: HashMap::new(),
            generation: 0,
        }
    }

    /// The policy in force.
    pub fn config(&self) -> &OrderbookConfig {
        &self.config
    }

    /// Applies an order create, cancel or update received at `now` (unix
    /// seconds). `Ok(None)` means valid but nothing changed (a duplicate, a
    /// re-announcement, or a cancel of an order not seen yet).
    pub fn apply(
        &mut self,
        message: &Message,
        now: u64,
    ) -> Result<Option<OrderbookChange>, OrderbookError> {
        self.apply_verified(&VerifiedOrderMessage::verify(message)?, now)
    }

    /// [`Orderbook::apply`] for a message whose signatures are already
    /// verified.
    pub fn apply_verified(
        &mut self,
        message: &VerifiedOrderMessage,
        now: u64,
    ) -> Result<Option<OrderbookChange>, OrderbookError> {
        self.apply_owned(message.clone(), now)
    }

    /// [`Orderbook::apply_verified`], keeping the message's parts instead
    /// of copies of them.
    fn apply_owned(
        &mut self,
        message: VerifiedOrderMessage,
        now: u64,
    ) -> Result<Option<OrderbookChange>, OrderbookError> {
        match message.0 {
            Verified::Create(create, announced) => self.apply_order(create, announced, now),
            Verified::Cancel(message, cancel) => self.apply_cancel(message, &cancel, now),
            Verified::Update(message, update) => self.apply_update(message, update, now),
        }
    }

    fn apply_order(
        &mut self,
        create: OrderCreate,
        announced: Announced,
        now: u64,
    ) -> Result<Option<OrderbookChange>, OrderbookError> {
        announced.check_time(now)?;
        // Only the maker's own signature vouches for liveness: a replayed old
        // announcement cannot keep a ghost order alive.
        let signed_vouch = announced.last_vouched();
        let vouched = signed_vouch.min(now);
        let order = announced.order;
        if self.tombstones.contains_key(&order.id) {
            return Err(OrderbookError::Cancelled(order.id));
        }
        // The maker's clock on both sides: its announcement against the
        // time it said it left. Announced in the very second it left counts
        // as back (a quick restart), not as gone.
        if let Some(d) = self.departures.get(&order.maker)
            && d.hides(&order.id, signed_vouch)
        {
            return Err(OrderbookError::MakerLeft {
                order_id: order.id,
                left_at: d.left_at,
            });
        }
        if now.saturating_sub(vouched) > self.config.ttl.as_secs() {
            return Err(OrderbookError::NotRefreshed {
                order_id: order.id,
                last_vouched: vouched,
            });
        }
        if let Some(entry) = self.entries.get_mut(&order.id) {
            if vouched > entry.last_seen {
                entry.last_seen = vouched;
                entry.create = create;
            }
            return Ok(None);
        }
        let per_maker = self.per_maker.get(&order.maker).copied().unwrap_or(0);
        if per_maker >= self.config.max_orders_per_maker {
            return Err(OrderbookError::MakerLimit {
                limit: self.config.max_orders_per_maker,
            });
        }
        if self.entries.len() >= self.config.max_orders {
            return Err(OrderbookError::BookFull {
                limit: self.config.max_orders,
            });
        }
        self.generation += 1;
        *self.per_maker.entry(order.maker).or_default() += 1;
        self.entries.insert(
            order.id,
            Entry {
                create,
                order: order.clone(),
                update: None,
                last_seen: vouched,
            },
        );
        Ok(Some(OrderbookChange::Added(order)))
    }

    fn apply_cancel(
        &mut self,
        cancel: OrderCancel,
        verified: &Cancel,
        now: u64,
    ) -> Result<Option<OrderbookChange>, OrderbookError> {
        let (order_id, maker) = (verified.order_id, verified.maker);
        if let Some(t) = self.tombstones.get(&order_id) {
            return if t.maker == maker {
                Ok(None)
            } else {
                Err(OrderbookError::NotMaker)
            };
        }
        let ttl = self.config.ttl.as_secs();
        let keep_until = match self.entries.get(&order_id) {
            Some(entry) if entry.order.maker != maker => return Err(OrderbookError::NotMaker),
            // After the TTL (and the clock skew a maker may sign with) no
            // announcement made before this cancel is taken any more
            // (`NotRefreshed`): keeping the tombstone until a far expiry
            // would only let the set grow with the cancel rate.
            Some(entry) => entry
                .current()
                .expires_at
                .min(now + ttl + MAX_CLOCK_SKEW_SECS),
            None => now + ttl,
        };
        self.generation += 1;
        self.tombstones.insert(
            order_id,
            Tombstone {
                cancel,
                maker,
                cancelled_at: verified.cancelled_at,
                keep_until,
            },
        );
        Ok(self
            .remove_entry(&order_id)
            .map(|_| OrderbookChange::Cancelled { order_id, maker }))
    }

    fn apply_update(
        &mut self,
        update: OrderUpdate,
        verified: Update,
        now: u64,
    ) -> Result<Option<OrderbookChange>, OrderbookError> {
        verified.check_time(now)?;
        if self.tombstones.contains_key(&verified.order_id) {
            return Err(OrderbookError::Cancelled(verified.order_id));
        }
        let entry = self
            .entries
            .get_mut(&verified.order_id)
            .ok_or(OrderbookError::UnknownOrder(verified.order_id))?;
        if entry.order.maker != verified.maker {
            return Err(OrderbookError::NotMaker);
        }
        let have = entry
            .update
            .as_ref()
            .map(|(_, u)| u.fields.sequence)
            .unwrap_or(0);
        if verified.fields.sequence <= have {
            return if verified.fields.sequence == have {
                Ok(None)
            } else {
                Err(OrderbookError::StaleUpdate {
                    got: verified.fields.sequence,
                    have,
                })
            };
        }
        entry.last_seen = entry.last_seen.max(verified.fields.updated_at.min(now));
        entry.update = Some((update, verified));
        self.generation += 1;
        Ok(Some(OrderbookChange::Updated(entry.current())))
    }

    /// Takes an order out of the book, keeping the per-maker counts.
    fn remove_entry(&mut self, id: &OrderId) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        if let Some(n) = self.per_maker.get_mut(&entry.order.maker) {
            *n -= 1;
            if *n == 0 {
                self.per_maker.remove(&entry.order.maker);
            }
        }
        Some(entry)
    }

    /// `maker` said at `left_at` (unix seconds, its clock) that it leaves
    /// the network; received at `now`. Its orders go, and copies announced
    /// before `left_at`, or no newer than the copy removed here (from peers
    /// that did not hear it yet, or gossip still in flight), are refused
    /// with [`OrderbookError::MakerLeft`] until the TTL would drop them
    /// anyway. A maker that comes back announces its orders again and they
    /// return. Returns the orders removed, if any.
    pub fn maker_left(&mut self, maker: PeerId, left_at: u64, now: u64) -> Option<OrderbookChange> {
        let left_at = left_at.min(now.saturating_add(MAX_CLOCK_SKEW_SECS));
        let keep_until = now.saturating_add(self.config.ttl.as_secs());
        let gone: Vec<(OrderId, u64)> = if self.per_maker.contains_key(&maker) {
            self.entries
                .iter()
                .filter(|(_, e)| e.order.maker == maker)
                .map(|(id, e)| (*id, e.last_seen))
                .collect()
        } else {
            Vec::new()
        };
        let room = self.departures.len() < MAX_DEPARTURES;
        let departure = match self.departures.get_mut(&maker) {
            Some(d) => {
                d.left_at = d.left_at.max(left_at);
                d.keep_until = keep_until;
                Some(d)
            }
            None if room => Some(self.departures.entry(maker).or_insert(Departure {
                left_at,
                keep_until,
                recent: Vec::new(),
            })),
            // Full: the orders still go; only late copies may come back
            // until the TTL drops them.
            None => None,
        };
        if let Some(d) = departure {
            let left_at = d.left_at;
            d.recent.retain(|(_, seen)| *seen >= left_at);
            d.recent
                .extend(gone.iter().filter(|(_, seen)| *seen >= left_at).copied());
        }
        if gone.is_empty() {
            return None;
        }
        let mut gone: Vec<OrderId> = gone.into_iter().map(|(id, _)| id).collect();
        for id in &gone {
            self.remove_entry(id);
        }
        self.generation += 1;
        gone.sort();
        Some(OrderbookChange::Expired(gone))
    }

    /// Drops expired orders, orders not seen within the TTL, and old
    /// tombstones. Returns what was dropped, if anything.
    pub fn prune(&mut self, now: u64) -> Option<OrderbookChange> {
        let ttl = self.config.ttl.as_secs();
        let mut gone: Vec<OrderId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.current().is_expired(now) || now.saturating_sub(e.last_seen) > ttl)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.remove_entry(id);
        }
        let tombstones = self.tombstones.len();
        self.tombstones.retain(|_, t| t.keep_until > now);
        self.departures.retain(|_, d| d.keep_until > now);
        if !gone.is_empty() || tombstones != self.tombstones.len() {
            self.generation += 1;
        }
        gone.sort();
        (!gone.is_empty()).then_some(OrderbookChange::Expired(gone))
    }

    /// Everything a peer needs to reach this book: orders, their latest
    /// updates and the tombstones, optionally for one pair. At most `limit`
    /// orders, newest first, so the response stays under the size limit.
    pub fn snapshot(&self, pair: Option<(Asset, Asset)>, limit: usize) -> OrderbookResponse {
        let mut entries: Vec<&Entry> = self
            .entries
            .values()
            .filter(|e| pair.is_none_or(|(b, q)| e.order.base == b && e.order.quote == q))
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse((e.order.created_at, e.order.id)));
        entries.truncate(limit);
        OrderbookResponse {
            orders: entries.iter().map(|e| e.create.clone()).collect(),
            updates: entries
                .iter()
                .filter_map(|e| e.update.as_ref().map(|(u, _)| u.clone()))
                .collect(),
            cancels: self
                .tombstones
                .values()
                .take(limit)
                .map(|t| t.cancel.clone())
                .collect(),
        }
    }

    /// Applies a sync response: cancels first (so nothing cancelled is
    /// resurrected), then orders, then updates. Returns the changes and why
    /// each refused entry was refused. [`VerifiedItems::verify`] and
    /// [`Orderbook::apply_items`] are the same in two steps, so that the
    /// verification can run elsewhere (off an event loop, on other cores).
    pub fn merge(
        &mut self,
        response: &OrderbookResponse,
        now: u64,
    ) -> (Vec<OrderbookChange>, Vec<OrderbookError>) {
        self.apply_items(VerifiedItems::verify(response.clone()), now)
    }

    /// Applies entries verified by [`VerifiedItems::verify`], in their
    /// order. Returns the changes and why each refused entry was refused.
    pub fn apply_items(
        &mut self,
        items: VerifiedItems,
        now: u64,
    ) -> (Vec<OrderbookChange>, Vec<OrderbookError>) {
        let mut changes = Vec::new();
        let mut rejected = Vec::new();
        for entry in items.into_entries() {
            match entry.and_then(|v| self.apply_owned(v, now)) {
                Ok(Some(change)) => changes.push(change),
                Ok(None) => {}
                Err(e) => rejected.push(e),
            }
        }
        (changes, rejected)
    }

    /// Counts the changes to what the book holds; equal generations mean
    /// equal [`Orderbook::holdings`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What the book holds of each order it knows: the version of a live
    /// order, or the fact that its maker cancelled it. Two books that hold
    /// the same holdings hold the same orders (their announcements may be
    /// of different ages).
    pub fn holdings(&self) -> impl Iterator<Item = (OrderId, Holding)> + '_ {
        let live = self.entries.iter().map(|(id, e)| {
            let update = e
                .update
                .as_ref()
                .map(|(_, u)| (u.fields.sequence, u.fields.updated_at));
            (
                *id,
                Holding::Live {
                    created_at: e.order.created_at,
                    update,
                },
            )
        });
        let cancelled = self.tombstones.iter().map(|(id, t)| {
            (
                *id,
                Holding::Cancelled {
                    cancelled_at: t.cancelled_at,
                },
            )
        });
        live.chain(cancelled)
    }

    /// The signed messages that give a peer what this book holds of `id`:
    /// the order with its newest announcement and its latest update, or the
    /// maker's cancel. `None` for an order the book does not know.
    pub fn messages_of(&self, id: &OrderId) -> Option<OrderbookResponse> {
        let mut messages = OrderbookResponse::default();
        self.append_messages_of(id, &mut messages)
            .then_some(messages)
    }

    /// Appends what [`Orderbook::messages_of`] returns to `out`; whether the
    /// book knows the order.
    pub fn append_messages_of(&self, id: &OrderId, out: &mut OrderbookResponse) -> bool {
        if let Some(t) = self.tombstones.get(id) {
            out.cancels.push(t.cancel.clone());
            return true;
        }
        let Some(e) = self.entries.get(id) else {
            return false;
        };
        out.orders.push(e.create.clone());
        out.updates.extend(e.update.iter().map(|(u, _)| u.clone()));
        true
    }

    /// An order as it now stands.
    pub fn get(&self, id: &OrderId) -> Option<Order> {
        self.entries.get(id).map(Entry::current)
    }

    /// The latest update applied to `id`, as signed and as verified.
    pub fn latest_update(&self, id: &OrderId) -> Option<(&OrderUpdate, &Update)> {
        let (signed, verified) = self.entries.get(id)?.update.as_ref()?;
        Some((signed, verified))
    }

    /// The maker that cancelled `id`, while the book keeps its tombstone.
    pub fn cancelled_by(&self, id: &OrderId) -> Option<PeerId> {
        self.tombstones.get(id).map(|t| t.maker)
    }

    /// The order as its maker published it, with its newest announcement.
    pub fn create_message(&self, id: &OrderId) -> Option<&OrderCreate> {
        self.entries.get(id).map(|e| &e.create)
    }

    /// Number of orders in the book.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bids and asks of a pair, best price first, then oldest first.
    pub fn book(&self, base: Asset, quote: Asset) -> Book {
        let mut book = Book::default();
        for o in self
            .entries
            .values()
            .map(Entry::current)
            .filter(|o| o.base == base && o.quote == quote)
        {
            match o.side {
                Side::Buy => book.bids.push(o),
                Side::Sell => book.asks.push(o),
            }
        }
        book.bids.sort_by(|a, b| {
            b.price
                .cmp(&a.price)
                .then(a.created_at.cmp(&b.created_at))
                .then(a.id.cmp(&b.id))
        });
        book.asks.sort_by(|a, b| {
            a.price
                .cmp(&b.price)
                .then(a.created_at.cmp(&b.created_at))
                .then(a.id.cmp(&b.id))
        });
        book
    }
}

mod verified;

use verified::Verified;
pub use verified::{VerifiedItems, VerifiedOrderMessage};

#[cfg(test)]
mod tests;
