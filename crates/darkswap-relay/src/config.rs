//! The relay's typed configuration, one struct per part of the server.
//!
//! Every field's doc states its default, which comes from
//! [`crate::defaults`]. The binary reads these from its configuration file
//! (`deploy/config.toml`, whose sections keep their historical names: the
//! file's `[network]` is [`Libp2pConfig`], `[relay]` is [`HopConfig`],
//! `[metrics]` is [`AdminHttpConfig`], `[ws_relay]` is [`WsCircuitConfig`]
//! and `[auth]` is [`TokenConfig`]) and checks them there; a library user
//! starts from [`RelayConfig::default`] and changes what it needs.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    path::PathBuf,
    time::Duration,
};

use darkswap_p2p::auth::{AuthMethod, AuthorizationLevel};
use darkswap_proto::relay_auth::Role;
use libp2p::{Multiaddr, PeerId};

use crate::defaults;

/// The whole relay configuration.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Directory for the identity key (`identity.key`) and revocations.
    /// Default: the platform data dir + `darkswap-relay`
    /// (`~/.local/share/darkswap-relay` on Linux), see [`default_data_dir`].
    pub data_dir: PathBuf,
    /// The libp2p node: transports and addresses.
    pub libp2p: Libp2pConfig,
    /// libp2p circuit relay v2 (hop): reservation and circuit limits.
    pub hop: HopConfig,
    /// The admin HTTP server (`/metrics`, `/health`).
    pub admin_http: AdminHttpConfig,
    /// The WebSocket signaling endpoint (`/signaling`) and the public port.
    pub signaling: SignalingConfig,
    /// WebSocket circuits (`/relay`), the fallback when WebRTC cannot connect.
    pub ws_circuit: WsCircuitConfig,
    /// The token authority and the roles that decide who may use what.
    pub tokens: TokenConfig,
    /// Connection, request, message and bandwidth ceilings.
    pub limits: LimitsConfig,
    /// Peer authentication over `/darkswap/auth/1.0.0`.
    pub peer_auth: PeerAuthConfig,
    /// STUN and TURN for WebRTC peers.
    pub turn: TurnConfig,
    /// TLS on the public port and libp2p WebSocket over TLS.
    pub tls: TlsConfig,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            data_dir: default_data_dir(),
            libp2p: Libp2pConfig::default(),
            hop: HopConfig::default(),
            admin_http: AdminHttpConfig::default(),
            signaling: SignalingConfig::default(),
            ws_circuit: WsCircuitConfig::default(),
            tokens: TokenConfig::default(),
            limits: LimitsConfig::default(),
            peer_auth: PeerAuthConfig::default(),
            turn: TurnConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

impl RelayConfig {
    /// Sockets the public port holds open at once, in any phase: what the
    /// limits can use (`signaling.max_peers` + 2 × `ws_circuit.max_circuits`)
    /// and [`SPARE_SOCKETS`](defaults::queues::SPARE_SOCKETS) more for HTTP
    /// and handshakes. Past it a connection is refused (429 or 1013). One
    /// address holds at most `limits.max_connections_per_ip` of them, and
    /// never all: the listener keeps one back from any single address.
    pub fn max_public_sockets(&self) -> usize {
        max_public_sockets(self.signaling.max_peers, self.ws_circuit.max_circuits)
    }
}

/// See [`RelayConfig::max_public_sockets`].
pub(crate) fn max_public_sockets(max_peers: usize, max_circuits: usize) -> usize {
    max_peers
        .saturating_add(max_circuits.saturating_mul(2))
        .saturating_add(defaults::queues::SPARE_SOCKETS)
}

/// The default data directory: the platform data dir + `darkswap-relay`,
/// or `darkswap-relay-data` where the platform has none.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join(defaults::libp2p::DATA_DIR_NAME))
        .unwrap_or_else(|| PathBuf::from(defaults::libp2p::FALLBACK_DATA_DIR))
}

