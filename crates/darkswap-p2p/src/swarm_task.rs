//! The task that owns the libp2p `Swarm`: applies commands from handles,
//! turns swarm events into [`NetworkEvent`]s, and keeps relay reservations.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use darkswap_proto::{
    Asset, Message, OrderCancel, OrderCreate, OrderId, OrderbookRequest, SignedOrder,
};
use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm, autonat,
    core::ConnectedPoint,
    core::transport::ListenerId,
    dcutr, gossipsub, identify, kad, mdns,
    multiaddr::Protocol,
    noise, relay, request_response,
    swarm::{ConnectionId, DialError, SwarmEvent, dial_opts::DialOpts, dial_opts::PeerCondition},
    tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    BannedPeer, Error, Identity, NatStatus, NetworkConfig, NetworkEvent, ORDERBOOK_TOPIC,
    Orderbook, OrderbookError, PenaltyReason, ReputationManager, ReservationId,
    auth::{AuthError, AuthManager, AuthRequest, AuthResponse, AuthToken, AuthorizationLevel},
    behaviour::{Behaviour, BehaviourEvent, KAD_PROTOCOL},
    identity::load_or_create_keypair,
    network::Command,
    perf,
    relay_reservations::RelayReservations,
    reputation,
    validation::validate_gossip,
};

/// How long a graceful shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Orders (and as many cancels) in one sync response: keeps it well under
/// the 1 MiB message limit.
const SNAPSHOT_LIMIT: usize = 2000;
/// How often expired and unrefreshed orders are dropped.
const PRUNE_INTERVAL: Duration = Duration::from_secs(1);

/// The wall clock in unix seconds, the time base of every order rule.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Splits `/…/p2p/<id>` into the peer id and the address without it.
pub(crate) fn split_peer_id(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut base = addr.clone();
    match base.pop() {
        Some(Protocol::P2p(peer)) => Some((peer, base)),
        _ => None,
    }
}

/// The relay a connection runs through, if it is a relayed one.
fn relay_of(endpoint: &ConnectedPoint) -> Option<PeerId> {
    let addr = match endpoint {
        ConnectedPoint::Dialer { address, .. } => address,
        ConnectedPoint::Listener { local_addr, .. } => local_addr,
    };
    let mut relay = None;
    for p in addr.iter() {
        match p {
            Protocol::P2p(id) => relay = Some(id),
            Protocol::P2pCircuit => return relay,
            _ => {}
        }
    }
    None
}

pub(crate) async fn spawn(
    config: NetworkConfig,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
) -> Result<
    (
        PeerId,
        Option<libp2p_stream::Control>,
        tokio::task::JoinHandle<()>,
    ),
    Error,
> {
    let key = match &config.identity {
        Identity::Ephemeral => libp2p::identity::Keypair::generate_ed25519(),
        Identity::Keypair(k) => k.clone(),
        Identity::File(path) => load_or_create_keypair(path)?,
    };
    let build_err = |e: &dyn std::fmt::Display| Error::Build(e.to_string());
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| build_err(&e))?
        .with_quic()
        .with_dns()
        .map_err(|e| build_err(&e))?
        .with_websocket(noise::Config::new, yamux::Config::default)
        .await
        .map_err(|e| build_err(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| build_err(&e))?
        .with_behaviour(|key, relay_client| build_behaviour(key, relay_client, &config))
        .map_err(|e| build_err(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_connection_timeout))
        .build();

    let local_peer_id = *swarm.local_peer_id();
    let mut perf_server = None;
    let perf_control = match swarm.behaviour().stream.as_ref() {
        Some(stream) => {
            let mut control = stream.new_control();
            let incoming = control
                .accept(perf::PERF_PROTOCOL)
                .map_err(|e| build_err(&e))?;
            perf_server = Some(AbortOnDrop(tokio::spawn(perf::serve(incoming))));
            Some(control)
        }
        None => None,
    };

    let mut refresh = tokio::time::interval(
        config
            .orderbook
            .refresh_interval
            .max(Duration::from_millis(100)),
    );
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reputation = ReputationManager::new(config.reputation.clone(), SystemTime::now())
        .map_err(|e| build_err(&e))?;
    let mut prune = tokio::time::interval(PRUNE_INTERVAL);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let auth = AuthManager::new(config.auth.clone(), key.clone())?;
    let mut task = SwarmTask {
        auth,
        require_relay_auth: config.require_relay_auth,
        min_relay_auth_level: config.min_relay_auth_level,
        pending_auth: HashMap::new(),
        key,
        orderbook: Orderbook::new(config.orderbook.clone()),
        own_orders: HashMap::new(),
        synced_peers: HashSet::new(),
        connections: HashMap::new(),
        rtts: HashMap::new(),
        refresh,
        prune,
        relays: RelayReservations::new(config.relay_retry_initial, config.relay_retry_max),
        swarm,
        commands,
        events,
        dropped_events: 0,
        pending_listens: HashMap::new(),
        pending_dials: HashMap::new(),
        pending_finds: HashMap::new(),
        next_reservation: 0,
        max_message_size: config.max_message_size,
        reputation,
        _perf_server: perf_server,
    };
    for ban in task.reputation.bans(SystemTime::now()) {
        task.swarm.behaviour_mut().blocked.block_peer(ban.peer_id);
    }
    task.start(&config)?;
    Ok((local_peer_id, perf_control, tokio::spawn(task.run())))
}

