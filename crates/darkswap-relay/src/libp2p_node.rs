//! The relay's libp2p node: the behaviour (connection and memory limits,
//! circuit relay v2 hop, identify, ping, AutoNAT server, Kademlia in server
//! mode, gossipsub, peer authentication), its listeners, and the swarm task
//! that validates gossip, counts what happens and stops cleanly.
//!
//! The hop's limits come from [`HopConfig`]; its role gate (who may hold a
//! reservation) is the first of its rate limiters.

use std::{
    net::IpAddr,
    sync::{Arc, atomic::Ordering},
};

use darkswap_p2p::{
    KAD_PROTOCOL, ORDERBOOK_TOPIC,
    core::gossip::is_fresh_departure,
    proto::{MAX_MESSAGE_SIZE, Message},
    validate_gossip,
};
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
    admin_http::AdminState,
    clock::unix_now,
    config::{HopConfig, LimitsConfig, RelayConfig, TokenConfig},
    defaults::timeouts,
    metrics::{Libp2pNodeMetrics, SecurityMetrics},
    server::StartError,
    tls::TlsCertificate,
};
use peer_auth::PeerAuth;
use reservations::Reservations;

mod addresses;
mod hop;
mod peer_auth;
mod reservations;
mod transport;
mod ws_tls;

#[derive(NetworkBehaviour)]
struct Behaviour {
    // Limits first: a refused connection never reaches the others.
    limits: connection_limits::Behaviour,
    memory: memory_connection_limits::Behaviour,
    relay: hop::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    autonat: autonat::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    gossipsub: gossipsub::Behaviour,
    auth: Toggle<darkswap_p2p::auth::Behaviour>,
    /// `/perf/1.0.0`, when `network.perf` is on.
    perf: Toggle<libp2p_stream::Behaviour>,
}

/// The hop's limits from the configuration, with the role check first: a
/// peer whose role may not hold a reservation is denied
/// (RESOURCE_LIMIT_EXCEEDED, the relay protocol's denial status) before it
/// spends any rate budget.
fn hop_config(c: &HopConfig, auth: &TokenConfig, security: Arc<SecurityMetrics>) -> relay::Config {
    let mut config = hop_limits(c);
    let auth = auth.clone();
    // libp2p cannot say "no reservation at all" per peer (see `hop_limits`).
    let none_per_peer = c.max_reservations_per_peer == 0;
    config.reservation_rate_limiters.insert(
        0,
        Box::new(move |peer: PeerId, _: &Multiaddr, _| {
            let allowed = auth.role_of(&peer) >= auth.reservation_role;
            if !allowed {
                security.denied("reservation");
            }
            allowed && !none_per_peer
        }),
    );
    config
}

/// libp2p-relay 0.22 refuses a peer's new reservation only when the peer
/// already holds *more* than `max_reservations_per_peer` (`>` where `>=` is
/// meant; libp2p/rust-libp2p#6365), so it would let a peer hold one more
/// than the limit. We pass one less to get the documented number; the test
/// `a_peer_holds_at_most_its_reservation_limit` fails if libp2p changes.
fn libp2p_reservations_per_peer(limit: usize) -> usize {
    limit.saturating_sub(1)
}

/// The hop's limits. The rate limiters start empty: libp2p's default
/// config already holds its own (30 reservations per peer per 2 min, 60
/// per IP per minute, the same for circuits) and its `*_rate_per_*`
/// builders add to them, so kept, they would cap any configured rate above
/// libp2p's (found by `darkswap-bench memory`, whose 200 clients from one
/// address were refused at the 61st reservation).
fn hop_limits(c: &HopConfig) -> relay::Config {
    relay::Config {
        max_reservations: c.max_reservations,
        max_reservations_per_peer: libp2p_reservations_per_peer(c.max_reservations_per_peer),
        reservation_duration: c.reservation_duration,
        max_circuits: c.max_circuits,
        max_circuits_per_peer: c.max_circuits_per_peer,
        max_circuit_duration: c.max_circuit_duration,
        max_circuit_bytes: c.max_circuit_bytes,
        reservation_rate_limiters: Vec::new(),
        circuit_src_rate_limiters: Vec::new(),
    }
    .reservation_rate_per_peer(
        c.reservation_rate_per_peer.limit,
        c.reservation_rate_per_peer.interval,
    )
    .reservation_rate_per_ip(
        c.reservation_rate_per_ip.limit,
        c.reservation_rate_per_ip.interval,
    )
    .circuit_src_per_peer(
        c.circuit_rate_per_peer.limit,
        c.circuit_rate_per_peer.interval,
    )
    .circuit_src_per_ip(c.circuit_rate_per_ip.limit, c.circuit_rate_per_ip.interval)
}

