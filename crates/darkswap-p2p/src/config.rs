//! What a [`Network`](crate::Network) is made of: [`NetworkConfig`] and its parts.

use std::{path::PathBuf, time::Duration};

use darkswap_core::{
    auth::{AuthManagerConfig, AuthorizationLevel},
    gossip::GossipRateLimit,
    orderbook::OrderbookConfig,
    protocols::{ORDERBOOK_TOPIC, TRADE_TOPIC},
    reconnect::ReconnectConfig,
    relay_pool::RelayConnectionPoolConfig,
    reputation::ReputationConfig,
    sync::SyncConfig,
};
use libp2p::{Multiaddr, identity::Keypair};

/// Where the node's libp2p identity comes from.
#[derive(Debug, Clone, Default)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per node; on wasm32 the path variant is small enough to trip the lint"
)]
pub enum Identity {
    /// A fresh Ed25519 key for this run only.
    #[default]
    Ephemeral,
    /// This keypair.
    Keypair(Keypair),
    /// An Ed25519 key stored in this file; created (mode 0600) if missing.
    File(PathBuf),
}

/// Kademlia mode of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KadMode {
    /// Server once an external address is confirmed (AutoNAT), client before.
    #[default]
    Auto,
    /// Only query; never answer.
    Client,
    /// Answer queries from the start. Right for relays and for nodes on a
    /// network where every listen address is reachable (LANs, tests).
    Server,
}

/// How the node uses circuit relays (seed 002's `relay` section), and the
/// relay pool that picks them (seed 001's `RelayConnectionPoolConfig`).
/// `docs/relays.md` tells the whole story.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Use relays at all: reach peers through their circuit addresses and be
    /// reached through ours. Off: no reservation is made and a circuit
    /// address is not dialled. Default: on.
    pub enabled: bool,
    /// Hold reservations, so peers reach this node through relays (with
    /// `enabled`). Off: the node dials through relays but nobody reaches it
    /// through one. Default: on.
    pub active: bool,
    /// Auto-relay: choose relays from every source and hold
    /// `max_relay_connections` of them while the node is not known to be
    /// publicly reachable, `min_relay_connections` once AutoNAT says it is.
    /// Off: hold exactly the configured relays (`relay_peers`). Default: on.
    pub auto_relay: bool,
    /// Learn of relays from the DHT, mDNS and identify. Off: only the
    /// configured ones are known. Default: on.
    pub discovery: bool,
    /// Serve as a relay too (circuit relay v2 hop), and announce it in the
    /// DHT. A relay serves reservations only on a confirmed external
    /// address. Default: off.
    pub hop: bool,
    /// How many reservations, how often to look for better relays, the
    /// deadlines and cool-downs, and discovery's intervals and bounds.
    pub pool: RelayConnectionPoolConfig,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            enabled: true,
            active: true,
            auto_relay: true,
            discovery: true,
            hop: false,
            pool: RelayConnectionPoolConfig::default(),
        }
    }
}

impl RelayConfig {
    /// The pool's configuration with the switches above applied.
    pub(crate) fn effective_pool(&self) -> RelayConnectionPoolConfig {
        let mut pool = self.pool.clone();
        pool.auto_connect = self.auto_relay;
        pool.discovery.enable_dht_discovery &= self.discovery;
        pool.discovery.enable_mdns_discovery &= self.discovery;
        pool
    }
}

