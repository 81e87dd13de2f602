//! The configuration file: built-in defaults < TOML file < `DARKSWAP_RELAY_*`
//! environment variables < command-line flags, merged by figment, checked,
//! then turned into the library's typed [`RelayConfig`].
//!
//! Sections and keys are the operator's surface and keep their names
//! (`deploy/config.toml` lists every one with its default): `[network]` is
//! the libp2p node, `[relay]` libp2p circuit relay v2 (hop), `[metrics]` the
//! admin HTTP server, `[ws_relay]` the WebSocket circuits, `[auth]` the
//! token authority, `[turn]` the STUN/TURN port, `[tls]` the certificate.
//! Unknown keys are errors, so a typo never silently leaves a default in
//! force. Each key's meaning and default is documented
//! on the library field it becomes.

use std::{collections::BTreeMap, net::SocketAddr, num::NonZeroU32, path::PathBuf, time::Duration};

use darkswap_p2p::auth::{AuthMethod, AuthorizationLevel};
use darkswap_proto::relay_auth::Role;
use darkswap_relay::config::{
    AdminHttpConfig, Libp2pConfig, LimitsConfig, PeerAuthConfig, RateLimit, RelayConfig,
    TokenConfig,
};
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

/// Prefix of environment overrides; `__` separates section and key, as in
/// `DARKSWAP_RELAY_RELAY__MAX_CIRCUITS=512`.
const ENV_PREFIX: &str = "DARKSWAP_RELAY_";

/// Why the configuration could not be loaded: one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub(crate) struct ConfigError(String);

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ConfigFile {
    pub(crate) data_dir: PathBuf,
    pub(crate) network: Libp2pSection,
    pub(crate) relay: HopSection,
    pub(crate) metrics: AdminHttpSection,
    pub(crate) signaling: SignalingSection,
    pub(crate) ws_relay: WsCircuitSection,
    pub(crate) auth: TokenSection,
    pub(crate) limits: LimitsSection,
    pub(crate) log: LogSection,
    pub(crate) peer_auth: PeerAuthSection,
    pub(crate) turn: TurnSection,
    pub(crate) tls: TlsSection,
}

/// `[network]`: [`Libp2pConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Libp2pSection {
    listen_addresses: Vec<Multiaddr>,
    external_addresses: Vec<Multiaddr>,
    topics: Vec<String>,
    idle_connection_timeout_secs: u64,
    perf: bool,
}

/// `{ limit, interval_secs }`: [`RateLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitEntry {
    limit: NonZeroU32,
    interval_secs: u64,
}

/// `[relay]`: [`HopConfig`](darkswap_relay::config::HopConfig).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HopSection {
    max_reservations: usize,
    max_reservations_per_peer: usize,
    reservation_duration_secs: u64,
    max_circuits: usize,
    max_circuits_per_peer: usize,
    max_circuit_duration_secs: u64,
    max_circuit_bytes: u64,
    reservation_rate_per_peer: RateLimitEntry,
    reservation_rate_per_ip: RateLimitEntry,
    circuit_rate_per_peer: RateLimitEntry,
    circuit_rate_per_ip: RateLimitEntry,
}

/// `[metrics]`: [`AdminHttpConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AdminHttpSection {
    enabled: bool,
    pub(crate) listen: SocketAddr,
}

/// `[signaling]`: [`SignalingConfig`](darkswap_relay::config::SignalingConfig).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SignalingSection {
    enabled: bool,
    pub(crate) listen: SocketAddr,
    max_message_size: usize,
    max_peers: usize,
    idle_timeout_secs: u64,
    register_timeout_secs: u64,
    messages_per_second: NonZeroU32,
    message_burst: NonZeroU32,
    max_rate_violations: u32,
    request_head_timeout_secs: u64,
    request_body_timeout_secs: u64,
    peer_page_size: usize,
    max_watched_peers: usize,
    send_queue_bytes: usize,
    send_queue_bytes_per_sender: usize,
    slow_reader_timeout_secs: u64,
}