/// The libp2p node: transports and addresses.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Libp2pConfig {
    /// Addresses to listen on. Default: TCP and QUIC on port 9000, WebSocket
    /// and WebRTC-direct on 9002: `/ip4/0.0.0.0/tcp/9000`,
    /// `/ip4/0.0.0.0/udp/9000/quic-v1`, `/ip4/0.0.0.0/tcp/9002/ws`,
    /// `/ip4/0.0.0.0/udp/9002/webrtc-direct`.
    pub listen_addresses: Vec<Multiaddr>,
    /// Public addresses to announce (e.g. behind a load balancer or NAT with
    /// port forwarding). Default: none, and then the listen addresses are
    /// announced, because a relay refuses reservations until it has an
    /// external address.
    pub external_addresses: Vec<Multiaddr>,
    /// Gossipsub topics the relay joins and forwards. Default: the DarkSwap
    /// orderbook and trade topics.
    pub topics: Vec<String>,
    /// How long a connection with nothing keeping it alive stays open.
    /// Default: 60 s.
    pub idle_connection_timeout: Duration,
    /// Serve libp2p's `/perf/1.0.0` throughput protocol (specs
    /// `perf/perf.md`) to any peer: for measuring links, not for a public
    /// relay (anyone could make it send bytes). Default: off.
    pub perf: bool,
}

impl Default for Libp2pConfig {
    fn default() -> Self {
        Libp2pConfig {
            listen_addresses: defaults::libp2p::LISTEN_ADDRESSES
                .iter()
                // Literals; the defaults test catches a typo.
                .filter_map(|a| a.parse().ok())
                .collect(),
            external_addresses: Vec::new(),
            topics: vec![
                darkswap_p2p::ORDERBOOK_TOPIC.to_owned(),
                darkswap_p2p::TRADE_TOPIC.to_owned(),
            ],
            idle_connection_timeout: defaults::libp2p::IDLE_CONNECTION_TIMEOUT,
            perf: false,
        }
    }
}

/// A rate limit: at most `limit` requests per `interval`, all at once or
/// spread out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per interval.
    pub limit: NonZeroU32,
    /// The interval.
    pub interval: Duration,
}

impl RateLimit {
    /// `limit` requests per `interval` (a limit of 0 counts as 1).
    pub const fn new(limit: u32, interval: Duration) -> Self {
        let limit = match NonZeroU32::new(limit) {
            Some(l) => l,
            None => NonZeroU32::MIN,
        };
        RateLimit { limit, interval }
    }

    const fn of(default: (u32, Duration)) -> Self {
        RateLimit::new(default.0, default.1)
    }

    /// The limit as a `governor` quota: `limit` at once, refilled evenly
    /// over the interval.
    pub fn quota(&self) -> governor::Quota {
        let period = self.interval / self.limit.get();
        governor::Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| governor::Quota::per_second(self.limit))
            .allow_burst(self.limit)
    }
}

/// libp2p circuit relay v2 (the hop protocol): reservations and circuits.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HopConfig {
    /// Reservations held at once, all peers together. Default: 1024.
    pub max_reservations: usize,
    /// Reservations one peer may hold at once. Default: 4.
    pub max_reservations_per_peer: usize,
    /// How long a reservation lasts before the client must renew it.
    /// Default: 1 h.
    pub reservation_duration: Duration,
    /// Circuits open at once, all peers together. Default: 256.
    pub max_circuits: usize,
    /// Circuits one peer may have open at once. Default: 16.
    pub max_circuits_per_peer: usize,
    /// How long a circuit may stay open. Default: 1 h (libp2p's default is
    /// 120 s, too short for a trade negotiation).
    pub max_circuit_duration: Duration,
    /// Bytes a circuit may carry in each direction. Default: 64 MiB
    /// (libp2p's default is 128 KiB, too small for PSBT exchange).
    pub max_circuit_bytes: u64,
    /// Reservation requests per peer. Default: 30 per 120 s.
    pub reservation_rate_per_peer: RateLimit,
    /// Reservation requests per IP address. Default: 60 per 60 s.
    pub reservation_rate_per_ip: RateLimit,
    /// Circuit requests per source peer. Default: 30 per 120 s.
    pub circuit_rate_per_peer: RateLimit,
    /// Circuit requests per source IP address. Default: 60 per 60 s.
    pub circuit_rate_per_ip: RateLimit,
}

