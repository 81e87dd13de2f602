//! What the daemon writes down, and when: a sans-IO state machine in the
//! style of the relay's signaling hub. It never touches the database nor
//! the node and reads no clock: the state owner ([`super::Owner`]) tells it
//! what happened (`handle_*`, with the time passed in), performs the
//! [`Write`]s it yields and tells it how they went.
//!
//! The rules:
//!
//! - **An answer waits for its write.** A created order is stored before
//!   the API answers `201`; the signed update of an own order before `200`
//!   (the latest one per order is kept beside the order); a cancel, with
//!   its tombstone, before `204`; a ban or unban made by hand before its
//!   answer. The `handle_*` call that
//!   causes such a write returns it, and the owner performs it before it
//!   replies.
//! - **What nobody waits for is batched.** A changed book is saved
//!   [`BOOK_SAVE_INTERVAL`] after its first change, however many changes
//!   follow; a ban that begins or ends on its own is saved at once (a kill
//!   -9 right after must not free the peer); expired own orders are
//!   forgotten. These queue for [`Journal::poll_write`].
//! - **A failed save is tried again** one interval later, not lost.
//! - **A cancel is never undone by a restart.** [`Journal::restore`] keeps
//!   cancelled orders out of what is given back to the node, and gives the
//!   node their signed cancels, so the book also refuses copies that peers
//!   send late. A tombstone is kept for the order TTL after its cancel:
//!   after that no announcement of the order is young enough to be taken.
//! - **A fill is never undone by a restart.** The fill notice a completed
//!   trade makes the node publish (the update with what remains of the
//!   order, or its cancel when nothing remains) is written at once, as an
//!   update or a cancel made by hand is.
//! - **An update is never undone by a restart.** [`Journal::restore`] gives
//!   the node each own order's stored update after the stored book, so the
//!   order comes back as last answered and its next update continues the
//!   sequence; an own order whose update shortened its life past the
//!   restart is forgotten, not brought back with its longer signed expiry.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use darkswap_p2p::{NetworkEvent, OrderbookChange, core::Now};
use darkswap_proto::{
    Message, OrderCancel, OrderError, OrderId, OrderUpdate, OrderbookResponse, SignedOrder,
};

use crate::store::Tombstone;

/// How long after its first change the book is saved. One save covers
/// every change made meanwhile.
pub const BOOK_SAVE_INTERVAL: Duration = Duration::from_secs(2);

/// A write to perform on the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Keep a new own order.
    PutOwnOrder(SignedOrder),
    /// Keep the latest update of an own order, replacing the one before.
    PutOwnUpdate {
        /// The order.
        id: OrderId,
        /// Its update, as signed.
        update: OrderUpdate,
    },
    /// Forget a cancelled own order and keep its tombstone, together.
    Cancel(Tombstone),
    /// Forget own orders that expired.
    ForgetOwnOrders(Vec<OrderId>),
    /// Replace the stored book with the node's, and forget the tombstones
    /// of cancels made before `forget_tombstones_before` (unix seconds).
    SaveBook {
        /// Tombstones older than this protect nothing any more.
        forget_tombstones_before: u64,
    },
    /// Replace the stored ban list with the node's.
    SaveBans,
}

/// What to give the node at start, and what to forget.
#[derive(Debug, Clone, PartialEq)]
pub struct Restore {
    /// Own orders to give back (`orderbook().restore`).
    pub own_orders: Vec<SignedOrder>,
    /// The book to merge (`orderbook().import`): the live tombstones' cancels
    /// first, then the stored book without the orders they cancel.
    pub book: OrderbookResponse,
    /// Stored own orders that a tombstone says were cancelled, or whose
    /// update ended their life before now.
    pub forget_own_orders: Vec<OrderId>,
    /// Tombstones of cancels made before this (unix seconds) go.
    pub forget_tombstones_before: u64,
}

