//! How the API asks the state owner for something: typed commands on a
//! bounded channel, each answered on its own oneshot, every wait bounded by
//! a deadline (the shape of rust-libp2p's `examples/file-sharing`
//! `network.rs` client).

use std::time::Duration;

use darkswap_p2p::{BannedPeer, OrderChanges, PeerId};
use darkswap_proto::{Asset, NewOrder, Order, OrderId, Side};
use tokio::sync::{mpsc, oneshot};

use super::Error;

/// Commands that may wait for the owner. A full queue makes the API wait
/// (up to [`ANSWER_DEADLINE`]), not grow.
pub const COMMAND_QUEUE: usize = 64;

/// Longest wait for the owner's answer, queueing included: longer than the
/// node's own command timeout (30 s by default) plus a database write, so
/// an answer that is coming is not cut off.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

/// The terms of an order the API asks for; the owner dates it and gives it
/// a fresh nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTerms {
    /// Buy or sell the base asset.
    pub side: Side,
    /// Base asset.
    pub base: Asset,
    /// Quote asset.
    pub quote: Asset,
    /// Base amount, smallest unit.
    pub amount: u64,
    /// Quote units per 10^8 base units.
    pub price: u64,
    /// How long the order lives.
    pub lifetime: Duration,
}

impl OrderTerms {
    /// The order to sign, created at `now` (unix seconds).
    pub fn at(&self, now: u64, nonce: u64) -> NewOrder {
        NewOrder {
            side: self.side,
            base: self.base,
            quote: self.quote,
            amount: self.amount,
            price: self.price,
            created_at: now,
            expires_at: now.saturating_add(self.lifetime.as_secs()),
            nonce,
        }
    }
}

/// The changes to an own order the API asks for; the owner dates them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateTerms {
    /// New base amount, smallest unit.
    pub amount: Option<u64>,
    /// New price.
    pub price: Option<u64>,
    /// New remaining life, from the time the update is signed.
    pub lifetime: Option<Duration>,
}

impl UpdateTerms {
    /// The changes to sign at `now` (unix seconds).
    pub fn at(&self, now: u64) -> OrderChanges {
        OrderChanges {
            amount: self.amount,
            price: self.price,
            expires_at: self.lifetime.map(|l| now.saturating_add(l.as_secs())),
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What the owner is asked to do. Each command is answered once what it
/// changed is on disk.
#[derive(Debug)]
pub enum Command {
    /// Create, publish and store an own order.
    CreateOrder {
        /// Its terms.
        terms: OrderTerms,
        /// The order as the book holds it.
        reply: Reply<Order>,
    },
    /// Update an own order, publish the update and store it.
    UpdateOrder {
        /// The order.
        id: OrderId,
        /// What changes.
        terms: UpdateTerms,
        /// The order as it now stands.
        reply: Reply<Order>,
    },
    /// Cancel an own order and store its tombstone.
    CancelOrder {
        /// The order.
        id: OrderId,
        /// Done.
        reply: Reply<()>,
    },
    /// Ban a peer and store the ban list.
    Ban {
        /// The peer.
        peer: PeerId,
        /// How long; `None` until lifted.
        duration: Option<Duration>,
        /// The ban in force.
        reply: Reply<BannedPeer>,
    },
    /// Lift a ban and store the ban list.
    Unban {
        /// The peer.
        peer: PeerId,
        /// Whether it was banned.
        reply: Reply<bool>,
    },
}

/// The API's handle on the owner: cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    deadline: Duration,
}

impl Handle {
    /// A handle and the receiver the owner reads, [`COMMAND_QUEUE`] deep.
    pub fn channel() -> (Self, mpsc::Receiver<Command>) {
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let handle = Handle {
            commands,
            deadline: ANSWER_DEADLINE,
        };
        (handle, rx)
    }

    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, Error> {
        let deadline = tokio::time::Instant::now() + self.deadline;
        let (reply, answer) = oneshot::channel();
        tokio::time::timeout_at(deadline, self.commands.send(make(reply)))
            .await
            .map_err(|_| Error::Timeout(self.deadline))?
            .map_err(|_| Error::Stopped)?;
        tokio::time::timeout_at(deadline, answer)
            .await
            .map_err(|_| Error::Timeout(self.deadline))?
            .map_err(|_| Error::Stopped)?
    }

    /// Creates an own order; answers once it is stored.
    pub async fn create_order(&self, terms: OrderTerms) -> Result<Order, Error> {
        self.request(|reply| Command::CreateOrder { terms, reply })
            .await
    }

    /// Updates an own order; answers once the signed update is stored.
    pub async fn update_order(&self, id: OrderId, terms: UpdateTerms) -> Result<Order, Error> {
        self.request(|reply| Command::UpdateOrder { id, terms, reply })
            .await
    }

    /// Cancels an own order; answers once its tombstone is stored.
    pub async fn cancel_order(&self, id: OrderId) -> Result<(), Error> {
        self.request(|reply| Command::CancelOrder { id, reply })
            .await
    }

    /// Bans `peer`; answers once the ban list is stored.
    pub async fn ban(&self, peer: PeerId, duration: Option<Duration>) -> Result<BannedPeer, Error> {
        self.request(|reply| Command::Ban {
            peer,
            duration,
            reply,
        })
        .await
    }

    /// Lifts `peer`'s ban; answers whether it was banned, once stored.
    pub async fn unban(&self, peer: PeerId) -> Result<bool, Error> {
        self.request(|reply| Command::Unban { peer, reply }).await
    }
}
