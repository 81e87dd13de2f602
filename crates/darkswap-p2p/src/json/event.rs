//! [`Event`]: a node event as JSON.

use serde::{Deserialize, Serialize};

use super::{Order, role_name, unix_secs};
use crate::{NatStatus, NetworkEvent, OrderbookChange};

/// One event of the stream; `type` names the variant in snake case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The snapshot a subscriber gets first, so it never misses the state.
    Hello {
        /// This node's peer id.
        peer_id: String,
        /// Its relays and whether each holds a reservation.
        relays: Vec<HelloRelay>,
    },
    /// The first connection to a peer opened.
    PeerConnected {
        /// The peer.
        peer_id: String,
    },
    /// A peer said it takes a gossip topic (it then gets what this node
    /// publishes there).
    PeerSubscribed {
        /// The peer.
        peer_id: String,
        /// The topic.
        topic: String,
    },
    /// The last connection to a peer closed.
    PeerDisconnected {
        /// The peer.
        peer_id: String,
    },
    /// A new order entered the book.
    OrderAdded {
        /// The order.
        order: Order,
    },
    /// An order's terms changed.
    OrderUpdated {
        /// The order as it now stands.
        order: Order,
    },
    /// A maker cancelled an order.
    OrderCancelled {
        /// Hex order id.
        id: String,
        /// Its maker.
        maker: String,
    },
    /// Orders expired or were not re-announced by their makers in time.
    OrdersExpired {
        /// Hex order ids.
        ids: Vec<String>,
    },
    /// A relay became known to the relay pool.
    RelayDiscovered {
        /// The relay.
        relay_peer_id: String,
        /// How: `configured`, `dht`, `mdns` or `identify`.
        source: String,
    },
    /// A held reservation was lost (the relay went away or refused).
    RelayLost {
        /// The relay.
        relay_peer_id: String,
    },
    /// A reservation could not be made on a relay.
    RelayFailed {
        /// The relay.
        relay_peer_id: String,
        /// Why.
        reason: String,
    },
    /// The pool reserves on `new` in place of `old`.
    RelayReplaced {
        /// The relay let go.
        old: String,
        /// The relay chosen instead.
        new: String,
    },
    /// A relay moved in the ranking (0 is the best).
    RelayRankChanged {
        /// The relay.
        relay_peer_id: String,
        /// Its rank before.
        previous: usize,
        /// Its rank now.
        rank: usize,
        /// Its score now, 0 to 100.
        score: f64,
    },
    /// A relay accepted a reservation.
    RelayReserved {
        /// The relay.
        relay_peer_id: String,
        /// The reservation's id, unique per node.
        reservation_id: String,
    },
    /// A gossip message failed validation.
    InvalidMessage {
        /// The peer that forwarded it.
        peer_id: String,
        /// The topic.
        topic: String,
        /// Why.
        error: String,
    },
    /// A valid order message was refused by the book's rules.
    OrderRejected {
        /// The peer that sent it.
        peer_id: String,
        /// Why.
        error: String,
    },
    /// A peer lost reputation.
    PeerPenalized {
        /// The peer.
        peer_id: String,
        /// What it did, e.g. `invalid_signature`.
        reason: String,
        /// Its score now.
        score: f64,
    },
    /// A peer was banned.
    PeerBanned {
        /// The peer.
        peer_id: String,
        /// Unix seconds when it ends; `null` until lifted by hand.
        until: Option<u64>,
        /// Why.
        reason: String,
    },
    /// A ban ended.
    PeerUnbanned {
        /// The peer.
        peer_id: String,
    },
    /// A trade of this node moved to its next state (see
    /// [`super::Trade`] for the states).
    TradeUpdated {
        /// Hex trade id.
        trade_id: String,
        /// The order it fills.
        order_id: String,
        /// The counterparty.
        peer_id: String,
        /// `maker` or `taker`.
        role: String,
        /// The new state.
        state: String,
        /// What ended it, for an ended trade.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A completed trade filled one of this node's orders; its fill notice
    /// (an update, or the cancel when nothing remains) is published.
    OrderFilled {
        /// Hex order id.
        order_id: String,
        /// Base units filled.
        amount: u64,
        /// Base units the order still offers.
        remaining: u64,
    },
    /// A hole punch turned a relayed link to the peer into a direct one.
    HolePunchSucceeded {
        /// The peer now reached directly.
        peer_id: String,
    },
    /// A hole punch to the peer failed; the relayed link stays in use.
    HolePunchFailed {
        /// The peer.
        peer_id: String,
        /// Why.
        error: String,
    },
    /// AutoNAT's verdict on this node's reachability changed.
    NatStatus {
        /// `public`, `private` or `unknown`.
        status: String,
        /// The address found reachable, when public.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    /// Any other node event, in its debug form.
    Network {
        /// The event.
        event: String,
    },
    /// The daemon wrote its replica of the book to its database.
    BookSaved {
        /// Orders in it.
        orders: usize,
    },
    /// The daemon wrote the bans in force to its database.
    BansSaved {
        /// Bans in it.
        bans: usize,
    },
}

/// A relay in [`Event::Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloRelay {
    /// The relay's peer id.
    pub peer_id: String,
    /// Whether a reservation is held now.
    pub reserved: bool,
}

