use std::path::PathBuf;

use libp2p::{Multiaddr, PeerId};

/// Errors of the DarkSwap P2P SDK.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The identity key file could not be read, parsed or created.
    #[error("identity key file {path}: {reason}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A string is not a valid multiaddr.
    #[error("invalid multiaddr {addr:?}: {reason}")]
    InvalidAddress {
        /// The input.
        addr: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A relay or bootstrap address lacks its `/p2p/<peer id>` suffix.
    #[error("address {0} must end in /p2p/<peer id>")]
    MissingPeerId(Multiaddr),
    /// The transport or behaviour stack could not be built.
    #[error("building the libp2p stack failed: {0}")]
    Build(String),
    /// Listening on an address failed.
    #[error("listening on {addr} failed: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// Dialling failed.
    #[error("dialling {target} failed: {reason}")]
    Dial {
        /// The peer or address dialled.
        target: String,
        /// Why.
        reason: String,
    },
    /// A topic name is empty or too long.
    #[error("invalid topic {0:?}")]
    InvalidTopic(String),
    /// Subscribing or publishing on gossipsub failed.
    #[error("gossipsub: {0}")]
    Gossipsub(String),
    /// The message is larger than the configured limit.
    #[error("message of {size} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// Encoded size.
        size: usize,
        /// Limit in force.
        max: usize,
    },
    /// A Kademlia lookup failed or found nothing.
    #[error("peer {0} not found")]
    PeerNotFound(PeerId),
    /// The feature is turned off in the configuration.
    #[error("{0} is disabled in the configuration")]
    Disabled(&'static str),
    /// The message breaks the rules of the topic it is published on.
    #[error("message refused: {0}")]
    InvalidMessage(crate::ValidationError),
    /// An order operation was refused.
    #[error("order refused: {0}")]
    Order(#[from] crate::OrderbookError),
    /// The order is not one of this node's own.
    #[error("order {0} is not one of this node's orders")]
    NotOwnOrder(darkswap_proto::OrderId),
    /// A perf measurement failed.
    #[error("perf: {0}")]
    Perf(String),
    /// The operation did not finish within the configured timeout.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The swarm task has stopped (after `shutdown`, or it failed).
    #[error("the network has shut down")]
    Shutdown,
    /// Authentication or authorization failed.
    #[error("authentication: {0}")]
    Auth(#[from] crate::auth::AuthError),
    /// The command queue to the swarm task is full.
    #[error("the network is busy: command queue full")]
    Busy,
}
