//! The daemon's configuration: built-in defaults < TOML file (`--config`,
//! or `DARKSWAP_CONFIG`) < `DARKSWAP_*` environment variables < the flags
//! given on the command line, merged by figment the way the relay's
//! `config_file.rs` does, checked, then turned into [`DaemonOptions`].
//!
//! Keys are flat and named after the flags (`--max-orders-per-maker` is
//! `max_orders_per_maker`, `DARKSWAP_MAX_ORDERS_PER_MAKER`);
//! `deploy/darkswap.toml` lists every one with its default. Unknown keys
//! are errors, so a typo never silently leaves a default in force.
//! Durations are humantime strings (`"3m"`, `"30s"`, `"1h 30m"`).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use darkswap_p2p::{
    Multiaddr, NetworkConfig, OrderbookConfig, RelayAuth, RelayConfig, ReputationConfig,
    SignalingOptions, SyncConfig, TlsRoots, darkswap_trade::negotiation::NegotiationConfig,
};
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

use crate::{
    daemon::DaemonOptions,
    trading::{self, TradingOptions},
};

/// Prefix of the environment overrides: `DARKSWAP_MAX_ORDERS=500`.
pub const ENV_PREFIX: &str = "DARKSWAP_";

/// The API address when nothing sets one: loopback, so the unauthenticated
/// API is not reachable from the network by default.
pub const DEFAULT_API: &str = "127.0.0.1:7070";

/// Where the data lives when nothing sets `data_dir` and neither
/// `XDG_DATA_HOME` nor `HOME` is set (relative to the working directory).
const FALLBACK_DATA_DIR: &str = "darkswap-data";

/// The keys an environment variable may set. Only these are read, so
/// another program's `DARKSWAP_*` variable (the relay's
/// `DARKSWAP_RELAY_*`, `DARKSWAP_CONFIG` itself) is not taken for an
/// unknown key.
const ENV_KEYS: &[&str] = &[
    "data_dir",
    "api",
    "listen",
    "relay",
    "relay_enabled",
    "relay_active",
    "auto_relay",
    "relay_discovery",
    "relay_hop",
    "max_relay_connections",
    "min_relay_connections",
    "relay_check_interval",
    "external_address",
    "kad_bucket_size",
    "kad_record_ttl",
    "bootstrap",
    "mdns",
    "order_refresh",
    "order_ttl",
    "ban_duration",
    "max_ban_duration",
    "max_orders",
    "max_orders_per_maker",
    "anti_entropy_interval",
    "trading",
    "bitcoin_network",
    "esplora_url",
    "ord_url",
    "bitcoin_rpc_url",
    "bitcoin_rpc_cookie",
    "chain_ca_file",
    "max_trades",
    "trade_step_timeout",
    "trade_timeout",
    "wallet_sync_interval",
    "webrtc",
    "webrtc_signaling",
    "webrtc_signaling_port",
    "webrtc_tokens",
    "webrtc_ca_file",
    "perf",
];