impl Default for HopConfig {
    fn default() -> Self {
        use defaults::hop as d;
        HopConfig {
            max_reservations: d::MAX_RESERVATIONS,
            max_reservations_per_peer: d::MAX_RESERVATIONS_PER_PEER,
            reservation_duration: d::RESERVATION_DURATION,
            max_circuits: d::MAX_CIRCUITS,
            max_circuits_per_peer: d::MAX_CIRCUITS_PER_PEER,
            max_circuit_duration: d::MAX_CIRCUIT_DURATION,
            max_circuit_bytes: d::MAX_CIRCUIT_BYTES,
            reservation_rate_per_peer: RateLimit::of(d::RESERVATION_RATE_PER_PEER),
            reservation_rate_per_ip: RateLimit::of(d::RESERVATION_RATE_PER_IP),
            circuit_rate_per_peer: RateLimit::of(d::CIRCUIT_RATE_PER_PEER),
            circuit_rate_per_ip: RateLimit::of(d::CIRCUIT_RATE_PER_IP),
        }
    }
}

/// The admin HTTP server (`/metrics`, `/health`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AdminHttpConfig {
    /// Serve `/metrics` and `/health`. Default: true.
    pub enabled: bool,
    /// Its address. Default: `127.0.0.1:9090` (loopback: expose it
    /// deliberately, never by accident).
    pub listen: SocketAddr,
}

impl Default for AdminHttpConfig {
    fn default() -> Self {
        AdminHttpConfig {
            enabled: defaults::admin_http::ENABLED,
            listen: defaults::admin_http::LISTEN,
        }
    }
}

/// The WebSocket signaling endpoint (`/signaling`), and the public port it
/// shares with `/relay` and `/auth/*`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SignalingConfig {
    /// Serve the public port. Default: true.
    pub enabled: bool,
    /// Address of the public port. Default: `0.0.0.0:9001`.
    pub listen: SocketAddr,
    /// Largest text frame accepted on `/signaling`, in bytes; larger ones
    /// close the socket with 1009. Default: 65536.
    pub max_message_size: usize,
    /// Peers registered at once. Default: 10000.
    pub max_peers: usize,
    /// How long a socket may send nothing before it is closed (4000).
    /// Default: 60 s.
    pub idle_timeout: Duration,
    /// How long a new socket has to register before it is closed (4001).
    /// Default: 10 s.
    pub register_timeout: Duration,
    /// Messages per second one socket may send. Default: 20.
    pub messages_per_second: NonZeroU32,
    /// Messages one socket may send in a burst above that rate. Default: 50.
    pub message_burst: NonZeroU32,
    /// Messages dropped for the rate in a row before the socket is closed
    /// (1008). Default: 50.
    pub max_rate_violations: u32,
    /// How long a client on the public port has to send a complete request
    /// head (request line and headers, WebSocket upgrades included): from
    /// the accept for a connection's first request, from the previous
    /// answer for the next one on a kept-alive HTTP connection. Then the
    /// connection is closed (after a 408 where one can still be sent).
    /// Default: 10 s.
    pub request_head_timeout: Duration,
    /// How long an HTTP request (`/auth/*`) has, once its head is in, to
    /// deliver its body and be answered; then it gets 408 and the
    /// connection closes. Default: 10 s.
    pub request_body_timeout: Duration,
    /// Most peers in one page of `registered` or `peers`. Default: 20.
    pub peer_page_size: usize,
    /// Most peers one socket may watch at once (`watch_limit` above).
    /// Default: 256.
    pub max_watched_peers: usize,
    /// Bytes of offers, answers and candidates waiting for one socket, all
    /// senders together; above it a sender gets only its reserve (16 KiB)
    /// and is refused with `peer_busy` beyond. Default: 1 MiB.
    pub send_queue_bytes: usize,
    /// Bytes one sender may have waiting for one socket (`peer_busy`
    /// above). Default: 128 KiB.
    pub send_queue_bytes_per_sender: usize,
    /// How long a message may wait to be taken by a socket before the
    /// socket is closed as too slow (1008). Default: 10 s.
    pub slow_reader_timeout: Duration,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        use defaults::signaling as d;
        SignalingConfig {
            enabled: d::ENABLED,
            listen: d::LISTEN,
            max_message_size: d::MAX_MESSAGE_SIZE,
            max_peers: d::MAX_PEERS,
            idle_timeout: d::IDLE_TIMEOUT,
            register_timeout: d::REGISTER_TIMEOUT,
            messages_per_second: NonZeroU32::new(d::MESSAGES_PER_SECOND).unwrap_or(NonZeroU32::MIN),
            message_burst: NonZeroU32::new(d::MESSAGE_BURST).unwrap_or(NonZeroU32::MIN),
            max_rate_violations: d::MAX_RATE_VIOLATIONS,
            request_head_timeout: d::REQUEST_HEAD_TIMEOUT,
            request_body_timeout: d::REQUEST_BODY_TIMEOUT,
            peer_page_size: d::PEER_PAGE_SIZE,
            max_watched_peers: d::MAX_WATCHED_PEERS,
            send_queue_bytes: d::SEND_QUEUE_BYTES,
            send_queue_bytes_per_sender: d::SEND_QUEUE_BYTES_PER_SENDER,
            slow_reader_timeout: d::SLOW_READER_TIMEOUT,
        }
    }
}