fn build_behaviour(
    key: &libp2p::identity::Keypair,
    relay_client: relay::client::Behaviour,
    config: &NetworkConfig,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    Ok(crate::behaviour::build(key, relay_client, config)?)
}

type FindReply = oneshot::Sender<Result<Vec<Multiaddr>, Error>>;

/// Aborts the task when dropped, so nothing outlives the swarm task.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Who waits for an outbound `/darkswap/auth/1.0.0` challenge.
enum PendingAuth {
    /// A configured relay, before its reservation.
    Relay(PeerId),
    /// A caller of `authenticate_peer`.
    Peer(oneshot::Sender<Result<AuthToken, Error>>),
}

struct SwarmTask {
    auth: AuthManager,
    require_relay_auth: bool,
    min_relay_auth_level: AuthorizationLevel,
    pending_auth: HashMap<request_response::OutboundRequestId, PendingAuth>,
    key: libp2p::identity::Keypair,
    orderbook: Orderbook,
    own_orders: HashMap<OrderId, SignedOrder>,
    /// Open connections per peer: remote address and whether relayed.
    connections: HashMap<PeerId, Vec<(ConnectionId, Multiaddr, bool)>>,
    rtts: HashMap<PeerId, Duration>,
    /// Peers asked for their book during their current connection.
    synced_peers: HashSet<PeerId>,
    refresh: tokio::time::Interval,
    prune: tokio::time::Interval,
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
    dropped_events: u64,
    relays: RelayReservations,
    pending_listens: HashMap<ListenerId, oneshot::Sender<Result<Multiaddr, Error>>>,
    pending_dials: HashMap<ConnectionId, (String, oneshot::Sender<Result<PeerId, Error>>)>,
    pending_finds: HashMap<kad::QueryId, (PeerId, FindReply)>,
    next_reservation: u64,
    max_message_size: usize,
    reputation: ReputationManager,
    _perf_server: Option<AbortOnDrop>,
}

