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
//!   ghost offers nobody can take).

use std::{collections::HashMap, time::Duration};

use darkswap_proto::{
    Asset, Cancel, Message, Order, OrderCancel, OrderCreate, OrderError, OrderId, OrderUpdate,
    OrderbookResponse, Side, Update,
};
use libp2p::PeerId;

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
    /// Orders that expired or whose maker stopped re-announcing them.
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
    /// The book or the maker's share of it is full.
    #[error("orderbook full")]
    Full,
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
    /// `unknown_order`, `stale_update`, `cancelled`, `full`, `not_refreshed`,
    /// or the [`OrderError::reason`] of a failed signature or term check.
    pub fn reason(&self) -> &'static str {
        match self {
            OrderbookError::NotAnOrderMessage => "not_order_message",
            OrderbookError::Invalid(e) => e.reason(),
            OrderbookError::NotMaker => "not_maker",
            OrderbookError::UnknownOrder(_) => "unknown_order",
            OrderbookError::StaleUpdate { .. } => "stale_update",
            OrderbookError::Cancelled(_) => "cancelled",
            OrderbookError::Full => "full",
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
    /// Kept until then: by that time a late create would be expired too.
    keep_until: u64,
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
}

impl Orderbook {
    /// An empty book.
    pub fn new(config: OrderbookConfig) -> Self {
        Orderbook {
            config,
            entries: HashMap::new(),
            tombstones: HashMap::new(),
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
        match message {
            Message::OrderCreate(create) => self.apply_order(create, now),
            Message::OrderCancel(cancel) => self.apply_cancel(cancel, now),
            Message::OrderUpdate(update) => self.apply_update(update, now),
            _ => Err(OrderbookError::NotAnOrderMessage),
        }
    }

    fn apply_order(
        &mut self,
        create: &OrderCreate,
        now: u64,
    ) -> Result<Option<OrderbookChange>, OrderbookError> {
        if create.order.is_none() {
            return Err(OrderbookError::NotAnOrderMessage);
        }
        let announced = create.verify()?;
        announced.check_time(now)?;
        // Only the maker's own signature vouches for liveness: a replayed old
        // announcement cannot keep a ghost order alive.
        let vouched = announced.last_vouched().min(now);
        let order = announced.order;
        if self.tombstones.contains_key(&order.id) {
            return Err(OrderbookError::Cancelled(order.id));
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
                entry.create = create.clone();
            }
            return Ok(None);
        }
        let per_maker = self
            .entries
            .values()
            .filter(|e| e.order.maker == order.maker)
            .count();
        if self.entries.len() >= self.config.max_orders
            || per_maker >= self.config.max_orders_per_maker
        {
            return Err(OrderbookError::Full);
        }
        self.entries.insert(
            order.id,
            Entry {
                create: create.clone(),
                order: order.clone(),
                update: None,
                last_seen: vouched,
            },
        );
        Ok(Some(OrderbookChange::Added(order)))
    }

    fn apply_cancel(
        &mut self,
        cancel: &OrderCancel,
        now: u64,
    ) -> Result<Option<OrderbookChange>, OrderbookError> {
        let Cancel {
            order_id, maker, ..
        } = cancel.verify()?;
        if let Some(t) = self.tombstones.get(&order_id) {
            return if t.maker == maker {
                Ok(None)
            } else {
                Err(OrderbookError::NotMaker)
            };
        }
        let keep_until = match self.entries.get(&order_id) {
            Some(entry) if entry.order.maker != maker => return Err(OrderbookError::NotMaker),
            Some(entry) => entry.current().expires_at,
            None => now + self.config.ttl.as_secs(),
        };
        self.tombstones.insert(
            order_id,
            Tombstone {
                cancel: cancel.clone(),
                maker,
                keep_until,
            },
        );
        Ok(self
            .entries
            .remove(&order_id)
            .map(|_| OrderbookChange::Cancelled { order_id, maker }))
    }

