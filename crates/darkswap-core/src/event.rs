//! What a node reports: one [`NetworkEvent`] per thing that happened, in
//! the order the node saw them.

use std::fmt;

use multiaddr::Multiaddr;
use web_time::SystemTime;

use crate::{
    PeerId,
    auth::{AuthError, AuthorizationLevel},
    gossip::ValidationError,
    orderbook::{OrderbookChange, OrderbookError},
    proto::Message,
    relay_discovery::RelaySource,
    reputation::{BanReason, PenaltyReason},
};

/// Id of one relay reservation made by this node, unique per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservationId(pub(crate) u64);

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Reachability of this node as AutoNAT sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NatStatus {
    /// Not yet probed, or not enough confidence.
    Unknown,
    /// Reachable from outside at this address.
    Public(Multiaddr),
    /// Not reachable from outside: relays and hole punching are needed.
    Private,
}

/// What happens on the network, in the order the swarm task saw it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum NetworkEvent {
    /// The first connection to a peer was established.
    PeerConnected(PeerId),
    /// The last connection to a peer closed.
    PeerDisconnected(PeerId),
    /// A valid DarkSwap message arrived on a subscribed topic.
    MessageReceived {
        /// The author, as authenticated by gossipsub's message signature.
        peer_id: PeerId,
        /// The topic it was published on.
        topic: String,
        /// The decoded, validated message.
        message: Message,
    },
    /// A gossip message failed validation; it was dropped, not forwarded,
    /// and the peer that sent it was scored down.
    InvalidMessage {
        /// The peer that forwarded it to us.
        peer_id: PeerId,
        /// The topic.
        topic: String,
        /// Why it was rejected.
        error: ValidationError,
    },
    /// A peer subscribed to a topic (so publishing there now reaches it).
    PeerSubscribed {
        /// The peer.
        peer_id: PeerId,
        /// The topic.
        topic: String,
    },
    /// A relay accepted a reservation: this node is reachable through its
    /// `/p2p-circuit` address. Renewals do not repeat this event.
    RelayReserved {
        /// The relay.
        relay_peer_id: PeerId,
        /// Id of this reservation.
        reservation_id: ReservationId,
    },
    /// A reservation was lost (the relay went away or refused renewal). The
    /// node re-makes it with backoff and reports `RelayReserved` again.
    RelayReservationLost {
        /// The relay.
        relay_peer_id: PeerId,
    },
    /// A reservation could not be made: the relay refused it, could not
    /// be reached, or did not answer in time. The node tries the next best
    /// relay, and this one again after a cool-down.
    RelayReservationFailed {
        /// The relay.
        relay_peer_id: PeerId,
        /// Why, in words.
        reason: String,
    },
    /// A relay became known (see `darkswap_core::relay_discovery`).
    RelayDiscovered {
        /// The relay.
        relay_peer_id: PeerId,
        /// How it was found.
        source: RelaySource,
    },
    /// A relay was forgotten: not heard of within its time to live, or
    /// pushed out by better ones.
    RelayForgotten {
        /// The relay.
        relay_peer_id: PeerId,
    },
    /// A relay moved in the ranking (0 is the best), at a periodic check.
    RelayRankChanged {
        /// The relay.
        relay_peer_id: PeerId,
        /// Its rank before.
        previous: usize,
        /// Its rank now.
        rank: usize,
        /// Its score now (see `RelayInfo::score`).
        score: f64,
    },
    /// The node reserves on `new` in place of `old`, which failed or
    /// scored far worse.
    RelayReplaced {
        /// The relay let go.
        old: PeerId,
        /// The relay chosen instead.
        new: PeerId,
    },
    /// A relay proved itself over `/darkswap/auth/1.0.0` (or is trusted)
    /// at a level high enough for `require_relay_auth`; the reservation
    /// request follows.
    RelayAuthenticated {
        /// The relay.
        relay_peer_id: PeerId,
        /// The level it has.
        level: AuthorizationLevel,
    },
    /// A relay failed authentication or its level is too low: no
    /// reservation is asked of it. Retried with backoff.
    RelayAuthFailed {
        /// The relay.
        relay_peer_id: PeerId,
        /// Why.
        error: AuthError,
    },
    /// A connection through a relay circuit was established, in either direction.
    ConnectedThroughRelay {
        /// The relay carrying the circuit.
        relay_peer_id: PeerId,
        /// The peer at the other end of the circuit.
        dst_peer_id: PeerId,
    },
    /// DCUtR upgraded a relayed connection to a direct one.
    HolePunchSucceeded {
        /// The peer now directly connected.
        peer_id: PeerId,
    },
    /// A DCUtR hole punch failed; the relayed connection stays in use.
    HolePunchFailed {
        /// The peer.
        peer_id: PeerId,
        /// Why.
        error: String,
    },
    /// The node listens on a new address.
    NewListenAddr {
        /// The address, without the `/p2p/` suffix.
        address: Multiaddr,
    },
    /// The node no longer listens on an address.
    ExpiredListenAddr {
        /// The address.
        address: Multiaddr,
    },
    /// Kademlia added or updated a peer in its routing table.
    RoutingUpdated {
        /// The peer.
        peer_id: PeerId,
    },
    /// AutoNAT changed its view of this node's reachability.
    NatStatusChanged {
        /// The new status.
        status: NatStatus,
    },
    /// The replicated orderbook changed.
    OrderbookChanged(OrderbookChange),
    /// A valid, signed order message was refused by the orderbook rules
    /// (a cancel by someone other than the maker, a stale update, ...).
    OrderbookRejected {
        /// The peer that sent it (for gossip, the forwarder).
        peer_id: PeerId,
        /// Why.
        error: OrderbookError,
    },
    /// A trade of this node changed state.
    TradeUpdated {
        /// The trade.
        trade_id: crate::trade::TradeId,
        /// The order it fills.
        order_id: darkswap_proto::OrderId,
        /// The counterparty.
        peer_id: PeerId,
        /// This node's side.
        role: crate::trade::Role,
        /// The new state.
        state: crate::trade::TradeState,
    },
    /// One of this node's orders was filled by `amount` base units in a
    /// completed trade.
    OrderFilled {
        /// The order.
        order_id: darkswap_proto::OrderId,
        /// Base units filled.
        amount: u64,
        /// Base units the order still offers (0: it is filled and
        /// cancelled).
        remaining: u64,
        /// The fill notice published on the trade topic: the maker's
        /// signed update with the remaining amount, or its cancel when
        /// nothing remains. `None` when none could be signed (the order
        /// had expired): the order leaves the books with its expiry.
        notice: Option<Message>,
    },
    /// A peer's orderbook snapshot was merged.
    OrderbookSynced {
        /// The peer that answered.
        peer_id: PeerId,
        /// Changes the snapshot brought.
        changes: usize,
        /// Why each refused entry of the snapshot was refused.
        rejected: Vec<OrderbookError>,
        /// Bytes the reconciliation exchanged, both directions (range
        /// messages, fetches and the items fetched).
        bytes: u64,
    },
    /// The event queue was full and this many events were dropped since the
    /// last one delivered. Read events faster or enlarge `event_buffer`.
    /// Only events that report what can be asked again are dropped (a
    /// book change: ask for the book); `OrderFilled`, `TradeUpdated`,
    /// `PeerBanned` and `PeerUnbanned` wait for room instead.
    EventsDropped {
        /// Events lost.
        count: u64,
    },
    /// Gossip this node could not send: `messages` lost towards `peer` (or
    /// towards every peer when `None`). The book repairs what is lost by
    /// anti-entropy; this says it happened, and why.
    GossipDropped {
        /// The peer the messages were for, if one.
        peer: Option<PeerId>,
        /// Messages dropped.
        messages: u64,
        /// Why.
        reason: GossipDropReason,
    },
    /// A peer lost reputation for misbehaving (see [`ReputationConfig`](crate::reputation::ReputationConfig)).
    PeerPenalized {
        /// The peer.
        peer_id: PeerId,
        /// What it did.
        reason: PenaltyReason,
        /// Its score now (0 is a clean record).
        score: f64,
    },
    /// A peer was banned: its connections are closed and new ones, in either
    /// direction, are refused until `until`.
    PeerBanned {
        /// The peer.
        peer_id: PeerId,
        /// When the ban ends; `None` if only lifting it by hand ends it.
        until: Option<SystemTime>,
        /// Why.
        reason: BanReason,
    },
    /// A ban ended (it expired or was lifted): the peer may connect again.
    PeerUnbanned {
        /// The peer.
        peer_id: PeerId,
    },
}

/// Why gossip was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GossipDropReason {
    /// The peer did not read fast enough: its send queue was full, or a
    /// message waited there longer than gossipsub allows (5 s, for what this
    /// node publishes and for what it forwards).
    SlowPeer,
    /// Publishing failed for every peer (all their send queues were full).
    PublishFailed,
}

impl GossipDropReason {
    /// A short, stable label for metrics: `slow_peer` or `publish_failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            GossipDropReason::SlowPeer => "slow_peer",
            GossipDropReason::PublishFailed => "publish_failed",
        }
    }
}
