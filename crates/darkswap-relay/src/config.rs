//! Relay configuration: built-in defaults < TOML file < `DARKSWAP_RELAY_*`
//! environment variables < command-line flags, merged by figment.
//!
//! Every field's default is documented here and listed in
//! `deploy/config.toml`. Unknown keys are errors, so a typo never silently
//! leaves a default in force.

use std::{net::SocketAddr, num::NonZeroU32, path::PathBuf, time::Duration};

use darkswap_proto::relay_auth::Role;
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

/// Prefix of environment overrides; `__` separates section and key, as in
/// `DARKSWAP_RELAY_RELAY__MAX_CIRCUITS=512`.
pub const ENV_PREFIX: &str = "DARKSWAP_RELAY_";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }
}

/// The whole relay configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Directory for the identity key (`identity.key`) and other state.
    /// Default: the platform data dir + `darkswap-relay`
    /// (`~/.local/share/darkswap-relay` on Linux).
    pub data_dir: PathBuf,
    /// libp2p transports and addresses.
    pub network: NetworkSection,
    /// Circuit relay v2 limits.
    pub relay: RelaySection,
    /// The metrics and health HTTP server.
    pub metrics: MetricsSection,
    /// The WebSocket signaling server for browsers' WebRTC.
    pub signaling: SignalingSection,
    /// Relayed circuits over WebSocket (`/relay`), the fallback when WebRTC
    /// cannot connect.
    pub ws_relay: WsRelaySection,
    /// Tokens (`/auth/*`) and the roles that decide who may use what.
    pub auth: AuthSection,
    /// Connection, request, message and bandwidth ceilings.
    pub limits: LimitsSection,
    /// Logging.
    pub log: LogSection,
    /// Peer authentication over `/darkswap/auth/1.0.0`.
    pub peer_auth: crate::peer_auth::PeerAuthSection,
}

/// libp2p transports and addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct NetworkSection {
    /// Addresses to listen on. Default: TCP and QUIC on port 9000, WebSocket
    /// on 9002: `/ip4/0.0.0.0/tcp/9000`, `/ip4/0.0.0.0/udp/9000/quic-v1`,
    /// `/ip4/0.0.0.0/tcp/9002/ws`.
    pub listen_addresses: Vec<Multiaddr>,
    /// Public addresses to announce (e.g. behind a load balancer or NAT with
    /// port forwarding). Default: none, and then the listen addresses are
    /// announced, because a relay refuses reservations until it has an
    /// external address.
    pub external_addresses: Vec<Multiaddr>,
    /// Gossipsub topics the relay joins and forwards. Default: the DarkSwap
    /// orderbook and trade topics.
    pub topics: Vec<String>,
    /// Seconds a connection with nothing keeping it alive stays open. Default: 60.
    pub idle_connection_timeout_secs: u64,
}

/// A rate limit: at most `limit` requests per `interval_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per interval.
    pub limit: NonZeroU32,
    /// Interval length in seconds.
    pub interval_secs: u64,
}

impl RateLimit {
    const fn new(limit: u32, interval_secs: u64) -> Self {
        let limit = match NonZeroU32::new(limit) {
            Some(l) => l,
            None => NonZeroU32::MIN,
        };
        RateLimit {
            limit,
            interval_secs,
        }
    }

    /// The interval as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    /// The limit as a `governor` quota: `limit` at once, refilled evenly
    /// over the interval.
    pub fn quota(&self) -> governor::Quota {
        let period = self.interval() / self.limit.get();
        governor::Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| governor::Quota::per_second(self.limit))
            .allow_burst(self.limit)
    }
}

/// Circuit relay v2 limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RelaySection {
    /// Reservations held at once, all peers together. Default: 1024.
    pub max_reservations: usize,
    /// Reservations one peer may hold at once. Default: 4.
    pub max_reservations_per_peer: usize,
    /// Seconds a reservation lasts before the client must renew it. Default: 3600.
    pub reservation_duration_secs: u64,
    /// Circuits open at once, all peers together. Default: 256.
    pub max_circuits: usize,
    /// Circuits one peer may have open at once. Default: 16.
    pub max_circuits_per_peer: usize,
    /// Seconds a circuit may stay open. Default: 3600 (libp2p's default is
    /// 120, too short for a trade negotiation).
    pub max_circuit_duration_secs: u64,
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

/// The metrics and health HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct MetricsSection {
    /// Serve `/metrics` and `/health`. Default: true.
    pub enabled: bool,
    /// Address of the HTTP server. Default: `127.0.0.1:9090` (loopback:
    /// expose it deliberately, never by accident).
    pub listen: SocketAddr,
}