/// `[ws_relay]`: [`WsCircuitConfig`](darkswap_relay::config::WsCircuitConfig).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct WsCircuitSection {
    max_circuits: usize,
    max_circuits_per_peer: usize,
    bandwidth_per_circuit: u64,
    bandwidth_per_peer: u64,
    max_circuit_bytes: u64,
    max_circuit_duration_secs: u64,
    idle_timeout_secs: u64,
    accept_timeout_secs: u64,
    max_frame_size: usize,
}

/// `[auth]`: [`TokenConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TokenSection {
    anonymous_role: Role,
    default_role: Role,
    admins: Vec<PeerId>,
    users: Vec<PeerId>,
    signaling_role: Role,
    circuit_role: Role,
    reservation_role: Role,
    token_ttl_secs: u64,
    max_token_ttl_secs: u64,
    challenge_ttl_secs: u64,
    max_pending_challenges: usize,
    clock_skew_secs: u64,
    audience: String,
}

/// `[limits]`: [`LimitsConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsSection {
    max_connections_per_ip: usize,
    connection_rate_per_ip: RateLimitEntry,
    connection_rate_global: RateLimitEntry,
    http_rate_per_ip: RateLimitEntry,
    http_rate_global: RateLimitEntry,
    messages_per_second_global: NonZeroU32,
    bandwidth_global: u64,
    max_established_connections: u32,
    max_connections_per_peer: u32,
    max_pending_incoming: u32,
    max_memory_percentage: f64,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`: the binary's own (the library installs no subscriber).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogSection {
    /// Level filter (`error`, `warn`, `info`, `debug`, `trace`, or a
    /// `tracing` directive list). `RUST_LOG`, when set, wins. Default: `info`.
    pub(crate) level: String,
    /// Default: `text`.
    pub(crate) format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// `[peer_auth]`: [`PeerAuthConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PeerAuthSection {
    enabled: bool,
    shared_key_file: Option<PathBuf>,
    method: AuthMethod,
    require_auth: bool,
    min_level: AuthorizationLevel,
    default_level: AuthorizationLevel,
    trusted_peers: Vec<PeerId>,
    banned_peers: Vec<PeerId>,
    authorized_keys: BTreeMap<String, AuthorizationLevel>,
    challenge_ttl_secs: u64,
    token_ttl_secs: u64,
}

/// A section given in part is completed from the file's defaults.
macro_rules! section_defaults {
    ($($section:ident => $key:ident),* $(,)?) => {
        $(impl Default for $section {
            fn default() -> Self {
                ConfigFile::default().$key
            }
        })*
    };
}

section_defaults!(
    Libp2pSection => network,
    HopSection => relay,
    AdminHttpSection => metrics,
    SignalingSection => signaling,
    WsCircuitSection => ws_relay,
    TokenSection => auth,
    LimitsSection => limits,
    PeerAuthSection => peer_auth,
);

fn entry(r: RateLimit) -> RateLimitEntry {
    RateLimitEntry {
        limit: r.limit,
        interval_secs: r.interval.as_secs(),
    }
}

fn rate(e: RateLimitEntry) -> RateLimit {
    RateLimit::new(e.limit.get(), Duration::from_secs(e.interval_secs))
}

