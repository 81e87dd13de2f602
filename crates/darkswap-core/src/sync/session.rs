//! One reconciliation this node runs with one peer, as initiator: rounds of
//! range messages until it knows which items it lacks, then fetches of
//! those items in batches, several in flight at once (while one answer is
//! verified, the next ones travel).

use std::collections::{HashSet, VecDeque};

use darkswap_proto::{OrderbookFetch, OrderbookReconcile};
use negentropy::{Error, Id, Negentropy};
use prost::Message as _;

use crate::{
    orderbook::OrderbookError,
    sync::{SyncConfig, SyncRequest, items::SharedStorage},
};

/// What the session wants next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Send these requests to the peer (none: wait for the answers in
    /// flight).
    Send(Vec<SyncRequest>),
    /// The reconciliation is over.
    Done {
        /// Changes the fetched items made to the book.
        changes: usize,
        /// Why each refused message was refused.
        rejected: Vec<OrderbookError>,
        /// Bytes exchanged, both directions.
        bytes: u64,
    },
    /// The peer broke the protocol; the session is over.
    Violation,
}

#[derive(Debug)]
enum Phase {
    /// Exchanging range messages.
    Reconciling { rounds: u32 },
    /// Fetching the items found missing, `in_flight` fetches unanswered.
    Fetching { in_flight: usize },
}

/// See the module docs.
pub(crate) struct Session {
    negentropy: Negentropy<'static, SharedStorage>,
    phase: Phase,
    /// Items the peer holds and this node lacks, not fetched yet.
    need: VecDeque<Id>,
    max_rounds: u32,
    max_need: usize,
    fetch_batch: usize,
    fetch_pipeline: usize,
    /// Every item asked for (answers are not matched to their fetch): what
    /// other sessions may fetch if this one ends early.
    asked: Vec<Id>,
    changes: usize,
    rejected: Vec<OrderbookError>,
    bytes: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("phase", &self.phase)
            .field("need", &self.need.len())
            .field("changes", &self.changes)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A reconciliation over `storage` (this node's items) and its first
    /// message.
    pub(crate) fn start(
        storage: SharedStorage,
        config: &SyncConfig,
    ) -> Result<(Self, Vec<u8>), Error> {
        let mut negentropy = Negentropy::owned(storage, config.frame_size_limit)?;
        let first = negentropy.initiate()?;
        let session = Session {
            negentropy,
            phase: Phase::Reconciling { rounds: 0 },
            need: VecDeque::new(),
            max_rounds: config.max_rounds,
            max_need: config.max_need,
            fetch_batch: config.fetch_batch.max(1),
            fetch_pipeline: config.fetch_pipeline.max(1),
            asked: Vec::new(),
            changes: 0,
            rejected: Vec::new(),
            bytes: first.len() as u64,
        };
        Ok((session, first))
    }

    /// The peer answered a range message. `claimed` holds the items every
    /// running session has asked for already.
    pub(crate) fn handle_reconcile(&mut self, answer: &[u8], claimed: &mut HashSet<Id>) -> Step {
        let Phase::Reconciling { rounds } = &mut self.phase else {
            // A range message where items were asked for.
            return Step::Violation;
        };
        *rounds += 1;
        self.bytes += answer.len() as u64;
        // What this node has and the peer lacks, the peer fetches when it
        // reconciles in turn: sync is pull only.
        let mut have = Vec::new();
        let mut need = Vec::new();
        let next = match self
            .negentropy
            .reconcile_with_ids(answer, &mut have, &mut need)
        {
            Ok(next) => next,
            Err(error) => {
                tracing::debug!(%error, "malformed reconciliation answer");
                return Step::Violation;
            }
        };
        let room = self.max_need.saturating_sub(self.need.len());
        if need.len() > room {
            tracing::warn!(
                lacking = self.need.len() + need.len(),
                max = self.max_need,
                "a peer holds more than this node fetches in one reconciliation"
            );
        }
        self.need.extend(need.into_iter().take(room));
        match next {
            Some(message) if *rounds < self.max_rounds => {
                self.bytes += message.len() as u64;
                Step::Send(vec![SyncRequest::Reconcile(OrderbookReconcile { message })])
            }
            Some(_) => {
                tracing::debug!(
                    rounds = *rounds,
                    "reconciliation stopped at its round limit"
                );
                self.start_fetching(claimed)
            }
            None => self.start_fetching(claimed),
        }
    }

    /// The peer answered one of the fetches in flight with `entries`
    /// messages in `bytes`, which made `changes` to the book and had
    /// `rejected` refused. `claimed` holds the items every running session
    /// has asked for already.
    pub(crate) fn handle_items(
        &mut self,
        entries: usize,
        bytes: u64,
        changes: usize,
        rejected: Vec<OrderbookError>,
        claimed: &mut HashSet<Id>,
    ) -> Step {
        let Phase::Fetching { in_flight } = &mut self.phase else {
            return Step::Violation;
        };
        // A peer answers with at most two messages an item (the order and
        // its update, or the cancel), and only what was asked.
        if *in_flight == 0 || entries > 2 * self.fetch_batch {
            return Step::Violation;
        }
        *in_flight -= 1;
        self.bytes += bytes;
        self.changes += changes;
        self.rejected.extend(rejected);
        self.fill_pipeline(claimed)
    }

    /// The items asked for and not received yet: free for another session
    /// to fetch if this one ends now.
    pub(crate) fn in_flight(&self) -> &[Id] {
        &self.asked
    }

    fn start_fetching(&mut self, claimed: &mut HashSet<Id>) -> Step {
        self.phase = Phase::Fetching { in_flight: 0 };
        self.fill_pipeline(claimed)
    }

    /// Fetches of missing items no session has asked for yet (claiming
    /// them), up to the pipeline's depth, or the end once nothing is left
    /// to ask and every answer came.
    fn fill_pipeline(&mut self, claimed: &mut HashSet<Id>) -> Step {
        let Phase::Fetching { in_flight } = &mut self.phase else {
            return Step::Violation;
        };
        let mut requests = Vec::new();
        while *in_flight < self.fetch_pipeline {
            let mut batch = Vec::with_capacity(self.fetch_batch);
            while batch.len() < self.fetch_batch {
                match self.need.pop_front() {
                    Some(id) if !claimed.insert(id) => {}
                    Some(id) => batch.push(id),
                    None => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            let fetch = OrderbookFetch {
                items: batch.iter().map(|id| id.to_vec()).collect(),
            };
            self.bytes += fetch.encoded_len() as u64;
            self.asked.extend(batch);
            *in_flight += 1;
            requests.push(SyncRequest::Fetch(fetch));
        }
        if requests.is_empty() && *in_flight == 0 {
            return Step::Done {
                changes: self.changes,
                rejected: std::mem::take(&mut self.rejected),
                bytes: self.bytes,
            };
        }
        Step::Send(requests)
    }
}
