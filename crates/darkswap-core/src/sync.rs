//! Orderbook sync: a node asks each peer that joins the orderbook topic for
//! its book (again after every reconnect, since the book may have moved
//! on), answers such requests with a bounded snapshot, and merges what it
//! gets under the same rules as gossip.
//!
//! Sans-IO: the shell reports subscriptions, disconnections, requests,
//! responses and failures of `/darkswap/orderbook-sync/1.0.0`, and performs
//! what [`OrderbookSync::poll_output`] yields.

use std::collections::{HashSet, VecDeque};

use darkswap_proto::{Asset, OrderbookRequest, OrderbookResponse};

use crate::{
    PeerId,
    event::NetworkEvent,
    orderbook::{Orderbook, OrderbookError},
    protocols::ORDERBOOK_TOPIC,
    reputation::{PenaltyReason, PenaltyWeights, sync_penalty},
};

/// Orders (and as many cancels) in one snapshot: keeps a response well
/// under the 1 MiB message limit.
pub const SNAPSHOT_LIMIT: usize = 2000;

/// How an exchange of `/darkswap/orderbook-sync/1.0.0` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncFailure {
    /// The peer sent a frame that is oversized, undecodable or of the wrong
    /// type: it broke the protocol.
    InvalidData,
    /// The stream closed, timed out or could not be opened: nobody's fault
    /// for sure.
    Io,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncOutput {
    /// Ask `peer` for its book.
    Request {
        /// The peer.
        peer: PeerId,
        /// What to ask.
        request: OrderbookRequest,
    },
    /// Report this.
    Event(NetworkEvent),
    /// Score `peer` down for this.
    Penalize {
        /// The peer.
        peer: PeerId,
        /// What it did.
        reason: PenaltyReason,
    },
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct OrderbookSync {
    /// Peers asked for their book during their current connection.
    asked: HashSet<PeerId>,
    out: VecDeque<SyncOutput>,
}

impl OrderbookSync {
    /// A sync that has asked nobody yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `peer` joined `topic`: on the orderbook topic, ask for its book once
    /// per connection.
    pub fn handle_subscribed(&mut self, peer: PeerId, topic: &str) {
        if topic == ORDERBOOK_TOPIC && self.asked.insert(peer) {
            self.out.push_back(SyncOutput::Request {
                peer,
                request: OrderbookRequest::default(),
            });
        }
    }

    /// The last connection to `peer` closed: ask again when it comes back.
    pub fn handle_disconnected(&mut self, peer: &PeerId) {
        self.asked.remove(peer);
    }

    /// The answer to a peer's request: this node's book (or one pair of
    /// it), newest orders first, at most [`SNAPSHOT_LIMIT`] orders.
    pub fn handle_request(
        &self,
        book: &Orderbook,
        request: &OrderbookRequest,
    ) -> OrderbookResponse {
        let pair = match (
            request.base.parse::<Asset>(),
            request.quote.parse::<Asset>(),
        ) {
            (Ok(base), Ok(quote)) => Some((base, quote)),
            _ => None,
        };
        book.snapshot(pair, SNAPSHOT_LIMIT)
    }

    /// Merges `peer`'s snapshot into `book` at `now` (unix seconds): reports
    /// each change and the sync, and scores the peer down once for the
    /// worst entry no honest peer sends.
    pub fn handle_response(
        &mut self,
        book: &mut Orderbook,
        peer: PeerId,
        response: &OrderbookResponse,
        weights: &PenaltyWeights,
        now: u64,
    ) {
        let (changes, rejected) = self.merge(book, response, now);
        let penalty = sync_penalty(&rejected, weights);
        tracing::debug!(%peer, changes, rejected = rejected.len(), "orderbook synced");
        self.out
            .push_back(SyncOutput::Event(NetworkEvent::OrderbookSynced {
                peer_id: peer,
                changes,
                rejected,
            }));
        if let Some(reason) = penalty {
            self.out.push_back(SyncOutput::Penalize { peer, reason });
        }
    }

    /// Merges a snapshot that came from elsewhere (a store, after a
    /// restart) under the same rules; reports each change. Returns how many
    /// changes it made and why each refused entry was refused.
    pub fn import(
        &mut self,
        book: &mut Orderbook,
        snapshot: &OrderbookResponse,
        now: u64,
    ) -> (usize, Vec<OrderbookError>) {
        self.merge(book, snapshot, now)
    }

    /// A request this node sent to `peer` failed: ask again at the next
    /// subscription, and penalise a protocol violation.
    pub fn handle_outbound_failure(&mut self, peer: PeerId, failure: SyncFailure) {
        self.asked.remove(&peer);
        self.handle_inbound_failure(peer, failure);
    }

    /// A request from `peer` failed.
    pub fn handle_inbound_failure(&mut self, peer: PeerId, failure: SyncFailure) {
        if failure == SyncFailure::InvalidData {
            self.out.push_back(SyncOutput::Penalize {
                peer,
                reason: PenaltyReason::ProtocolViolation,
            });
        }
    }

    /// The next thing the shell must do.
    pub fn poll_output(&mut self) -> Option<SyncOutput> {
        self.out.pop_front()
    }

    fn merge(
        &mut self,
        book: &mut Orderbook,
        snapshot: &OrderbookResponse,
        now: u64,
    ) -> (usize, Vec<OrderbookError>) {
        let (changes, rejected) = book.merge(snapshot, now);
        let n = changes.len();
        self.out.extend(
            changes
                .into_iter()
                .map(|c| SyncOutput::Event(NetworkEvent::OrderbookChanged(c))),
        );
        (n, rejected)
    }
}

#[cfg(test)]
mod tests;
