//! The libp2p stack of a DarkSwap node: transports and the composed behaviour.

use std::{collections::HashMap, time::Duration};

use libp2p::{
    StreamProtocol, Swarm, allow_block_list, autonat, connection_limits, gossipsub, identify,
    identity::Keypair,
    kad, noise, ping, relay, request_response,
    swarm::{NetworkBehaviour, behaviour::toggle::Toggle},
    yamux,
};
use sha2::{Digest, Sha256};

use darkswap_core::protocols::{IDENTIFY_PROTOCOL_VERSION, ORDERBOOK_TOPIC, TRADE_TOPIC};

use crate::{
    config::{KadMode, NetworkConfig},
    error::Error,
    sync::{SYNC_PROTOCOL, SyncCodec},
};

mod dcutr_filter;
mod identify_filter;
mod loopback_guard;
pub(crate) use loopback_guard::LoopbackGuard;

/// Kademlia protocol of the DarkSwap DHT, apart from the public IPFS DHT.
pub const KAD_PROTOCOL: StreamProtocol =
    StreamProtocol::new(darkswap_core::protocols::KAD_PROTOCOL);

/// Refuses connections while the process uses too much of the machine's
/// memory. A browser tab cannot see the machine's memory.
#[cfg(not(target_arch = "wasm32"))]
type MemoryLimits = libp2p::memory_connection_limits::Behaviour;
#[cfg(target_arch = "wasm32")]
type MemoryLimits = libp2p::swarm::dummy::Behaviour;

/// Finds peers on the local network. A browser has no multicast socket.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Mdns = libp2p::mdns::tokio::Behaviour;
#[cfg(target_arch = "wasm32")]
pub(crate) type Mdns = libp2p::swarm::dummy::Behaviour;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Banned peers. First, so their connections are refused before any
    /// other behaviour spends work on them.
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) memory: MemoryLimits,
    pub(crate) relay_client: relay::client::Behaviour,
    /// Circuit relay v2 hop, when the node serves as a relay (`relay.hop`).
    pub(crate) relay_server: Toggle<relay::Behaviour>,
    pub(crate) ping: ping::Behaviour,
    /// Identify, without the observed addresses nobody can dial.
    pub(crate) identify: identify_filter::Identify,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    pub(crate) mdns: Toggle<Mdns>,
    /// DCUtR, with one hole-punch attempt per peer pair.
    pub(crate) dcutr: dcutr_filter::Dcutr,
    pub(crate) autonat: autonat::Behaviour,
    pub(crate) stream: Toggle<libp2p_stream::Behaviour>,
    pub(crate) sync: request_response::Behaviour<SyncCodec>,
    pub(crate) auth: crate::auth::Behaviour,
    /// `/darkswap/trade/1.0.0`, when the node trades.
    pub(crate) trade: Toggle<request_response::Behaviour<crate::trade::TradeCodec>>,
}

/// Gossipsub as DarkSwap runs it: signed messages, strict validation,
/// content-addressed ids, our validator in the loop, and peer scoring that
/// penalises invalid messages on the DarkSwap topics.
pub fn gossipsub_behaviour(
    key: &Keypair,
    max_message_size: usize,
) -> Result<gossipsub::Behaviour, Error> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(Sha256::digest(&m.data).to_vec())
        })
        // Room for the gossipsub framing and signature around our largest message.
        .max_transmit_size(max_message_size + 4096)
        .heartbeat_interval(Duration::from_secs(1))
        // An order forwarded 5 s late is still worth it; dropped, it waits
        // for anti-entropy (30 s). The default of 1 s dropped most of a
        // ten-maker burst at the hub (test `ten_makers_burst_…`).
        .forward_queue_duration(Duration::from_secs(5))
        .build()
        .map_err(|e| Error::Build(format!("gossipsub config: {e}")))?;
    let mut gossipsub =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config)
            .map_err(|e| Error::Build(format!("gossipsub: {e}")))?;
    let topic_params = gossipsub::TopicScoreParams {
        // Squared counter times weight: two invalid messages cross the gossip threshold.
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.5,
        ..Default::default()
    };
    let mut topics = HashMap::new();
    for t in [ORDERBOOK_TOPIC, TRADE_TOPIC] {
        topics.insert(gossipsub::IdentTopic::new(t).hash(), topic_params.clone());
    }
    let params = gossipsub::PeerScoreParams {
        topics,
        ..Default::default()
    };
    gossipsub
        .with_peer_score(params, gossipsub::PeerScoreThresholds::default())
        .map_err(|e| Error::Build(format!("gossipsub scoring: {e}")))?;
    Ok(gossipsub)
}