/// The file's defaults are the library's: every value comes from
/// `darkswap_relay::defaults`, so the two cannot drift.
impl Default for ConfigFile {
    fn default() -> Self {
        let c = RelayConfig::default();
        let (n, h, s, w, t, l, p) = (
            &c.libp2p,
            &c.hop,
            &c.signaling,
            &c.ws_circuit,
            &c.tokens,
            &c.limits,
            &c.peer_auth,
        );
        ConfigFile {
            data_dir: c.data_dir.clone(),
            network: Libp2pSection {
                listen_addresses: n.listen_addresses.clone(),
                external_addresses: n.external_addresses.clone(),
                topics: n.topics.clone(),
                idle_connection_timeout_secs: n.idle_connection_timeout.as_secs(),
                perf: n.perf,
            },
            relay: HopSection {
                max_reservations: h.max_reservations,
                max_reservations_per_peer: h.max_reservations_per_peer,
                reservation_duration_secs: h.reservation_duration.as_secs(),
                max_circuits: h.max_circuits,
                max_circuits_per_peer: h.max_circuits_per_peer,
                max_circuit_duration_secs: h.max_circuit_duration.as_secs(),
                max_circuit_bytes: h.max_circuit_bytes,
                reservation_rate_per_peer: entry(h.reservation_rate_per_peer),
                reservation_rate_per_ip: entry(h.reservation_rate_per_ip),
                circuit_rate_per_peer: entry(h.circuit_rate_per_peer),
                circuit_rate_per_ip: entry(h.circuit_rate_per_ip),
            },
            metrics: AdminHttpSection {
                enabled: c.admin_http.enabled,
                listen: c.admin_http.listen,
            },
            signaling: SignalingSection {
                enabled: s.enabled,
                listen: s.listen,
                max_message_size: s.max_message_size,
                max_peers: s.max_peers,
                idle_timeout_secs: s.idle_timeout.as_secs(),
                register_timeout_secs: s.register_timeout.as_secs(),
                messages_per_second: s.messages_per_second,
                message_burst: s.message_burst,
                max_rate_violations: s.max_rate_violations,
                request_head_timeout_secs: s.request_head_timeout.as_secs(),
                request_body_timeout_secs: s.request_body_timeout.as_secs(),
                peer_page_size: s.peer_page_size,
                max_watched_peers: s.max_watched_peers,
                send_queue_bytes: s.send_queue_bytes,
                send_queue_bytes_per_sender: s.send_queue_bytes_per_sender,
                slow_reader_timeout_secs: s.slow_reader_timeout.as_secs(),
            },
            ws_relay: WsCircuitSection {
                max_circuits: w.max_circuits,
                max_circuits_per_peer: w.max_circuits_per_peer,
                bandwidth_per_circuit: w.bandwidth_per_circuit,
                bandwidth_per_peer: w.bandwidth_per_peer,
                max_circuit_bytes: w.max_circuit_bytes,
                max_circuit_duration_secs: w.max_circuit_duration.as_secs(),
                idle_timeout_secs: w.idle_timeout.as_secs(),
                accept_timeout_secs: w.accept_timeout.as_secs(),
                max_frame_size: w.max_frame_size,
            },
            auth: TokenSection {
                anonymous_role: t.anonymous_role,
                default_role: t.default_role,
                admins: t.admins.clone(),
                users: t.users.clone(),
                signaling_role: t.signaling_role,
                circuit_role: t.circuit_role,
                reservation_role: t.reservation_role,
                token_ttl_secs: t.token_ttl.as_secs(),
                max_token_ttl_secs: t.max_token_ttl.as_secs(),
                challenge_ttl_secs: t.challenge_ttl.as_secs(),
                max_pending_challenges: t.max_pending_challenges,
                clock_skew_secs: t.clock_skew.as_secs(),
                audience: t.audience.clone(),
            },
            limits: LimitsSection {
                max_connections_per_ip: l.max_connections_per_ip,
                connection_rate_per_ip: entry(l.connection_rate_per_ip),
                connection_rate_global: entry(l.connection_rate_global),
                http_rate_per_ip: entry(l.http_rate_per_ip),
                http_rate_global: entry(l.http_rate_global),
                messages_per_second_global: l.messages_per_second_global,
                bandwidth_global: l.bandwidth_global,
                max_established_connections: l.max_established_connections,
                max_connections_per_peer: l.max_connections_per_peer,
                max_pending_incoming: l.max_pending_incoming,
                max_memory_percentage: l.max_memory_percentage,
            },
            log: LogSection::default(),
            peer_auth: PeerAuthSection {
                enabled: p.enabled,
                shared_key_file: p.shared_key_file.clone(),
                method: p.method,
                require_auth: p.require_auth,
                min_level: p.min_level,
                default_level: p.default_level,
                trusted_peers: p.trusted_peers.clone(),
                banned_peers: p.banned_peers.clone(),
                authorized_keys: p
                    .authorized_keys
                    .iter()
                    .map(|(peer, level)| (peer.to_string(), *level))
                    .collect(),
                challenge_ttl_secs: p.challenge_ttl.as_secs(),
                token_ttl_secs: p.token_ttl.as_secs(),
            },
            turn: TurnSection::default(),
            tls: TlsSection::default(),
        }
    }
}