fn connection_limits(l: &LimitsConfig) -> connection_limits::Behaviour {
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
    for topic in &config.libp2p.topics {
        gossipsub
            .subscribe(&gossipsub::IdentTopic::new(topic))
            .map_err(|e| StartError::Build(format!("subscribe {topic}: {e}")))?;
    }
    Ok(Behaviour {
        limits: connection_limits(&config.limits),
        memory: memory_connection_limits::Behaviour::with_max_percentage(
            config.limits.max_memory_percentage / 100.0,
        ),
        relay: hop::Behaviour::new(relay::Behaviour::new(
            peer_id,
            hop_config(&config.hop, &config.tokens, security),
        )),
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
            .then(|| darkswap_p2p::auth::behaviour(timeouts::PEER_AUTH))
            .into(),
        perf: config
            .libp2p
            .perf
            .then(libp2p_stream::Behaviour::new)
            .into(),
    })
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
        refuse_busy_tcp_port(addr).map_err(fail)?;
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| fail(e.to_string()))?;
        pending.insert(id, addr.clone());
    }
    let ids: Vec<ListenerId> = pending.keys().copied().collect();
    let mut bound = Vec::new();
    let deadline = tokio::time::Instant::now() + timeouts::LISTEN;
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
        // Its reservations hand these out to every client: a `127.0.0.1`
        // would send a remote client dialling itself.
        let (add, withdraw) = addresses::announce(address, swarm.external_addresses());
        for stale in withdraw {
            swarm.remove_external_address(&stale);
        }
        if add {
            swarm.add_external_address(address.clone());
        }
    }
}

/// The configured listen addresses, with TLS's own when the relay has a
/// certificate. Without one a WebSocket-over-TLS address is an error that
/// says so (libp2p would only say it does not support the address).
fn listen_addresses(config: &RelayConfig, tls: bool) -> Result<Vec<Multiaddr>, StartError> {
    let mut listen = config.libp2p.listen_addresses.clone();
    if tls {
        listen.extend(config.tls.libp2p_listen_addresses.iter().cloned());
    } else if let Some(addr) = listen.iter().find(|a| is_tls_websocket(a)) {
        return Err(StartError::Listen {
            addr: addr.clone(),
            reason: "WebSocket over TLS needs tls.cert_file and tls.key_file".to_owned(),
        });
    }
    Ok(listen)
}

/// `/tls/ws` or `/wss`.
pub(crate) fn is_tls_websocket(addr: &Multiaddr) -> bool {
    addr.iter()
        .any(|p| matches!(p, Protocol::Tls | Protocol::Wss(_)))
}

/// Fails if `addr` names a TCP port (not 0) that something already listens
/// on. libp2p-tcp binds with SO_REUSEPORT, which would let the relay share a
/// port with another process without a word; a plain bind refuses instead.
fn refuse_busy_tcp_port(addr: &Multiaddr) -> Result<(), String> {
    if addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return Ok(());
    }
    let ip = addr.iter().find_map(|p| match p {
        Protocol::Ip4(v4) => Some(IpAddr::from(v4)),
        Protocol::Ip6(v6) => Some(IpAddr::from(v6)),
        _ => None,
    });
    let port = addr.iter().find_map(|p| match p {
        Protocol::Tcp(port) => Some(port).filter(|&n| n != 0),
        _ => None,
    });
    let (Some(ip), Some(port)) = (ip, port) else {
        return Ok(());
    };
    // Dropped at once: the probe only asks whether the port is free.
    std::net::TcpListener::bind((ip, port))
        .map(drop)
        .map_err(|e| format!("{ip}:{port}: {e}"))
}

