//! The [`Network`] handle and the events it reports.

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use darkswap_proto::{Asset, Message, NewOrder, Order, OrderId, OrderbookResponse, SignedOrder};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use crate::{
    BanReason, BannedPeer, Book, Error, NetworkConfig, OrderbookChange, OrderbookError,
    PeerReputation, PenaltyReason, PerfReport, RelayStatus, ValidationError,
    auth::{AuthError, AuthToken, AuthorizationLevel, Challenge, ChallengeResponse},
    perf, swarm_task,
};

/// Id of one relay reservation made by this node, unique per [`Network`].
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
#[derive(Debug, Clone)]
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
    /// A peer's orderbook snapshot was merged.
    OrderbookSynced {
        /// The peer that answered.
        peer_id: PeerId,
        /// Changes the snapshot brought.
        changes: usize,
        /// Why each refused entry of the snapshot was refused.
        rejected: Vec<OrderbookError>,
    },
    /// The event queue was full and this many events were dropped since the
    /// last one delivered. Read events faster or enlarge `event_buffer`.
    EventsDropped {
        /// Events lost.
        count: u64,
    },
    /// A peer lost reputation for misbehaving (see [`crate::ReputationConfig`]).
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
        /// When the ban ends; `None` if only [`NetworkHandle::unban_peer`] ends it.
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

/// A connected peer, as [`NetworkHandle::peers`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The peer.
    pub peer_id: PeerId,
    /// The remote address of its first open connection.
    pub address: Multiaddr,
    /// Whether every open connection to it runs through a relay circuit.
    pub relayed: bool,
    /// Round-trip time measured by the last successful ping, if any yet.
    pub rtt: Option<Duration>,
}

/// Commands from handles to the swarm task.
#[derive(Debug)]
pub(crate) enum Command {
    Listen {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<Multiaddr, Error>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, Error>>,
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
        reply: oneshot::Sender<Result<(), Error>>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    FindPeer {
        peer: PeerId,
        reply: oneshot::Sender<Result<Vec<Multiaddr>, Error>>,
    },
    RelayStatus {
        reply: oneshot::Sender<Vec<RelayStatus>>,
    },
    GenerateRelayChallenge {
        relay: PeerId,
        reply: oneshot::Sender<Result<Challenge, Error>>,
    },
    VerifyRelayChallengeResponse {
        relay: PeerId,
        response: Box<ChallengeResponse>,
        reply: oneshot::Sender<Result<AuthToken, Error>>,
    },
    AuthenticateRelay {
        relay: PeerId,
        token: Box<AuthToken>,
        reply: oneshot::Sender<Result<AuthorizationLevel, Error>>,
    },
    AuthenticatePeer {
        peer: PeerId,
        reply: oneshot::Sender<Result<AuthToken, Error>>,
    },
    PeerAuthLevel {
        peer: PeerId,
        reply: oneshot::Sender<AuthorizationLevel>,
    },
    CreateOrder {
        order: Box<NewOrder>,
        reply: oneshot::Sender<Result<Order, Error>>,
    },
    CancelOrder {
        id: OrderId,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    RestoreOrders {
        orders: Vec<SignedOrder>,
        reply: oneshot::Sender<Vec<Result<Order, Error>>>,
    },
    GetBook {
        base: Asset,
        quote: Asset,
        reply: oneshot::Sender<Book>,
    },
    OwnOrders {
        reply: oneshot::Sender<Vec<(Order, SignedOrder)>>,
    },
    ExportBook {
        reply: oneshot::Sender<OrderbookResponse>,
    },
    ImportBook {
        book: Box<OrderbookResponse>,
        reply: oneshot::Sender<(usize, Vec<OrderbookError>)>,
    },
    ReportPeer {
        peer: PeerId,
        reason: PenaltyReason,
        reply: oneshot::Sender<Option<crate::Penalty>>,
    },
    BanPeer {
        peer: PeerId,
        duration: Option<Duration>,
        reply: oneshot::Sender<BannedPeer>,
    },
    UnbanPeer {
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
    BannedPeers {
        reply: oneshot::Sender<Vec<BannedPeer>>,
    },
    PeerReputation {
        peer: PeerId,
        reply: oneshot::Sender<PeerReputation>,
    },
    ImportBans {
        bans: Vec<BannedPeer>,
        reply: oneshot::Sender<usize>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Longest topic name accepted.
const MAX_TOPIC_LEN: usize = 256;
/// Commands that may wait in the queue to the swarm task.
pub(crate) const COMMAND_BUFFER: usize = 256;

/// A cheap, cloneable handle that sends commands to a [`Network`]'s swarm task.
///
/// Handles stay valid while the [`Network`] they came from lives; after it
/// is shut down or dropped every call returns [`Error::Shutdown`].
#[derive(Clone)]
pub struct NetworkHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) local_peer_id: PeerId,
    pub(crate) timeout: Duration,
    pub(crate) max_message_size: usize,
    pub(crate) perf: Option<libp2p_stream::Control>,
}

impl fmt::Debug for NetworkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetworkHandle")
            .field("local_peer_id", &self.local_peer_id)
            .finish_non_exhaustive()
    }
}

fn parse_addr<A>(addr: A) -> Result<Multiaddr, Error>
where
    A: TryInto<Multiaddr> + fmt::Debug + Clone,
    A::Error: fmt::Display,
{
    addr.clone().try_into().map_err(|e| Error::InvalidAddress {
        addr: format!("{addr:?}"),
        reason: e.to_string(),
    })
}

fn check_topic(topic: &str) -> Result<(), Error> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Err(Error::InvalidTopic(topic.to_owned()));
    }
    Ok(())
}