/// The WebSocket signaling server (`/signaling` and `/relay`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SignalingSection {
    /// Serve `/signaling` and `/relay`. Default: true.
    pub enabled: bool,
    /// Address of the WebSocket server. Default: `0.0.0.0:9001`.
    pub listen: SocketAddr,
    /// Largest text frame accepted on `/signaling`, in bytes; larger ones
    /// close the socket with 1009. Default: 65536.
    pub max_message_size: usize,
    /// Peers registered at once. Default: 10000.
    pub max_peers: usize,
    /// Seconds without any message before a socket is closed (4000).
    /// Default: 60.
    pub idle_timeout_secs: u64,
    /// Seconds a new socket has to register before it is closed (4001).
    /// Default: 10.
    pub register_timeout_secs: u64,
    /// Messages per second one socket may send. Default: 20.
    pub messages_per_second: NonZeroU32,
    /// Messages one socket may send in a burst above that rate. Default: 50.
    pub message_burst: NonZeroU32,
    /// Messages dropped for the rate in a row before the socket is closed
    /// (1008). Default: 50.
    pub max_rate_violations: u32,
}

/// Relayed circuits over WebSocket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct WsRelaySection {
    /// Circuits pending or open at once, all peers together. Default: 256.
    pub max_circuits: usize,
    /// Circuits one peer may have pending or open at once. Default: 8.
    pub max_circuits_per_peer: usize,
    /// Bytes per second one circuit may carry, both directions together;
    /// faster senders are slowed, not cut. Default: 1 MiB/s.
    pub bandwidth_per_circuit: u64,
    /// Bytes per second one peer may send over all its circuits. Default: 2 MiB/s.
    pub bandwidth_per_peer: u64,
    /// Bytes a circuit may carry in all, both directions; then it closes
    /// (`byte_limit`). Default: 64 MiB.
    pub max_circuit_bytes: u64,
    /// Seconds a circuit may stay open (`duration_limit`). Default: 3600.
    pub max_circuit_duration_secs: u64,
    /// Seconds without a frame in either direction before a circuit closes
    /// (`idle_timeout`). Default: 60.
    pub idle_timeout_secs: u64,
    /// Seconds for a request to be accepted and both ends to attach
    /// (`accept_timeout`). Default: 15.
    pub accept_timeout_secs: u64,
    /// Largest binary frame on `/relay`, in bytes (1009 above). Default: 262144.
    pub max_frame_size: usize,
}

/// Tokens and roles (`docs/security.md`). A peer's role is `admin` if it is
/// listed in `admins`, `user` if listed in `users`, else `default_role`; a
/// WebSocket client that shows no token has `anonymous_role`. libp2p peers
/// always have proven their key (Noise), so they get the role of their peer id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AuthSection {
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
    /// Lowest role that may request or accept a relayed WebSocket circuit.
    /// Default: `user`.
    pub circuit_role: Role,
    /// Lowest role that may hold a libp2p relay reservation (others are
    /// denied with RESOURCE_LIMIT_EXCEEDED). Default: `user`.
    pub reservation_role: Role,
    /// Lifetime of the tokens `/auth/token` and `/auth/refresh` issue, in
    /// seconds. Default: 3600.
    pub token_ttl_secs: u64,
    /// Longest lifetime a token may have, however it was minted; longer ones
    /// are refused. Default: 86400.
    pub max_token_ttl_secs: u64,
    /// Seconds a challenge from `/auth/challenge` may be answered in. Default: 60.
    pub challenge_ttl_secs: u64,
    /// Challenges outstanding at once, all peers together. Default: 10000.
    pub max_pending_challenges: usize,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds. Default: 30.
    pub clock_skew_secs: u64,
    /// The `aud` claim tokens are issued for and must carry. The issuer is
    /// always the relay's peer id. Default: `darkswap-relay`.
    pub audience: String,
}

/// Ceilings on the public WebSocket/HTTP port and on libp2p connections.
/// Over a limit, HTTP answers 429 with `Retry-After`, a WebSocket is closed
/// with 1013 (try again later), libp2p refuses the connection; every refusal
/// is counted in `darkswap_relay_rate_limited_total`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct LimitsSection {
    /// Connections open at once from one IP address on the public port.
    /// Default: 64.
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
    /// Bytes per second all relayed WebSocket circuits together may carry;
    /// faster senders are slowed. Default: 256 MiB/s.
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

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct LogSection {
    /// Level filter (`error`, `warn`, `info`, `debug`, `trace`, or a
    /// `tracing` directive list). `RUST_LOG`, when set, wins. Default: `info`.
    pub level: String,
    /// Default: `text`.
    pub format: LogFormat,
}