/// The certificates the node's listeners serve.
pub(crate) struct Certificates<'a> {
    /// `/webrtc-direct`'s, whose hash is in the address.
    pub(crate) webrtc: darkswap_p2p::WebRtcCertificate,
    /// `/tls/ws`'s, when the relay has TLS.
    pub(crate) tls: Option<&'a TlsCertificate>,
}

/// The node with its listeners bound, ready to run as the swarm task.
pub(crate) struct Libp2pNode {
    swarm: Swarm<Behaviour>,
    listeners: Vec<ListenerId>,
    libp2p_metrics: Metrics,
    node_metrics: Arc<Libp2pNodeMetrics>,
    announce_listen: bool,
    peer_auth: PeerAuth,
    security_metrics: Arc<SecurityMetrics>,
    reservations: Reservations,
    dht_peers: addresses::DhtPeers,
    /// Serves `/perf/1.0.0` streams while the node runs; aborted on drop.
    _perf_server: Option<AbortOnDrop>,
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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

impl Libp2pNode {
    /// Builds the node from `config` and binds every listen address;
    /// returns it with the addresses bound, each ending in `/p2p/<id>`.
    pub(crate) async fn start(
        key: &Keypair,
        certificates: Certificates<'_>,
        config: &RelayConfig,
        registry: &mut Registry,
        libp2p_metrics: Metrics,
        node_metrics: Arc<Libp2pNodeMetrics>,
        security_metrics: Arc<SecurityMetrics>,
    ) -> Result<(Self, Vec<Multiaddr>), StartError> {
        let tls = certificates.tls;
        let transport = transport::build(
            key,
            certificates,
            registry,
            node_metrics.bytes_relayed_counter(),
        )?;
        let behaviour = build_behaviour(key, config, security_metrics.clone())?;
        let peer_auth = PeerAuth::new(&config.peer_auth, key.clone()).map_err(StartError::Build)?;
        let mut swarm = Swarm::new(
            transport,
            behaviour,
            key.public().to_peer_id(),
            libp2p::swarm::Config::with_tokio_executor()
                .with_idle_connection_timeout(config.libp2p.idle_connection_timeout)
                // As the SDK: outbound streams (a circuit's stop stream
                // among them) send their first bytes with the protocol
                // proposal instead of one round trip after it.
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy),
        );
        let perf_server = match swarm.behaviour().perf.as_ref() {
            Some(streams) => {
                let incoming = streams
                    .new_control()
                    .accept(darkswap_p2p::PERF_PROTOCOL)
                    .map_err(|e| StartError::Build(format!("perf: {e}")))?;
                tracing::warn!("serving /perf/1.0.0 to any peer (network.perf)");
                Some(AbortOnDrop(tokio::spawn(darkswap_p2p::serve_perf(
                    incoming,
                ))))
            }
            None => None,
        };
        let network = &config.libp2p;
        for addr in &network.external_addresses {
            swarm.add_external_address(addr.clone());
        }
        let announce_listen = network.external_addresses.is_empty();
        let listen = listen_addresses(config, tls.is_some())?;
        let (listen_addrs, listeners) = listen_all(&mut swarm, &listen, announce_listen).await?;
        // Nodes look this key up to find relays they were not told of. The
        // record lives in this relay's own store at once (a look-up that
        // reaches the relay finds it) and is pushed to the closest peers at
        // kad's re-publication interval.
        let relays_key = kad::RecordKey::new(&darkswap_p2p::core::protocols::RELAY_PROVIDER_KEY);
        if let Err(e) = swarm.behaviour_mut().kad.start_providing(relays_key) {
            tracing::warn!(error = %e, "cannot announce the relay in the DHT");
        }
        let node = Libp2pNode {
            swarm,
            listeners,
            libp2p_metrics,
            node_metrics,
            announce_listen,
            peer_auth,
            security_metrics,
            reservations: Reservations::default(),
            dht_peers: addresses::DhtPeers::new(key.public().to_peer_id()),
            _perf_server: perf_server,
        };
        Ok((node, listen_addrs))
    }