impl From<&NetworkEvent> for Event {
    fn from(event: &NetworkEvent) -> Self {
        match event {
            NetworkEvent::PeerConnected(p) => Event::PeerConnected {
                peer_id: p.to_string(),
            },
            NetworkEvent::PeerDisconnected(p) => Event::PeerDisconnected {
                peer_id: p.to_string(),
            },
            NetworkEvent::PeerSubscribed { peer_id, topic } => Event::PeerSubscribed {
                peer_id: peer_id.to_string(),
                topic: topic.clone(),
            },
            NetworkEvent::OrderbookChanged(OrderbookChange::Added(o)) => {
                Event::OrderAdded { order: o.into() }
            }
            NetworkEvent::OrderbookChanged(OrderbookChange::Updated(o)) => {
                Event::OrderUpdated { order: o.into() }
            }
            NetworkEvent::OrderbookChanged(OrderbookChange::Cancelled { order_id, maker }) => {
                Event::OrderCancelled {
                    id: order_id.to_string(),
                    maker: maker.to_string(),
                }
            }
            NetworkEvent::OrderbookChanged(OrderbookChange::Expired(ids)) => Event::OrdersExpired {
                ids: ids.iter().map(ToString::to_string).collect(),
            },
            NetworkEvent::RelayReserved {
                relay_peer_id,
                reservation_id,
            } => Event::RelayReserved {
                relay_peer_id: relay_peer_id.to_string(),
                reservation_id: reservation_id.to_string(),
            },
            NetworkEvent::RelayDiscovered {
                relay_peer_id,
                source,
            } => Event::RelayDiscovered {
                relay_peer_id: relay_peer_id.to_string(),
                source: source.as_str().to_owned(),
            },
            NetworkEvent::RelayReservationLost { relay_peer_id } => Event::RelayLost {
                relay_peer_id: relay_peer_id.to_string(),
            },
            NetworkEvent::RelayReservationFailed {
                relay_peer_id,
                reason,
            } => Event::RelayFailed {
                relay_peer_id: relay_peer_id.to_string(),
                reason: reason.clone(),
            },
            NetworkEvent::RelayReplaced { old, new } => Event::RelayReplaced {
                old: old.to_string(),
                new: new.to_string(),
            },
            NetworkEvent::RelayRankChanged {
                relay_peer_id,
                previous,
                rank,
                score,
            } => Event::RelayRankChanged {
                relay_peer_id: relay_peer_id.to_string(),
                previous: *previous,
                rank: *rank,
                score: *score,
            },
            NetworkEvent::InvalidMessage {
                peer_id,
                topic,
                error,
            } => Event::InvalidMessage {
                peer_id: peer_id.to_string(),
                topic: topic.clone(),
                error: error.to_string(),
            },
            NetworkEvent::OrderbookRejected { peer_id, error } => Event::OrderRejected {
                peer_id: peer_id.to_string(),
                error: error.to_string(),
            },
            NetworkEvent::PeerPenalized {
                peer_id,
                reason,
                score,
            } => Event::PeerPenalized {
                peer_id: peer_id.to_string(),
                reason: reason.as_str().to_owned(),
                score: *score,
            },
            NetworkEvent::PeerBanned {
                peer_id,
                until,
                reason,
            } => Event::PeerBanned {
                peer_id: peer_id.to_string(),
                until: until.map(unix_secs),
                reason: reason.as_str().to_owned(),
            },
            NetworkEvent::PeerUnbanned { peer_id } => Event::PeerUnbanned {
                peer_id: peer_id.to_string(),
            },
            NetworkEvent::TradeUpdated {
                trade_id,
                order_id,
                peer_id,
                role,
                state,
            } => Event::TradeUpdated {
                trade_id: trade_id.to_string(),
                order_id: order_id.to_string(),
                peer_id: peer_id.to_string(),
                role: role_name(*role).to_owned(),
                state: state.code().to_owned(),
                detail: state.detail(),
            },
            NetworkEvent::OrderFilled {
                order_id,
                amount,
                remaining,
                ..
            } => Event::OrderFilled {
                order_id: order_id.to_string(),
                amount: *amount,
                remaining: *remaining,
            },
            NetworkEvent::HolePunchSucceeded { peer_id } => Event::HolePunchSucceeded {
                peer_id: peer_id.to_string(),
            },
            NetworkEvent::HolePunchFailed { peer_id, error } => Event::HolePunchFailed {
                peer_id: peer_id.to_string(),
                error: error.clone(),
            },
            NetworkEvent::NatStatusChanged { status } => {
                let (status, address) = match status {
                    NatStatus::Public(addr) => ("public", Some(addr.to_string())),
                    NatStatus::Private => ("private", None),
                    _ => ("unknown", None),
                };
                Event::NatStatus {
                    status: status.to_owned(),
                    address,
                }
            }
            other => Event::Network {
                event: format!("{other:?}"),
            },
        }
    }
}