/// Configuration of a [`Network`](crate::Network).
///
/// `NetworkConfig::default()` gives a node with an ephemeral identity that
/// listens on nothing, joins both DarkSwap topics, and has mDNS and Kademlia
/// on. Change it with the `with_*` builders (each field's doc states its
/// default); the fields stay readable.
///
/// ```
/// use std::time::Duration;
/// use darkswap_p2p::{KadMode, NetworkConfig};
///
/// let config = NetworkConfig::default()
///     .with_mdns(false)
///     .with_kad_mode(KadMode::Server)
///     .with_connection_timeout(Duration::from_secs(10));
/// assert!(!config.enable_mdns);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NetworkConfig {
    /// Peers dialled at start and used to bootstrap Kademlia. Each address
    /// should end in `/p2p/<peer id>`. Default: none.
    pub bootstrap_peers: Vec<Multiaddr>,
    /// Gossipsub topics joined at start. Default: the orderbook and trade topics.
    pub topics: Vec<String>,
    /// Re-announcements of own orders sent every 100 ms at most: a refresh
    /// trickles out at this pace while cancels, fill notices, new orders and
    /// updates go out at once, ahead of it. Default: 200 (2,000 messages a
    /// second; a refresh of 1,000 orders with their updates takes 1 s).
    pub republish_per_tick: usize,
    /// Circuit relay v2 servers named by the user, each ending in
    /// `/p2p/<relay peer id>`: the relay pool's configured relays (with
    /// `relay.auto_relay` off, the only ones it reserves on). The node
    /// listens on each chosen relay's `/p2p-circuit` address and keeps the
    /// reservation alive. Default: none.
    pub relay_peers: Vec<Multiaddr>,
    /// Bound on dials, listens and other commands that wait for the network.
    /// Default: 30 s.
    pub connection_timeout: Duration,
    /// Addresses listened on at start. Default: none.
    pub listen_addresses: Vec<Multiaddr>,
    /// Addresses this node is known to be reachable at (a public IP or a
    /// port forwarded to it), announced to peers as confirmed without
    /// waiting for AutoNAT. A node that serves as a relay (`relay.hop`)
    /// needs one before it accepts reservations. Default: none.
    pub external_addresses: Vec<Multiaddr>,
    /// The node's identity. Default: [`Identity::Ephemeral`].
    pub identity: Identity,
    /// The file keeping the certificate of `/webrtc-direct` listeners (PEM,
    /// created on first use), so their `/certhash` address survives a
    /// restart. Default: none, a new certificate at every start. Not used
    /// in a browser, which cannot listen.
    pub webrtc_certificate: Option<std::path::PathBuf>,
    /// Local network discovery with mDNS. Default: on, but off in a browser
    /// (wasm32), which has no multicast socket.
    pub enable_mdns: bool,
    /// Kademlia (`/darkswap/kad/1.0.0`). Default: on.
    pub enable_kad: bool,
    /// Kademlia mode. Default: [`KadMode::Auto`].
    pub kad_mode: KadMode,
    /// Serve and allow `/perf/1.0.0` throughput measurements. Default: off.
    pub enable_perf: bool,
    /// Connections with no protocol keeping them alive close after this.
    /// Gossipsub mesh links and pending requests keep a connection alive, so
    /// a relayed connection that carries DarkSwap traffic stays open. Default: 60 s.
    pub idle_connection_timeout: Duration,
    /// How relays are used and chosen. Default: [`RelayConfig::default`].
    pub relay: RelayConfig,
    /// Kademlia's k: peers per bucket, and how many of the closest peers a
    /// record is stored at (seed 002's `kBucketSize`). Default: 20.
    pub kad_bucket_size: usize,
    /// How long a stored Kademlia record lives (seed 002's `recordTTL`).
    /// Default: 24 h.
    pub kad_record_ttl: Duration,
    /// Largest DarkSwap message accepted or published. Default:
    /// [`darkswap_proto::MAX_MESSAGE_SIZE`].
    pub max_message_size: usize,
    /// Orderbook replication policy (refresh interval, TTL, limits).
    /// Default: [`OrderbookConfig::default`].
    pub orderbook: OrderbookConfig,
    /// How the node reconciles its book with its peers (on joining and by
    /// anti-entropy). Default: [`SyncConfig::default`].
    pub sync: SyncConfig,
    /// Authentication of peers over `/darkswap/auth/1.0.0`: how this node
    /// proves itself to peers that ask (relays that require it), and how it
    /// verifies relays when `require_relay_auth` is on. Default:
    /// [`AuthManagerConfig::default`].
    pub auth: AuthManagerConfig,
    /// Authenticate each relay of `relay_peers` over `/darkswap/auth/1.0.0`
    /// before asking it for a reservation, and refuse (no reservation,
    /// [`NetworkEvent::RelayAuthFailed`](crate::NetworkEvent::RelayAuthFailed),
    /// shown in [`RelayStatus`](crate::RelayStatus)) one that fails or whose
    /// level is below `min_relay_auth_level`. Refused relays are retried with
    /// the reservation backoff. Default: off.
    pub require_relay_auth: bool,
    /// The level a relay must reach with `require_relay_auth`. Default:
    /// [`AuthorizationLevel::Relay`].
    pub min_relay_auth_level: AuthorizationLevel,
    /// Capacity of the event queue from the swarm task to the handle. The
    /// swarm task never waits on it (stalling the swarm would stall pings
    /// and gossip heartbeats for every peer). When it is full, events that
    /// report what can be asked again are dropped and counted, and the
    /// count is delivered as
    /// [`NetworkEvent::EventsDropped`](crate::NetworkEvent::EventsDropped)
    /// once there is room; fills of own orders, trade steps and bans are
    /// never dropped but wait, in order, for room. Default: 1024.
    pub event_buffer: usize,
    /// Peer scoring and bans, and the bans in force at start.
    /// Default: [`ReputationConfig::default`].
    pub reputation: ReputationConfig,
    /// How market peers lost without a goodbye are redialled: first after
    /// `retry_initial`, doubling up to `retry_max`, given up after
    /// `give_up_after`. Default: [`ReconnectConfig::default`] (1 s, 30 s,
    /// 10 min).
    pub reconnect: ReconnectConfig,
    /// Ceilings on libp2p connections and on memory use.
    /// Default: [`ConnectionLimits::default`].
    pub connection_limits: ConnectionLimits,
    /// Gossip messages accepted from one peer (the peer that hands them to
    /// us), checked before any is decoded. Messages over the rate are
    /// dropped unjudged and not forwarded, and the peer pays a
    /// [`PenaltyReason::RateLimit`](crate::PenaltyReason::RateLimit) once a
    /// second while it stays over. Default: 100 a second, bursts of 500
    /// ([`GossipRateLimit::default`]).
    pub gossip_rate_limit: GossipRateLimit,
    /// What the node trades with. With it, the node speaks
    /// `/darkswap/trade/1.0.0`, answers proposals for its own orders and can
    /// take others'. Default: none (the node does not trade).
    pub trading: Option<crate::trade::Trading>,
    /// WebRTC data channels through relays' signaling servers (native
    /// only; see [`WebRtcSignalingConfig`]). Default: off.
    pub webrtc_signaling: WebRtcSignalingConfig,
}