impl ConfigFile {
    /// Merges defaults, the TOML file (if any), the environment and
    /// `overrides` (from the command line, as a partial tree of the same
    /// shape), then validates the result.
    pub(crate) fn load(
        file: Option<&std::path::Path>,
        overrides: impl Serialize,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(ConfigFile::default()));
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
        let config: ConfigFile = figment.extract().map_err(|e| ConfigError(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot, naming the offending key.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.turn.validate()?;
        self.tls.validate(&self.network.listen_addresses)?;
        let (r, s, w, a, l) = (
            &self.relay,
            &self.signaling,
            &self.ws_relay,
            &self.auth,
            &self.limits,
        );
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
            ("signaling.max_message_size", s.max_message_size as u64),
            ("signaling.max_peers", s.max_peers as u64),
            ("signaling.idle_timeout_secs", s.idle_timeout_secs),
            ("signaling.register_timeout_secs", s.register_timeout_secs),
            (
                "signaling.request_head_timeout_secs",
                s.request_head_timeout_secs,
            ),
            (
                "signaling.request_body_timeout_secs",
                s.request_body_timeout_secs,
            ),
            (
                "signaling.max_rate_violations",
                s.max_rate_violations.into(),
            ),
            ("signaling.peer_page_size", s.peer_page_size as u64),
            ("signaling.max_watched_peers", s.max_watched_peers as u64),
            ("signaling.send_queue_bytes", s.send_queue_bytes as u64),
            (
                "signaling.send_queue_bytes_per_sender",
                s.send_queue_bytes_per_sender as u64,
            ),
            (
                "signaling.slow_reader_timeout_secs",
                s.slow_reader_timeout_secs,
            ),
            ("ws_relay.max_circuits", w.max_circuits as u64),
            (
                "ws_relay.max_circuits_per_peer",
                w.max_circuits_per_peer as u64,
            ),
            ("ws_relay.bandwidth_per_circuit", w.bandwidth_per_circuit),
            ("ws_relay.bandwidth_per_peer", w.bandwidth_per_peer),
            ("ws_relay.max_circuit_bytes", w.max_circuit_bytes),
            (
                "ws_relay.max_circuit_duration_secs",
                w.max_circuit_duration_secs,
            ),
            ("ws_relay.idle_timeout_secs", w.idle_timeout_secs),
            ("ws_relay.accept_timeout_secs", w.accept_timeout_secs),
            ("ws_relay.max_frame_size", w.max_frame_size as u64),
            ("auth.token_ttl_secs", a.token_ttl_secs),
            ("auth.max_token_ttl_secs", a.max_token_ttl_secs),
            ("auth.challenge_ttl_secs", a.challenge_ttl_secs),
            (
                "auth.max_pending_challenges",
                a.max_pending_challenges as u64,
            ),
            (
                "limits.max_connections_per_ip",
                l.max_connections_per_ip as u64,
            ),
            ("limits.bandwidth_global", l.bandwidth_global),
            (
                "limits.max_established_connections",
                l.max_established_connections.into(),
            ),
            (
                "limits.max_connections_per_peer",
                l.max_connections_per_peer.into(),
            ),
            ("limits.max_pending_incoming", l.max_pending_incoming.into()),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("{key} must be greater than 0")));
            }
        }
        let listen = &self.network.listen_addresses;
        if listen.is_empty() {
            return Err(ConfigError(
                "network.listen_addresses must not be empty".to_owned(),
            ));
        }
        if listen.iter().any(|a| a.iter().next().is_none()) {
            return Err(ConfigError(
                "network.listen_addresses has an empty address".to_owned(),
            ));
        }
        let rates = [
            (
                "relay.reservation_rate_per_peer",
                r.reservation_rate_per_peer,
            ),
            ("relay.reservation_rate_per_ip", r.reservation_rate_per_ip),
            ("relay.circuit_rate_per_peer", r.circuit_rate_per_peer),
            ("relay.circuit_rate_per_ip", r.circuit_rate_per_ip),
            ("limits.connection_rate_per_ip", l.connection_rate_per_ip),
            ("limits.connection_rate_global", l.connection_rate_global),
            ("limits.http_rate_per_ip", l.http_rate_per_ip),
            ("limits.http_rate_global", l.http_rate_global),
        ];
        if let Some((key, _)) = rates.iter().find(|(_, r)| r.interval_secs == 0) {
            return Err(ConfigError(format!(
                "{key}.interval_secs must be greater than 0"
            )));
        }
        let mut ceiling = RelayConfig::default();
        ceiling.signaling.max_peers = s.max_peers;
        ceiling.ws_circuit.max_circuits = w.max_circuits;
        let sockets = ceiling.max_public_sockets();
        if l.max_connections_per_ip >= sockets {
            return Err(ConfigError(format!(
                "limits.max_connections_per_ip must be below the public port's {sockets} sockets \
                 (signaling.max_peers + 2 × ws_relay.max_circuits + 64), so that one address \
                 cannot take them all"
            )));
        }
        if s.send_queue_bytes_per_sender > s.send_queue_bytes {
            return Err(ConfigError(
                "signaling.send_queue_bytes_per_sender must not exceed signaling.send_queue_bytes"
                    .to_owned(),
            ));
        }
        if a.token_ttl_secs > a.max_token_ttl_secs {
            return Err(ConfigError(
                "auth.token_ttl_secs must not exceed auth.max_token_ttl_secs".to_owned(),
            ));
        }
        if a.audience.is_empty() {
            return Err(ConfigError("auth.audience must not be empty".to_owned()));
        }
        let memory = l.max_memory_percentage;
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
    pub(crate) fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }

    /// The library's configuration (the file has been validated).
    pub(crate) fn relay_config(&self) -> Result<RelayConfig, ConfigError> {
        let secs = Duration::from_secs;
        let mut c = RelayConfig::default();
        c.data_dir = self.data_dir.clone();

        let (n, net) = (&mut c.libp2p, &self.network);
        set_libp2p(n, net);

        let (h, r) = (&mut c.hop, &self.relay);
        h.max_reservations = r.max_reservations;
        h.max_reservations_per_peer = r.max_reservations_per_peer;
        h.reservation_duration = secs(r.reservation_duration_secs);
        h.max_circuits = r.max_circuits;
        h.max_circuits_per_peer = r.max_circuits_per_peer;
        h.max_circuit_duration = secs(r.max_circuit_duration_secs);
        h.max_circuit_bytes = r.max_circuit_bytes;
        h.reservation_rate_per_peer = rate(r.reservation_rate_per_peer);
        h.reservation_rate_per_ip = rate(r.reservation_rate_per_ip);
        h.circuit_rate_per_peer = rate(r.circuit_rate_per_peer);
        h.circuit_rate_per_ip = rate(r.circuit_rate_per_ip);

        set_admin_http(&mut c.admin_http, &self.metrics);

        let (s, f) = (&mut c.signaling, &self.signaling);
        s.enabled = f.enabled;
        s.listen = f.listen;
        s.max_message_size = f.max_message_size;
        s.max_peers = f.max_peers;
        s.idle_timeout = secs(f.idle_timeout_secs);
        s.register_timeout = secs(f.register_timeout_secs);
        s.messages_per_second = f.messages_per_second;
        s.message_burst = f.message_burst;
        s.max_rate_violations = f.max_rate_violations;
        s.request_head_timeout = secs(f.request_head_timeout_secs);
        s.request_body_timeout = secs(f.request_body_timeout_secs);
        s.peer_page_size = f.peer_page_size;
        s.max_watched_peers = f.max_watched_peers;
        s.send_queue_bytes = f.send_queue_bytes;
        s.send_queue_bytes_per_sender = f.send_queue_bytes_per_sender;
        s.slow_reader_timeout = secs(f.slow_reader_timeout_secs);

        let (w, f) = (&mut c.ws_circuit, &self.ws_relay);
        w.max_circuits = f.max_circuits;
        w.max_circuits_per_peer = f.max_circuits_per_peer;
        w.bandwidth_per_circuit = f.bandwidth_per_circuit;
        w.bandwidth_per_peer = f.bandwidth_per_peer;
        w.max_circuit_bytes = f.max_circuit_bytes;
        w.max_circuit_duration = secs(f.max_circuit_duration_secs);
        w.idle_timeout = secs(f.idle_timeout_secs);
        w.accept_timeout = secs(f.accept_timeout_secs);
        w.max_frame_size = f.max_frame_size;

        c.tokens = self.auth.token_config();
        set_limits(&mut c.limits, &self.limits);
        c.peer_auth = self.peer_auth.peer_auth_config()?;
        c.turn = self.turn.turn_config();
        c.tls = self.tls.tls_config();
        Ok(c)
    }
}