    /// The swarm task: runs until `cancel` fires, then closes listeners and
    /// connections and marks the node dead in `state`.
    pub(crate) async fn run(mut self, state: Arc<AdminState>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                event = self.swarm.select_next_some() => self.on_event(event),
            }
        }
        self.close().await;
        state.swarm_alive.store(false, Ordering::Relaxed);
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
        let deadline = tokio::time::Instant::now() + timeouts::SHUTDOWN_GRACE;
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
                self.node_metrics.connection_opened(&endpoint);
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
            SwarmEvent::ConnectionClosed {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                self.node_metrics.connection_closed(&endpoint);
                if num_established == 0 {
                    for addr in self.dht_peers.on_disconnected(&peer_id) {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .remove_address(&peer_id, &addr);
                    }
                }
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
            SwarmEvent::Behaviour(BehaviourEvent::Relay(hop::Event { connection, event })) => {
                tracing::debug!(?event, ?connection, "relay");
                self.libp2p_metrics.record(&event);
                self.node_metrics.record_hop(&event);
                if self.reservations.handle_event(connection, &event) {
                    self.node_metrics
                        .set_reservations_held(self.reservations.held());
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => {
                self.libp2p_metrics.record(&e);
                if let identify::Event::Received { peer_id, info, .. } = e
                    && info.protocols.contains(&KAD_PROTOCOL)
                {
                    let addrs = self.dht_peers.on_identified(
                        peer_id,
                        info.listen_addrs,
                        &info.observed_addr,
                    );
                    for addr in addrs {
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
                        unix_now(),
                    );
                    let acceptance = match &verdict {
                        Ok(_) => gossipsub::MessageAcceptance::Accept,
                        Err(error) => {
                            tracing::debug!(peer = %propagation_source, %error, "rejected gossip");
                            self.node_metrics
                                .gossip_rejected(message.topic.as_str(), error.reason());
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
                    // A node leaving says so and waits for its peers to
                    // close: that close is its receipt (docs/protocol.md).
                    if let (Ok(Message::Disconnect(bye)), Some(author)) = (&verdict, message.source)
                        && message.topic.as_str() == ORDERBOOK_TOPIC
                        && is_fresh_departure(bye, unix_now())
                        && self.swarm.is_connected(&author)
                    {
                        let _ = self.swarm.disconnect_peer_id(author);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::RateLimit;

    /// A configured per-IP rate above libp2p's default (60 a minute) is the
    /// one that applies: 200 peers from one address all get through.
    #[test]
    fn configured_rates_above_libp2ps_defaults_apply() {
        let hop = HopConfig {
            reservation_rate_per_ip: RateLimit::new(1000, Duration::from_secs(60)),
            circuit_rate_per_ip: RateLimit::new(1000, Duration::from_secs(60)),
            ..HopConfig::default()
        };
        let mut config = hop_limits(&hop);
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().expect("an address");
        let now = Instant::now();
        for i in 0..200 {
            let peer = PeerId::random();
            for limiter in &mut config.reservation_rate_limiters {
                assert!(limiter.try_next(peer, &addr, now), "reservation {i}");
            }
            for limiter in &mut config.circuit_src_rate_limiters {
                assert!(limiter.try_next(peer, &addr, now), "circuit {i}");
            }
        }
        // The defaults still hold the default per-IP rate.
        let mut config = hop_limits(&HopConfig::default());
        let allowed = (0..100)
            .filter(|_| {
                let peer = PeerId::random();
                config
                    .reservation_rate_limiters
                    .iter_mut()
                    .all(|l| l.try_next(peer, &addr, now))
            })
            .count();
        assert_eq!(allowed, 60);
    }
}