/// STUN and TURN on a UDP port of the relay's own (`docs/signaling.md`,
/// STUN and TURN). One port answers STUN binding requests (anyone) and TURN
/// allocations (only with credentials from `POST /auth/ice-servers`, minted
/// for a peer holding a token of at least [`role`](Self::role)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TurnConfig {
    /// Serve STUN and TURN. Default: false.
    pub enabled: bool,
    /// UDP address of the STUN/TURN port. Default: `0.0.0.0:3478`.
    pub listen: SocketAddr,
    /// The address relayed candidates carry: the relay's public IP. Default:
    /// the listen IP if it is not unspecified, else the IP of the default
    /// route.
    pub relay_ip: Option<IpAddr>,
    /// Host named in the `stun:`/`turn:` URLs handed out. Default: the host
    /// the client reached the token service on.
    pub public_host: Option<String>,
    /// First UDP port of relayed addresses. Default: 49152.
    pub relay_port_min: u16,
    /// Last UDP port of relayed addresses. Default: 65535.
    pub relay_port_max: u16,
    /// The TURN realm. Default: `darkswap`.
    pub realm: String,
    /// Secret of the time-limited credentials (coturn's
    /// `static-auth-secret`). Default: none, a random one per start (only
    /// this process checks them).
    pub secret: Option<String>,
    /// How long minted credentials are valid. Default: 10 min.
    pub credential_ttl: Duration,
    /// Lowest token role given credentials. Default: `user`.
    pub role: Role,
    /// Allocations held at once, all peers together (508 above). Default: 256.
    pub max_allocations: usize,
    /// Allocations one peer may hold at once (486 above). Default: 4.
    pub max_allocations_per_peer: usize,
    /// Bytes per second one allocation may relay, both directions; datagrams
    /// above are dropped. Default: 1 MiB/s.
    pub bandwidth_per_allocation: u64,
}

impl Default for TurnConfig {
    fn default() -> Self {
        use defaults::turn as d;
        TurnConfig {
            enabled: d::ENABLED,
            listen: d::LISTEN,
            relay_ip: None,
            public_host: None,
            relay_port_min: d::RELAY_PORT_MIN,
            relay_port_max: d::RELAY_PORT_MAX,
            realm: d::REALM.to_owned(),
            secret: None,
            credential_ttl: d::CREDENTIAL_TTL,
            role: d::ROLE,
            max_allocations: d::MAX_ALLOCATIONS,
            max_allocations_per_peer: d::MAX_ALLOCATIONS_PER_PEER,
            bandwidth_per_allocation: d::BANDWIDTH_PER_ALLOCATION,
        }
    }
}

/// TLS (`docs/operations.md`, TLS): with a certificate and its key, the
/// public port serves `wss://` and `https://` only (the same endpoints), and
/// libp2p listens for WebSocket over TLS on
/// [`libp2p_listen_addresses`](Self::libp2p_listen_addresses). Off when the
/// files are not set. The files are read again when they change, so a
/// renewed certificate is served without a restart.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM file holding the certificate chain, the relay's certificate
    /// first. Default: none (TLS off).
    pub cert_file: Option<PathBuf>,
    /// PEM file holding the certificate's private key (PKCS#8, PKCS#1 or
    /// SEC1). Default: none (TLS off).
    pub key_file: Option<PathBuf>,
    /// How often the two files are checked for a change; a changed pair is
    /// loaded and served to new connections, one that does not load is
    /// logged and the certificate in use kept. Zero: only on request
    /// ([`RelayServer::reload_tls`](crate::RelayServer::reload_tls), SIGHUP
    /// for the binary). Default: 60 s.
    pub reload_interval: Duration,
    /// libp2p addresses for WebSocket over TLS (`/tls/ws` or `/wss`),
    /// listened on when TLS is on, beside
    /// [`Libp2pConfig::listen_addresses`]. Default:
    /// `/ip4/0.0.0.0/tcp/9443/tls/ws`.
    pub libp2p_listen_addresses: Vec<Multiaddr>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            reload_interval: defaults::tls::RELOAD_INTERVAL,
            libp2p_listen_addresses: defaults::tls::LIBP2P_LISTEN_ADDRESSES
                .iter()
                // Literals; the defaults test catches a typo.
                .filter_map(|a| a.parse().ok())
                .collect(),
        }
    }
}