fn set_libp2p(n: &mut Libp2pConfig, f: &Libp2pSection) {
    n.listen_addresses = f.listen_addresses.clone();
    n.external_addresses = f.external_addresses.clone();
    n.topics = f.topics.clone();
    n.idle_connection_timeout = Duration::from_secs(f.idle_connection_timeout_secs);
    n.perf = f.perf;
}

fn set_admin_http(m: &mut AdminHttpConfig, f: &AdminHttpSection) {
    m.enabled = f.enabled;
    m.listen = f.listen;
}

fn set_limits(l: &mut LimitsConfig, f: &LimitsSection) {
    l.max_connections_per_ip = f.max_connections_per_ip;
    l.connection_rate_per_ip = rate(f.connection_rate_per_ip);
    l.connection_rate_global = rate(f.connection_rate_global);
    l.http_rate_per_ip = rate(f.http_rate_per_ip);
    l.http_rate_global = rate(f.http_rate_global);
    l.messages_per_second_global = f.messages_per_second_global;
    l.bandwidth_global = f.bandwidth_global;
    l.max_established_connections = f.max_established_connections;
    l.max_connections_per_peer = f.max_connections_per_peer;
    l.max_pending_incoming = f.max_pending_incoming;
    l.max_memory_percentage = f.max_memory_percentage;
}

