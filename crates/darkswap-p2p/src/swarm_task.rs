//! The task that owns the libp2p `Swarm`: a thin IO shell over the sans-IO
//! services of `darkswap-core`. It turns swarm events and handle commands
//! into service inputs (with the time, read once per input), performs what
//! the services ask (publish, request, listen, penalise), wakes them when
//! their timers are due, and reports [`NetworkEvent`]s without ever
//! blocking on the application.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::Duration,
};

use darkswap_core::{
    GossipDropReason, NetworkEvent, Now,
    auth::AuthManager,
    gossip::{GossipRateLimiter, GossipValidator},
    orderbook::{Orderbook, VerifiedItems},
    own_orders::{OwnOrders, OwnOrdersOutput},
    paced::Paced,
    protocols::{ORDERBOOK_TOPIC, TRADE_TOPIC},
    reconnect::Reconnector,
    relay_discovery::RelaySource,
    relay_keeper::{RelayKeeper, RelayKeeperConfig},
    relay_pool::RelayConnectionPool,
    reputation::{BannedPeer, Penalty, PenaltyReason, ReputationManager},
    sync::{OrderbookSync, SyncOutput},
};
use futures::{StreamExt, stream::FuturesUnordered};
use libp2p::{
    Multiaddr, PeerId, Swarm, core::transport::ListenerId, gossipsub, kad,
    request_response::OutboundRequestId, swarm::ConnectionId,
};
use tokio::sync::{mpsc, oneshot};
use web_time::{Instant, SystemTime};

use crate::{
    auth::AuthToken,
    behaviour::{Behaviour, LoopbackGuard, build_swarm},
    command::Command,
    config::NetworkConfig,
    error::Error,
    metrics::{MetricsRegistry, P2PMetrics},
    perf,
    runtime::{self, TaskHandle},
};

mod commands;
mod events;
mod metrics;
mod outbox;
mod reconnect;
mod relays;
mod trading;

/// How long a graceful shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long, of that, it waits for the peers on the orderbook topic to
/// close their connections after its `Disconnect` (peers of other
/// implementations do not, and are not waited for longer).
const DEPARTURE_GRACE: Duration = Duration::from_secs(1);
/// How often expired orders, challenges and sessions are dropped.
const PRUNE_INTERVAL: Duration = Duration::from_secs(1);

/// Own order messages kept for a peer to subscribe (see
/// `SwarmTask::unsent`): a node makes this many orders before its first
/// peer subscribes only in a test.
const MAX_UNSENT: usize = 256;

/// How often paced re-announcements go out, `republish_per_tick` at a time.
const REPUBLISH_TICK: Duration = Duration::from_millis(100);

/// Both clocks, read once for one input.
pub(crate) fn now() -> Now {
    Now::new(Instant::now(), SystemTime::now())
}

type FindReply = oneshot::Sender<Result<Vec<Multiaddr>, Error>>;
type AuthReply = oneshot::Sender<Result<AuthToken, darkswap_core::auth::AuthError>>;

/// Who waits for an outbound `/darkswap/auth/1.0.0` challenge.
enum PendingAuth {
    /// A configured relay, before its reservation.
    Relay(PeerId),
    /// A caller of `authenticate_peer`.
    Peer(AuthReply),
}

/// One open connection, as `peers()` reports it.
struct OpenConnection {
    id: ConnectionId,
    remote: Multiaddr,
    relayed: bool,
    /// Whether this node dialled it (so `remote` is a listening address).
    dialed: bool,
}

pub(crate) struct SwarmTask {
    swarm: Swarm<LoopbackGuard<Behaviour>>,
    commands: mpsc::Receiver<Command>,
    events: outbox::Outbox,

