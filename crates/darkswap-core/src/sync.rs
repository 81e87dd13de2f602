//! Orderbook sync: every node reconciles its book with its peers, so that
//! all books converge whatever gossip dropped, and a node that joins (or
//! comes back from a partition) gets exactly what it lacks.
//!
//! The book is a set of items, one per order version a node holds (see
//! [`items`]). Two nodes reconcile those sets with range-based set
//! reconciliation (the negentropy protocol, version 1): the initiator sends
//! fingerprints of ranges of its items, the other side answers with
//! fingerprints of sub-ranges where they differ, and lists of item ids once
//! ranges are small, until the initiator knows which items it lacks. It
//! then fetches their signed messages in batches and merges them under the
//! same rules as gossip. The bytes exchanged grow with the differences, not
//! with the book; a node that holds nothing gets the whole book in frames of
//! bounded size. Only the initiator keeps state: answering is stateless.
//!
//! When: with each peer that joins the orderbook topic, and then every
//! `anti_entropy_interval` with the next peer in turn (anti-entropy).
//!
//! Sans-IO: the shell reports subscriptions, disconnections, requests,
//! responses and failures of `/darkswap/orderbook-sync/2.0.0`, calls
//! [`OrderbookSync::handle_timeout`] when [`OrderbookSync::poll_timeout`] is
//! due, and performs what [`OrderbookSync::poll_output`] yields.

pub mod items;
mod session;

use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    time::Duration,
};

use darkswap_proto::{
    Asset, OrderbookFetch, OrderbookReconcile, OrderbookRequest, OrderbookResponse,
};
use negentropy::{Id, Negentropy};
use web_time::Instant;

use crate::{
    PeerId,
    event::NetworkEvent,
    orderbook::{Orderbook, OrderbookError, VerifiedItems},
    protocols::ORDERBOOK_TOPIC,
    reputation::{PenaltyReason, PenaltyWeights, sync_penalty},
};
use items::BookItems;
use session::{Session, Step};

/// Orders (and as many cancels) in one pair snapshot
/// ([`SyncRequest::Snapshot`]): keeps a response well under the 1 MiB
/// message limit. Reconciliation has no such cap.
pub const SNAPSHOT_LIMIT: usize = 2000;

/// How a node reconciles its book with its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncConfig {
    /// How often the node reconciles with one more peer, in turn, besides
    /// reconciling with each peer as it joins. Default: 30 s.
    pub anti_entropy_interval: Duration,
    /// Reconciliations this node runs at once, as initiator. Default: 2.
    pub max_sessions: usize,
    /// Largest reconciliation message sent or answered, bytes (at least
    /// 4096). Default: 256 KiB.
    pub frame_size_limit: u64,
    /// Items asked for in one fetch, at most the `max_fetch` of the peer
    /// asked. Default: 1000 (a response of about 200 KiB; a batch that size
    /// verifies a third faster per signature than one of 500).
    pub fetch_batch: usize,
    /// Fetches one reconciliation keeps in flight: while one answer is
    /// verified, the next ones travel, and a shell that verifies answers
    /// off its event loop verifies several at once. Default: 4.
    pub fetch_pipeline: usize,
    /// Items one peer may ask for in one fetch; more is a protocol
    /// violation. Default: 1000.
    pub max_fetch: usize,
    /// Reconciliation rounds with one peer before giving up on it this
    /// time. Default: 64.
    pub max_rounds: u32,
    /// Items a node fetches from one peer in one reconciliation at most
    /// (bounds what a peer claiming a huge book can make us hold). Default:
    /// 250 000.
    pub max_need: usize,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            anti_entropy_interval: Duration::from_secs(30),
            max_sessions: 2,
            frame_size_limit: 256 * 1024,
            fetch_batch: 1000,
            fetch_pipeline: 4,
            max_fetch: 1000,
            max_rounds: 64,
            max_need: 250_000,
        }
    }
}

impl SyncConfig {
    /// Sets [`SyncConfig::anti_entropy_interval`].
    pub fn with_anti_entropy_interval(mut self, interval: Duration) -> Self {
        self.anti_entropy_interval = interval;
        self
    }