impl TokenSection {
    fn token_config(&self) -> TokenConfig {
        let secs = Duration::from_secs;
        let mut t = TokenConfig::default();
        t.anonymous_role = self.anonymous_role;
        t.default_role = self.default_role;
        t.admins = self.admins.clone();
        t.users = self.users.clone();
        t.signaling_role = self.signaling_role;
        t.circuit_role = self.circuit_role;
        t.reservation_role = self.reservation_role;
        t.token_ttl = secs(self.token_ttl_secs);
        t.max_token_ttl = secs(self.max_token_ttl_secs);
        t.challenge_ttl = secs(self.challenge_ttl_secs);
        t.max_pending_challenges = self.max_pending_challenges;
        t.clock_skew = secs(self.clock_skew_secs);
        t.audience = self.audience.clone();
        t
    }
}

impl PeerAuthSection {
    /// Checks the section without touching the key file.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.challenge_ttl_secs == 0 || self.token_ttl_secs == 0 {
            return Err(ConfigError(
                "peer_auth.challenge_ttl_secs and token_ttl_secs must be greater than 0".to_owned(),
            ));
        }
        if self.method == AuthMethod::SharedKey && self.shared_key_file.is_none() {
            return Err(ConfigError(
                "peer_auth.method = \"shared_key\" needs peer_auth.shared_key_file".to_owned(),
            ));
        }
        self.authorized_keys().map(drop)
    }

    fn authorized_keys(&self) -> Result<BTreeMap<PeerId, AuthorizationLevel>, ConfigError> {
        self.authorized_keys
            .iter()
            .map(|(peer, level)| match peer.parse::<PeerId>() {
                Ok(id) => Ok((id, *level)),
                Err(e) => Err(ConfigError(format!(
                    "peer_auth.authorized_keys {peer:?}: {e}"
                ))),
            })
            .collect()
    }

    fn peer_auth_config(&self) -> Result<PeerAuthConfig, ConfigError> {
        let mut p = PeerAuthConfig::default();
        p.enabled = self.enabled;
        p.shared_key_file = self.shared_key_file.clone();
        p.method = self.method;
        p.require_auth = self.require_auth;
        p.min_level = self.min_level;
        p.default_level = self.default_level;
        p.trusted_peers = self.trusted_peers.clone();
        p.banned_peers = self.banned_peers.clone();
        p.authorized_keys = self.authorized_keys()?;
        p.challenge_ttl = Duration::from_secs(self.challenge_ttl_secs);
        p.token_ttl = Duration::from_secs(self.token_ttl_secs);
        Ok(p)
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
mod tests;
mod tls;
mod turn;

use tls::TlsSection;
use turn::TurnSection;