    // The node's state and the services that decide over it.
    book: Orderbook,
    gossip_rate: GossipRateLimiter,
    gossip: GossipValidator,
    own_orders: OwnOrders,
    sync: OrderbookSync,
    relays: RelayKeeper<ListenerId>,
    /// Which relays to hold reservations on; none with `relay.enabled` or
    /// `relay.active` off.
    pool: Option<RelayConnectionPool>,
    /// Whether relays are learned of from identify, mDNS and the DHT.
    relay_discovery: bool,
    /// Whether circuit addresses may be dialled (`relay.enabled`).
    relay_enabled: bool,
    /// Peers found by mDNS or the DHT, until identify tells if they relay.
    relay_hints: HashMap<PeerId, RelaySource>,
    /// Connected peers whose identify lists the hop protocol (their
    /// addresses are in `peer_addrs`).
    known_relays: HashSet<PeerId>,
    /// DHT look-ups for relays in flight.
    relay_queries: HashSet<kad::QueryId>,
    /// Whether the DHT has had a peer in its routing table yet.
    dht_seeded: bool,
    /// Whether this node serves as a relay (`relay.hop`).
    hop: bool,
    auth: AuthManager,
    reputation: ReputationManager,
    next_prune: Instant,
    /// The node's trades, when it trades.
    trading: Option<trading::TradingState>,
    /// Asset index look-ups and broadcasts in flight.
    trade_io: FuturesUnordered<trading::TradeIoFuture>,
    /// Re-announcements, paced (see `darkswap_core::paced`).
    republish: Paced<darkswap_proto::Message>,
    /// Own order messages published while no peer was known to take their
    /// topic, sent when one subscribes. A node that just connected learns
    /// its peer's subscription a moment later, and its peer may have
    /// synced from it before the user's first order existed: without
    /// this, that order would wait for the next refresh. The oldest go
    /// past [`MAX_UNSENT`] (refreshes and sync still bring them).
    unsent: VecDeque<(String, darkswap_proto::Message)>,
    /// The node's registry: libp2p's own metrics (bytes by transport stack
    /// and direction among them) and the `p2p_*` series.
    metrics: MetricsRegistry,
    /// libp2p's protocol and connection metrics, fed every event.
    libp2p_metrics: libp2p::metrics::Metrics,
    /// Seed 001's series; dials are recorded here as they happen.
    p2p_metrics: P2PMetrics,
    /// Dials in flight and when each started.
    dials: HashMap<ConnectionId, Instant>,
    /// When each connected peer last sent application traffic.
    activity: HashMap<PeerId, Instant>,
    /// Sync answers whose signatures are being verified on tokio's blocking
    /// pool: a joiner's verification runs on every core, and this task
    /// stays free for the swarm. As many as the sync keeps fetches in
    /// flight.
    verifying: FuturesUnordered<
        futures::future::BoxFuture<'static, (PeerId, Result<VerifiedItems, runtime::TaskFailed>)>,
    >,

    // IO bookkeeping: who waits for what.
    connections: HashMap<PeerId, Vec<OpenConnection>>,
    /// Peers whose direct link a hole punch made, reported; until it closes.
    punched: HashSet<PeerId>,
    /// Market peers lost without a goodbye, to redial.
    reconnect: Reconnector,
    /// Connected peers on the orderbook topic.
    market_peers: HashSet<PeerId>,
    /// Listen addresses from identify, of connected and lost peers.
    peer_addrs: HashMap<PeerId, Vec<Multiaddr>>,
    rtts: HashMap<PeerId, Duration>,
    pending_auth: HashMap<OutboundRequestId, PendingAuth>,
    pending_listens: HashMap<ListenerId, oneshot::Sender<Result<Multiaddr, Error>>>,
    pending_dials: HashMap<ConnectionId, (String, oneshot::Sender<Result<PeerId, Error>>)>,
    pending_finds: HashMap<kad::QueryId, (PeerId, FindReply)>,
    _perf_server: Option<TaskHandle>,
}