/// The daemon's write policy. See the module docs.
#[derive(Debug)]
pub struct Journal {
    save_interval: Duration,
    order_ttl: Duration,
    /// When the changed book is to be saved; `None` while it is saved.
    book_due: Option<Instant>,
    /// When a ban list that failed to save is tried again.
    bans_due: Option<Instant>,
    out: VecDeque<Write>,
}

impl Journal {
    /// A journal that saves a changed book after `save_interval` and keeps
    /// tombstones for `order_ttl`, the TTL the node's book runs with.
    pub fn new(save_interval: Duration, order_ttl: Duration) -> Self {
        Journal {
            save_interval,
            order_ttl,
            book_due: None,
            bans_due: None,
            out: VecDeque::new(),
        }
    }

    /// Tombstones of cancels made before this protect nothing any more.
    fn tombstone_horizon(&self, now: Now) -> u64 {
        now.unix_secs().saturating_sub(self.order_ttl.as_secs())
    }

    /// What to give back to the node at start, from what is stored. An own
    /// order with a tombstone is never given back, however old the
    /// tombstone; nor one whose stored update made it expire before `now`.
    pub fn restore(
        &self,
        own_orders: Vec<SignedOrder>,
        own_updates: Vec<OrderUpdate>,
        book: OrderbookResponse,
        tombstones: Vec<Tombstone>,
        now: Now,
    ) -> Restore {
        let horizon = self.tombstone_horizon(now);
        let unix = now.unix_secs();
        let cancelled = |id: &OrderId| tombstones.iter().any(|t| t.id == *id);
        // Updates that no longer verify are dropped: the order comes back
        // as signed, which is what peers that missed the update hold.
        let (ended, own_updates): (Vec<_>, Vec<_>) = own_updates
            .into_iter()
            .filter_map(|u| Some((u.verify().ok()?, u)))
            .filter(|(v, _)| !cancelled(&v.order_id))
            .partition(|(v, _)| v.fields.expires_at <= unix);
        let ended: Vec<OrderId> = ended.iter().map(|(v, _)| v.order_id).collect();
        let (forget, own_orders): (Vec<_>, Vec<_>) = own_orders
            .into_iter()
            .partition(|o| cancelled(&o.id()) || ended.contains(&o.id()));
        let mut cancels: Vec<OrderCancel> = tombstones
            .iter()
            .filter(|t| t.cancelled_at >= horizon)
            .map(|t| t.cancel.clone())
            .collect();
        cancels.extend(book.cancels);
        let orders = book
            .orders
            .into_iter()
            .filter(|o| {
                !o.order
                    .as_ref()
                    .is_some_and(|s| cancelled(&s.id()) || ended.contains(&s.id()))
            })
            .collect();
        let mut updates = book.updates;
        updates.extend(own_updates.into_iter().map(|(_, u)| u));
        Restore {
            own_orders,
            book: OrderbookResponse {
                orders,
                updates,
                cancels,
            },
            forget_own_orders: forget.iter().map(SignedOrder::id).collect(),
            forget_tombstones_before: horizon,
        }
    }

    /// The node created `order` for the API: returns the write the answer
    /// waits for.
    pub fn handle_created(&mut self, order: SignedOrder) -> Write {
        Write::PutOwnOrder(order)
    }

    /// The node updated an own order for the API and published `update`:
    /// returns the write the answer waits for.
    pub fn handle_updated(&mut self, id: OrderId, update: OrderUpdate) -> Write {
        Write::PutOwnUpdate { id, update }
    }

    /// The node cancelled an own order for the API and published `cancel`:
    /// returns the write the answer waits for, the cancel kept as the
    /// order's tombstone.
    pub fn handle_cancelled(&mut self, cancel: OrderCancel) -> Result<Write, OrderError> {
        let verified = cancel.verify()?;
        Ok(Write::Cancel(Tombstone {
            id: verified.order_id,
            cancel,
            cancelled_at: verified.cancelled_at,
        }))
    }