/// The relay signaling default port (the relay's `[signaling] listen`).
pub const DEFAULT_WEBRTC_SIGNALING_PORT: u16 = 9001;

/// Where a node registers for WebRTC data channels
/// (`Network::create_webrtc_data_channel`, native only): relays' public
/// ports, whose `/signaling` carries offers, answers and candidates and whose
/// `/relay` carries end-to-end encrypted circuits when WebRTC cannot connect.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebRtcSignalingConfig {
    /// Register at start. Default: false.
    pub enabled: bool,
    /// Relays' public ports, e.g. `/ip4/203.0.113.7/tcp/9001/ws` or
    /// `/dns4/relay.example/tcp/443/wss`. Default: none.
    pub relays: Vec<Multiaddr>,
    /// Also use the relays this node already knows: each of `relay_peers`,
    /// on its host at [`port`](Self::port). Default: true.
    pub from_relay_peers: bool,
    /// The signaling port assumed for `relay_peers`. Default: 9001.
    pub port: u16,
    /// How the node registers on each: relay tokens (`RelayAuth::Auto` for
    /// a relay that admits only token holders), reconnection, and the
    /// roots a `wss://` relay must chain to (a private CA's with
    /// `TlsRoots::with_extra_pem`). Default: no token, reconnection with
    /// backoff, the system's roots.
    #[cfg(not(target_arch = "wasm32"))]
    pub options: darkswap_webrtc::SignalingOptions,
}

impl Default for WebRtcSignalingConfig {
    fn default() -> Self {
        WebRtcSignalingConfig {
            enabled: false,
            relays: Vec::new(),
            from_relay_peers: true,
            port: DEFAULT_WEBRTC_SIGNALING_PORT,
            #[cfg(not(target_arch = "wasm32"))]
            options: darkswap_webrtc::SignalingOptions::default(),
        }
    }
}