fn build(
    key: &Keypair,
    relay_client: relay::client::Behaviour,
    config: &NetworkConfig,
    metrics: &mut prometheus_client::registry::Registry,
) -> Result<Behaviour, Error> {
    let limits = &config.connection_limits;
    if !(limits.max_memory_fraction > 0.0 && limits.max_memory_fraction <= 1.0) {
        return Err(Error::Build(
            "connection_limits.max_memory_fraction must be in (0, 1]".to_owned(),
        ));
    }
    if limits.max_established == 0 || limits.max_established_per_peer == 0 {
        return Err(Error::Build(
            "connection_limits: established limits must be greater than 0".to_owned(),
        ));
    }
    if !config.gossip_rate_limit.is_valid() {
        return Err(Error::Build(
            "gossip_rate_limit: per_second and burst must be greater than 0".to_owned(),
        ));
    }
    if config.kad_bucket_size == 0 {
        return Err(Error::Build(
            "kad_bucket_size must be greater than 0".to_owned(),
        ));
    }
    let peer_id = key.public().to_peer_id();
    let kad = config.enable_kad.then(|| {
        let mut cfg = kad::Config::new(KAD_PROTOCOL);
        cfg.set_query_timeout(config.connection_timeout);
        if let Some(k) = std::num::NonZeroUsize::new(config.kad_bucket_size) {
            // k is both the bucket size and the replication factor, as in
            // the Kademlia paper and seed 002's one `kBucketSize`.
            cfg.set_kbucket_size(k);
            cfg.set_replication_factor(k);
        }
        cfg.set_record_ttl(Some(config.kad_record_ttl));
        let mut kad =
            kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), cfg);
        kad.set_mode(match config.kad_mode {
            KadMode::Auto => None,
            KadMode::Client => Some(kad::Mode::Client),
            KadMode::Server => Some(kad::Mode::Server),
        });
        kad
    });
    let mdns = if config.enable_mdns {
        Some(mdns(peer_id)?)
    } else {
        None
    };
    Ok(Behaviour {
        blocked: allow_block_list::Behaviour::default(),
        limits: connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established(Some(config.connection_limits.max_established))
                .with_max_established_per_peer(Some(
                    config.connection_limits.max_established_per_peer,
                ))
                .with_max_pending_incoming(Some(config.connection_limits.max_pending_incoming))
                .with_max_pending_outgoing(Some(config.connection_limits.max_pending_outgoing)),
        ),
        memory: memory_limits(config.connection_limits.max_memory_fraction),
        relay_client,
        relay_server: config
            .relay
            .hop
            .then(|| relay::Behaviour::new(peer_id, relay::Config::default()))
            .into(),
        ping: ping::Behaviour::new(ping::Config::new()),
        identify: identify_filter::Identify(identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL_VERSION.to_owned(), key.public())
                .with_agent_version(format!("darkswap-p2p/{}", env!("CARGO_PKG_VERSION")))
                .with_push_listen_addr_updates(true),
        )),
        // Gossipsub's own counters (messages received with and without
        // duplicates, mesh sizes, IWANT/IDONTWANT) beside libp2p-metrics'
        // `libp2p_gossipsub_messages`, which counts only unique messages.
        gossipsub: gossipsub_behaviour(key, config.max_message_size)?.with_metrics(
            metrics.sub_registry_with_prefix("libp2p_gossipsub"),
            gossipsub::MetricsConfig::default(),
        ),
        kad: kad.into(),
        mdns: mdns.into(),
        dcutr: dcutr_filter::Dcutr::new(peer_id),
        autonat: autonat::Behaviour::new(peer_id, autonat::Config::default()),
        stream: config
            .enable_perf
            .then(libp2p_stream::Behaviour::new)
            .into(),
        sync: request_response::Behaviour::with_codec(
            SyncCodec {
                max_size: config.max_message_size,
            },
            [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(config.connection_timeout),
        ),
        auth: crate::auth::behaviour(config.connection_timeout),
        trade: config
            .trading
            .is_some()
            .then(|| {
                crate::trade::trade_behaviour(config.max_message_size, config.connection_timeout)
            })
            .into(),
    })
}

/// How long a QUIC connection may be silent before it is taken for dead.
/// UDP says nothing when the other side dies (`kill -9`, a lost NAT
/// mapping): without this a dead relay was noticed 11–15 s late (quinn's
/// default is 10 s of silence) and its reservation reported as held
/// meanwhile. With keep-alives every [`QUIC_KEEP_ALIVE`], a live connection
/// is never that silent.
#[cfg(not(target_arch = "wasm32"))]
const QUIC_IDLE_TIMEOUT_MS: u32 = 5_000;
/// How often an otherwise idle QUIC connection sends a keep-alive (a
/// PING frame of a few bytes).
#[cfg(not(target_arch = "wasm32"))]
const QUIC_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_millis(1_500);