/// Builds the swarm and the services, and starts the task.
pub(crate) async fn spawn(
    key: libp2p::identity::Keypair,
    config: NetworkConfig,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
) -> Result<Spawned, Error> {
    let build_err = |e: &dyn std::fmt::Display| Error::Build(e.to_string());
    let mut metrics = prometheus_client::registry::Registry::default();
    let swarm = build_swarm(&key, &config, &mut metrics).await?;
    let libp2p_metrics = libp2p::metrics::Metrics::new(&mut metrics);
    let p2p_metrics = P2PMetrics::new();
    p2p_metrics.register(&mut metrics);
    let metrics = MetricsRegistry::new(metrics);
    let local_peer_id = *swarm.local_peer_id();
    let mut perf_server = None;
    let perf_control = match swarm.behaviour().stream.as_ref() {
        Some(stream) => {
            let mut control = stream.new_control();
            let incoming = control
                .accept(perf::PERF_PROTOCOL)
                .map_err(|e| build_err(&e))?;
            perf_server = Some(runtime::spawn(perf::serve(incoming)));
            Some(control)
        }
        None => None,
    };
    let t0 = now();
    let trading = config
        .trading
        .as_ref()
        .map(|t| trading::TradingState::new(key.clone(), t, t0));
    let mut task = SwarmTask {
        book: Orderbook::new(config.orderbook.clone()),
        gossip_rate: GossipRateLimiter::new(config.gossip_rate_limit),
        gossip: GossipValidator::new(config.max_message_size),
        own_orders: OwnOrders::new(key.clone(), config.orderbook.refresh_interval, t0),
        sync: OrderbookSync::new(config.sync.clone(), t0.instant),
        relays: RelayKeeper::new(RelayKeeperConfig {
            retry_initial: config.relay.pool.retry_initial,
            retry_max: config.relay.pool.retry_max,
            require_auth: config.require_relay_auth,
            min_auth_level: config.min_relay_auth_level,
        }),
        pool: (config.relay.enabled && config.relay.active)
            .then(|| RelayConnectionPool::new(config.relay.effective_pool(), t0.instant)),
        relay_discovery: config.relay.discovery,
        relay_enabled: config.relay.enabled,
        relay_hints: HashMap::new(),
        known_relays: HashSet::new(),
        relay_queries: HashSet::new(),
        dht_seeded: false,
        hop: config.relay.hop,
        auth: AuthManager::new(config.auth.clone(), key).map_err(|e| build_err(&e))?,
        reputation: ReputationManager::new(config.reputation.clone(), t0.wall)
            .map_err(|e| build_err(&e))?,
        next_prune: t0.instant + PRUNE_INTERVAL,
        verifying: FuturesUnordered::new(),
        trading,
        trade_io: FuturesUnordered::new(),
        republish: Paced::new(config.republish_per_tick, REPUBLISH_TICK),
        unsent: VecDeque::new(),
        metrics: metrics.clone(),
        libp2p_metrics,
        p2p_metrics: p2p_metrics.clone(),
        dials: HashMap::new(),
        activity: HashMap::new(),
        swarm,
        commands,
        events: outbox::Outbox::new(events),
        connections: HashMap::new(),
        punched: HashSet::new(),
        reconnect: Reconnector::new(config.reconnect.clone()),
        market_peers: HashSet::new(),
        peer_addrs: HashMap::new(),
        rtts: HashMap::new(),
        pending_auth: HashMap::new(),
        pending_listens: HashMap::new(),
        pending_dials: HashMap::new(),
        pending_finds: HashMap::new(),
        _perf_server: perf_server,
    };
    // Listeners first: a TCP connection dialled before its listener is up
    // leaves from a random port, and that port is what a relay observes and
    // a hole punch then aims at.
    task.listen_first(&config.listen_addresses, config.connection_timeout)
        .await?;
    task.start(&config, now())?;
    let handle = runtime::spawn(task.run());
    Ok(Spawned {
        local_peer_id,
        perf: perf_control,
        task: handle,
        metrics,
        p2p_metrics,
    })
}

/// A started swarm task and what the handle needs of it.
pub(crate) struct Spawned {
    pub(crate) local_peer_id: PeerId,
    pub(crate) perf: Option<libp2p_stream::Control>,
    pub(crate) task: TaskHandle,
    pub(crate) metrics: MetricsRegistry,
    pub(crate) p2p_metrics: P2PMetrics,
}

