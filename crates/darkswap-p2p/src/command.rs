//! What handles ask of the swarm task, grouped by concern. Every command
//! that answers carries a oneshot for the reply; the handle bounds the wait.

use std::time::Duration;

use darkswap_core::{
    auth::{AuthError, AuthToken, AuthorizationLevel, Challenge, ChallengeResponse},
    orderbook::{Book, OrderbookError},
    own_orders::{OrderChanges, OwnOrderError},
    proto::{
        Asset, NewOrder, Order, OrderCancel, OrderId, OrderUpdate, OrderbookResponse, SignedOrder,
    },
    relay_keeper::RelayStatus,
    relay_pool::RelayPoolStats,
    reputation::{BannedPeer, PeerReputation, Penalty, PenaltyReason},
};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

use crate::{
    error::{Error, TradeCommandError},
    network::{PeerInfo, TradeInfo},
};
use darkswap_core::trade::TradeId;

type Reply<T> = oneshot::Sender<T>;

#[derive(Debug)]
pub(crate) enum Command {
    Swarm(SwarmCommand),
    Orderbook(OrderbookCommand),
    Auth(AuthCommand),
    Reputation(ReputationCommand),
    Trade(TradeCommand),
    Relay(RelayCommand),
    Shutdown { reply: Reply<()> },
}

macro_rules! concern {
    ($($variant:ident($ty:ident)),*) => {
        $(impl From<$ty> for Command {
            fn from(c: $ty) -> Self {
                Command::$variant(c)
            }
        })*
    };
}
concern!(
    Swarm(SwarmCommand),
    Orderbook(OrderbookCommand),
    Auth(AuthCommand),
    Reputation(ReputationCommand),
    Trade(TradeCommand),
    Relay(RelayCommand)
);

/// Trades: take an order, cancel, list.
#[derive(Debug)]
pub(crate) enum TradeCommand {
    Take {
        order_id: OrderId,
        amount: u64,
        reply: Reply<Result<TradeId, TradeCommandError>>,
    },
    Cancel {
        trade_id: TradeId,
        reply: Reply<Result<(), TradeCommandError>>,
    },
    List {
        reply: Reply<Vec<TradeInfo>>,
    },
}

/// Connections, listeners, topics and the DHT.
#[derive(Debug)]
pub(crate) enum SwarmCommand {
    Listen {
        addr: Multiaddr,
        reply: Reply<Result<Multiaddr, Error>>,
    },
    Dial {
        addr: Multiaddr,
        reply: Reply<Result<PeerId, Error>>,
    },
    Subscribe {
        topic: String,
    },
    Unsubscribe {
        topic: String,
    },
    Publish {
        topic: String,
        data: Vec<u8>,
        reply: Reply<Result<(), Error>>,
    },
    ConnectedPeers {
        reply: Reply<Vec<PeerId>>,
    },
    Peers {
        reply: Reply<Vec<PeerInfo>>,
    },
    ListenAddrs {
        reply: Reply<Vec<Multiaddr>>,
    },
    Bandwidth {
        reply: Reply<crate::Bandwidth>,
    },
    ConnectionStats {
        reply: Reply<crate::metrics::ConnectionStats>,
    },
    AddExternalAddress {
        addr: Multiaddr,
        reply: Reply<()>,
    },
    FindPeer {
        peer: PeerId,
        reply: Reply<Result<Vec<Multiaddr>, Error>>,
    },
}

/// The relay pool.
#[derive(Debug)]
pub(crate) enum RelayCommand {
    Status {
        reply: Reply<Vec<RelayStatus>>,
    },
    Stats {
        reply: Reply<RelayPoolStats>,
    },
    ConnectToBest {
        reply: Reply<Option<PeerId>>,
    },
    Check {
        reply: Reply<()>,
    },
    /// `peer`'s circuit addresses, best relay first: those the node knows
    /// (Kademlia's routing table) and `found` (a DHT look-up's).
    CircuitsOf {
        peer: PeerId,
        found: Vec<Multiaddr>,
        reply: Reply<Vec<Multiaddr>>,
    },
}

/// The book and this node's own orders.
#[derive(Debug)]
pub(crate) enum OrderbookCommand {
    Create {
        order: Box<NewOrder>,
        reply: Reply<Result<(Order, SignedOrder), OwnOrderError>>,
    },
    Cancel {
        id: OrderId,
        reply: Reply<Result<OrderCancel, OwnOrderError>>,
    },
    Update {
        id: OrderId,
        changes: OrderChanges,
        reply: Reply<Result<(Order, OrderUpdate), OwnOrderError>>,
    },
    Restore {
        orders: Vec<SignedOrder>,
        reply: Reply<Vec<Result<Order, OwnOrderError>>>,
    },
    Book {
        base: Asset,
        quote: Asset,
        reply: Reply<Book>,
    },
    OwnOrders {
        reply: Reply<Vec<(Order, SignedOrder)>>,
    },
    Export {
        reply: Reply<OrderbookResponse>,
    },
    Import {
        book: Box<OrderbookResponse>,
        reply: Reply<(usize, Vec<OrderbookError>)>,
    },
}

/// Authentication of relays and peers.
#[derive(Debug)]
pub(crate) enum AuthCommand {
    GenerateRelayChallenge {
        relay: PeerId,
        reply: Reply<Result<Challenge, AuthError>>,
    },
    VerifyRelayChallengeResponse {
        relay: PeerId,
        response: Box<ChallengeResponse>,
        reply: Reply<Result<AuthToken, AuthError>>,
    },
    AuthenticateRelay {
        relay: PeerId,
        token: Box<AuthToken>,
        reply: Reply<Result<AuthorizationLevel, AuthError>>,
    },
    AuthenticatePeer {
        peer: PeerId,
        reply: Reply<Result<AuthToken, AuthError>>,
    },
    PeerLevel {
        peer: PeerId,
        reply: Reply<AuthorizationLevel>,
    },
}

/// Scores and bans.
#[derive(Debug)]
pub(crate) enum ReputationCommand {
    Report {
        peer: PeerId,
        reason: PenaltyReason,
        reply: Reply<Option<Penalty>>,
    },
    Ban {
        peer: PeerId,
        duration: Option<Duration>,
        reply: Reply<BannedPeer>,
    },
    Unban {
        peer: PeerId,
        reply: Reply<bool>,
    },
    Banned {
        reply: Reply<Vec<BannedPeer>>,
    },
    Peer {
        peer: PeerId,
        reply: Reply<PeerReputation>,
    },
    Import {
        bans: Vec<BannedPeer>,
        reply: Reply<usize>,
    },
}