/// Default data directory: the platform data dir + `darkswap-relay`.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("darkswap-relay"))
        .unwrap_or_else(|| PathBuf::from("darkswap-relay-data"))
}

fn addr(s: &str) -> Multiaddr {
    // Compile-time literals below; a typo is caught by the defaults test.
    s.parse().unwrap_or_else(|_| Multiaddr::empty())
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            data_dir: default_data_dir(),
            network: NetworkSection::default(),
            relay: RelaySection::default(),
            metrics: MetricsSection::default(),
            signaling: SignalingSection::default(),
            ws_relay: WsRelaySection::default(),
            auth: AuthSection::default(),
            limits: LimitsSection::default(),
            log: LogSection::default(),
            peer_auth: crate::peer_auth::PeerAuthSection::default(),
        }
    }
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            anonymous_role: Role::User,
            default_role: Role::User,
            admins: Vec::new(),
            users: Vec::new(),
            signaling_role: Role::User,
            circuit_role: Role::User,
            reservation_role: Role::User,
            token_ttl_secs: 3600,
            max_token_ttl_secs: 86_400,
            challenge_ttl_secs: 60,
            max_pending_challenges: 10_000,
            clock_skew_secs: 30,
            audience: "darkswap-relay".to_owned(),
        }
    }
}

impl AuthSection {
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

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_connections_per_ip: 64,
            connection_rate_per_ip: RateLimit::new(120, 60),
            connection_rate_global: RateLimit::new(2000, 1),
            http_rate_per_ip: RateLimit::new(30, 60),
            http_rate_global: RateLimit::new(500, 1),
            messages_per_second_global: NonZeroU32::new(20_000).unwrap_or(NonZeroU32::MIN),
            bandwidth_global: 256 * 1024 * 1024,
            max_established_connections: 8192,
            max_connections_per_peer: 8,
            max_pending_incoming: 512,
            max_memory_percentage: 90.0,
        }
    }
}

impl Default for SignalingSection {
    fn default() -> Self {
        SignalingSection {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 9001)),
            max_message_size: 64 * 1024,
            max_peers: 10_000,
            idle_timeout_secs: 60,
            register_timeout_secs: 10,
            messages_per_second: NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
            message_burst: NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN),
            max_rate_violations: 50,
        }
    }
}

impl Default for WsRelaySection {
    fn default() -> Self {
        WsRelaySection {
            max_circuits: 256,
            max_circuits_per_peer: 8,
            bandwidth_per_circuit: 1024 * 1024,
            bandwidth_per_peer: 2 * 1024 * 1024,
            max_circuit_bytes: 64 * 1024 * 1024,
            max_circuit_duration_secs: 3600,
            idle_timeout_secs: 60,
            accept_timeout_secs: 15,
            max_frame_size: 256 * 1024,
        }
    }
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            listen_addresses: vec![
                addr("/ip4/0.0.0.0/tcp/9000"),
                addr("/ip4/0.0.0.0/udp/9000/quic-v1"),
                addr("/ip4/0.0.0.0/tcp/9002/ws"),
            ],
            external_addresses: Vec::new(),
            topics: vec![
                darkswap_p2p::ORDERBOOK_TOPIC.to_owned(),
                darkswap_p2p::TRADE_TOPIC.to_owned(),
            ],
            idle_connection_timeout_secs: 60,
        }
    }
}

impl Default for RelaySection {
    fn default() -> Self {
        RelaySection {
            max_reservations: 1024,
            max_reservations_per_peer: 4,
            reservation_duration_secs: 3600,
            max_circuits: 256,
            max_circuits_per_peer: 16,
            max_circuit_duration_secs: 3600,
            max_circuit_bytes: 64 * 1024 * 1024,
            reservation_rate_per_peer: RateLimit::new(30, 120),
            reservation_rate_per_ip: RateLimit::new(60, 60),
            circuit_rate_per_peer: RateLimit::new(30, 120),
            circuit_rate_per_ip: RateLimit::new(60, 60),
        }
    }
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
        }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

