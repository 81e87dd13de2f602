//! Why an operation of the SDK failed: one error enum per facet of the
//! handle, all sharing [`CommandError`] for "the swarm task did not answer".

use std::{path::PathBuf, time::Duration};

use darkswap_core::{
    auth::AuthError, gossip::ValidationError, orderbook::OrderbookError, own_orders::OwnOrderError,
    proto::OrderId,
};
use libp2p::{Multiaddr, PeerId};

/// A command did not reach the swarm task, or got no answer in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The swarm task has stopped (after `shutdown`, or it failed).
    #[error("the network has shut down")]
    Shutdown,
    /// The operation did not finish within the configured timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The command queue to the swarm task is full.
    #[error("the network is busy: command queue full")]
    Busy,
}

/// Why a WebRTC data-channel operation failed.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebRtcCommandError {
    /// `webrtc_signaling` is off, or names no relay.
    #[error("WebRTC data channels are off (no signaling relay configured)")]
    Disabled,
    /// No signaling relay took our registration in time.
    #[error("not registered on any signaling relay yet")]
    NotRegistered,
    /// No signaling relay knows the peer.
    #[error("{0} is not registered on any of our signaling relays")]
    UnknownPeer(PeerId),
    /// There is no open channel with the peer (it closed).
    #[error("no open WebRTC channel with {0}")]
    ChannelClosed(PeerId),
    /// The WebRTC stack failed.
    #[error(transparent)]
    WebRtc(#[from] darkswap_webrtc::WebRtcError),
    /// The network has shut down, or the operation timed out.
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Why starting a node, or one of its network operations (listen, dial,
/// subscribe, publish, find a peer), failed.
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
    /// The message breaks the rules of the topic it is published on.
    #[error("message refused: {0}")]
    InvalidMessage(ValidationError),
    /// A Kademlia lookup failed or found nothing.
    #[error("peer {0} not found")]
    PeerNotFound(PeerId),
    /// No circuit address of the peer is known (it holds no reservation
    /// the DHT or identify told of), or none could be dialled.
    #[error("no relay path to {0}")]
    NoRelayPath(PeerId),
    /// The feature is turned off in the configuration.
    #[error("{0} is disabled in the configuration")]
    Disabled(&'static str),
    /// The swarm task did not take or answer the command.
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Why an operation of [`OrderbookHandle`](crate::OrderbookHandle) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderbookCommandError {
    /// The book refused it (invalid terms, full, cancelled before, ...).
    #[error("order refused: {0}")]
    Refused(#[from] OrderbookError),
    /// The order is not one of this node's own (or no longer open).
    #[error("order {0} is not one of this node's orders")]
    NotOwnOrder(OrderId),
    /// An update asked for an expiry after the one the order was signed
    /// with (see [`OrderbookHandle::update`](crate::OrderbookHandle::update)).
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
    /// The swarm task did not take or answer the command.
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl From<OwnOrderError> for OrderbookCommandError {
    fn from(e: OwnOrderError) -> Self {
        match e {
            OwnOrderError::Refused(e) => OrderbookCommandError::Refused(e),
            OwnOrderError::NotOwnOrder(id) => OrderbookCommandError::NotOwnOrder(id),
            OwnOrderError::ExpiryBeyondSigned { requested, signed } => {
                OrderbookCommandError::ExpiryBeyondSigned { requested, signed }
            }
        }
    }
}

/// Why an operation of [`TradesHandle`](crate::TradesHandle) failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TradeCommandError {
    /// The node was built without [`Trading`](crate::Trading).
    #[error("this node does not trade")]
    NotTrading,
    /// The order is not in the node's book.
    #[error("order {0} is not in the book")]
    UnknownOrder(OrderId),
    /// The order is this node's own.
    #[error("order {0} is this node's own")]
    OwnOrder(OrderId),
    /// The negotiation refused it (amount, wallet, a signed trade, ...).
    #[error(transparent)]
    Trade(darkswap_trade::negotiation::TradeError),
    /// The OS gave no randomness for a trade id.
    #[error("no randomness: {0}")]
    Randomness(String),
    /// The swarm task did not take or answer the command.
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Why an operation of [`AuthHandle`](crate::AuthHandle) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthCommandError {
    /// Authentication or authorization failed.
    #[error("authentication: {0}")]
    Auth(#[from] AuthError),
    /// The swarm task did not take or answer the command.
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Why a `/perf/1.0.0` measurement failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PerfError {
    /// The node runs without `enable_perf`.
    #[error("perf is disabled in the configuration")]
    Disabled,
    /// The stream could not be opened (the peer does not serve perf, or is
    /// not connected).
    #[error("cannot open a perf stream: {0}")]
    Open(String),
    /// Reading or writing the stream failed.
    #[error("perf stream: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent fewer or more bytes than asked for.
    #[error("asked for {asked} bytes, got {got}")]
    WrongLength {
        /// Bytes asked for.
        asked: u64,
        /// Bytes received.
        got: u64,
    },
}