    fn apply_update(
        &mut self,
        update: &OrderUpdate,
        now: u64,
    ) -> Result<Option<OrderbookChange>, OrderbookError> {
        let verified = update.verify()?;
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
        entry.update = Some((update.clone(), verified));
        Ok(Some(OrderbookChange::Updated(entry.current())))
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
            self.entries.remove(id);
        }
        self.tombstones.retain(|_, t| t.keep_until > now);
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
    /// each refused entry was refused.
    pub fn merge(
        &mut self,
        response: &OrderbookResponse,
        now: u64,
    ) -> (Vec<OrderbookChange>, Vec<OrderbookError>) {
        let mut changes = Vec::new();
        let mut rejected = Vec::new();
        let messages = response
            .cancels
            .iter()
            .map(|c| Message::OrderCancel(c.clone()))
            .chain(
                response
                    .orders
                    .iter()
                    .map(|o| Message::OrderCreate(o.clone())),
            )
            .chain(
                response
                    .updates
                    .iter()
                    .map(|u| Message::OrderUpdate(u.clone())),
            );
        for m in messages {
            match self.apply(&m, now) {
                Ok(Some(change)) => changes.push(change),
                Ok(None) => {}
                Err(e) => rejected.push(e),
            }
        }
        (changes, rejected)
    }