impl RelayConfig {
    /// Merges defaults, the TOML file (if any), the environment and
    /// `overrides` (typically from the command line, as a partial tree of
    /// the same shape), then validates the result.
    pub fn load(
        file: Option<&std::path::Path>,
        overrides: impl Serialize,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RelayConfig::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .merge(Serialized::defaults(overrides));
        let config: RelayConfig = figment.extract().map_err(|e| ConfigError(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.relay;
        let positive = [
            ("relay.max_reservations", r.max_reservations as u64),
            (
                "relay.max_reservations_per_peer",
                r.max_reservations_per_peer as u64,
            ),
            (
                "relay.reservation_duration_secs",
                r.reservation_duration_secs,
            ),
            ("relay.max_circuits", r.max_circuits as u64),
            (
                "relay.max_circuits_per_peer",
                r.max_circuits_per_peer as u64,
            ),
            (
                "relay.max_circuit_duration_secs",
                r.max_circuit_duration_secs,
            ),
            ("relay.max_circuit_bytes", r.max_circuit_bytes),
            (
                "network.idle_connection_timeout_secs",
                self.network.idle_connection_timeout_secs,
            ),
            (
                "signaling.max_message_size",
                self.signaling.max_message_size as u64,
            ),
            ("signaling.max_peers", self.signaling.max_peers as u64),
            (
                "signaling.idle_timeout_secs",
                self.signaling.idle_timeout_secs,
            ),
            (
                "signaling.register_timeout_secs",
                self.signaling.register_timeout_secs,
            ),
            (
                "signaling.max_rate_violations",
                self.signaling.max_rate_violations as u64,
            ),
            ("ws_relay.max_circuits", self.ws_relay.max_circuits as u64),
            (
                "ws_relay.max_circuits_per_peer",
                self.ws_relay.max_circuits_per_peer as u64,
            ),
            (
                "ws_relay.bandwidth_per_circuit",
                self.ws_relay.bandwidth_per_circuit,
            ),
            (
                "ws_relay.bandwidth_per_peer",
                self.ws_relay.bandwidth_per_peer,
            ),
            (
                "ws_relay.max_circuit_bytes",
                self.ws_relay.max_circuit_bytes,
            ),
            (
                "ws_relay.max_circuit_duration_secs",
                self.ws_relay.max_circuit_duration_secs,
            ),
            (
                "ws_relay.idle_timeout_secs",
                self.ws_relay.idle_timeout_secs,
            ),
            (
                "ws_relay.accept_timeout_secs",
                self.ws_relay.accept_timeout_secs,
            ),
            (
                "ws_relay.max_frame_size",
                self.ws_relay.max_frame_size as u64,
            ),
            ("auth.token_ttl_secs", self.auth.token_ttl_secs),
            ("auth.max_token_ttl_secs", self.auth.max_token_ttl_secs),
            ("auth.challenge_ttl_secs", self.auth.challenge_ttl_secs),
            (
                "auth.max_pending_challenges",
                self.auth.max_pending_challenges as u64,
            ),
            (
                "limits.max_connections_per_ip",
                self.limits.max_connections_per_ip as u64,
            ),
            ("limits.bandwidth_global", self.limits.bandwidth_global),
            (
                "limits.max_established_connections",
                self.limits.max_established_connections.into(),
            ),
            (
                "limits.max_connections_per_peer",
                self.limits.max_connections_per_peer.into(),
            ),
            (
                "limits.max_pending_incoming",
                self.limits.max_pending_incoming.into(),
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("{key} must be greater than 0")));
            }
        }
        if self.network.listen_addresses.is_empty() {
            return Err(ConfigError(
                "network.listen_addresses must not be empty".to_owned(),
            ));
        }
        if self
            .network
            .listen_addresses
            .iter()
            .any(|a| a.iter().next().is_none())
        {
            return Err(ConfigError(
                "network.listen_addresses has an empty address".to_owned(),
            ));
        }
        for (key, limit) in [
            (
                "relay.reservation_rate_per_peer",
                &self.relay.reservation_rate_per_peer,
            ),
            (
                "relay.reservation_rate_per_ip",
                &self.relay.reservation_rate_per_ip,
            ),
            (
                "relay.circuit_rate_per_peer",
                &self.relay.circuit_rate_per_peer,
            ),
            ("relay.circuit_rate_per_ip", &self.relay.circuit_rate_per_ip),
            (
                "limits.connection_rate_per_ip",
                &self.limits.connection_rate_per_ip,
            ),
            (
                "limits.connection_rate_global",
                &self.limits.connection_rate_global,
            ),
            ("limits.http_rate_per_ip", &self.limits.http_rate_per_ip),
            ("limits.http_rate_global", &self.limits.http_rate_global),
        ] {
            if limit.interval_secs == 0 {
                return Err(ConfigError(format!(
                    "{key}.interval_secs must be greater than 0"
                )));
            }
        }
        if self.auth.token_ttl_secs > self.auth.max_token_ttl_secs {
            return Err(ConfigError(
                "auth.token_ttl_secs must not exceed auth.max_token_ttl_secs".to_owned(),
            ));
        }
        if self.auth.audience.is_empty() {
            return Err(ConfigError("auth.audience must not be empty".to_owned()));
        }
        let memory = self.limits.max_memory_percentage;
        if !(memory > 0.0 && memory <= 100.0) {
            return Err(ConfigError(
                "limits.max_memory_percentage must be in (0, 100]".to_owned(),
            ));
        }
        self.peer_auth.validate()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError(format!("log.level {:?}: {e}", self.log.level)))?;
        Ok(())
    }

    /// The effective configuration as TOML, for `--check-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

