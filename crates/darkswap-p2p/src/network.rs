//! The [`Network`] handle: the node's command surface, grouped in facets.
//!
//! [`NetworkHandle`] carries the network commands (listen, dial, topics,
//! peers); [`NetworkHandle::orderbook`], [`NetworkHandle::auth`] and
//! [`NetworkHandle::reputation`] return the facets of the other concerns,
//! each with its own error type.

use std::{fmt, time::Duration};

use darkswap_core::{NetworkEvent, gossip::validate_gossip, relay_keeper::RelayStatus};
use darkswap_proto::Message;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use crate::{
    command::{Command, SwarmCommand},
    config::NetworkConfig,
    error::{CommandError, Error, PerfError},
    perf::{self, PerfReport},
};

mod auth;
mod metrics;
mod orderbook;
mod relays;
mod reputation;
mod trades;
#[cfg(not(target_arch = "wasm32"))]
mod webrtc;

pub use auth::AuthHandle;
pub use orderbook::OrderbookHandle;
pub use relays::RelaysHandle;
pub use reputation::ReputationHandle;
pub use trades::{TradeInfo, TradesHandle};

/// A connected peer, as [`NetworkHandle::peers`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The peer.
    pub peer_id: PeerId,
    /// The remote address of a direct connection to it if there is one,
    /// else of its first connection.
    pub address: Multiaddr,
    /// Whether every open connection to it runs through a relay circuit.
    pub relayed: bool,
    /// Round-trip time measured by the last successful ping, if any yet.
    pub rtt: Option<Duration>,
    /// Every open connection to it, oldest first, each with its own path
    /// (a peer reached through a relay and then directly has both).
    pub connections: Vec<ConnectionInfo>,
}

/// One open connection to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Its remote address.
    pub address: Multiaddr,
    /// Whether it runs through a relay circuit.
    pub relayed: bool,
}

/// Longest topic name accepted.
const MAX_TOPIC_LEN: usize = 256;
/// Commands that may wait in the queue to the swarm task.
pub(crate) const COMMAND_BUFFER: usize = 256;

/// A cheap, cloneable handle that sends commands to a [`Network`]'s swarm task.
///
/// Handles stay valid while the [`Network`] they came from lives; after it
/// is shut down or dropped every call fails with [`CommandError::Shutdown`].
#[derive(Clone)]
pub struct NetworkHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) local_peer_id: PeerId,
    pub(crate) timeout: Duration,
    pub(crate) max_message_size: usize,
    pub(crate) perf: Option<libp2p_stream::Control>,
    /// The node's metrics registry and its `p2p_*` series.
    pub(crate) metrics: crate::metrics::MetricsRegistry,
    pub(crate) p2p_metrics: crate::metrics::P2PMetrics,
    /// The WebRTC channels, if `webrtc_signaling` is on (the `Network`
    /// holds them; a handle outliving it fails with `Shutdown`).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) webrtc: Option<std::sync::Weak<crate::webrtc_channels::WebRtcChannels>>,
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

    /// The book and this node's own orders.
    pub fn orderbook(&self) -> OrderbookHandle<'_> {
        OrderbookHandle { handle: self }
    }

    /// Authentication of relays and peers.
    pub fn auth(&self) -> AuthHandle<'_> {
        AuthHandle { handle: self }
    }

    /// The relay pool: which relays the node holds reservations on.
    pub fn relays(&self) -> RelaysHandle<'_> {
        RelaysHandle { handle: self }
    }

    /// Peer scores and bans.
    pub fn reputation(&self) -> ReputationHandle<'_> {
        ReputationHandle { handle: self }
    }

    /// Trades: take an order, cancel, list.
    pub fn trades(&self) -> TradesHandle<'_> {
        TradesHandle { handle: self }
    }

    /// Sends a command of any concern and waits (bounded by
    /// `connection_timeout`) for the reply it carries.
    pub(crate) async fn ask<C: Into<Command>, T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> C,
    ) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx).into())
            .await
            .map_err(|_| CommandError::Shutdown)?;
        match crate::runtime::timeout(self.timeout, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(CommandError::Shutdown),
            Err(_) => Err(CommandError::Timeout(self.timeout)),
        }
    }

    fn try_command(&self, command: SwarmCommand) -> Result<(), Error> {
        self.commands
            .try_send(Command::Swarm(command))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => CommandError::Busy.into(),
                mpsc::error::TrySendError::Closed(_) => CommandError::Shutdown.into(),
            })
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
        self.ask(|reply| SwarmCommand::Listen { addr, reply })
            .await?
    }

    /// Dials `addr` and waits until the connection is up; returns the peer's id.
    pub async fn dial<A>(&self, addr: A) -> Result<PeerId, Error>
    where
        A: TryInto<Multiaddr> + fmt::Debug + Clone,
        A::Error: fmt::Display,
    {
        let addr = parse_addr(addr)?;
        self.ask(|reply| SwarmCommand::Dial { addr, reply }).await?
    }

    /// Joins a gossipsub topic. Returns at once; the swarm task applies it in
    /// order with other commands.
    pub fn subscribe(&self, topic: &str) -> Result<(), Error> {
        check_topic(topic)?;
        self.try_command(SwarmCommand::Subscribe {
            topic: topic.to_owned(),
        })
    }

    /// Leaves a gossipsub topic.
    pub fn unsubscribe(&self, topic: &str) -> Result<(), Error> {
        check_topic(topic)?;
        self.try_command(SwarmCommand::Unsubscribe {
            topic: topic.to_owned(),
        })
    }

    /// Publishes a DarkSwap message on a topic.
    ///
    /// Fails if the message is over the size limit, breaks the topic's rules
    /// (see [`validate_gossip`]), or no peer
    /// subscribed to the topic is connected. Orders are not published this
    /// way but through [`NetworkHandle::orderbook`], which signs them.
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
        let now = crate::swarm_task::now().unix_secs();
        validate_gossip(topic, &data, self.max_message_size, now).map_err(Error::InvalidMessage)?;
        let topic = topic.to_owned();
        self.ask(|reply| SwarmCommand::Publish { topic, data, reply })
            .await?
    }

    /// Peers with at least one open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, Error> {
        Ok(self
            .ask(|reply| SwarmCommand::ConnectedPeers { reply })
            .await?)
    }

    /// Connected peers with their address, path (direct or relayed) and
    /// latest round-trip time, sorted by peer id.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Error> {
        Ok(self.ask(|reply| SwarmCommand::Peers { reply }).await?)
    }

    /// Addresses the node listens on, relayed ones included.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, Error> {
        Ok(self
            .ask(|reply| SwarmCommand::ListenAddrs { reply })
            .await?)
    }

    /// Bytes sent and received over every connection since start, and of
    /// those, over relay circuits.
    pub async fn bandwidth(&self) -> Result<crate::Bandwidth, Error> {
        Ok(self.ask(|reply| SwarmCommand::Bandwidth { reply }).await?)
    }

    /// Announces `addr` as an address this node is reachable at, confirmed
    /// (as `external_addresses` does at start): for an address learned
    /// after start, such as a port mapped by the router.
    pub async fn add_external_address(&self, addr: Multiaddr) -> Result<(), Error> {
        Ok(self
            .ask(|reply| SwarmCommand::AddExternalAddress { addr, reply })
            .await?)
    }

    /// Looks a peer up in the Kademlia DHT and returns its addresses.
    pub async fn find_peer(&self, peer: PeerId) -> Result<Vec<Multiaddr>, Error> {
        self.ask(|reply| SwarmCommand::FindPeer { peer, reply })
            .await?
    }

    /// Every relay known, best first, with its reservation state (as
    /// [`RelaysHandle::status`]).
    pub async fn relay_status(&self) -> Result<Vec<RelayStatus>, Error> {
        self.relays().status().await
    }

    /// Measures throughput to `peer` with `/perf/1.0.0`: sends `upload`
    /// bytes, then receives `download` bytes. Needs `enable_perf`.
    pub async fn perf(
        &self,
        peer: PeerId,
        upload: u64,
        download: u64,
    ) -> Result<PerfReport, PerfError> {
        let control = self.perf.clone().ok_or(PerfError::Disabled)?;
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
    /// The swarm task; dropping the handle aborts it.
    task: Option<crate::runtime::TaskHandle>,
    #[cfg(not(target_arch = "wasm32"))]
    webrtc: Option<std::sync::Arc<crate::webrtc_channels::WebRtcChannels>>,
}