/// How many libp2p connections a node keeps, and the memory use above which
/// it accepts no more. Connections over a limit are refused (an incoming one
/// is closed as soon as the peer is known; a dial fails with `denied`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionLimits {
    /// Connections established at once, all peers together. Default: 512.
    pub max_established: u32,
    /// Connections established at once with one peer. Default: 4.
    pub max_established_per_peer: u32,
    /// Incoming connections in their handshake at once. Default: 128.
    pub max_pending_incoming: u32,
    /// Outgoing connections being dialled at once. Default: 128.
    pub max_pending_outgoing: u32,
    /// Refuse new connections while the process uses more than this
    /// fraction of the system's memory (0 < x ≤ 1). Default: 0.9.
    pub max_memory_fraction: f64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_established: 512,
            max_established_per_peer: 4,
            max_pending_incoming: 128,
            max_pending_outgoing: 128,
            max_memory_fraction: 0.9,
        }
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            bootstrap_peers: Vec::new(),
            topics: vec![ORDERBOOK_TOPIC.to_owned(), TRADE_TOPIC.to_owned()],
            republish_per_tick: 200,
            relay_peers: Vec::new(),
            connection_timeout: Duration::from_secs(30),
            listen_addresses: Vec::new(),
            external_addresses: Vec::new(),
            identity: Identity::Ephemeral,
            webrtc_certificate: None,
            // A browser has no multicast socket.
            enable_mdns: cfg!(not(target_arch = "wasm32")),
            enable_kad: true,
            kad_mode: KadMode::Auto,
            enable_perf: false,
            idle_connection_timeout: Duration::from_secs(60),
            relay: RelayConfig::default(),
            kad_bucket_size: 20,
            kad_record_ttl: Duration::from_secs(24 * 3600),
            max_message_size: darkswap_proto::MAX_MESSAGE_SIZE,
            event_buffer: 1024,
            orderbook: OrderbookConfig::default(),
            sync: SyncConfig::default(),
            auth: AuthManagerConfig::default(),
            require_relay_auth: false,
            min_relay_auth_level: AuthorizationLevel::Relay,
            reputation: ReputationConfig::default(),
            reconnect: ReconnectConfig::default(),
            connection_limits: ConnectionLimits::default(),
            gossip_rate_limit: GossipRateLimit::default(),
            trading: None,
            webrtc_signaling: WebRtcSignalingConfig::default(),
        }
    }
}

impl NetworkConfig {
    /// The peers dialled at start and used to bootstrap Kademlia (`bootstrap_peers`).
    pub fn with_bootstrap_peers(mut self, peers: impl IntoIterator<Item = Multiaddr>) -> Self {
        self.bootstrap_peers = peers.into_iter().collect();
        self
    }

    /// Sets [`NetworkConfig::republish_per_tick`].
    pub fn with_republish_per_tick(mut self, per_tick: usize) -> Self {
        self.republish_per_tick = per_tick;
        self
    }

    /// The gossipsub topics joined at start (`topics`).
    pub fn with_topics(mut self, topics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.topics = topics.into_iter().map(Into::into).collect();
        self
    }

    /// The relays to hold reservations on (`relay_peers`).
    pub fn with_relay_peers(mut self, relays: impl IntoIterator<Item = Multiaddr>) -> Self {
        self.relay_peers = relays.into_iter().collect();
        self
    }

    /// Registers for WebRTC data channels on these relays' public ports
    /// (and on `relay_peers`' hosts, unless turned off).
    pub fn with_webrtc_signaling_relays(
        mut self,
        relays: impl IntoIterator<Item = Multiaddr>,
    ) -> Self {
        self.webrtc_signaling.enabled = true;
        self.webrtc_signaling.relays = relays.into_iter().collect();
        self
    }

