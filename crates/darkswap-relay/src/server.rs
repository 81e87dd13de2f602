//! The relay server: one coordinator owning the libp2p swarm task and the
//! HTTP task, stopped together by one cancellation token.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use darkswap_p2p::{KAD_PROTOCOL, proto::MAX_MESSAGE_SIZE, validate_gossip};
use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm, autonat, connection_limits,
    core::transport::ListenerId,
    gossipsub, identify,
    identity::Keypair,
    kad, memory_connection_limits,
    metrics::{Metrics, Recorder},
    multiaddr::Protocol,
    ping, relay,
    swarm::{ListenError, NetworkBehaviour, SwarmEvent, behaviour::toggle::Toggle},
};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::{
    RelayConfig, SignalingServer,
    auth::{Authority, AuthorityError},
    config::{AuthSection, LimitsSection},
    http,
    metrics::{RelayMetrics, SecurityMetrics, SignalingMetrics},
};

/// File in the data dir holding the relay's identity key.
pub const KEY_FILE: &str = "identity.key";
/// How long start-up waits for each listener to come up.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for connections to close before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Bound on one `/darkswap/auth/1.0.0` exchange.
const PEER_AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the relay could not start. Each renders as one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The identity key could not be read or created.
    #[error("identity: {0}")]
    Identity(String),
    /// The libp2p stack could not be built.
    #[error("libp2p: {0}")]
    Build(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The metrics server could not bind.
    #[error("cannot serve metrics on {addr}: {reason}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The token authority could not start (key, revocations file).
    #[error("auth: {0}")]
    Auth(#[from] AuthorityError),
    /// The signaling server could not bind.
    #[error("cannot serve signaling on {addr}: {reason}")]
    Signaling {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Loads (or creates, mode 0600) the relay's key in `data_dir`.
pub fn load_identity(data_dir: &Path) -> Result<Keypair, StartError> {
    darkswap_p2p::load_or_create_keypair(&data_dir.join(KEY_FILE))
        .map_err(|e| StartError::Identity(e.to_string()))
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    // Limits first: a refused connection never reaches the others.
    limits: connection_limits::Behaviour,
    memory: memory_connection_limits::Behaviour,
    relay: relay::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    autonat: autonat::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    gossipsub: gossipsub::Behaviour,
    auth: Toggle<darkswap_p2p::auth::Behaviour>,
}

/// Relay limits from the configuration, with the role check first: a peer
/// whose role may not hold a reservation is denied (RESOURCE_LIMIT_EXCEEDED,
/// the relay protocol's denial status) before it spends any rate budget.
fn relay_config(
    c: &crate::config::RelaySection,
    auth: &AuthSection,
    security: Arc<SecurityMetrics>,
) -> relay::Config {
    let mut config = relay_limits(c);
    let auth = auth.clone();
    config.reservation_rate_limiters.insert(
        0,
        Box::new(move |peer: PeerId, _: &Multiaddr, _| {
            let allowed = auth.role_of(&peer) >= auth.reservation_role;
            if !allowed {
                security.denied("reservation");
            }
            allowed
        }),
    );
    config
}

fn relay_limits(c: &crate::config::RelaySection) -> relay::Config {
    relay::Config {
        max_reservations: c.max_reservations,
        max_reservations_per_peer: c.max_reservations_per_peer,
        reservation_duration: Duration::from_secs(c.reservation_duration_secs),
        max_circuits: c.max_circuits,
        max_circuits_per_peer: c.max_circuits_per_peer,
        max_circuit_duration: Duration::from_secs(c.max_circuit_duration_secs),
        max_circuit_bytes: c.max_circuit_bytes,
        ..relay::Config::default()
    }
    .reservation_rate_per_peer(
        c.reservation_rate_per_peer.limit,
        c.reservation_rate_per_peer.interval(),
    )
    .reservation_rate_per_ip(
        c.reservation_rate_per_ip.limit,
        c.reservation_rate_per_ip.interval(),
    )
    .circuit_src_per_peer(
        c.circuit_rate_per_peer.limit,
        c.circuit_rate_per_peer.interval(),
    )
    .circuit_src_per_ip(
        c.circuit_rate_per_ip.limit,
        c.circuit_rate_per_ip.interval(),
    )
}

fn connection_limits(l: &LimitsSection) -> connection_limits::Behaviour {
    connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established(Some(l.max_established_connections))
            .with_max_established_per_peer(Some(l.max_connections_per_peer))
            .with_max_pending_incoming(Some(l.max_pending_incoming)),
    )
}

fn build_behaviour(
    key: &Keypair,
    config: &RelayConfig,
    security: Arc<SecurityMetrics>,
) -> Result<Behaviour, StartError> {
    let peer_id = key.public().to_peer_id();
    let mut kad = kad::Behaviour::with_config(
        peer_id,
        kad::store::MemoryStore::new(peer_id),
        kad::Config::new(KAD_PROTOCOL),
    );
    // Relays are the DHT's stable backbone.
    kad.set_mode(Some(kad::Mode::Server));
    let mut gossipsub = darkswap_p2p::gossipsub_behaviour(key, MAX_MESSAGE_SIZE)
        .map_err(|e| StartError::Build(e.to_string()))?;
    for topic in &config.network.topics {
        gossipsub
            .subscribe(&gossipsub::IdentTopic::new(topic))
            .map_err(|e| StartError::Build(format!("subscribe {topic}: {e}")))?;
    }
    Ok(Behaviour {
        limits: connection_limits(&config.limits),
        memory: memory_connection_limits::Behaviour::with_max_percentage(
            config.limits.max_memory_percentage / 100.0,
        ),
        relay: relay::Behaviour::new(peer_id, relay_config(&config.relay, &config.auth, security)),
        identify: identify::Behaviour::new(
            identify::Config::new(
                darkswap_p2p::IDENTIFY_PROTOCOL_VERSION.to_owned(),
                key.public(),
            )
            .with_agent_version(format!("darkswap-relay/{}", env!("CARGO_PKG_VERSION"))),
        ),
        ping: ping::Behaviour::new(ping::Config::new()),
        autonat: autonat::Behaviour::new(peer_id, autonat::Config::default()),
        kad,
        gossipsub,
        auth: config
            .peer_auth
            .enabled
            .then(|| darkswap_p2p::auth::behaviour(PEER_AUTH_TIMEOUT))
            .into(),
    })
}

/// Shared between the swarm task and the HTTP server.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) peer_id: PeerId,
    pub(crate) started: Instant,
    pub(crate) registry: Registry,
    pub(crate) relay_metrics: Arc<RelayMetrics>,
    pub(crate) swarm_alive: AtomicBool,
}

/// A running relay.
#[derive(Debug)]
pub struct RelayServer {
    peer_id: PeerId,
    listen_addrs: Vec<Multiaddr>,
    metrics_addr: Option<SocketAddr>,
    signaling: Option<SignalingServer>,
    cancel: CancellationToken,
    swarm_task: tokio::task::JoinHandle<()>,
    http_task: Option<tokio::task::JoinHandle<()>>,
}

impl RelayServer {
    /// Starts every component, or fails with the first that cannot start.
    /// Returns once all listeners are bound.
    pub async fn spawn(config: RelayConfig) -> Result<Self, StartError> {
        let key = load_identity(&config.data_dir)?;
        let peer_id = key.public().to_peer_id();
        let mut registry = Registry::default();
        let libp2p_metrics = Metrics::new(&mut registry);
        let relay_metrics = Arc::new(RelayMetrics::register(&mut registry));
        let signaling_metrics = Arc::new(SignalingMetrics::register(&mut registry));
        let security_metrics = Arc::new(SecurityMetrics::register(&mut registry));
        let authority = Arc::new(Authority::new(
            &key,
            config.auth.clone(),
            Some(&config.data_dir),
            security_metrics.clone(),
        )?);
        let transport =
            crate::transport::build(&key, &mut registry, relay_metrics.bytes_relayed_counter())?;
        let behaviour = build_behaviour(&key, &config, security_metrics.clone())?;
        let peer_auth = crate::peer_auth::PeerAuth::new(&config.peer_auth, key.clone())
            .map_err(StartError::Build)?;
        let mut swarm = Swarm::new(
            transport,
            behaviour,
            peer_id,
            libp2p::swarm::Config::with_tokio_executor().with_idle_connection_timeout(
                Duration::from_secs(config.network.idle_connection_timeout_secs),
            ),
        );

        for addr in &config.network.external_addresses {
            swarm.add_external_address(addr.clone());
        }
        let announce_listen = config.network.external_addresses.is_empty();
        let (listen_addrs, listeners) = listen_all(
            &mut swarm,
            &config.network.listen_addresses,
            announce_listen,
        )
        .await?;

        let cancel = CancellationToken::new();
        let signaling = if config.signaling.enabled {
            let addr = config.signaling.listen;
            let fail = |e: std::io::Error| StartError::Signaling {
                addr,
                reason: e.to_string(),
            };
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(fail)?;
            Some(
                SignalingServer::serve(
                    listener,
                    &config,
                    authority,
                    signaling_metrics,
                    cancel.child_token(),
                )
                .map_err(fail)?,
            )
        } else {
            None
        };
        let state = Arc::new(State {
            peer_id,
            started: Instant::now(),
            registry,
            relay_metrics: relay_metrics.clone(),
            swarm_alive: AtomicBool::new(true),
        });
        let (metrics_addr, http_task) = if config.metrics.enabled {
            let addr = config.metrics.listen;
            let listener =
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| StartError::Metrics {
                        addr,
                        reason: e.to_string(),
                    })?;
            let local = listener.local_addr().map_err(|e| StartError::Metrics {
                addr,
                reason: e.to_string(),
            })?;
            tracing::info!(addr = %local, "metrics server listening");
            let task = tokio::spawn(http::serve(listener, state.clone(), cancel.clone()));
            (Some(local), Some(task))
        } else {
            (None, None)
        };

        let task = SwarmTask {
            swarm,
            listeners,
            libp2p_metrics,
            relay_metrics,
            security_metrics,
            state,
            announce_listen,
            peer_auth,
        };
        let swarm_task = tokio::spawn(task.run(cancel.clone()));
        Ok(RelayServer {
            peer_id,
            listen_addrs,
            metrics_addr,
            signaling,
            cancel,
            swarm_task,
            http_task,
        })
    }

    /// The relay's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses bound at start, each ending in `/p2p/<peer id>`.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    /// The metrics server's bound address, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The signaling server's bound address (`/signaling`, `/relay`), if enabled.
    pub fn signaling_addr(&self) -> Option<SocketAddr> {
        self.signaling.as_ref().map(SignalingServer::local_addr)
    }

    /// A token that stops the server when cancelled.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Stops accepting, closes circuits and connections, and waits for every
    /// task to end.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.swarm_task.await;
        if let Some(http) = self.http_task {
            let _ = http.await;
        }
        if let Some(signaling) = self.signaling {
            signaling.stopped().await;
        }
        tracing::info!("relay stopped");
    }
}