    /// Sets [`SyncConfig::max_sessions`].
    pub fn with_max_sessions(mut self, sessions: usize) -> Self {
        self.max_sessions = sessions;
        self
    }

    /// Sets [`SyncConfig::fetch_batch`].
    pub fn with_fetch_batch(mut self, batch: usize) -> Self {
        self.fetch_batch = batch;
        self
    }

    /// Sets [`SyncConfig::fetch_pipeline`].
    pub fn with_fetch_pipeline(mut self, fetches: usize) -> Self {
        self.fetch_pipeline = fetches;
        self
    }
}

/// A request of `/darkswap/orderbook-sync/2.0.0`.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncRequest {
    /// A reconciliation message from the initiator.
    Reconcile(OrderbookReconcile),
    /// Items the initiator lacks.
    Fetch(OrderbookFetch),
    /// The book of one pair, or all of it, capped at [`SNAPSHOT_LIMIT`]
    /// orders (for light clients; reconciliation has no cap).
    Snapshot(OrderbookRequest),
}

/// A response of `/darkswap/orderbook-sync/2.0.0`.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncResponse {
    /// The answer to a [`SyncRequest::Reconcile`].
    Reconcile(OrderbookReconcile),
    /// The signed messages asked for by [`SyncRequest::Fetch`], or a
    /// snapshot.
    Items(OrderbookResponse),
}