impl SwarmTask {
    /// Listens on `addrs` and drives the swarm until each listener is up
    /// (or failed), within `timeout`; nothing is dialled before.
    async fn listen_first(&mut self, addrs: &[Multiaddr], timeout: Duration) -> Result<(), Error> {
        let mut waiting = Vec::new();
        for addr in addrs {
            let (reply, answer) = oneshot::channel();
            self.on_command(Command::Swarm(crate::command::SwarmCommand::Listen {
                addr: addr.clone(),
                reply,
            }));
            waiting.push((addr, answer));
        }
        let deadline = Instant::now() + timeout;
        for (addr, mut answer) in waiting {
            loop {
                match answer.try_recv() {
                    Ok(result) => {
                        result?;
                        break;
                    }
                    Err(oneshot::error::TryRecvError::Closed) => {
                        return Err(Error::Listen {
                            addr: addr.clone(),
                            reason: "the listener went away".into(),
                        });
                    }
                    Err(oneshot::error::TryRecvError::Empty) => {}
                }
                match runtime::timeout_at(deadline, self.swarm.select_next_some()).await {
                    Ok(event) => self.on_swarm_event(event),
                    Err(_) => {
                        return Err(Error::Listen {
                            addr: addr.clone(),
                            reason: format!("not listening within {timeout:?}"),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn start(&mut self, config: &NetworkConfig, now: Now) -> Result<(), Error> {
        for ban in self.reputation.bans(now.wall) {
            self.swarm.behaviour_mut().blocked.block_peer(ban.peer_id);
        }
        for topic in &config.topics {
            self.subscribe(topic);
        }
        for addr in &config.external_addresses {
            self.swarm.add_external_address(addr.clone());
        }
        for addr in &config.relay_peers {
            let (relay, base) = darkswap_core::relay_keeper::split_peer_id(addr)
                .ok_or_else(|| Error::MissingPeerId(addr.clone()))?;
            if let Some(pool) = self.pool.as_mut() {
                pool.add_relay(relay, vec![base], now.instant);
            }
        }
        if config.relay.hop {
            self.provide_relay();
        }
        for addr in &config.bootstrap_peers {
            let (peer, base) = darkswap_core::relay_keeper::split_peer_id(addr)
                .ok_or_else(|| Error::MissingPeerId(addr.clone()))?;
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                kad.add_address(&peer, base);
            }
            if let Err(e) = self.dial(addr.clone()) {
                tracing::warn!(%addr, error = %e, "cannot dial bootstrap peer");
            }
        }
        if !config.bootstrap_peers.is_empty()
            && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
        {
            let _ = kad.bootstrap();
        }
        self.on_timeout(now);
        Ok(())
    }

    async fn run(mut self) {
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown { reply }) => {
                        self.close_gracefully().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => self.on_command(command),
                    // Every handle is gone: nobody can use the node any more.
                    None => {
                        self.close_gracefully().await;
                        return;
                    }
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some((peer, verified)) = self.verifying.next(), if !self.verifying.is_empty() => {
                    self.on_verified(peer, verified);
                }
                Some(io) = self.trade_io.next(), if !self.trade_io.is_empty() => {
                    self.on_trade_io(io);
                }
                () = runtime::sleep_until(deadline) => self.on_timeout(now()),
                permit = self.events.room(), if self.events.is_holding() => {
                    self.events.send_held(permit);
                }
            }
            self.perform_outputs();
        }
    }

    /// The earliest instant a service or a ban wants to be woken at.
    fn next_deadline(&self) -> Instant {
        // Bans end on the wall clock (they survive restarts); the timer
        // runs on the monotonic one.
        let ban_expiry = self.reputation.next_expiry().map(|until| {
            Instant::now() + until.duration_since(SystemTime::now()).unwrap_or_default()
        });
        [
            Some(self.next_prune),
            Some(self.own_orders.poll_timeout()),
            Some(self.sync.poll_timeout()),
            self.relays.poll_timeout(),
            self.pool.as_ref().map(RelayConnectionPool::poll_timeout),
            self.reconnect.poll_timeout(),
            self.trading.as_ref().and_then(|t| t.trades.poll_timeout()),
            self.republish.poll_timeout(),
            ban_expiry,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.next_prune)
    }

    /// Wakes every service whose time has come.
    fn on_timeout(&mut self, now: Now) {
        if let Some(pool) = self.pool.as_mut() {
            pool.handle_timeout(now.instant);
        }
        self.relays.handle_timeout(&mut self.auth, now);
        self.reconnect.handle_timeout(now.instant);
        self.redial();
        self.own_orders.handle_timeout(&mut self.book, now);
        for message in self.republish.poll_due(now.instant) {
            // An order cancelled or filled while its re-announcement
            // waited is not announced again.
            if let darkswap_proto::Message::OrderCreate(create) = &message
                && create
                    .order
                    .as_ref()
                    .is_some_and(|o| !self.own_orders.contains(&o.id()))
            {
                continue;
            }
            self.publish_order_message(ORDERBOOK_TOPIC, &message);
        }
        self.sync.handle_timeout(&self.book, now.instant);
        self.on_trade_timeout(now);
        for peer in self.reputation.expire(now.wall) {
            self.lift_ban(peer);
        }
        if now.instant >= self.next_prune {
            self.next_prune = now.instant + PRUNE_INTERVAL;
            self.auth.prune(now.wall);
            self.prune_peer_addrs();
            self.gossip_rate.handle_timeout(now.instant);
            if let Some(change) = self.book.prune(now.unix_secs()) {
                self.emit(NetworkEvent::OrderbookChanged(change));
            }
        }
        self.perform_outputs();
    }

    /// Does what the services ask, until none asks for more.
    fn perform_outputs(&mut self) {
        loop {
            let mut idle = true;
            while let Some(output) = self.own_orders.poll_output() {
                idle = false;
                match output {
                    OwnOrdersOutput::Publish(message) => {
                        self.publish_order_message(ORDERBOOK_TOPIC, &message)
                    }
                    OwnOrdersOutput::PublishFill(message) => {
                        self.publish_order_message(TRADE_TOPIC, &message)
                    }
                    OwnOrdersOutput::Republish(message) => {
                        self.republish.push(message, Instant::now());
                    }
                    OwnOrdersOutput::Event(event) => self.emit(event),
                }
            }
            while let Some(output) = self.sync.poll_output() {
                idle = false;
                match output {
                    SyncOutput::Request { peer, request } => {
                        self.swarm.behaviour_mut().sync.send_request(&peer, request);
                    }
                    SyncOutput::Event(event) => self.emit(event),
                    SyncOutput::Penalize { peer, reason } => {
                        self.penalize(peer, reason);
                    }
                }
            }
            while let Some(output) = self
                .pool
                .as_mut()
                .and_then(RelayConnectionPool::poll_output)
            {
                idle = false;
                self.perform_pool_output(output);
            }
            while let Some(output) = self.relays.poll_output() {
                idle = false;
                self.perform_relay_output(output);
            }
            if idle {
                return;
            }
        }
    }

    fn publish_order_message(&mut self, topic: &str, message: &darkswap_proto::Message) {
        let data = darkswap_proto::encode(message);
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(gossipsub::IdentTopic::new(topic), data)
        {
            match e {
                // Every peer's send queue is full: the message is lost for
                // now (anti-entropy brings it to them later); say so.
                gossipsub::PublishError::AllQueuesFull(peers) => {
                    tracing::warn!(
                        peers,
                        kind = message.kind(),
                        "order message dropped: every send queue is full"
                    );
                    self.emit(NetworkEvent::GossipDropped {
                        peer: None,
                        messages: 1,
                        reason: GossipDropReason::PublishFailed,
                    });
                }
                // Nobody to send it to yet: the first peer to subscribe
                // gets it (see `unsent`).
                gossipsub::PublishError::NoPeersSubscribedToTopic => {
                    tracing::debug!(
                        kind = message.kind(),
                        "order message kept until a peer subscribes"
                    );
                    if self.unsent.len() == MAX_UNSENT {
                        self.unsent.pop_front();
                    }
                    self.unsent.push_back((topic.to_owned(), message.clone()));
                }
                // A re-announcement still in the duplicate cache: peers
                // have it, or get it by sync or at the next refresh.
                e => {
                    tracing::debug!(error = %e, kind = message.kind(), "order message not published now")
                }
            }
        }
    }

    /// Publishes what waited for a peer on `topic` (see `unsent`), now
    /// that one subscribed.
    pub(crate) fn publish_unsent(&mut self, topic: &str) {
        let (now, later): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.unsent)
            .into_iter()
            .partition(|(t, _)| t == topic);
        self.unsent = later;
        for (_, message) in now {
            self.publish_order_message(topic, &message);
        }
    }

    async fn close_gracefully(&mut self) {
        self.announce_departure().await;
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let listeners: Vec<ListenerId> = self.pending_listens.keys().copied().collect();
        for l in listeners {
            self.swarm.remove_listener(l);
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.swarm.connected_peers().next().is_some() {
            match runtime::timeout_at(deadline, self.swarm.select_next_some()).await {
                Ok(event) => self.on_swarm_event(event),
                Err(_) => break,
            }
        }
        tracing::debug!("swarm task stopped");
    }

    /// Tells the market this node leaves: a `Disconnect` on the orderbook
    /// topic, so peers hide its orders instead of offering what nobody can
    /// take. A peer that gets it closes its connection; waiting for that
    /// (a bounded while) is what makes sure the message left before this
    /// node's connections go.
    async fn announce_departure(&mut self) {
        let topic = gossipsub::IdentTopic::new(ORDERBOOK_TOPIC);
        let hash = topic.hash();
        let gossipsub = &self.swarm.behaviour().gossipsub;
        if !gossipsub.topics().any(|t| *t == hash) {
            return;
        }
        let listeners: Vec<PeerId> = gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&hash))
            .map(|(peer, _)| *peer)
            .collect();
        if listeners.is_empty() {
            return;
        }
        let bye = darkswap_proto::Message::Disconnect(darkswap_proto::Disconnect {
            reason: "shutdown".into(),
            sent_at: now().unix_secs(),
        });
        let published = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, darkswap_proto::encode(&bye));
        if let Err(error) = published {
            tracing::debug!(%error, "departure not announced");
            return;
        }
        let deadline = Instant::now() + DEPARTURE_GRACE;
        while listeners.iter().any(|p| self.swarm.is_connected(p)) {
            match runtime::timeout_at(deadline, self.swarm.select_next_some()).await {
                Ok(event) => self.on_swarm_event(event),
                Err(_) => break,
            }
        }
    }

    /// Hands an event to the application without ever waiting (see
    /// [`outbox`] for what gives when it reads too slowly).
    fn emit(&mut self, event: NetworkEvent) {
        self.events.emit(event);
    }

    fn subscribe(&mut self, topic: &str) {
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&gossipsub::IdentTopic::new(topic))
        {
            tracing::warn!(topic, error = %e, "subscribe failed");
        }
    }