async fn listen_all(
    swarm: &mut Swarm<Behaviour>,
    addrs: &[Multiaddr],
    announce: bool,
) -> Result<(Vec<Multiaddr>, Vec<ListenerId>), StartError> {
    let peer_id = *swarm.local_peer_id();
    let mut pending = std::collections::HashMap::new();
    for addr in addrs {
        let fail = |reason: String| StartError::Listen {
            addr: addr.clone(),
            reason,
        };
        ensure_tcp_port_free(addr).map_err(fail)?;
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| fail(e.to_string()))?;
        pending.insert(id, addr.clone());
    }
    let ids: Vec<ListenerId> = pending.keys().copied().collect();
    let mut bound = Vec::new();
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    while !pending.is_empty() {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| {
                let addr = pending
                    .values()
                    .next()
                    .cloned()
                    .unwrap_or_else(Multiaddr::empty);
                StartError::Listen {
                    addr,
                    reason: "timed out".to_owned(),
                }
            })?;
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                on_new_listen_addr(swarm, &address, announce);
                bound.push(address.with(Protocol::P2p(peer_id)));
                pending.remove(&listener_id);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason: Err(e),
                ..
            } => {
                if let Some(addr) = pending.remove(&listener_id) {
                    return Err(StartError::Listen {
                        addr,
                        reason: e.to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    Ok((bound, ids))
}

fn on_new_listen_addr(swarm: &mut Swarm<Behaviour>, address: &Multiaddr, announce: bool) {
    let full = address.clone().with(Protocol::P2p(*swarm.local_peer_id()));
    tracing::info!(address = %full, "listening");
    if announce {
        // A relay refuses reservations until it has an external address.
        swarm.add_external_address(address.clone());
    }
}

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    listeners: Vec<ListenerId>,
    libp2p_metrics: Metrics,
    relay_metrics: Arc<RelayMetrics>,
    state: Arc<State>,
    announce_listen: bool,
    peer_auth: crate::peer_auth::PeerAuth,
    security_metrics: Arc<SecurityMetrics>,
}

/// The limit that refused a libp2p connection, as a metric label.
fn denial_reason(cause: &libp2p::swarm::ConnectionDenied) -> &'static str {
    if let Some(e) = cause.downcast_ref::<connection_limits::Exceeded>() {
        // The limit's kind is only exposed through its message.
        let text = e.to_string();
        if text.contains("pending incoming") {
            "max_pending_incoming"
        } else if text.contains("per peer") {
            "max_connections_per_peer"
        } else {
            "max_established_connections"
        }
    } else if cause
        .downcast_ref::<memory_connection_limits::MemoryUsageLimitExceeded>()
        .is_some()
    {
        "max_memory_percentage"
    } else {
        "other"
    }
}

impl SwarmTask {
    async fn run(mut self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                event = self.swarm.select_next_some() => self.on_event(event),
            }
        }
        self.close().await;
        self.state.swarm_alive.store(false, Ordering::Relaxed);
    }

    async fn close(&mut self) {
        tracing::info!("stopping: closing listeners, circuits and connections");
        // Stop accepting first, then close what is open.
        for id in self.listeners.drain(..) {
            self.swarm.remove_listener(id);
        }
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while self.swarm.connected_peers().next().is_some() {
            match tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await {
                Ok(event) => self.on_event(event),
                Err(_) => break,
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.libp2p_metrics.record(&event);
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                on_new_listen_addr(&mut self.swarm, &address, self.announce_listen);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                self.relay_metrics.connection_opened(&endpoint);
                if num_established.get() == 1
                    && let Some(auth) = self.swarm.behaviour_mut().auth.as_mut()
                    && self.peer_auth.on_connected(peer_id, auth)
                {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Auth(e)) => {
                if let Some(auth) = self.swarm.behaviour_mut().auth.as_mut()
                    && let Some(peer) = self.peer_auth.on_event(e, auth)
                {
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
            }
            SwarmEvent::ConnectionClosed { endpoint, .. } => {
                self.relay_metrics.connection_closed(&endpoint)
            }
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                send_back_addr,
                ..
            } => {
                let limit = denial_reason(&cause);
                tracing::debug!(addr = %send_back_addr, limit, "connection refused by a limit");
                self.security_metrics.limited("libp2p", limit);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Relay(e)) => {
                tracing::debug!(event = ?e, "relay");
                self.libp2p_metrics.record(&e);
                self.relay_metrics.record_relay(&e);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => {
                self.libp2p_metrics.record(&e);
                if let identify::Event::Received { peer_id, info, .. } = e
                    && info.protocols.contains(&KAD_PROTOCOL)
                {
                    for addr in info.listen_addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.libp2p_metrics.record(&e),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => self.libp2p_metrics.record(&e),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => {
                self.libp2p_metrics.record(&e);
                if let gossipsub::Event::Message {
                    propagation_source,
                    message_id,
                    message,
                } = e
                {
                    let verdict = validate_gossip(
                        message.topic.as_str(),
                        &message.data,
                        MAX_MESSAGE_SIZE,
                        crate::server::unix_now(),
                    );
                    let acceptance = match &verdict {
                        Ok(_) => gossipsub::MessageAcceptance::Accept,
                        Err(error) => {
                            tracing::debug!(peer = %propagation_source, %error, "rejected gossip");
                            gossipsub::MessageAcceptance::Reject
                        }
                    };
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            acceptance,
                        );
                }
            }
            _ => {}
        }
    }
}

/// The wall clock in unix seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// libp2p-tcp binds with SO_REUSEPORT, which lets a second process share a
/// busy port silently; a plain bind first turns that into an error.
fn ensure_tcp_port_free(addr: &Multiaddr) -> Result<(), String> {
    use libp2p::multiaddr::Protocol;
    let (mut ip, mut port) = (None, None);
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) if p != 0 => port = Some(p),
            _ => {}
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) => std::net::TcpListener::bind((ip, port))
            .map(drop)
            .map_err(|e| format!("{ip}:{port}: {e}")),
        _ => Ok(()),
    }
}