impl TlsConfig {
    /// The certificate and key files, when both are set (TLS on).
    pub fn files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        Some((self.cert_file.as_deref()?, self.key_file.as_deref()?))
    }
}

/// WebSocket circuits (`/relay`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WsCircuitConfig {
    /// Circuits pending or open at once, all peers together. Default: 256.
    pub max_circuits: usize,
    /// Circuits one peer may have pending or open at once. Default: 8.
    pub max_circuits_per_peer: usize,
    /// Bytes per second one circuit may carry, both directions together;
    /// faster senders are slowed, not cut. Default: 1 MiB/s.
    pub bandwidth_per_circuit: u64,
    /// Bytes per second one peer may send over all its circuits.
    /// Default: 2 MiB/s.
    pub bandwidth_per_peer: u64,
    /// Bytes a circuit may carry in all, both directions; then it closes
    /// (`byte_limit`). Default: 64 MiB.
    pub max_circuit_bytes: u64,
    /// How long a circuit may stay open (`duration_limit`). Default: 1 h.
    pub max_circuit_duration: Duration,
    /// How long a circuit may carry no frame in either direction before it
    /// closes (`idle_timeout`). Default: 60 s.
    pub idle_timeout: Duration,
    /// How long a request has to be accepted and both ends to attach
    /// (`accept_timeout`). Default: 15 s.
    pub accept_timeout: Duration,
    /// Largest binary frame on `/relay`, in bytes (1009 above).
    /// Default: 262144.
    pub max_frame_size: usize,
}

impl Default for WsCircuitConfig {
    fn default() -> Self {
        use defaults::ws_circuit as d;
        WsCircuitConfig {
            max_circuits: d::MAX_CIRCUITS,
            max_circuits_per_peer: d::MAX_CIRCUITS_PER_PEER,
            bandwidth_per_circuit: d::BANDWIDTH_PER_CIRCUIT,
            bandwidth_per_peer: d::BANDWIDTH_PER_PEER,
            max_circuit_bytes: d::MAX_CIRCUIT_BYTES,
            max_circuit_duration: d::MAX_CIRCUIT_DURATION,
            idle_timeout: d::IDLE_TIMEOUT,
            accept_timeout: d::ACCEPT_TIMEOUT,
            max_frame_size: d::MAX_FRAME_SIZE,
        }
    }
}

/// The token authority and roles (`docs/security.md`). A peer's role is
/// `admin` if it is listed in `admins`, `user` if listed in `users`, else
/// `default_role`; a WebSocket client that shows no token has
/// `anonymous_role`. libp2p peers always have proven their key (Noise), so
/// they get the role of their peer id.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TokenConfig {
    /// Role of a WebSocket client without a token. Default: `user` (an open
    /// relay); `guest` makes a token necessary for everything below.
    pub anonymous_role: Role,
    /// Role of a peer that proved its key and is not listed. Default: `user`.
    pub default_role: Role,
    /// Peers with the `admin` role. Default: none.
    pub admins: Vec<PeerId>,
    /// Peers with the `user` role (those allowed in when `default_role` is
    /// `guest`). Default: none.
    pub users: Vec<PeerId>,
    /// Lowest role that may register on `/signaling`. Default: `user`.
    pub signaling_role: Role,
    /// Lowest role that may request or accept a WebSocket circuit.
    /// Default: `user`.
    pub circuit_role: Role,
    /// Lowest role that may hold a libp2p relay reservation (others are
    /// denied with RESOURCE_LIMIT_EXCEEDED). Default: `user`.
    pub reservation_role: Role,
    /// Lifetime of the tokens `/auth/token` and `/auth/refresh` issue.
    /// Default: 1 h.
    pub token_ttl: Duration,
    /// Longest lifetime a token may have, however it was minted; longer ones
    /// are refused. Default: 1 day.
    pub max_token_ttl: Duration,
    /// How long a challenge from `/auth/challenge` may be answered.
    /// Default: 60 s.
    pub challenge_ttl: Duration,
    /// Challenges outstanding at once, all peers together. Default: 10000.
    pub max_pending_challenges: usize,
    /// Clock skew tolerated on `exp` and `nbf`. Default: 30 s.
    pub clock_skew: Duration,
    /// The `aud` claim tokens are issued for and must carry. The issuer is
    /// always the relay's peer id. Default: `darkswap-relay`.
    pub audience: String,
}