    /// How the node registers for WebRTC data channels: tokens,
    /// reconnection, TLS roots (`webrtc_signaling.options`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_webrtc_signaling_options(
        mut self,
        options: darkswap_webrtc::SignalingOptions,
    ) -> Self {
        self.webrtc_signaling.options = options;
        self
    }

    /// Turns WebRTC data channels on or off; sets the signaling port
    /// assumed for `relay_peers` and whether they are used.
    pub fn with_webrtc_signaling(mut self, enabled: bool, relay_peers_port: Option<u16>) -> Self {
        self.webrtc_signaling.enabled = enabled;
        match relay_peers_port {
            Some(port) => self.webrtc_signaling.port = port,
            None => self.webrtc_signaling.from_relay_peers = false,
        }
        self
    }

    /// The bound on commands that wait for the network (`connection_timeout`).
    pub fn with_connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// The addresses listened on at start (`listen_addresses`).
    pub fn with_listen_addresses(mut self, addrs: impl IntoIterator<Item = Multiaddr>) -> Self {
        self.listen_addresses = addrs.into_iter().collect();
        self
    }

    /// Addresses this node is known to be reachable at (`external_addresses`).
    pub fn with_external_addresses(mut self, addrs: impl IntoIterator<Item = Multiaddr>) -> Self {
        self.external_addresses = addrs.into_iter().collect();
        self
    }

    /// Where the node's identity comes from (`identity`).
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// Keeps the `/webrtc-direct` certificate in `path`
    /// (`webrtc_certificate`).
    pub fn with_webrtc_certificate(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.webrtc_certificate = Some(path.into());
        self
    }

    /// mDNS discovery on or off (`enable_mdns`).
    pub fn with_mdns(mut self, on: bool) -> Self {
        self.enable_mdns = on;
        self
    }

    /// Kademlia on or off (`enable_kad`).
    pub fn with_kad(mut self, on: bool) -> Self {
        self.enable_kad = on;
        self
    }

    /// The Kademlia mode (`kad_mode`).
    pub fn with_kad_mode(mut self, mode: KadMode) -> Self {
        self.kad_mode = mode;
        self
    }

    /// Serving and running `/perf/1.0.0` on or off (`enable_perf`).
    pub fn with_perf(mut self, on: bool) -> Self {
        self.enable_perf = on;
        self
    }

    /// How long an idle connection lives (`idle_connection_timeout`).
    pub fn with_idle_connection_timeout(mut self, timeout: Duration) -> Self {
        self.idle_connection_timeout = timeout;
        self
    }

    /// The first cool-down of a relay whose reservation failed or was lost
    /// (`relay.pool.retry_initial`); it doubles with each failure in a row.
    pub fn with_relay_retry_initial(mut self, delay: Duration) -> Self {
        self.relay.pool.retry_initial = delay;
        self
    }

    /// The longest cool-down of a failed relay (`relay.pool.retry_max`).
    pub fn with_relay_retry_max(mut self, delay: Duration) -> Self {
        self.relay.pool.retry_max = delay;
        self
    }

    /// How lost market peers are redialled (`reconnect`).
    pub fn with_reconnect(mut self, reconnect: ReconnectConfig) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// How relays are used and chosen (`relay`).
    pub fn with_relay(mut self, relay: RelayConfig) -> Self {
        self.relay = relay;
        self
    }

    /// Auto-relay on or off (`relay.auto_relay`).
    pub fn with_auto_relay(mut self, on: bool) -> Self {
        self.relay.auto_relay = on;
        self
    }

    /// Serve as a relay too (`relay.hop`).
    pub fn with_relay_hop(mut self, on: bool) -> Self {
        self.relay.hop = on;
        self
    }

    /// Kademlia's bucket size (`kad_bucket_size`).
    pub fn with_kad_bucket_size(mut self, k: usize) -> Self {
        self.kad_bucket_size = k;
        self
    }

    /// Kademlia's record time to live (`kad_record_ttl`).
    pub fn with_kad_record_ttl(mut self, ttl: Duration) -> Self {
        self.kad_record_ttl = ttl;
        self
    }

    /// The largest DarkSwap message accepted or published (`max_message_size`).
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// The orderbook policy (`orderbook`).
    pub fn with_orderbook(mut self, config: OrderbookConfig) -> Self {
        self.orderbook = config;
        self
    }

    /// The book reconciliation policy (`sync`).
    pub fn with_sync(mut self, config: SyncConfig) -> Self {
        self.sync = config;
        self
    }

    /// What the node trades with (`trading`).
    pub fn with_trading(mut self, trading: crate::trade::Trading) -> Self {
        self.trading = Some(trading);
        self
    }

    /// The authentication policy (`auth`).
    pub fn with_auth(mut self, config: AuthManagerConfig) -> Self {
        self.auth = config;
        self
    }

    /// Whether relays must authenticate before a reservation (`require_relay_auth`).
    pub fn with_require_relay_auth(mut self, on: bool) -> Self {
        self.require_relay_auth = on;
        self
    }

    /// The level relays must reach (`min_relay_auth_level`).
    pub fn with_min_relay_auth_level(mut self, level: AuthorizationLevel) -> Self {
        self.min_relay_auth_level = level;
        self
    }

    /// The capacity of the event queue (`event_buffer`).
    pub fn with_event_buffer(mut self, capacity: usize) -> Self {
        self.event_buffer = capacity;
        self
    }

    /// The scoring and ban policy (`reputation`).
    pub fn with_reputation(mut self, config: ReputationConfig) -> Self {
        self.reputation = config;
        self
    }

    /// The connection and memory ceilings (`connection_limits`).
    pub fn with_connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.connection_limits = limits;
        self
    }

    /// The gossip messages accepted from one peer (`gossip_rate_limit`).
    pub fn with_gossip_rate_limit(mut self, limit: GossipRateLimit) -> Self {
        self.gossip_rate_limit = limit;
        self
    }
}