    /// A ban was made or lifted for the API: returns the write the answer
    /// waits for.
    pub fn handle_bans_changed(&mut self) -> Write {
        self.bans_due = None;
        Write::SaveBans
    }

    /// The node reported `event`.
    pub fn handle_event(&mut self, event: &NetworkEvent, now: Now) {
        match event {
            NetworkEvent::OrderbookChanged(change) => {
                self.book_due
                    .get_or_insert(now.instant + self.save_interval);
                if let OrderbookChange::Expired(ids) = change {
                    self.out.push_back(Write::ForgetOwnOrders(ids.clone()));
                }
            }
            // The node dropped events its queue had no room for: book
            // changes, the only kind this journal reads that the node may
            // drop (a big sync makes thousands at once). The book is saved
            // as if they had come; an own order's expiry that was among
            // them is forgotten at the next start, when it is restored.
            NetworkEvent::EventsDropped { .. } => {
                self.book_due
                    .get_or_insert(now.instant + self.save_interval);
            }
            // A trade filled an own order: its fill notice (the update
            // with what remains, or the cancel) is kept at once, like an
            // update or a cancel made by hand, so a restart does not offer
            // the filled amount again.
            NetworkEvent::OrderFilled {
                order_id,
                notice: Some(notice),
                ..
            } => match notice {
                Message::OrderUpdate(update) => {
                    let write = self.handle_updated(*order_id, update.clone());
                    self.out.push_back(write);
                }
                Message::OrderCancel(cancel) => match self.handle_cancelled(cancel.clone()) {
                    Ok(write) => self.out.push_back(write),
                    Err(error) => tracing::error!(%error, "an unreadable fill notice"),
                },
                _ => {}
            },
            NetworkEvent::PeerBanned { .. } | NetworkEvent::PeerUnbanned { .. } => {
                self.bans_due = None;
                if !self.out.contains(&Write::SaveBans) {
                    self.out.push_back(Write::SaveBans);
                }
            }
            _ => {}
        }
    }

    /// The owner performed `write`; `ok` says whether it is on disk. A
    /// failed save of the book or of the bans is tried again one interval
    /// later. A failed write an answer waited for is that answer's error;
    /// a failed forget leaves an expired order the next start drops.
    pub fn handle_written(&mut self, write: &Write, ok: bool, now: Now) {
        if ok {
            return;
        }
        let retry = now.instant + self.save_interval;
        match write {
            Write::SaveBook { .. } => {
                self.book_due.get_or_insert(retry);
            }
            Write::SaveBans => {
                self.bans_due.get_or_insert(retry);
            }
            Write::PutOwnOrder(_)
            | Write::PutOwnUpdate { .. }
            | Write::Cancel(_)
            | Write::ForgetOwnOrders(_) => {}
        }
    }

    /// When [`Journal::handle_timeout`] is next due, if anything waits.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.book_due, self.bans_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Queues the saves that are due at `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        if self.book_due.is_some_and(|due| due <= now.instant) {
            self.book_due = None;
            self.out.push_back(Write::SaveBook {
                forget_tombstones_before: self.tombstone_horizon(now),
            });
        }
        if self.bans_due.is_some_and(|due| due <= now.instant) {
            self.bans_due = None;
            self.out.push_back(Write::SaveBans);
        }
    }

    /// The daemon stops: queues a last save of the book and of the bans,
    /// whether or not they changed.
    pub fn handle_shutdown(&mut self, now: Now) {
        self.book_due = None;
        self.bans_due = None;
        self.out
            .retain(|w| !matches!(w, Write::SaveBook { .. } | Write::SaveBans));
        self.out.push_back(Write::SaveBook {
            forget_tombstones_before: self.tombstone_horizon(now),
        });
        self.out.push_back(Write::SaveBans);
    }

    /// The next write to perform.
    pub fn poll_write(&mut self) -> Option<Write> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests;