/// Why the configuration could not be loaded: one line naming the key and
/// where its value came from.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// Every option of `darkswap daemon`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    /// Identity key and database. Default: `$XDG_DATA_HOME/darkswap`, else
    /// `~/.local/share/darkswap`.
    pub data_dir: PathBuf,
    /// Address of the local HTTP API. Default: [`DEFAULT_API`]
    /// (`127.0.0.1:7070`).
    pub api: SocketAddr,
    /// libp2p listen addresses. Default: none.
    pub listen: Vec<Multiaddr>,
    /// Relays named by the user, each ending in `/p2p/` and a peer id: the
    /// relay pool's configured relays. Default: none.
    pub relay: Vec<Multiaddr>,
    /// Use relays at all (seed 002's `relay.enabled`): reach peers through
    /// their circuit addresses and be reached through ours. Default: on.
    pub relay_enabled: bool,
    /// Hold reservations so peers reach this node through relays (seed
    /// 002's `relay.active`). Default: on.
    pub relay_active: bool,
    /// Auto-relay (seed 002's `relay.autoRelay`): choose relays from every
    /// source, `max_relay_connections` of them while not publicly
    /// reachable, `min_relay_connections` once AutoNAT says it is; off:
    /// exactly the `relay` list. Default: on.
    pub auto_relay: bool,
    /// Learn of relays from the DHT, mDNS and identify (seed 002's
    /// `relay.discovery`). Default: on.
    pub relay_discovery: bool,
    /// Serve as a relay too (seed 002's `relay.hop`); needs an
    /// `external_address`. Default: off.
    pub relay_hop: bool,
    /// Reservations held at most. Default: 3.
    pub max_relay_connections: usize,
    /// Reservations held once publicly reachable. Default: 1.
    pub min_relay_connections: usize,
    /// How often the pool looks for better relays. Default: 30 s.
    #[serde(with = "humantime_string")]
    pub relay_check_interval: Duration,
    /// Addresses this node is reachable at (a public IP, a forwarded
    /// port), announced without waiting for AutoNAT. Default: none.
    pub external_address: Vec<Multiaddr>,
    /// Kademlia's k (seed 002's `dht.kBucketSize`). Default: 20.
    pub kad_bucket_size: usize,
    /// How long a stored DHT record lives (seed 002's `dht.recordTTL`).
    /// Default: 24 h.
    #[serde(with = "humantime_string")]
    pub kad_record_ttl: Duration,
    /// Bootstrap peers, each ending in `/p2p/` and a peer id. Default: none.
    pub bootstrap: Vec<Multiaddr>,
    /// Local network discovery (mDNS). Default: on.
    pub mdns: bool,
    /// How often own open orders are re-announced. Default:
    /// [`OrderbookConfig::default`]'s `refresh_interval`, 3 min.
    #[serde(with = "humantime_string")]
    pub order_refresh: Duration,
    /// Orders not re-announced by their maker for this long drop out of the
    /// book; must exceed `order_refresh`. Default: [`OrderbookConfig`]'s
    /// `ttl`, 10 min.
    #[serde(with = "humantime_string")]
    pub order_ttl: Duration,
    /// Length of a first automatic ban; each repeat ban lasts twice as
    /// long. Default: [`ReputationConfig`]'s `base_ban_duration`, 10 min.
    #[serde(with = "humantime_string")]
    pub ban_duration: Duration,
    /// Longest automatic ban. Default: [`ReputationConfig`]'s
    /// `max_ban_duration`, 24 h.
    #[serde(with = "humantime_string")]
    pub max_ban_duration: Duration,
    /// Orders the book holds at most; further new orders are refused as
    /// `book_full`. Default: [`OrderbookConfig`]'s `max_orders`, 100 000.
    pub max_orders: usize,
    /// Orders one maker (this node included) may have in the book; its next
    /// new order is refused as `maker_limit`. Default: [`OrderbookConfig`]'s
    /// `max_orders_per_maker`, 1 000.
    pub max_orders_per_maker: usize,
    /// How often the book is reconciled with one more peer, in turn.
    /// Default: [`SyncConfig`]'s `anti_entropy_interval`, 30 s.
    #[serde(with = "humantime_string")]
    pub anti_entropy_interval: Duration,
    /// Take other makers' orders and let takers take this node's, with the
    /// key wallet `wallet.json` in `data_dir` (made at first start, mode
    /// 0600). Needs `bitcoin_network`, `esplora_url` and `ord_url`.
    /// Default: off.
    pub trading: bool,
    /// The Bitcoin network the wallet and the trades are on: `bitcoin`,
    /// `testnet`, `testnet4`, `signet` or `regtest`. No default: trading
    /// refuses to start without it, so a mainnet wallet is never made by
    /// accident.
    pub bitcoin_network: Option<String>,
    /// Esplora API root (`http://…` or `https://…`): the wallet's coins
    /// (`GET /address/…/utxo`) and, without `bitcoin_rpc_url`, broadcasts.
    pub esplora_url: Option<String>,
    /// `ord server` root (`http://…` or `https://…`): which runes each coin
    /// holds.
    pub ord_url: Option<String>,
    /// Bitcoin Core JSON-RPC URL: when set, finished trades are broadcast
    /// with `sendrawtransaction` there instead of through Esplora.
    pub bitcoin_rpc_url: Option<String>,
    /// Bitcoin Core's `.cookie` file for `bitcoin_rpc_url` (read at every
    /// call: Core writes a new one at each start).
    pub bitcoin_rpc_cookie: Option<PathBuf>,
    /// PEM certificates the chain services' `https://` is checked against
    /// besides the system's roots (a private CA, a self-signed server).
    /// Default: none.
    pub chain_ca_file: Option<PathBuf>,
    /// Trades run at once; a taker beyond is refused as `maker_busy`.
    /// Default: 16.
    pub max_trades: usize,
    /// How long the counterparty may take for its next trade step.
    /// Default: 30 s.
    #[serde(with = "humantime_string")]
    pub trade_step_timeout: Duration,
    /// How long a whole trade may take. Default: 5 min.
    #[serde(with = "humantime_string")]
    pub trade_timeout: Duration,
    /// How often the wallet asks Esplora and ord for its coins.
    /// Default: 30 s.
    #[serde(with = "humantime_string")]
    pub wallet_sync_interval: Duration,
    /// Register on relays' signaling servers so browsers and other nodes
    /// can open WebRTC data channels to this node (and it to them):
    /// `/v1/webrtc`. Needs `webrtc_signaling`, or a `relay` whose host
    /// serves signaling on `webrtc_signaling_port`. Default: off.
    pub webrtc: bool,
    /// Relays' public signaling ports, e.g. `/ip4/203.0.113.7/tcp/9001/ws`
    /// or `/dns4/relay.example/tcp/443/wss`. Default: none.
    pub webrtc_signaling: Vec<Multiaddr>,
    /// The signaling port assumed on the host of each `relay` (the relay's
    /// `[signaling] listen`); 0 uses only `webrtc_signaling`. Default: 9001.
    pub webrtc_signaling_port: u16,
    /// Earn relay tokens for the signaling relays (`/auth/challenge`,
    /// `/auth/token`), as a relay that admits only token holders requires.
    /// Default: off.
    pub webrtc_tokens: bool,
    /// PEM certificates a `wss://` signaling relay may chain to besides the
    /// system's roots (a private CA: `deploy/generate-certs.sh`'s `ca.pem`).
    /// Default: none.
    pub webrtc_ca_file: Option<PathBuf>,
    /// Serve libp2p's `/perf/1.0.0` (specs `perf/perf.md`): any peer may
    /// ask for throughput tests, so it is for measuring a link, not for a
    /// public node. Default: off.
    pub perf: bool,
}