impl Default for TokenConfig {
    fn default() -> Self {
        use defaults::tokens as d;
        TokenConfig {
            anonymous_role: d::ANONYMOUS_ROLE,
            default_role: d::DEFAULT_ROLE,
            admins: Vec::new(),
            users: Vec::new(),
            signaling_role: d::SIGNALING_ROLE,
            circuit_role: d::CIRCUIT_ROLE,
            reservation_role: d::RESERVATION_ROLE,
            token_ttl: d::TOKEN_TTL,
            max_token_ttl: d::MAX_TOKEN_TTL,
            challenge_ttl: d::CHALLENGE_TTL,
            max_pending_challenges: d::MAX_PENDING_CHALLENGES,
            clock_skew: d::CLOCK_SKEW,
            audience: d::AUDIENCE.to_owned(),
        }
    }
}

impl TokenConfig {
    /// The role of a peer that proved its key.
    pub fn role_of(&self, peer: &PeerId) -> Role {
        if self.admins.contains(peer) {
            Role::Admin
        } else if self.users.contains(peer) {
            Role::User
        } else {
            self.default_role
        }
    }
}

/// Ceilings on the public port and on libp2p connections. Over a limit,
/// HTTP answers 429 with `Retry-After`, a WebSocket is closed with 1013
/// (try again later), libp2p refuses the connection; every refusal is
/// counted in `darkswap_relay_rate_limited_total`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LimitsConfig {
    /// Connections open at once from one IP address (an IPv6 /64) on the
    /// public port, counted in every phase from accept to close; checked
    /// first, before any global limit. Must stay below
    /// [`RelayConfig::max_public_sockets`]. Default: 64.
    pub max_connections_per_ip: usize,
    /// New connections from one IP address. Default: 120 per 60 s.
    pub connection_rate_per_ip: RateLimit,
    /// New connections from all addresses together. Default: 2000 per 1 s.
    pub connection_rate_global: RateLimit,
    /// `/auth/*` requests from one IP address. Default: 30 per 60 s.
    pub http_rate_per_ip: RateLimit,
    /// `/auth/*` requests from all addresses together. Default: 500 per 1 s.
    pub http_rate_global: RateLimit,
    /// Signaling messages per second from all sockets together; over it a
    /// message is dropped with `rate_limited`. Default: 20000.
    pub messages_per_second_global: NonZeroU32,
    /// Bytes per second all WebSocket circuits together may carry; faster
    /// senders are slowed. Default: 256 MiB/s.
    pub bandwidth_global: u64,
    /// libp2p connections established at once. Default: 8192.
    pub max_established_connections: u32,
    /// libp2p connections established at once with one peer. Default: 8.
    pub max_connections_per_peer: u32,
    /// libp2p incoming connections in their handshake at once. Default: 512.
    pub max_pending_incoming: u32,
    /// Refuse new libp2p connections while the process uses more than this
    /// percentage of the system's memory. Default: 90.
    pub max_memory_percentage: f64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        use defaults::limits as d;
        LimitsConfig {
            max_connections_per_ip: d::MAX_CONNECTIONS_PER_IP,
            connection_rate_per_ip: RateLimit::of(d::CONNECTION_RATE_PER_IP),
            connection_rate_global: RateLimit::of(d::CONNECTION_RATE_GLOBAL),
            http_rate_per_ip: RateLimit::of(d::HTTP_RATE_PER_IP),
            http_rate_global: RateLimit::of(d::HTTP_RATE_GLOBAL),
            messages_per_second_global: NonZeroU32::new(d::MESSAGES_PER_SECOND_GLOBAL)
                .unwrap_or(NonZeroU32::MIN),
            bandwidth_global: d::BANDWIDTH_GLOBAL,
            max_established_connections: d::MAX_ESTABLISHED_CONNECTIONS,
            max_connections_per_peer: d::MAX_CONNECTIONS_PER_PEER,
            max_pending_incoming: d::MAX_PENDING_INCOMING,
            max_memory_percentage: d::MAX_MEMORY_PERCENTAGE,
        }
    }
}