impl Network {
    /// Builds the libp2p stack and starts the swarm task. Listens on
    /// `listen_addresses` (every listener up before anything is dialled, so
    /// outbound TCP connections leave from the listening port), joins
    /// `topics`, dials `bootstrap_peers` and starts reserving on
    /// `relay_peers`. Must be called within a tokio runtime.
    pub async fn new(config: NetworkConfig) -> Result<Self, Error> {
        // Resolved once: WebRTC signaling registers with the swarm's key.
        let key = config.identity.resolve()?;
        #[cfg(not(target_arch = "wasm32"))]
        let webrtc = {
            let relays = crate::webrtc_channels::signaling_relays(&config);
            (config.webrtc_signaling.enabled && !relays.is_empty()).then(|| {
                crate::webrtc_channels::WebRtcChannels::start(
                    key.clone(),
                    relays,
                    config.webrtc_signaling.options.clone(),
                )
            })
        };
        let timeout = config.connection_timeout;
        let max_message_size = config.max_message_size;
        let (commands, command_rx) = mpsc::channel(COMMAND_BUFFER);
        let (event_tx, events) = mpsc::channel(config.event_buffer.max(1));
        let spawned = crate::swarm_task::spawn(key, config, command_rx, event_tx).await?;
        let network = Network {
            handle: NetworkHandle {
                commands,
                local_peer_id: spawned.local_peer_id,
                timeout,
                max_message_size,
                perf: spawned.perf,
                metrics: spawned.metrics,
                p2p_metrics: spawned.p2p_metrics,
                #[cfg(not(target_arch = "wasm32"))]
                webrtc: webrtc.as_ref().map(std::sync::Arc::downgrade),
            },
            events,
            task: Some(spawned.task),
            #[cfg(not(target_arch = "wasm32"))]
            webrtc,
        };
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
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(webrtc) = self.webrtc.take() {
            webrtc.shutdown();
        }
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
            task.await.map_err(|_| CommandError::Shutdown)?;
        }
        Ok(())
    }
}

/// Every command of [`NetworkHandle`] (`listen_on`, `dial`, `subscribe`,
/// `publish`, and the facets `orderbook()`, `auth()`, `reputation()`) is
/// available on the `Network` itself.
impl std::ops::Deref for Network {
    type Target = NetworkHandle;

    fn deref(&self) -> &NetworkHandle {
        &self.handle
    }
}