impl NetworkHandle {
    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| Error::Shutdown)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(Error::Shutdown),
            Err(_) => Err(Error::Timeout(self.timeout)),
        }
    }

    /// Listens on `addr` (a [`Multiaddr`] or its text form) and returns the
    /// first address actually bound: with port 0, the port the OS chose. On a
    /// relay's `/p2p-circuit` address this waits for the reservation.
    pub async fn listen_on<A>(&self, addr: A) -> Result<Multiaddr, Error>
    where
        A: TryInto<Multiaddr> + fmt::Debug + Clone,
        A::Error: fmt::Display,
    {
        let addr = parse_addr(addr)?;
        self.request(|reply| Command::Listen { addr, reply })
            .await?
    }

    /// Dials `addr` and waits until the connection is up; returns the peer's id.
    pub async fn dial<A>(&self, addr: A) -> Result<PeerId, Error>
    where
        A: TryInto<Multiaddr> + fmt::Debug + Clone,
        A::Error: fmt::Display,
    {
        let addr = parse_addr(addr)?;
        self.request(|reply| Command::Dial { addr, reply }).await?
    }

    /// Joins a gossipsub topic. Returns at once; the swarm task applies it in
    /// order with other commands.
    pub fn subscribe(&self, topic: &str) -> Result<(), Error> {
        check_topic(topic)?;
        self.try_command(Command::Subscribe {
            topic: topic.to_owned(),
        })
    }

    /// Leaves a gossipsub topic.
    pub fn unsubscribe(&self, topic: &str) -> Result<(), Error> {
        check_topic(topic)?;
        self.try_command(Command::Unsubscribe {
            topic: topic.to_owned(),
        })
    }

    fn try_command(&self, command: Command) -> Result<(), Error> {
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::Busy,
            mpsc::error::TrySendError::Closed(_) => Error::Shutdown,
        })
    }

    /// Publishes a DarkSwap message on a topic.
    ///
    /// Fails if the message is over the size limit, breaks the topic's rules
    /// (see [`crate::validate_gossip`]), or no peer subscribed to the topic
    /// is connected.
    pub async fn publish(&self, topic: &str, message: &Message) -> Result<(), Error> {
        check_topic(topic)?;
        let data = darkswap_proto::encode(message);
        if data.len() > self.max_message_size {
            return Err(Error::MessageTooLarge {
                size: data.len(),
                max: self.max_message_size,
            });
        }
        // Receivers would reject it and score us down: refuse it here instead.
        crate::validate_gossip(
            topic,
            &data,
            self.max_message_size,
            crate::swarm_task::unix_now(),
        )
        .map_err(Error::InvalidMessage)?;
        let topic = topic.to_owned();
        self.request(|reply| Command::Publish { topic, data, reply })
            .await?
    }

    /// Peers with at least one open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, Error> {
        self.request(|reply| Command::ConnectedPeers { reply })
            .await
    }

    /// Connected peers with their address, path (direct or relayed) and
    /// latest round-trip time, sorted by peer id.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Error> {
        self.request(|reply| Command::Peers { reply }).await
    }

    /// Addresses the node listens on, relayed ones included.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, Error> {
        self.request(|reply| Command::ListenAddrs { reply }).await
    }

    /// Looks a peer up in the Kademlia DHT and returns its addresses.
    pub async fn find_peer(&self, peer: PeerId) -> Result<Vec<Multiaddr>, Error> {
        self.request(|reply| Command::FindPeer { peer, reply })
            .await?
    }

    /// Reservation state of each configured relay.
    pub async fn relay_status(&self) -> Result<Vec<RelayStatus>, Error> {
        self.request(|reply| Command::RelayStatus { reply }).await
    }

    /// A fresh challenge for `relay` (the out-of-band half of relay
    /// authentication: deliver it to the relay however you like, then pass
    /// its answer to [`verify_relay_challenge_response`](Self::verify_relay_challenge_response)).
    /// Refused for banned relays before anything is generated.
    pub async fn generate_relay_challenge(&self, relay: &PeerId) -> Result<Challenge, Error> {
        let relay = *relay;
        self.request(|reply| Command::GenerateRelayChallenge { relay, reply })
            .await?
    }

    /// Verifies `relay`'s answer to a challenge from
    /// [`generate_relay_challenge`](Self::generate_relay_challenge). The
    /// relay must reach `min_relay_auth_level`. On success it counts as
    /// authenticated (so `require_relay_auth` reserves on it without a new
    /// challenge) until the returned token expires.
    pub async fn verify_relay_challenge_response(
        &self,
        relay: &PeerId,
        response: &ChallengeResponse,
    ) -> Result<AuthToken, Error> {
        let (relay, response) = (*relay, Box::new(response.clone()));
        self.request(|reply| Command::VerifyRelayChallengeResponse {
            relay,
            response,
            reply,
        })
        .await?
    }

    /// Re-authenticates `relay` with a token this node issued to it,
    /// without a challenge. The token's level must reach `min_relay_auth_level`.
    pub async fn authenticate_relay(
        &self,
        relay: &PeerId,
        token: &AuthToken,
    ) -> Result<AuthorizationLevel, Error> {
        let (relay, token) = (*relay, Box::new(token.clone()));
        self.request(|reply| Command::AuthenticateRelay {
            relay,
            token,
            reply,
        })
        .await?
    }

    /// Authenticates `peer` over `/darkswap/auth/1.0.0` with this node's
    /// configured method (dialling it if needed, when its address is
    /// known); trusted peers pass without a challenge. Returns the token
    /// recording the level it reached.
    pub async fn authenticate_peer(&self, peer: &PeerId) -> Result<AuthToken, Error> {
        let peer = *peer;
        self.request(|reply| Command::AuthenticatePeer { peer, reply })
            .await?
    }

    /// The level `peer` has with this node now (see
    /// [`AuthManager::authorization_level`](crate::auth::AuthManager::authorization_level)).
    pub async fn peer_auth_level(&self, peer: &PeerId) -> Result<AuthorizationLevel, Error> {
        let peer = *peer;
        self.request(|reply| Command::PeerAuthLevel { peer, reply })
            .await
    }

    /// Signs `order` with this node's identity key, puts it in the local
    /// book and publishes it. The node re-announces it every refresh interval
    /// until it expires or is cancelled. Publishing without any peer is not
    /// an error: peers get the order by sync or at the next refresh.
    pub async fn create_order(&self, order: NewOrder) -> Result<Order, Error> {
        let order = Box::new(order);
        self.request(|reply| Command::CreateOrder { order, reply })
            .await?
    }

    /// Cancels one of this node's own orders and publishes the signed cancel.
    pub async fn cancel_order(&self, id: OrderId) -> Result<(), Error> {
        self.request(|reply| Command::CancelOrder { id, reply })
            .await?
    }

    /// Takes back this node's own signed orders (e.g. from storage after a
    /// restart): each one still valid and signed by this node returns to
    /// the book and to the re-announcement schedule.
    pub async fn restore_orders(
        &self,
        orders: Vec<SignedOrder>,
    ) -> Result<Vec<Result<Order, Error>>, Error> {
        self.request(|reply| Command::RestoreOrders { orders, reply })
            .await
    }

    /// The bids and asks of a pair in the local replica of the book.
    pub async fn orderbook(&self, base: Asset, quote: Asset) -> Result<Book, Error> {
        self.request(|reply| Command::GetBook { base, quote, reply })
            .await
    }

    /// This node's own open orders, as they stand and as signed.
    pub async fn own_orders(&self) -> Result<Vec<(Order, SignedOrder)>, Error> {
        self.request(|reply| Command::OwnOrders { reply }).await
    }

    /// The whole local replica as signed messages (orders with their newest
    /// announcements, updates, cancels), e.g. to store it. It carries only
    /// what makers signed, so [`import_book`](Self::import_book) verifies it
    /// like any peer's snapshot.
    pub async fn export_book(&self) -> Result<OrderbookResponse, Error> {
        self.request(|reply| Command::ExportBook { reply }).await
    }

    /// Merges a snapshot (e.g. a stored one after a restart) under the same
    /// rules as a peer's sync response: every entry is verified, expired and
    /// unrefreshed orders are refused, cancels win. Emits
    /// [`NetworkEvent::OrderbookChanged`] for what it adds and returns how
    /// many changes it made and why each refused entry was refused.
    pub async fn import_book(
        &self,
        book: OrderbookResponse,
    ) -> Result<(usize, Vec<OrderbookError>), Error> {
        let book = Box::new(book);
        self.request(|reply| Command::ImportBook { book, reply })
            .await
    }

    /// Reports a misbehaviour of `peer` seen outside the swarm (a failed
    /// authentication, a limit violation, ...). Its score drops by the
    /// reason's weight; at the threshold it is banned and disconnected.
    /// Returns what the report did, or `None` if it counted for nothing
    /// (scoring is off, or the peer is banned already).
    pub async fn report_peer(
        &self,
        peer: PeerId,
        reason: PenaltyReason,
    ) -> Result<Option<crate::Penalty>, Error> {
        self.request(|reply| Command::ReportPeer {
            peer,
            reason,
            reply,
        })
        .await
    }

    /// Bans `peer` for `duration`, or until [`unban_peer`](Self::unban_peer)
    /// with `None`: closes its connections and refuses new ones in either
    /// direction. Replaces any ban in force.
    pub async fn ban_peer(
        &self,
        peer: PeerId,
        duration: Option<Duration>,
    ) -> Result<BannedPeer, Error> {
        self.request(|reply| Command::BanPeer {
            peer,
            duration,
            reply,
        })
        .await
    }

    /// Lifts `peer`'s ban and clears its score. Returns whether it was banned.
    pub async fn unban_peer(&self, peer: PeerId) -> Result<bool, Error> {
        self.request(|reply| Command::UnbanPeer { peer, reply })
            .await
    }

    /// The bans in force, with their expiry and reason, sorted by peer id.
    /// This is the list to store and give back after a restart, with
    /// [`import_bans`](Self::import_bans) or in
    /// [`ReputationConfig::initial_bans`](crate::ReputationConfig::initial_bans).
    pub async fn banned_peers(&self) -> Result<Vec<BannedPeer>, Error> {
        self.request(|reply| Command::BannedPeers { reply }).await
    }

    /// `peer`'s score, ban and ban count.
    pub async fn peer_reputation(&self, peer: PeerId) -> Result<PeerReputation, Error> {
        self.request(|reply| Command::PeerReputation { peer, reply })
            .await
    }

    /// Puts stored bans in force (expired entries are skipped; a longer ban
    /// in force wins) and disconnects the peers. Returns how many apply.
    pub async fn import_bans(&self, bans: Vec<BannedPeer>) -> Result<usize, Error> {
        self.request(|reply| Command::ImportBans { bans, reply })
            .await
    }

    /// Measures throughput to `peer` with `/perf/1.0.0`: sends `upload`
    /// bytes, then receives `download` bytes. Needs `enable_perf`.
    pub async fn perf(
        &self,
        peer: PeerId,
        upload: u64,
        download: u64,
    ) -> Result<PerfReport, Error> {
        let control = self.perf.clone().ok_or(Error::Disabled("perf"))?;
        perf::run_client(control, peer, upload, download).await
    }
}