/// The relay's side of `/darkswap/auth/1.0.0` (`docs/security-auth.md`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PeerAuthConfig {
    /// Serve `/darkswap/auth/1.0.0`, so nodes requiring relay
    /// authentication can use this relay. Default: true.
    pub enabled: bool,
    /// File holding the operator-issued shared key in hex (at least 16
    /// bytes), kept out of the config file and read at start. The relay
    /// answers shared-key challenges with it, and verifies with it when
    /// `method` is `SharedKey`. Default: none.
    pub shared_key_file: Option<PathBuf>,
    /// What the relay asks of peers with `require_auth`: `SharedKey`,
    /// `ChallengeResponse` (any identity, `default_level`) or `PublicKey`
    /// (only `authorized_keys`). Default: `ChallengeResponse`.
    pub method: AuthMethod,
    /// Challenge every peer that connects and disconnect it if it fails or
    /// its level is below `min_level`. Default: false.
    pub require_auth: bool,
    /// The level a peer needs with `require_auth`. Default: `Basic`.
    pub min_level: AuthorizationLevel,
    /// The level a peer gets by proving itself, unless `authorized_keys`
    /// names one. Default: `Basic`.
    pub default_level: AuthorizationLevel,
    /// Peers accepted without a challenge (level `Relay`, or their
    /// `authorized_keys` entry). Default: none.
    pub trusted_peers: Vec<PeerId>,
    /// Peers the relay never answers nor authenticates; with `require_auth`
    /// they are disconnected at once. Default: none.
    pub banned_peers: Vec<PeerId>,
    /// Peer id → level granted on authentication; with `method` `PublicKey`
    /// the allowlist. Default: none.
    pub authorized_keys: BTreeMap<PeerId, AuthorizationLevel>,
    /// How long a challenge may be answered. Default: 30 s.
    pub challenge_ttl: Duration,
    /// How long an authentication lasts. Default: 1 h.
    pub token_ttl: Duration,
}

impl Default for PeerAuthConfig {
    fn default() -> Self {
        use defaults::peer_auth as d;
        PeerAuthConfig {
            enabled: d::ENABLED,
            shared_key_file: None,
            method: AuthMethod::ChallengeResponse,
            require_auth: d::REQUIRE_AUTH,
            min_level: AuthorizationLevel::Basic,
            default_level: AuthorizationLevel::Basic,
            trusted_peers: Vec::new(),
            banned_peers: Vec::new(),
            authorized_keys: BTreeMap::new(),
            challenge_ttl: d::CHALLENGE_TTL,
            token_ttl: d::TOKEN_TTL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = RelayConfig::default();
        assert_eq!(c.hop.max_reservations, 1024);
        assert_eq!(c.hop.max_circuits, 256);
        assert!(c.hop.max_circuit_duration > Duration::from_secs(120));
        assert!(c.hop.max_circuit_bytes > 128 * 1024);
        let listen: Vec<String> = c
            .libp2p
            .listen_addresses
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            listen,
            [
                "/ip4/0.0.0.0/tcp/9000",
                "/ip4/0.0.0.0/udp/9000/quic-v1",
                "/ip4/0.0.0.0/tcp/9002/ws",
                "/ip4/0.0.0.0/udp/9002/webrtc-direct"
            ]
        );
        assert_eq!(c.admin_http.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(c.signaling.listen.to_string(), "0.0.0.0:9001");
        assert_eq!(c.signaling.max_message_size, 65536);
        assert_eq!(c.ws_circuit.max_circuits, 256);
        assert_eq!(c.tls.files(), None, "TLS is off by default");
        assert_eq!(c.tls.reload_interval, Duration::from_secs(60));
        let tls: Vec<String> = c
            .tls
            .libp2p_listen_addresses
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(tls, ["/ip4/0.0.0.0/tcp/9443/tls/ws"]);
    }
}