/// One line per figment error, each naming its key and where it came from.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("key `{}`: ", e.path.join("."))
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            format!("{key}{}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
// figment's Jail API returns its (large) error type; fine in tests.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn no_overrides() -> serde_json::Value {
        serde_json::json!({})
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = RelayConfig::default();
        assert_eq!(c.relay.max_reservations, 1024);
        assert_eq!(c.relay.max_circuits, 256);
        assert!(c.relay.max_circuit_duration_secs > 120);
        assert!(c.relay.max_circuit_bytes > 128 * 1024);
        let listen: Vec<String> = c
            .network
            .listen_addresses
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            listen,
            [
                "/ip4/0.0.0.0/tcp/9000",
                "/ip4/0.0.0.0/udp/9000/quic-v1",
                "/ip4/0.0.0.0/tcp/9002/ws"
            ]
        );
        assert_eq!(c.metrics.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(c.signaling.listen.to_string(), "0.0.0.0:9001");
        assert_eq!(c.signaling.max_message_size, 65536);
        assert_eq!(c.ws_relay.max_circuits, 256);
        c.validate().unwrap();
    }

    #[test]
    fn deploy_config_toml_matches_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/config.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let mut from_file: RelayConfig = toml::from_str(&text).unwrap();
        // The data dir is platform-specific; the file shows the Linux one.
        from_file.data_dir = default_data_dir();
        assert_eq!(from_file, RelayConfig::default());
    }

    #[test]
    fn toml_then_env_then_overrides() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "relay.toml",
                r#"
                    [relay]
                    max_circuits = 7
                    max_reservations = 8
                    [metrics]
                    listen = "127.0.0.1:9999"
                "#,
            )?;
            jail.set_env("DARKSWAP_RELAY_RELAY__MAX_RESERVATIONS", "9");
            jail.set_env("DARKSWAP_RELAY_LOG__FORMAT", "json");
            let overrides = serde_json::json!({ "metrics": { "listen": "127.0.0.1:1234" } });
            let c = RelayConfig::load(Some("relay.toml".as_ref()), overrides).unwrap();
            assert_eq!(c.relay.max_circuits, 7, "from TOML");
            assert_eq!(c.relay.max_reservations, 9, "env beats TOML");
            assert_eq!(c.log.format, LogFormat::Json, "from env");
            assert_eq!(c.metrics.listen.port(), 1234, "flags beat everything");
            assert_eq!(c.relay.max_circuits_per_peer, 16, "default kept");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("a.toml", "[relay]\nmax_circuitz = 3\n")?;
            let e = RelayConfig::load(Some("a.toml".as_ref()), no_overrides())
                .unwrap_err()
                .to_string();
            assert!(e.contains("max_circuitz"), "{e}");

            jail.create_file("b.toml", "[metrics]\nlisten = \"127.0.0.1:99999\"\n")?;
            let e = RelayConfig::load(Some("b.toml".as_ref()), no_overrides())
                .unwrap_err()
                .to_string();
            assert!(e.contains("metrics.listen"), "{e}");

            jail.create_file(
                "c.toml",
                "[network]\nlisten_addresses = [\"/ip4/0.0.0.0/tcp/70000\"]\n",
            )?;
            let e = RelayConfig::load(Some("c.toml".as_ref()), no_overrides())
                .unwrap_err()
                .to_string();
            assert!(e.contains("network.listen_addresses"), "{e}");

            jail.create_file("d.toml", "[relay]\nmax_circuits = 0\n")?;
            let e = RelayConfig::load(Some("d.toml".as_ref()), no_overrides())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("relay.max_circuits must be greater than 0"),
                "{e}"
            );

            jail.set_env("DARKSWAP_RELAY_RELAY__NOPE", "1");
            let e = RelayConfig::load(None, no_overrides())
                .unwrap_err()
                .to_string();
            assert!(e.contains("nope"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let e = RelayConfig::load(Some("/nonexistent/relay.toml".as_ref()), no_overrides())
            .unwrap_err();
        assert!(e.to_string().contains("does not exist"));
    }
}