/// The defaults are the libraries': the two cannot drift.
impl Default for ConfigFile {
    fn default() -> Self {
        let book = OrderbookConfig::default();
        let reputation = ReputationConfig::default();
        let negotiation = NegotiationConfig::default();
        let network = NetworkConfig::default();
        let relay = &network.relay;
        ConfigFile {
            data_dir: default_data_dir(),
            api: default_api(),
            listen: Vec::new(),
            relay: Vec::new(),
            relay_enabled: relay.enabled,
            relay_active: relay.active,
            auto_relay: relay.auto_relay,
            relay_discovery: relay.discovery,
            relay_hop: relay.hop,
            max_relay_connections: relay.pool.max_relay_connections,
            min_relay_connections: relay.pool.min_relay_connections,
            relay_check_interval: relay.pool.connection_check_interval,
            external_address: Vec::new(),
            kad_bucket_size: network.kad_bucket_size,
            kad_record_ttl: network.kad_record_ttl,
            bootstrap: Vec::new(),
            mdns: true,
            order_refresh: book.refresh_interval,
            order_ttl: book.ttl,
            ban_duration: reputation.base_ban_duration,
            max_ban_duration: reputation.max_ban_duration,
            max_orders: book.max_orders,
            max_orders_per_maker: book.max_orders_per_maker,
            anti_entropy_interval: SyncConfig::default().anti_entropy_interval,
            trading: false,
            bitcoin_network: None,
            esplora_url: None,
            ord_url: None,
            bitcoin_rpc_url: None,
            bitcoin_rpc_cookie: None,
            chain_ca_file: None,
            max_trades: trading::DEFAULT_MAX_TRADES,
            trade_step_timeout: negotiation.step_timeout,
            trade_timeout: negotiation.trade_timeout,
            wallet_sync_interval: trading::DEFAULT_WALLET_SYNC,
            webrtc: network.webrtc_signaling.enabled,
            webrtc_signaling: Vec::new(),
            webrtc_signaling_port: network.webrtc_signaling.port,
            webrtc_tokens: false,
            webrtc_ca_file: None,
            perf: false,
        }
    }
}