/// The node's swarm: TCP, QUIC, WebRTC-direct, DNS and WebSocket transports
/// (Noise and Yamux where the transport has none of its own), the relay
/// client transport, and [`Behaviour`].
#[cfg(not(target_arch = "wasm32"))]
pub(crate) async fn build_swarm(
    key: &Keypair,
    config: &NetworkConfig,
    metrics: &mut prometheus_client::registry::Registry,
) -> Result<Swarm<LoopbackGuard<Behaviour>>, Error> {
    let build_err = |e: &dyn std::fmt::Display| Error::Build(e.to_string());
    Ok(libp2p::SwarmBuilder::with_existing_identity(key.clone())
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| build_err(&e))?
        .with_quic_config(|mut quic| {
            quic.max_idle_timeout = QUIC_IDLE_TIMEOUT_MS;
            quic.keep_alive_interval = QUIC_KEEP_ALIVE;
            quic
        })
        .with_other_transport(|key| {
            let certificate = match &config.webrtc_certificate {
                Some(path) => crate::load_or_create_webrtc_certificate(path)?,
                None => crate::generate_webrtc_certificate()?,
            };
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(crate::webrtc_direct_transport(
                key,
                certificate,
            ))
        })
        .map_err(|e| build_err(&e))?
        .with_dns()
        .map_err(|e| build_err(&e))?
        .with_websocket(noise::Config::new, yamux::Config::default)
        .await
        .map_err(|e| build_err(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| build_err(&e))?
        .with_bandwidth_metrics(metrics)
        .with_behaviour(|key, relay_client| {
            build(key, relay_client, config, metrics)
                .map(LoopbackGuard::new)
                .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
        })
        .map_err(|e| build_err(&e))?
        .with_swarm_config(|c| swarm_config(c, config))
        .build())
}

/// The node's swarm in a browser: WebSocket (`/ws`, `/wss`) with Noise and
/// Yamux, WebRTC-direct (`/webrtc-direct`, its own encryption and
/// multiplexing), the relay client transport, and [`Behaviour`].
#[cfg(target_arch = "wasm32")]
pub(crate) async fn build_swarm(
    key: &Keypair,
    config: &NetworkConfig,
    metrics: &mut prometheus_client::registry::Registry,
) -> Result<Swarm<LoopbackGuard<Behaviour>>, Error> {
    use libp2p::{
        Transport,
        core::{muxing::StreamMuxerBox, upgrade::Version},
    };
    let build_err = |e: &dyn std::fmt::Display| Error::Build(e.to_string());
    Ok(libp2p::SwarmBuilder::with_existing_identity(key.clone())
        .with_wasm_bindgen()
        .with_other_transport(|key| {
            let websocket = libp2p::websocket_websys::Transport::default()
                .upgrade(Version::V1Lazy)
                .authenticate(noise::Config::new(key)?)
                .multiplex(yamux::Config::default())
                .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
            let webrtc =
                libp2p::webrtc_websys::Transport::new(libp2p::webrtc_websys::Config::new(key))
                    .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
            Ok(websocket
                .or_transport(webrtc)
                .map(|either, _| either.into_inner()))
        })
        .map_err(|e| build_err(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| build_err(&e))?
        .with_bandwidth_metrics(metrics)
        .with_behaviour(|key, relay_client| {
            build(key, relay_client, config, metrics)
                .map(LoopbackGuard::new)
                .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
        })
        .map_err(|e| build_err(&e))?
        .with_swarm_config(|c| swarm_config(c, config))
        .build())
}

/// Swarm settings shared by every target.
///
/// Outbound streams negotiate their protocol lazily (multistream-select
/// `V1Lazy`): the stream's first bytes follow the protocol proposal without
/// waiting a round trip for the remote's echo. Each DCUtR connect, relay
/// stop, trade message and sync request opens a new stream, so this takes
/// one RTT off each of them. Only a single (or the last offered) protocol
/// is sent lazily; a remote that refuses it makes the stream's first read
/// fail with an I/O error instead of the upgrade, which every caller
/// already handles as a failed request.
fn swarm_config(c: libp2p::swarm::Config, config: &NetworkConfig) -> libp2p::swarm::Config {
    c.with_idle_connection_timeout(config.idle_connection_timeout)
        .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
}

#[cfg(not(target_arch = "wasm32"))]
fn mdns(peer_id: libp2p::PeerId) -> Result<Mdns, Error> {
    Mdns::new(libp2p::mdns::Config::default(), peer_id)
        .map_err(|e| Error::Build(format!("mdns: {e}")))
}

#[cfg(target_arch = "wasm32")]
fn mdns(_: libp2p::PeerId) -> Result<Mdns, Error> {
    Err(Error::Build("mdns: not available in a browser".to_owned()))
}

#[cfg(not(target_arch = "wasm32"))]
fn memory_limits(max_fraction: f64) -> MemoryLimits {
    MemoryLimits::with_max_percentage(max_fraction)
}

#[cfg(target_arch = "wasm32")]
fn memory_limits(_: f64) -> MemoryLimits {
    libp2p::swarm::dummy::Behaviour
}