    /// Scores `peer` down for `reason`, and bans it if that crosses the
    /// threshold. The hook for every misbehaviour signal.
    fn penalize(&mut self, peer: PeerId, reason: PenaltyReason) -> Option<Penalty> {
        let penalty = self.reputation.penalize(peer, reason, SystemTime::now())?;
        tracing::debug!(%peer, %reason, score = penalty.score, "peer penalized");
        self.emit(NetworkEvent::PeerPenalized {
            peer_id: peer,
            reason,
            score: penalty.score,
        });
        if let Some(ban) = &penalty.ban {
            self.enforce_ban(ban);
        }
        Some(penalty)
    }

    /// Disconnects a banned peer and refuses its connections.
    fn enforce_ban(&mut self, ban: &BannedPeer) {
        tracing::info!(peer = %ban.peer_id, reason = %ban.reason, until = ?ban.until, "peer banned");
        self.swarm.behaviour_mut().blocked.block_peer(ban.peer_id);
        self.peer_left(&ban.peer_id);
        self.emit(NetworkEvent::PeerBanned {
            peer_id: ban.peer_id,
            until: ban.until,
            reason: ban.reason,
        });
    }

    fn lift_ban(&mut self, peer: PeerId) {
        if self.swarm.behaviour_mut().blocked.unblock_peer(peer) {
            tracing::info!(%peer, "peer unbanned");
            self.emit(NetworkEvent::PeerUnbanned { peer_id: peer });
        }
    }
}