impl SwarmTask {
    fn start(&mut self, config: &NetworkConfig) -> Result<(), Error> {
        for topic in &config.topics {
            self.subscribe(topic);
        }
        let now = Instant::now();
        for addr in &config.relay_peers {
            let (relay, _) =
                split_peer_id(addr).ok_or_else(|| Error::MissingPeerId(addr.clone()))?;
            self.relays.add(
                relay,
                addr.clone().with(Protocol::P2pCircuit),
                now,
                config.require_relay_auth,
            );
        }
        for addr in &config.bootstrap_peers {
            let (peer, base) =
                split_peer_id(addr).ok_or_else(|| Error::MissingPeerId(addr.clone()))?;
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                kad.add_address(&peer, base);
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::warn!(%addr, error = %e, "cannot dial bootstrap peer");
            }
        }
        if !config.bootstrap_peers.is_empty()
            && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
        {
            let _ = kad.bootstrap();
        }
        Ok(())
    }

    async fn run(mut self) {
        loop {
            let deadline = self.relays.next_deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => futures::future::pending().await,
                }
            };
            // Bans end on the wall clock (they survive restarts); the timer
            // runs on the monotonic one.
            let ban_expiry = self.reputation.next_expiry().map(|until| {
                tokio::time::Instant::now()
                    + until.duration_since(SystemTime::now()).unwrap_or_default()
            });
            let ban_sleep = async {
                match ban_expiry {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => futures::future::pending().await,
                }
            };
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
                () = sleep => self.retry_relays(),
                () = ban_sleep => self.expire_bans(),
                _ = self.refresh.tick() => self.refresh_own_orders(),
                _ = self.prune.tick() => {
                    self.auth.prune(SystemTime::now());
                    if let Some(change) = self.orderbook.prune(unix_now()) {
                        self.emit(NetworkEvent::OrderbookChanged(change));
                    }
                }
            }
        }
    }

    async fn close_gracefully(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let listeners: Vec<ListenerId> = self.pending_listens.keys().copied().collect();
        for l in listeners {
            self.swarm.remove_listener(l);
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while self.swarm.connected_peers().next().is_some() {
            match tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await {
                Ok(event) => self.on_swarm_event(event),
                Err(_) => break,
            }
        }
        tracing::debug!("swarm task stopped");
    }

    fn emit(&mut self, event: NetworkEvent) {
        if self.dropped_events > 0 {
            match self.events.try_send(NetworkEvent::EventsDropped {
                count: self.dropped_events,
            }) {
                Ok(()) => self.dropped_events = 0,
                Err(_) => {
                    self.dropped_events += 1;
                    return;
                }
            }
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(event) {
            self.dropped_events += 1;
            tracing::warn!(
                dropped = self.dropped_events,
                "event queue full; dropping events"
            );
        }
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

    fn retry_relays(&mut self) {
        for (relay, circuit_addr) in self.relays.due(Instant::now()) {
            if !self.require_relay_auth {
                self.listen_through_relay(relay, circuit_addr);
            } else if let Some(level) = self.relay_session_level(&relay) {
                self.relays.auth_succeeded(&relay, level);
                self.listen_through_relay(relay, circuit_addr);
            } else {
                self.start_relay_auth(relay, &circuit_addr);
            }
        }
    }

    fn listen_through_relay(&mut self, relay: PeerId, circuit_addr: Multiaddr) {
        match self.swarm.listen_on(circuit_addr.clone()) {
            Ok(listener) => {
                tracing::debug!(%relay, %circuit_addr, "requesting relay reservation");
                self.relays.listening(&relay, listener);
            }
            Err(e) => {
                tracing::warn!(%relay, error = %e, "cannot listen through relay");
                self.relays.listen_failed(&relay, Instant::now());
            }
        }
    }

    /// An earlier authentication (challenge or token) still holds at the
    /// level relays need.
    fn relay_session_level(&self, relay: &PeerId) -> Option<AuthorizationLevel> {
        let now = SystemTime::now();
        let level = self.auth.authorization_level(relay, now);
        (self.auth.is_authenticated(relay, now) && level >= self.min_relay_auth_level)
            .then_some(level)
    }

    /// Authenticates a configured relay before any reservation request:
    /// trusted relays pass at once, others get a challenge over the wire.
    fn start_relay_auth(&mut self, relay: PeerId, circuit_addr: &Multiaddr) {
        self.relays.authenticating(&relay);
        let now = SystemTime::now();
        match self.auth.authenticate_trusted(relay, now) {
            Err(e) => return self.relay_auth_failed(relay, e),
            Ok(Some(token)) => return self.relay_auth_done(relay, token.level),
            Ok(None) => {}
        }
        match self.auth.generate_challenge(relay, now) {
            Ok(challenge) => {
                let mut addr = circuit_addr.clone();
                addr.pop(); // p2p-circuit
                let addrs = split_peer_id(&addr).map(|(_, base)| base).into_iter();
                let id = self.swarm.behaviour_mut().auth.send_request_with_addresses(
                    &relay,
                    AuthRequest::Challenge(challenge),
                    addrs.collect(),
                );
                self.pending_auth.insert(id, PendingAuth::Relay(relay));
            }
            Err(e) => self.relay_auth_failed(relay, e),
        }
    }

    fn relay_auth_done(&mut self, relay: PeerId, level: AuthorizationLevel) {
        if level < self.min_relay_auth_level {
            return self.relay_auth_failed(
                relay,
                AuthError::InsufficientLevel {
                    have: level,
                    need: self.min_relay_auth_level,
                },
            );
        }
        tracing::info!(%relay, %level, "relay authenticated");
        self.emit(NetworkEvent::RelayAuthenticated {
            relay_peer_id: relay,
            level,
        });
        if let Some(circuit_addr) = self.relays.auth_succeeded(&relay, level) {
            self.listen_through_relay(relay, circuit_addr);
        }
    }

    fn relay_auth_failed(&mut self, relay: PeerId, error: AuthError) {
        tracing::warn!(%relay, %error, "relay refused: authentication failed");
        self.relays
            .auth_failed(&relay, error.to_string(), Instant::now());
        self.emit(NetworkEvent::RelayAuthFailed {
            relay_peer_id: relay,
            error,
        });
    }

    /// The level a relay reached through the manual API, checked against
    /// the minimum for relays.
    fn check_relay_level(&self, level: AuthorizationLevel) -> Result<AuthorizationLevel, Error> {
        if level < self.min_relay_auth_level {
            return Err(Error::Auth(AuthError::InsufficientLevel {
                have: level,
                need: self.min_relay_auth_level,
            }));
        }
        Ok(level)
    }

    fn on_auth_command(&mut self, command: Command) {
        let now = SystemTime::now();
        match command {
            Command::GenerateRelayChallenge { relay, reply } => {
                let _ = reply.send(
                    self.auth
                        .generate_challenge(relay, now)
                        .map_err(Error::Auth),
                );
            }
            Command::VerifyRelayChallengeResponse {
                relay,
                response,
                reply,
            } => {
                let result = self
                    .auth
                    .verify_response(relay, &response, now)
                    .map_err(Error::Auth)
                    .and_then(|token| self.check_relay_level(token.level).map(|_| token));
                let _ = reply.send(result);
            }
            Command::AuthenticateRelay {
                relay,
                token,
                reply,
            } => {
                let result = self
                    .auth
                    .authenticate(relay, &token, now)
                    .map_err(Error::Auth)
                    .and_then(|level| self.check_relay_level(level));
                let _ = reply.send(result);
            }
            Command::AuthenticatePeer { peer, reply } => {
                match self.auth.authenticate_trusted(peer, now) {
                    Ok(Some(token)) => {
                        let _ = reply.send(Ok(token));
                        return;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = reply.send(Err(Error::Auth(e)));
                        return;
                    }
                }
                match self.auth.generate_challenge(peer, now) {
                    Ok(challenge) => {
                        let id = self
                            .swarm
                            .behaviour_mut()
                            .auth
                            .send_request(&peer, AuthRequest::Challenge(challenge));
                        self.pending_auth.insert(id, PendingAuth::Peer(reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(Error::Auth(e)));
                    }
                }
            }
            Command::PeerAuthLevel { peer, reply } => {
                let _ = reply.send(self.auth.authorization_level(&peer, now));
            }
            _ => unreachable!("only auth commands are routed here"),
        }
    }

    fn on_auth(&mut self, event: request_response::Event<AuthRequest, AuthResponse>) {
        let now = SystemTime::now();
        let (request_id, result) = match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let response = self.auth.answer(&request, peer, now);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .auth
                    .send_response(channel, response);
                return;
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let result = self.auth.check_answer(peer, response, now);
                // A proof that does not verify is a forgery or a wrong key,
                // not bad luck: it costs the peer reputation. A refusal to
                // answer, or a stale challenge, does not.
                if let Err(
                    AuthError::BadMac
                    | AuthError::BadSignature
                    | AuthError::KeyMismatch(_)
                    | AuthError::WrongPeer(..)
                    | AuthError::WrongMethod { .. },
                ) = &result
                {
                    self.penalize(peer, PenaltyReason::FailedAuth);
                }
                (request_id, result)
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => (request_id, Err(AuthError::Protocol(error.to_string()))),
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound auth request failed");
                return;
            }
            request_response::Event::ResponseSent { .. } => return,
        };
        match self.pending_auth.remove(&request_id) {
            Some(PendingAuth::Relay(relay)) => match result {
                Ok(token) => self.relay_auth_done(relay, token.level),
                Err(error) => self.relay_auth_failed(relay, error),
            },
            Some(PendingAuth::Peer(reply)) => {
                let _ = reply.send(result.map_err(Error::Auth));
            }
            None => {}
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Listen { addr, reply } => match ensure_tcp_port_free(&addr).and_then(|()| {
                self.swarm
                    .listen_on(addr.clone())
                    .map_err(|e| e.to_string())
            }) {
                Ok(id) => {
                    self.pending_listens.insert(id, reply);
                }
                Err(reason) => {
                    let _ = reply.send(Err(Error::Listen { addr, reason }));
                }
            },
            Command::Dial { addr, reply } => {
                let opts = DialOpts::from(addr.clone());
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.pending_dials.insert(id, (addr.to_string(), reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(dial_error(addr.to_string(), &e)));
                    }
                }
            }
            Command::Subscribe { topic } => self.subscribe(&topic),
            Command::Unsubscribe { topic } => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .unsubscribe(&gossipsub::IdentTopic::new(topic));
            }
            Command::Publish { topic, data, reply } => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(gossipsub::IdentTopic::new(topic), data)
                    .map(|_| ())
                    .map_err(|e| Error::Gossipsub(e.to_string()));
                let _ = reply.send(result);
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Peers { reply } => {
                let mut peers: Vec<crate::PeerInfo> = self
                    .connections
                    .iter()
                    .filter_map(|(peer, conns)| {
                        let (_, address, _) = conns.first()?;
                        Some(crate::PeerInfo {
                            peer_id: *peer,
                            address: address.clone(),
                            relayed: conns.iter().all(|(_, _, relayed)| *relayed),
                            rtt: self.rtts.get(peer).copied(),
                        })
                    })
                    .collect();
                peers.sort_by_key(|p| p.peer_id);
                let _ = reply.send(peers);
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::FindPeer { peer, reply } => match self.swarm.behaviour_mut().kad.as_mut() {
                Some(kad) => {
                    let query = kad.get_closest_peers(peer);
                    self.pending_finds.insert(query, (peer, reply));
                }
                None => {
                    let _ = reply.send(Err(Error::Disabled("kademlia")));
                }
            },
            Command::RelayStatus { reply } => {
                let _ = reply.send(self.relays.status());
            }
            Command::CreateOrder { order, reply } => {
                let _ = reply.send(self.create_order(&order));
            }
            Command::CancelOrder { id, reply } => {
                let _ = reply.send(self.cancel_order(id));
            }
            Command::RestoreOrders { orders, reply } => {
                let results = orders.into_iter().map(|o| self.restore_order(o)).collect();
                let _ = reply.send(results);
            }
            Command::GetBook { base, quote, reply } => {
                let _ = reply.send(self.orderbook.book(base, quote));
            }
            Command::OwnOrders { reply } => {
                let own = self
                    .own_orders
                    .iter()
                    .filter_map(|(id, signed)| Some((self.orderbook.get(id)?, signed.clone())))
                    .collect();
                let _ = reply.send(own);
            }
            Command::ExportBook { reply } => {
                let _ = reply.send(self.orderbook.snapshot(None, usize::MAX));
            }
            Command::ImportBook { book, reply } => {
                let (changes, rejected) = self.orderbook.merge(&book, unix_now());
                let n = changes.len();
                for change in changes {
                    self.emit(NetworkEvent::OrderbookChanged(change));
                }
                let _ = reply.send((n, rejected));
            }
            command @ (Command::GenerateRelayChallenge { .. }
            | Command::VerifyRelayChallengeResponse { .. }
            | Command::AuthenticateRelay { .. }
            | Command::AuthenticatePeer { .. }
            | Command::PeerAuthLevel { .. }) => self.on_auth_command(command),
            Command::ReportPeer {
                peer,
                reason,
                reply,
            } => {
                let _ = reply.send(self.penalize(peer, reason));
            }
            Command::BanPeer {
                peer,
                duration,
                reply,
            } => {
                let ban = self.reputation.ban(peer, duration, SystemTime::now());
                self.enforce_ban(&ban);
                let _ = reply.send(ban);
            }
            Command::UnbanPeer { peer, reply } => {
                let was_banned = self.reputation.unban(&peer, SystemTime::now());
                // Also when the ban ran out but its timer has not fired yet.
                self.lift_ban(peer);
                let _ = reply.send(was_banned);
            }
            Command::BannedPeers { reply } => {
                let _ = reply.send(self.reputation.bans(SystemTime::now()));
            }
            Command::PeerReputation { peer, reply } => {
                let _ = reply.send(self.reputation.reputation(&peer, SystemTime::now()));
            }
            Command::ImportBans { bans, reply } => {
                let applied = self.reputation.import(bans, SystemTime::now());
                for ban in &applied {
                    self.swarm.behaviour_mut().blocked.block_peer(ban.peer_id);
                }
                let _ = reply.send(applied.len());
            }
            Command::Shutdown { .. } => unreachable!("handled in run"),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                tracing::info!(%address, "listening");
                if let Some(reply) = self.pending_listens.remove(&listener_id) {
                    let _ = reply.send(Ok(address.clone()));
                }
                self.emit(NetworkEvent::NewListenAddr { address });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.emit(NetworkEvent::ExpiredListenAddr { address });
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(reply) = self.pending_listens.remove(&listener_id) {
                    let reason = match &reason {
                        Ok(()) => "listener closed".to_owned(),
                        Err(e) => e.to_string(),
                    };
                    let _ = reply.send(Err(Error::Listen {
                        addr: Multiaddr::empty(),
                        reason,
                    }));
                }
                if let Some((relay, was_reserved)) =
                    self.relays.listener_closed(listener_id, Instant::now())
                {
                    tracing::info!(%relay, ?reason, "relay reservation ended; will re-reserve");
                    if was_reserved {
                        self.emit(NetworkEvent::RelayReservationLost {
                            relay_peer_id: relay,
                        });
                    }
                }
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                tracing::debug!(?listener_id, %error, "listener error");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                if num_established.get() == 1 {
                    self.emit(NetworkEvent::PeerConnected(peer_id));
                }
                let remote = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => address.clone(),
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
                };
                self.connections.entry(peer_id).or_default().push((
                    connection_id,
                    remote,
                    relay_of(&endpoint).is_some(),
                ));
                if let Some(relay) = relay_of(&endpoint) {
                    self.emit(NetworkEvent::ConnectedThroughRelay {
                        relay_peer_id: relay,
                        dst_peer_id: peer_id,
                    });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
                if let Some(conns) = self.connections.get_mut(&peer_id) {
                    conns.retain(|(id, _, _)| *id != connection_id);
                }
                if num_established == 0 {
                    self.connections.remove(&peer_id);
                    self.rtts.remove(&peer_id);
                    // Re-sync after a reconnect: the book may have moved on.
                    self.synced_peers.remove(&peer_id);
                    self.emit(NetworkEvent::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                if let Some((target, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(dial_error(target, &error)));
                } else {
                    tracing::debug!(?peer_id, %error, "outgoing connection failed");
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(event) => self.on_gossipsub(event),
            BehaviourEvent::Ping(libp2p::ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => {
                self.rtts.insert(peer, rtt);
            }
            BehaviourEvent::Sync(event) => self.on_sync(event),
            BehaviourEvent::Auth(event) => self.on_auth(event),
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            }) => self.on_reservation_accepted(relay_peer_id, renewal),
            BehaviourEvent::RelayClient(event) => tracing::debug!(?event, "relay client"),
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => match result {
                Ok(_) => self.emit(NetworkEvent::HolePunchSucceeded {
                    peer_id: remote_peer_id,
                }),
                Err(e) => self.emit(NetworkEvent::HolePunchFailed {
                    peer_id: remote_peer_id,
                    error: e.to_string(),
                }),
            },
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if info.protocols.contains(&KAD_PROTOCOL)
                    && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
                {
                    for addr in info.listen_addrs {
                        kad.add_address(&peer_id, addr);
                    }
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        kad.add_address(&peer, addr.clone());
                    }
                    let opts = DialOpts::peer_id(peer)
                        .addresses(vec![addr])
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    let _ = self.swarm.dial(opts);
                }
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            }) => {
                self.on_kad_query(id, result, step.last);
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. }) => {
                self.emit(NetworkEvent::RoutingUpdated { peer_id: peer });
            }
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { new, .. }) => {
                let status = match new {
                    autonat::NatStatus::Public(addr) => NatStatus::Public(addr),
                    autonat::NatStatus::Private => NatStatus::Private,
                    autonat::NatStatus::Unknown => NatStatus::Unknown,
                };
                self.emit(NetworkEvent::NatStatusChanged { status });
            }
            _ => {}
        }
    }

    fn on_reservation_accepted(&mut self, relay_peer_id: PeerId, renewal: bool) {
        // Configured relays report each new reservation once; relays the user
        // listened on by hand have no keeper, so trust libp2p's renewal flag.
        let new = if self.relays.is_relay(&relay_peer_id) {
            self.relays.reserved(&relay_peer_id)
        } else {
            !renewal
        };
        if new {
            self.next_reservation += 1;
            let reservation_id = ReservationId(self.next_reservation);
            tracing::info!(relay = %relay_peer_id, %reservation_id, "relay reservation accepted");
            self.emit(NetworkEvent::RelayReserved {
                relay_peer_id,
                reservation_id,
            });
        }
    }

    fn on_kad_query(&mut self, id: kad::QueryId, result: kad::QueryResult, last: bool) {
        let kad::QueryResult::GetClosestPeers(result) = result else {
            return;
        };
        let Some((target, _)) = self.pending_finds.get(&id) else {
            return;
        };
        let target = *target;
        let peers = match result {
            Ok(ok) => ok.peers,
            Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
        };
        let found = peers
            .into_iter()
            .find(|p| p.peer_id == target && !p.addrs.is_empty());
        if found.is_none() && !last {
            return;
        }
        let Some((_, reply)) = self.pending_finds.remove(&id) else {
            return;
        };
        match found {
            Some(info) => {
                let _ = reply.send(Ok(info.addrs));
                if let Some(mut q) = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .as_mut()
                    .and_then(|k| k.query_mut(&id))
                {
                    q.finish();
                }
            }
            None => {
                let _ = reply.send(Err(Error::PeerNotFound(target)));
            }
        }
    }

    fn on_gossipsub(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let topic = message.topic.as_str().to_owned();
                let now = unix_now();
                let verdict = validate_gossip(&topic, &message.data, self.max_message_size, now);
                let (acceptance, event, change) = match verdict {
                    Err(error) => {
                        tracing::debug!(peer = %propagation_source, %topic, %error, "rejected gossip message");
                        let event = NetworkEvent::InvalidMessage {
                            peer_id: propagation_source,
                            topic,
                            error,
                        };
                        (gossipsub::MessageAcceptance::Reject, event, None)
                    }
                    Ok(msg) => {
                        let applied = if topic == ORDERBOOK_TOPIC {
                            self.orderbook.apply(&msg, now)
                        } else {
                            Ok(None)
                        };
                        match applied {
                            Ok(change) => {
                                let event = NetworkEvent::MessageReceived {
                                    // Strict validation guarantees a signed source.
                                    peer_id: message.source.unwrap_or(propagation_source),
                                    topic,
                                    message: msg,
                                };
                                (gossipsub::MessageAcceptance::Accept, event, change)
                            }
                            Err(error) => {
                                // A cancel by a non-maker is an attack; a stale
                                // update or a late create can happen honestly.
                                let acceptance = match error {
                                    OrderbookError::NotMaker | OrderbookError::Invalid(_) => {
                                        gossipsub::MessageAcceptance::Reject
                                    }
                                    _ => gossipsub::MessageAcceptance::Ignore,
                                };
                                let event = NetworkEvent::OrderbookRejected {
                                    peer_id: propagation_source,
                                    error,
                                };
                                (acceptance, event, None)
                            }
                        }
                    }
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                // The forwarder answers for what it forwards: honest nodes
                // validate before forwarding.
                let penalty = match &event {
                    NetworkEvent::InvalidMessage { error, .. } => {
                        reputation::validation_penalty(error)
                    }
                    NetworkEvent::OrderbookRejected { error, .. } => {
                        reputation::orderbook_penalty(error)
                    }
                    _ => None,
                };
                self.emit(event);
                if let Some(reason) = penalty {
                    self.penalize(propagation_source, reason);
                }
                if let Some(change) = change {
                    self.emit(NetworkEvent::OrderbookChanged(change));
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic, .. } => {
                let topic = topic.into_string();
                if topic == ORDERBOOK_TOPIC && self.synced_peers.insert(peer_id) {
                    self.swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&peer_id, OrderbookRequest::default());
                }
                self.emit(NetworkEvent::PeerSubscribed { peer_id, topic });
            }
            _ => {}
        }
    }

    fn on_sync(
        &mut self,
        event: request_response::Event<OrderbookRequest, darkswap_proto::OrderbookResponse>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let pair = match (
                        request.base.parse::<Asset>(),
                        request.quote.parse::<Asset>(),
                    ) {
                        (Ok(b), Ok(q)) => Some((b, q)),
                        _ => None,
                    };
                    let snapshot = self.orderbook.snapshot(pair, SNAPSHOT_LIMIT);
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, snapshot);
                }
                request_response::Message::Response { response, .. } => {
                    let (changes, rejected) = self.orderbook.merge(&response, unix_now());
                    let penalty =
                        reputation::sync_penalty(&rejected, &self.reputation.config().penalties);
                    let n = changes.len();
                    for change in changes {
                        self.emit(NetworkEvent::OrderbookChanged(change));
                    }
                    tracing::debug!(%peer, changes = n, rejected = rejected.len(), "orderbook synced");
                    self.emit(NetworkEvent::OrderbookSynced {
                        peer_id: peer,
                        changes: n,
                        rejected,
                    });
                    if let Some(reason) = penalty {
                        self.penalize(peer, reason);
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "orderbook sync failed");
                self.synced_peers.remove(&peer);
                // Our codec says InvalidData for an oversized, undecodable or
                // wrong-typed frame; closed streams and timeouts are not
                // the peer's fault for sure.
                if let request_response::OutboundFailure::Io(e) = &error
                    && e.kind() == std::io::ErrorKind::InvalidData
                {
                    self.penalize(peer, PenaltyReason::ProtocolViolation);
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "orderbook sync request failed");
                if let request_response::InboundFailure::Io(e) = &error
                    && e.kind() == std::io::ErrorKind::InvalidData
                {
                    self.penalize(peer, PenaltyReason::ProtocolViolation);
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Scores `peer` down for `reason`, and bans it if that crosses the
    /// threshold. The hook for every misbehaviour signal.
    pub(crate) fn penalize(
        &mut self,
        peer: PeerId,
        reason: PenaltyReason,
    ) -> Option<crate::Penalty> {
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

    fn expire_bans(&mut self) {
        for peer in self.reputation.expire(SystemTime::now()) {
            self.lift_ban(peer);
        }
    }

    fn publish_local(&mut self, message: &Message) {
        let data = darkswap_proto::encode(message);
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(gossipsub::IdentTopic::new(ORDERBOOK_TOPIC), data)
        {
            // No peers yet, or a re-announcement still in the duplicate
            // cache: peers get the order by sync or at the next refresh.
            tracing::debug!(error = %e, kind = message.kind(), "order message not published now");
        }
    }

    fn apply_local(&mut self, message: &Message) -> Result<(), Error> {
        if let Some(change) = self.orderbook.apply(message, unix_now())? {
            self.emit(NetworkEvent::OrderbookChanged(change));
        }
        Ok(())
    }

    fn create_order(
        &mut self,
        order: &darkswap_proto::NewOrder,
    ) -> Result<darkswap_proto::Order, Error> {
        let signed = order
            .sign(&self.key)
            .map_err(|e| Error::Order(OrderbookError::Invalid(e)))?;
        self.restore_order(signed)
    }

    fn restore_order(&mut self, signed: SignedOrder) -> Result<darkswap_proto::Order, Error> {
        let order = signed
            .verify()
            .map_err(|e| Error::Order(OrderbookError::Invalid(e)))?;
        if order.maker != *self.swarm.local_peer_id() {
            return Err(Error::NotOwnOrder(order.id));
        }
        let message = Message::OrderCreate(self.announce(signed.clone())?);
        self.apply_local(&message)?;
        self.own_orders.insert(order.id, signed);
        self.publish_local(&message);
        Ok(order)
    }

    /// The order with a fresh announcement signed by this node.
    fn announce(&self, signed: SignedOrder) -> Result<OrderCreate, Error> {
        OrderCreate::announce(signed, unix_now(), &self.key)
            .map_err(|e| Error::Order(OrderbookError::Invalid(e)))
    }

    fn cancel_order(&mut self, id: OrderId) -> Result<(), Error> {
        if !self.own_orders.contains_key(&id) {
            return Err(Error::NotOwnOrder(id));
        }
        let cancel = OrderCancel::sign(id, unix_now(), &self.key)
            .map_err(|e| Error::Order(OrderbookError::Invalid(e)))?;
        let message = Message::OrderCancel(cancel);
        self.apply_local(&message)?;
        self.own_orders.remove(&id);
        self.publish_local(&message);
        Ok(())
    }

    /// Re-announces every open own order, so peers keep them past their TTL.
    fn refresh_own_orders(&mut self) {
        let now = unix_now();
        self.own_orders
            .retain(|id, _| self.orderbook.get(id).is_some_and(|o| !o.is_expired(now)));
        let own: Vec<SignedOrder> = self.own_orders.values().cloned().collect();
        for signed in own {
            let Ok(create) = self.announce(signed) else {
                continue;
            };
            let message = Message::OrderCreate(create);
            // Keeps our own replica alive too.
            let _ = self.apply_local(&message);
            self.publish_local(&message);
        }
    }
}

/// libp2p-tcp listens with SO_REUSEPORT, so a second process can silently
/// share a port already in use. Binding a plain socket first (no
/// SO_REUSEPORT) fails if anything listens there, which turns that into the
/// error users expect.
pub fn ensure_tcp_port_free(addr: &Multiaddr) -> Result<(), String> {
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            Protocol::P2pCircuit => return Ok(()),
            _ => {}
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) if port != 0 => std::net::TcpListener::bind((ip, port))
            .map(drop)
            .map_err(|e| format!("{ip}:{port}: {e}")),
        _ => Ok(()),
    }
}

fn dial_error(target: String, error: &DialError) -> Error {
    let reason = match error {
        // libp2p's text is just "Dial error"; the cause says which rule
        // refused it (e.g. "peer ... is in the block list").
        DialError::Denied { cause } => match std::error::Error::source(cause) {
            Some(rule) => format!("denied: {rule}"),
            None => format!("denied: {cause}"),
        },
        other => other.to_string(),
    };
    Error::Dial { target, reason }
}