/// A DarkSwap P2P node.
///
/// The libp2p swarm runs in its own task; `Network` is the handle to it plus
/// the stream of [`NetworkEvent`]s. It dereferences to its [`NetworkHandle`],
/// so every command method is called on it directly. Dropping it stops the swarm task;
/// [`Network::shutdown`] does so gracefully and waits for it.
///
/// ```no_run
/// use darkswap_p2p::{Network, NetworkConfig, NetworkEvent, ORDERBOOK_TOPIC};
///
/// # async fn run() -> Result<(), darkswap_p2p::Error> {
/// let mut network = Network::new(NetworkConfig::default()).await?;
/// network.listen_on("/ip4/0.0.0.0/tcp/0").await?;
/// network.subscribe(ORDERBOOK_TOPIC)?;
/// while let Some(event) = network.next_event().await {
///     if let NetworkEvent::MessageReceived { peer_id, message, .. } = event {
///         println!("{peer_id}: {}", message.kind());
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Network {
    handle: NetworkHandle,
    events: mpsc::Receiver<NetworkEvent>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Network {
    /// Builds the libp2p stack and starts the swarm task. Listens on
    /// `listen_addresses`, joins `topics`, dials `bootstrap_peers` and starts
    /// reserving on `relay_peers`. Must be called within a tokio runtime.
    pub async fn new(config: NetworkConfig) -> Result<Self, Error> {
        let listen = config.listen_addresses.clone();
        let timeout = config.connection_timeout;
        let max_message_size = config.max_message_size;
        let (commands, command_rx) = mpsc::channel(COMMAND_BUFFER);
        let (event_tx, events) = mpsc::channel(config.event_buffer.max(1));
        let (local_peer_id, perf, task) = swarm_task::spawn(config, command_rx, event_tx).await?;
        let network = Network {
            handle: NetworkHandle {
                commands,
                local_peer_id,
                timeout,
                max_message_size,
                perf,
            },
            events,
            task: Some(task),
        };
        for addr in listen {
            network.handle.listen_on(addr).await?;
        }
        Ok(network)
    }

    /// A cloneable handle for sending commands from other tasks.
    pub fn handle(&self) -> NetworkHandle {
        self.handle.clone()
    }

    /// The next event; `None` once the swarm task has stopped.
    pub async fn next_event(&mut self) -> Option<NetworkEvent> {
        self.events.recv().await
    }

    /// Closes every connection and listener, stops the swarm task and waits
    /// for it to end.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        let (reply, done) = oneshot::channel();
        if self
            .handle
            .commands
            .send(Command::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        if let Some(task) = self.task.take() {
            task.await.map_err(|_| Error::Shutdown)?;
        }
        Ok(())
    }
}

/// Every command of [`NetworkHandle`] (`listen_on`, `dial`, `subscribe`,
/// `publish`, `create_order`, ...) is available on the `Network` itself.
impl std::ops::Deref for Network {
    type Target = NetworkHandle;

    fn deref(&self) -> &NetworkHandle {
        &self.handle
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