/// How an exchange of `/darkswap/orderbook-sync/2.0.0` failed.
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
    /// Send this request to `peer`.
    Request {
        /// The peer.
        peer: PeerId,
        /// What to send.
        request: SyncRequest,
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
#[derive(Debug)]
pub struct OrderbookSync {
    config: SyncConfig,
    /// Connected peers on the orderbook topic.
    peers: BTreeSet<PeerId>,
    /// Reconciliations this node runs, by peer.
    sessions: HashMap<PeerId, Session>,
    /// Items asked for by any session while sessions run, so that two
    /// sessions do not fetch the same item twice. Emptied when the last
    /// session ends.
    claimed: HashSet<Id>,
    /// The book's items, rebuilt when the book changed.
    items: Option<BookItems>,
    /// The peer anti-entropy last reconciled with: the next one follows it.
    last_turn: Option<PeerId>,
    next_anti_entropy: Instant,
    out: VecDeque<SyncOutput>,
}

impl OrderbookSync {
    /// A sync that knows no peer yet; anti-entropy starts one interval
    /// after `now`.
    pub fn new(config: SyncConfig, now: Instant) -> Self {
        OrderbookSync {
            next_anti_entropy: now + config.anti_entropy_interval,
            config,
            peers: BTreeSet::new(),
            sessions: HashMap::new(),
            claimed: HashSet::new(),
            items: None,
            last_turn: None,
            out: VecDeque::new(),
        }
    }

    /// `peer` joined `topic`: on the orderbook topic, reconcile with it.
    pub fn handle_subscribed(&mut self, book: &Orderbook, peer: PeerId, topic: &str) {
        if topic == ORDERBOOK_TOPIC && self.peers.insert(peer) {
            self.start(book, peer);
        }
    }

    /// The last connection to `peer` closed: forget it, and any
    /// reconciliation with it.
    pub fn handle_disconnected(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
        self.end_session(peer);
    }

    /// When [`OrderbookSync::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_anti_entropy
    }

    /// Anti-entropy: when due, reconcile with the next peer in turn.
    pub fn handle_timeout(&mut self, book: &Orderbook, now: Instant) {
        if now < self.next_anti_entropy {
            return;
        }
        self.next_anti_entropy = now + self.config.anti_entropy_interval;
        let after = self.last_turn;
        let next = self
            .peers
            .iter()
            .filter(|p| !self.sessions.contains_key(*p))
            .find(|p| after.is_none_or(|a| **p > a))
            .or_else(|| self.peers.iter().find(|p| !self.sessions.contains_key(*p)))
            .copied();
        if let Some(peer) = next {
            self.last_turn = Some(peer);
            self.start(book, peer);
        }
    }

    /// The answer to `peer`'s request, or `None` when the request breaks
    /// the protocol (the peer is penalised; the shell drops the stream).
    pub fn handle_request(
        &mut self,
        book: &Orderbook,
        peer: PeerId,
        request: SyncRequest,
    ) -> Option<SyncResponse> {
        match request {
            SyncRequest::Reconcile(query) => {
                let items = self.items(book)?;
                let answer = Negentropy::owned(items.storage(), self.config.frame_size_limit)
                    .and_then(|mut n| n.reconcile(&query.message));
                match answer {
                    Ok(message) => Some(SyncResponse::Reconcile(OrderbookReconcile { message })),
                    Err(error) => {
                        tracing::debug!(%peer, %error, "malformed reconciliation message");
                        self.penalize(peer, PenaltyReason::ProtocolViolation);
                        None
                    }
                }
            }
            SyncRequest::Fetch(fetch) => {
                if fetch.items.len() > self.config.max_fetch {
                    tracing::debug!(%peer, items = fetch.items.len(), "fetch over the limit");
                    self.penalize(peer, PenaltyReason::ProtocolViolation);
                    return None;
                }
                let items = self.items(book)?;
                let mut answer = OrderbookResponse {
                    orders: Vec::with_capacity(fetch.items.len()),
                    ..OrderbookResponse::default()
                };
                for id in &fetch.items {
                    let Ok(id) = Id::from_slice(id) else {
                        self.penalize(peer, PenaltyReason::ProtocolViolation);
                        return None;
                    };
                    // An item this book no longer holds is simply left out:
                    // the order moved on, and the next round sees its new
                    // version.
                    if let Some(order) = items.order_of(&id) {
                        book.append_messages_of(&order, &mut answer);
                    }
                }
                Some(SyncResponse::Items(answer))
            }
            SyncRequest::Snapshot(request) => {
                let pair = match (
                    request.base.parse::<Asset>(),
                    request.quote.parse::<Asset>(),
                ) {
                    (Ok(base), Ok(quote)) => Some((base, quote)),
                    _ => None,
                };
                Some(SyncResponse::Items(book.snapshot(pair, SNAPSHOT_LIMIT)))
            }
        }
    }

    /// `peer` answered a request this node sent: go on with the
    /// reconciliation, or merge what it sent into `book` at `now` (unix
    /// seconds). A shell that would rather verify an answer's items off its
    /// event loop passes them to [`VerifiedItems::verify`] there, then to
    /// [`OrderbookSync::handle_verified`].
    pub fn handle_response(
        &mut self,
        book: &mut Orderbook,
        peer: PeerId,
        response: SyncResponse,
        weights: &PenaltyWeights,
        now: u64,
    ) {
        match response {
            SyncResponse::Items(items) => {
                self.handle_verified(book, peer, VerifiedItems::verify(items), weights, now);
            }
            SyncResponse::Reconcile(answer) => {
                let Some(session) = self.sessions.get_mut(&peer) else {
                    // The session ended (failed, or the peer left): the
                    // next anti-entropy round starts over.
                    return;
                };
                let step = session.handle_reconcile(&answer.message, &mut self.claimed);
                self.step(peer, step, weights);
            }
        }
    }

    /// `peer` answered a fetch (or a snapshot request) with `items`,
    /// verified: merge them into `book` at `now` (unix seconds) and go on
    /// with the reconciliation.
    pub fn handle_verified(
        &mut self,
        book: &mut Orderbook,
        peer: PeerId,
        items: VerifiedItems,
        weights: &PenaltyWeights,
        now: u64,
    ) {
        let Some(session) = self.sessions.get_mut(&peer) else {
            // A snapshot asked for by hand, or a session that ended: merge
            // what is signed anyway.
            let (changes, rejected) = merge_into(book, items, now, &mut self.out);
            self.report(peer, changes, rejected, 0, weights);
            return;
        };
        let (entries, bytes) = (items.len(), items.wire_bytes());
        let (changes, rejected) = merge_into(book, items, now, &mut self.out);
        let step = session.handle_items(entries, bytes, changes, rejected, &mut self.claimed);
        self.step(peer, step, weights);
    }

    /// A request this node sent to `peer` failed: the reconciliation with it
    /// ends (anti-entropy tries again later); a protocol violation is
    /// penalised.
    pub fn handle_outbound_failure(&mut self, peer: PeerId, failure: SyncFailure) {
        self.end_session(&peer);
        self.handle_inbound_failure(peer, failure);
    }

    /// A request from `peer` failed.
    pub fn handle_inbound_failure(&mut self, peer: PeerId, failure: SyncFailure) {
        if failure == SyncFailure::InvalidData {
            self.penalize(peer, PenaltyReason::ProtocolViolation);
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
        merge_into(
            book,
            VerifiedItems::verify(snapshot.clone()),
            now,
            &mut self.out,
        )
    }

    /// Whether a reconciliation with `peer` is running.
    pub fn is_syncing_with(&self, peer: &PeerId) -> bool {
        self.sessions.contains_key(peer)
    }

    /// The next thing the shell must do.
    pub fn poll_output(&mut self) -> Option<SyncOutput> {
        self.out.pop_front()
    }

    /// The book's items, rebuilt if the book changed since they were made.
    fn items(&mut self, book: &Orderbook) -> Option<BookItems> {
        if self.items.as_ref().is_none_or(|i| i.is_stale(book)) {
            match BookItems::of(book) {
                Ok(items) => self.items = Some(items),
                Err(error) => {
                    // Only a bug makes a sealed vector of our own items fail.
                    tracing::error!(%error, "cannot index the book for sync");
                    return None;
                }
            }
        }
        self.items.clone()
    }

    fn start(&mut self, book: &Orderbook, peer: PeerId) {
        if self.sessions.contains_key(&peer) || self.sessions.len() >= self.config.max_sessions {
            return;
        }
        let Some(items) = self.items(book) else {
            return;
        };
        match Session::start(items.storage(), &self.config) {
            Ok((session, message)) => {
                self.sessions.insert(peer, session);
                self.request(peer, SyncRequest::Reconcile(OrderbookReconcile { message }));
            }
            Err(error) => tracing::error!(%error, "cannot start a reconciliation"),
        }
    }

    fn step(&mut self, peer: PeerId, step: Step, weights: &PenaltyWeights) {
        match step {
            Step::Send(requests) => {
                for request in requests {
                    self.request(peer, request);
                }
            }
            Step::Done {
                changes,
                rejected,
                bytes,
            } => {
                self.end_session(&peer);
                self.report(peer, changes, rejected, bytes, weights);
            }
            Step::Violation => {
                self.end_session(&peer);
                self.penalize(peer, PenaltyReason::ProtocolViolation);
            }
        }
    }

    fn request(&mut self, peer: PeerId, request: SyncRequest) {
        self.out.push_back(SyncOutput::Request { peer, request });
    }

    fn end_session(&mut self, peer: &PeerId) {
        if let Some(session) = self.sessions.remove(peer) {
            // What it asked for and did not get, another session may fetch.
            for id in session.in_flight() {
                self.claimed.remove(id);
            }
        }
        if self.sessions.is_empty() {
            self.claimed.clear();
        }
    }

    fn report(
        &mut self,
        peer: PeerId,
        changes: usize,
        rejected: Vec<OrderbookError>,
        bytes: u64,
        weights: &PenaltyWeights,
    ) {
        let penalty = sync_penalty(&rejected, weights);
        tracing::debug!(%peer, changes, rejected = rejected.len(), bytes, "orderbook synced");
        self.out
            .push_back(SyncOutput::Event(NetworkEvent::OrderbookSynced {
                peer_id: peer,
                changes,
                rejected,
                bytes,
            }));
        if let Some(reason) = penalty {
            self.penalize(peer, reason);
        }
    }

    fn penalize(&mut self, peer: PeerId, reason: PenaltyReason) {
        self.out.push_back(SyncOutput::Penalize { peer, reason });
    }
}

/// Merges `items` into `book`, reporting each change on `out`.
fn merge_into(
    book: &mut Orderbook,
    items: VerifiedItems,
    now: u64,
    out: &mut VecDeque<SyncOutput>,
) -> (usize, Vec<OrderbookError>) {
    let (changes, rejected) = book.apply_items(items, now);
    let n = changes.len();
    out.extend(
        changes
            .into_iter()
            .map(|c| SyncOutput::Event(NetworkEvent::OrderbookChanged(c))),
    );
    (n, rejected)
}

#[cfg(test)]
mod tests;
