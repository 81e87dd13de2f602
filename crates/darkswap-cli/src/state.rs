//! The one owner of the daemon's state.
//!
//! One task, the [`Owner`], holds the database ([`crate::store::Store`])
//! and the node's event stream. It applies what the node reports (book
//! changes, expired own orders, bans beginning and ending) and what the API
//! asks (create, update or cancel an own order, ban or unban a peer). HTTP handlers
//! never touch the database: they send a [`Command`](handle::Command)
//! through a [`Handle`] and wait, with a deadline, for the answer, which
//! comes once what the command changed is on disk.
//!
//! What to write and when is decided by the [`Journal`](journal::Journal),
//! a sans-IO state machine with its own unit tests; the owner is the glue
//! that performs it.
//!
//! - `handle.rs`: [`Handle`], its commands, their queue and deadline.
//! - `owner.rs`: the task.
//! - `journal.rs`: the write policy.

mod handle;
mod journal;
mod owner;

use std::time::Duration;

use darkswap_p2p::{CommandError, OrderbookCommandError};
use darkswap_proto::OrderError;

use crate::store::StoreError;

pub use handle::{Handle, OrderTerms, UpdateTerms};
pub use owner::Owner;

/// Why the owner could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node refused or failed an order operation.
    #[error(transparent)]
    Orderbook(#[from] OrderbookCommandError),
    /// The node did not take or answer a command.
    #[error(transparent)]
    Network(#[from] CommandError),
    /// The node failed to shut down cleanly.
    #[error(transparent)]
    Shutdown(#[from] darkswap_p2p::Error),
    /// The database refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A write to the database panicked and took the connection with it.
    #[error("store: the database connection was lost")]
    StoreLost,
    /// The cancel the node published does not verify (a bug, not input):
    /// it cannot be kept as a tombstone.
    #[error("the published cancel does not verify: {0}")]
    Cancel(#[from] OrderError),
    /// No answer within the deadline, queueing included.
    #[error("the daemon did not answer within {0:?}")]
    Timeout(Duration),
    /// The owner has stopped: the daemon is shutting down.
    #[error("the daemon is shutting down")]
    Stopped,
}