/// [`DEFAULT_API`] as an address.
pub fn default_api() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7070))
}

/// `$XDG_DATA_HOME/darkswap`, else `~/.local/share/darkswap`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map_or_else(|| PathBuf::from(FALLBACK_DATA_DIR), |d| d.join("darkswap"))
}

impl ConfigFile {
    /// Merges the defaults, the TOML `file` (if any), the environment and
    /// `overrides` (the flags given, as a partial tree of the same shape),
    /// then checks the result.
    pub fn load(file: Option<&Path>, overrides: impl Serialize) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(ConfigFile::default()));
        if let Some(file) = file {
            // figment skips a missing file silently; one named explicitly
            // must exist.
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::prefixed(ENV_PREFIX).only(ENV_KEYS))
            .merge(Serialized::defaults(overrides));
        let config: ConfigFile = figment.extract().map_err(|e| ConfigError(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot, naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("order_refresh", self.order_refresh.is_zero()),
            ("order_ttl", self.order_ttl.is_zero()),
            ("ban_duration", self.ban_duration.is_zero()),
            (
                "anti_entropy_interval",
                self.anti_entropy_interval.is_zero(),
            ),
            ("max_orders", self.max_orders == 0),
            ("max_orders_per_maker", self.max_orders_per_maker == 0),
            ("max_trades", self.max_trades == 0),
            ("trade_step_timeout", self.trade_step_timeout.is_zero()),
            ("trade_timeout", self.trade_timeout.is_zero()),
            ("wallet_sync_interval", self.wallet_sync_interval.is_zero()),
            ("relay_check_interval", self.relay_check_interval.is_zero()),
            ("kad_bucket_size", self.kad_bucket_size == 0),
            ("kad_record_ttl", self.kad_record_ttl.is_zero()),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, zero)| *zero) {
            return Err(ConfigError(format!("{key} must be greater than 0")));
        }
        if self.order_ttl <= self.order_refresh {
            return Err(ConfigError(format!(
                "order_ttl ({}) must be longer than order_refresh ({}): orders would drop out \
                 of peers' books between two re-announcements",
                humantime::format_duration(self.order_ttl),
                humantime::format_duration(self.order_refresh)
            )));
        }
        if self.trading {
            self.trading_options()?;
        }
        if self.min_relay_connections > self.max_relay_connections {
            return Err(ConfigError(format!(
                "min_relay_connections ({}) must not exceed max_relay_connections ({})",
                self.min_relay_connections, self.max_relay_connections
            )));
        }
        if self.webrtc
            && self.webrtc_signaling.is_empty()
            && (self.relay.is_empty() || self.webrtc_signaling_port == 0)
        {
            return Err(ConfigError(
                "webrtc = true needs webrtc_signaling, or a relay with webrtc_signaling_port"
                    .to_owned(),
            ));
        }
        self.webrtc_options()?;
        if self.max_ban_duration < self.ban_duration {
            return Err(ConfigError(
                "max_ban_duration must not be shorter than ban_duration".to_owned(),
            ));
        }
        Ok(())
    }

    /// The trading options, checked: each service named, each URL
    /// `http://` or `https://`, the CA file read, the network one Bitcoin
    /// knows.
    fn trading_options(&self) -> Result<TradingOptions, ConfigError> {
        let need = |key: &str, value: &Option<String>| {
            value
                .clone()
                .ok_or_else(|| ConfigError(format!("trading = true needs {key}")))
        };
        let network = need("bitcoin_network", &self.bitcoin_network)?;
        let network = network.parse().map_err(|_| {
            ConfigError(format!(
                "bitcoin_network {network:?} is not one of bitcoin, testnet, testnet4, signet, regtest"
            ))
        })?;
        let options = TradingOptions {
            network,
            esplora_url: need("esplora_url", &self.esplora_url)?,
            ord_url: need("ord_url", &self.ord_url)?,
            bitcoin_rpc: match (&self.bitcoin_rpc_url, &self.bitcoin_rpc_cookie) {
                (Some(url), Some(cookie)) => Some((url.clone(), cookie.clone())),
                (Some(_), None) => {
                    return Err(ConfigError(
                        "bitcoin_rpc_url needs bitcoin_rpc_cookie (Core's .cookie file)".to_owned(),
                    ));
                }
                (None, _) => None,
            },
            extra_roots: match &self.chain_ca_file {
                Some(path) => std::fs::read(path)
                    .map_err(|e| ConfigError(format!("chain_ca_file {}: {e}", path.display())))?,
                None => Vec::new(),
            },
            max_trades: self.max_trades,
            step_timeout: self.trade_step_timeout,
            trade_timeout: self.trade_timeout,
            wallet_sync_interval: self.wallet_sync_interval,
        };
        options.check().map_err(|e| ConfigError(e.to_string()))?;
        Ok(options)
    }

    /// The signaling client's options: tokens, and the CA file read.
    fn webrtc_options(&self) -> Result<SignalingOptions, ConfigError> {
        let auth = if self.webrtc_tokens {
            RelayAuth::Auto
        } else {
            RelayAuth::None
        };
        let mut options = SignalingOptions::default().with_auth(auth);
        if let Some(path) = &self.webrtc_ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| ConfigError(format!("webrtc_ca_file {}: {e}", path.display())))?;
            let roots = TlsRoots::with_extra_pem(&pem)
                .map_err(|e| ConfigError(format!("webrtc_ca_file {}: {e}", path.display())))?;
            options = options.with_tls_roots(roots);
        }
        Ok(options)
    }

    /// What to run.
    pub fn options(self) -> DaemonOptions {
        // `validate` read the CA file.
        let webrtc_options = self.webrtc_options().unwrap_or_default();
        // `validate` checked the trading keys.
        let trading = self.trading.then(|| self.trading_options().ok()).flatten();
        DaemonOptions {
            trading,
            data_dir: self.data_dir,
            api: self.api,
            listen: self.listen,
            relays: self.relay,
            relay: {
                let mut relay = RelayConfig::default();
                relay.enabled = self.relay_enabled;
                relay.active = self.relay_active;
                relay.auto_relay = self.auto_relay;
                relay.discovery = self.relay_discovery;
                relay.hop = self.relay_hop;
                relay.pool.max_relay_connections = self.max_relay_connections;
                relay.pool.min_relay_connections = self.min_relay_connections;
                relay.pool.connection_check_interval = self.relay_check_interval;
                relay
            },
            external_addresses: self.external_address,
            kad_bucket_size: self.kad_bucket_size,
            kad_record_ttl: self.kad_record_ttl,
            bootstrap: self.bootstrap,
            mdns: self.mdns,
            order_refresh: self.order_refresh,
            order_ttl: self.order_ttl,
            ban_duration: self.ban_duration,
            max_ban_duration: self.max_ban_duration,
            max_orders: self.max_orders,
            max_orders_per_maker: self.max_orders_per_maker,
            anti_entropy_interval: self.anti_entropy_interval,
            webrtc: self.webrtc,
            webrtc_signaling: self.webrtc_signaling,
            webrtc_signaling_port: self.webrtc_signaling_port,
            webrtc_options,
            perf: self.perf,
        }
    }
}

/// One line per figment error, each naming its key and where its value
/// came from (the file's path, or the environment variable).
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
                .map(|m| match &m.source {
                    // The path as figment resolved it, not shortened.
                    Some(figment::Source::File(path)) => {
                        format!(" (in config file {})", path.display())
                    }
                    Some(source) => format!(" (in {} {source})", m.name),
                    // The environment: name the variable.
                    None if m.name.contains("environment") && !e.path.is_empty() => {
                        let key = e.path.join("_").to_uppercase();
                        format!(" (from environment variable {ENV_PREFIX}{key})")
                    }
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            format!("{key}{}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A [`Duration`] as a humantime string: `"3m"`, `"1h 30m"`.
mod humantime_string {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| D::Error::custom(format!("{text:?} is not a duration like \"3m\": {e}")))
    }
}

#[cfg(test)]
mod tests;