    /// An order as it now stands.
    pub fn get(&self, id: &OrderId) -> Option<Order> {
        self.entries.get(id).map(Entry::current)
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

#[cfg(test)]
mod tests {
    use super::*;
    use darkswap_proto::{NewOrder, PRICE_SCALE, UpdateFields, identity::Keypair};

    const NOW: u64 = 1_800_000_000;

    fn new_order(side: Side, price: u64, nonce: u64) -> NewOrder {
        NewOrder {
            side,
            base: Asset::Btc,
            quote: "rune:840000:3".parse().unwrap(),
            amount: 100,
            price,
            created_at: NOW + nonce,
            expires_at: NOW + 3600,
            nonce,
        }
    }

    fn create(key: &Keypair, side: Side, price: u64, nonce: u64) -> (Message, OrderId) {
        let signed = new_order(side, price, nonce).sign(key).unwrap();
        let id = signed.id();
        (Message::OrderCreate(OrderCreate::from_order(signed)), id)
    }

    fn book() -> Orderbook {
        Orderbook::new(OrderbookConfig::default())
    }

    #[test]
    fn add_duplicate_cancel_and_replay() {
        let key = Keypair::generate_ed25519();
        let mut b = book();
        let (msg, id) = create(&key, Side::Sell, PRICE_SCALE, 1);
        assert!(matches!(
            b.apply(&msg, NOW),
            Ok(Some(OrderbookChange::Added(_)))
        ));
        assert_eq!(
            b.apply(&msg, NOW + 1),
            Ok(None),
            "duplicate changes nothing"
        );
        let cancel = Message::OrderCancel(OrderCancel::sign(id, NOW + 2, &key).unwrap());
        assert!(matches!(
            b.apply(&cancel, NOW + 2),
            Ok(Some(OrderbookChange::Cancelled { .. }))
        ));
        assert_eq!(
            b.apply(&cancel, NOW + 3),
            Ok(None),
            "replayed cancel changes nothing"
        );
        assert_eq!(
            b.apply(&msg, NOW + 4),
            Err(OrderbookError::Cancelled(id)),
            "replayed create cannot resurrect"
        );
        assert!(b.is_empty());
    }

    #[test]
    fn cancel_before_create_wins() {
        let key = Keypair::generate_ed25519();
        let mut b = book();
        let (msg, id) = create(&key, Side::Buy, PRICE_SCALE, 1);
        let cancel = Message::OrderCancel(OrderCancel::sign(id, NOW, &key).unwrap());
        assert_eq!(b.apply(&cancel, NOW), Ok(None));
        assert_eq!(b.apply(&msg, NOW), Err(OrderbookError::Cancelled(id)));
    }

    #[test]
    fn only_the_maker_cancels_or_updates() {
        let (maker, other) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let mut b = book();
        let (msg, id) = create(&maker, Side::Buy, PRICE_SCALE, 1);
        b.apply(&msg, NOW).unwrap();
        let foreign = Message::OrderCancel(OrderCancel::sign(id, NOW, &other).unwrap());
        assert_eq!(b.apply(&foreign, NOW), Err(OrderbookError::NotMaker));
        let fields = UpdateFields {
            sequence: 1,
            amount: 5,
            price: 2,
            expires_at: NOW + 100,
            updated_at: NOW,
        };
        let foreign = Message::OrderUpdate(OrderUpdate::sign(id, fields, &other).unwrap());
        assert_eq!(b.apply(&foreign, NOW), Err(OrderbookError::NotMaker));
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn updates_apply_in_sequence_order() {
        let key = Keypair::generate_ed25519();
        let mut b = book();
        let (msg, id) = create(&key, Side::Sell, PRICE_SCALE, 1);
        b.apply(&msg, NOW).unwrap();
        let upd = |seq, amount| {
            let fields = UpdateFields {
                sequence: seq,
                amount,
                price: 3,
                expires_at: NOW + 100,
                updated_at: NOW,
            };
            Message::OrderUpdate(OrderUpdate::sign(id, fields, &key).unwrap())
        };
        assert!(
            matches!(b.apply(&upd(2, 50), NOW), Ok(Some(OrderbookChange::Updated(o))) if o.amount == 50)
        );
        assert_eq!(b.apply(&upd(2, 50), NOW), Ok(None));
        assert_eq!(
            b.apply(&upd(1, 70), NOW),
            Err(OrderbookError::StaleUpdate { got: 1, have: 2 })
        );
        assert_eq!(b.get(&id).unwrap().amount, 50);
        let unknown = OrderId::of_body(b"nope");
        let fields = UpdateFields {
            sequence: 1,
            amount: 1,
            price: 1,
            expires_at: NOW + 9,
            updated_at: NOW,
        };
        let m = Message::OrderUpdate(OrderUpdate::sign(unknown, fields, &key).unwrap());
        assert_eq!(b.apply(&m, NOW), Err(OrderbookError::UnknownOrder(unknown)));
    }

    #[test]
    fn expiry_and_ttl_drop_orders() {
        let key = Keypair::generate_ed25519();
        let config = OrderbookConfig {
            ttl: Duration::from_secs(600),
            ..Default::default()
        };
        let mut b = Orderbook::new(config);
        let (alive, alive_id) = create(&key, Side::Sell, PRICE_SCALE, 1);
        let (ghost, ghost_id) = create(&key, Side::Sell, PRICE_SCALE, 2);
        b.apply(&alive, NOW).unwrap();
        b.apply(&ghost, NOW).unwrap();
        // Someone replays the ghost: no maker signature, no new life.
        b.apply(&ghost, NOW + 500).unwrap();
        // The maker re-announces the other one.
        let Message::OrderCreate(OrderCreate {
            order: Some(signed),
            ..
        }) = alive
        else {
            unreachable!()
        };
        let announced = OrderCreate::announce(signed, NOW + 500, &key).unwrap();
        b.apply(&Message::OrderCreate(announced), NOW + 500)
            .unwrap();
        assert_eq!(
            b.prune(NOW + 603),
            Some(OrderbookChange::Expired(vec![ghost_id]))
        );
        assert!(b.get(&alive_id).is_some());
        // Replayed after it dropped out (by gossip, a sync or an old
        // database), the ghost's stale announcement does not bring it back.
        assert_eq!(
            b.apply(&ghost, NOW + 604),
            Err(OrderbookError::NotRefreshed {
                order_id: ghost_id,
                last_vouched: NOW + 2,
            })
        );
        assert!(b.get(&ghost_id).is_none());
        assert_eq!(
            b.prune(NOW + 3600),
            Some(OrderbookChange::Expired(vec![alive_id]))
        );
        assert_eq!(b.prune(NOW + 3601), None);
    }

    #[test]
    fn invalid_messages_are_refused() {
        let key = Keypair::generate_ed25519();
        let mut b = book();
        let (msg, _) = create(&key, Side::Sell, PRICE_SCALE, 1);
        assert!(matches!(
            b.apply(&msg, NOW + 3600),
            Err(OrderbookError::Invalid(OrderError::Expired { .. }))
        ));
        let Message::OrderCreate(OrderCreate {
            order: Some(mut s), ..
        }) = msg
        else {
            unreachable!()
        };
        s.signature[0] ^= 1;
        let forged = Message::OrderCreate(OrderCreate::from_order(s));
        assert_eq!(
            b.apply(&forged, NOW),
            Err(OrderbookError::Invalid(OrderError::BadSignature))
        );
        assert_eq!(
            b.apply(&Message::Ping(Default::default()), NOW),
            Err(OrderbookError::NotAnOrderMessage)
        );
        assert!(b.is_empty());
    }

    #[test]
    fn limits_hold() {
        let key = Keypair::generate_ed25519();
        let mut b = Orderbook::new(OrderbookConfig {
            max_orders_per_maker: 2,
            ..Default::default()
        });
        for n in 0..2 {
            b.apply(&create(&key, Side::Buy, PRICE_SCALE, n).0, NOW)
                .unwrap();
        }
        assert_eq!(
            b.apply(&create(&key, Side::Buy, PRICE_SCALE, 9).0, NOW),
            Err(OrderbookError::Full)
        );
        let other = Keypair::generate_ed25519();
        assert!(
            b.apply(&create(&other, Side::Buy, PRICE_SCALE, 9).0, NOW)
                .is_ok()
        );
    }

    #[test]
    fn book_is_sorted_by_price_then_time() {
        let key = Keypair::generate_ed25519();
        let mut b = book();
        for (side, price, nonce) in [
            (Side::Buy, 5, 1),
            (Side::Buy, 7, 2),
            (Side::Buy, 7, 3),
            (Side::Sell, 9, 4),
            (Side::Sell, 8, 5),
        ] {
            b.apply(&create(&key, side, price, nonce).0, NOW + 10)
                .unwrap();
        }
        let book = b.book(Asset::Btc, "rune:840000:3".parse().unwrap());
        let bids: Vec<(u64, u64)> = book.bids.iter().map(|o| (o.price, o.nonce)).collect();
        let asks: Vec<(u64, u64)> = book.asks.iter().map(|o| (o.price, o.nonce)).collect();
        assert_eq!(bids, vec![(7, 2), (7, 3), (5, 1)]);
        assert_eq!(asks, vec![(8, 5), (9, 4)]);
        assert!(
            b.book(Asset::Btc, "rune:1:1".parse().unwrap())
                .bids
                .is_empty()
        );
    }

    #[test]
    fn snapshot_and_merge_converge() {
        let (k1, k2) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let mut a = book();
        let (o1, id1) = create(&k1, Side::Buy, 5, 1);
        let (o2, id2) = create(&k2, Side::Sell, 6, 2);
        let (o3, id3) = create(&k2, Side::Sell, 7, 3);
        for m in [&o1, &o2, &o3] {
            a.apply(m, NOW).unwrap();
        }
        a.apply(
            &Message::OrderCancel(OrderCancel::sign(id3, NOW, &k2).unwrap()),
            NOW,
        )
        .unwrap();
        let fields = UpdateFields {
            sequence: 1,
            amount: 42,
            price: 6,
            expires_at: NOW + 99,
            updated_at: NOW,
        };
        a.apply(
            &Message::OrderUpdate(OrderUpdate::sign(id2, fields, &k2).unwrap()),
            NOW,
        )
        .unwrap();

        // b saw the cancelled order earlier, and must drop it on merge.
        let mut b = book();
        b.apply(&o3, NOW).unwrap();
        let snap = a.snapshot(None, 100);
        let (changes, rejected) = b.merge(&snap, NOW + 1);
        assert!(rejected.is_empty(), "{rejected:?}");
        assert!(
            changes.iter().any(
                |c| matches!(c, OrderbookChange::Cancelled { order_id, .. } if *order_id == id3)
            )
        );
        assert_eq!(b.get(&id2).unwrap().amount, 42);
        assert!(b.get(&id1).is_some() && b.get(&id3).is_none());
        let pair = (Asset::Btc, "rune:840000:3".parse().unwrap());
        assert_eq!(a.book(pair.0, pair.1), b.book(pair.0, pair.1));
        // Merging again changes nothing.
        assert_eq!(b.merge(&snap, NOW + 2), (vec![], vec![]));
    }
}
