//! The configuration a page passes to `new DarkSwapWasm(config)`, and the
//! SDK configuration it becomes.

use std::time::Duration;

use darkswap_p2p::{
    KadMode, Multiaddr, NetworkConfig, darkswap_trade::bitcoin::Network as BitcoinNetwork,
};
use serde::Deserialize;

/// `new DarkSwapWasm(config)`: every field is optional; unknown fields are
/// refused so a misspelt one is not silently ignored.
///
/// ```js
/// new DarkSwapWasm({
///   network: "regtest",
///   relays: ["/ip4/127.0.0.1/tcp/9100/ws/p2p/12D3KooW..."],
///   bootstrap: [],
///   identity_store: "darkswap",   // IndexedDB database of the identity key
///   ephemeral: false,             // true: a new identity on every start
///   timeout_ms: 30000,
///   trading: {                    // optional: take and fill orders
///     esplora_url: "https://mempool.space/api",
///     ord_url: "https://ordinals.com",
///     max_trades: 16,
///   },
/// })
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WasmConfig {
    /// The Bitcoin network traded on: `bitcoin`, `testnet`, `testnet4`,
    /// `signet` or `regtest`. Default: `regtest`.
    pub network: String,
    /// Relays to hold reservations on (multiaddrs ending in
    /// `/p2p/<peer id>`, over `/ws`, `/wss` or `/webrtc-direct`): the page
    /// is reachable through them and learns the market from them.
    pub relays: Vec<String>,
    /// Peers dialled at start that are not relays (native nodes listening
    /// on `/webrtc-direct`, say).
    pub bootstrap: Vec<String>,
    /// The IndexedDB database that keeps the identity key. Default:
    /// `darkswap-<network>`.
    pub identity_store: Option<String>,
    /// A fresh identity each start, nothing stored. Default: false.
    pub ephemeral: bool,
    /// Deadline of every command and dial, milliseconds. Default: 30 000.
    pub timeout_ms: u64,
    /// Trading: the chain services the wallet syncs with and broadcasts
    /// through. Without it the node shows and makes orders but takes and
    /// fills none.
    pub trading: Option<TradingSettings>,
}

/// `config.trading`: where the page's wallet learns its coins and their
/// runes, and sends a finished swap. Both must allow the page's origin
/// (CORS), as Esplora and `ord server` do. The wallet's keys are kept in
/// the `identity_store` next to the identity (in memory only when
/// `ephemeral`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradingSettings {
    /// Esplora's root (`…/api`): coins and broadcasts.
    pub esplora_url: String,
    /// `ord server`'s root: runes held by each coin.
    pub ord_url: String,
    /// Trades at once; a maker refuses more as busy. Default: 16.
    #[serde(default = "default_max_trades")]
    pub max_trades: usize,
}

fn default_max_trades() -> usize {
    16
}

impl Default for WasmConfig {
    fn default() -> Self {
        WasmConfig {
            network: "regtest".to_owned(),
            relays: Vec::new(),
            bootstrap: Vec::new(),
            identity_store: None,
            ephemeral: false,
            timeout_ms: 30_000,
            trading: None,
        }
    }
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not one of the Bitcoin networks.
    #[error("network: {0:?} is not bitcoin, testnet, testnet4, signet or regtest")]
    Network(String),
    /// A multiaddr that does not parse or lacks the peer id.
    #[error("{field}: {addr:?} {reason}")]
    Address {
        /// `relays` or `bootstrap`.
        field: &'static str,
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `timeout_ms` of zero.
    #[error("timeout_ms: must be greater than zero")]
    Timeout,
    /// A chain service's URL is unusable.
    #[error("trading: {0}")]
    Chain(#[from] darkswap_chain::ConfigError),
    /// `trading.max_trades` of zero.
    #[error("trading.max_trades: must be greater than zero")]
    MaxTrades,
}

/// The chain services of [`TradingSettings`].
#[derive(Debug, Clone)]
pub struct ChainServices {
    /// Coins and broadcasts.
    pub esplora: darkswap_chain::EsploraClient,
    /// Runes.
    pub ord: darkswap_chain::OrdIndex,
}

impl TradingSettings {
    /// The clients of both services.
    pub fn services(&self) -> Result<ChainServices, ConfigError> {
        if self.max_trades == 0 {
            return Err(ConfigError::MaxTrades);
        }
        Ok(ChainServices {
            esplora: darkswap_chain::EsploraClient::new(darkswap_chain::EsploraConfig::new(
                &self.esplora_url,
            ))?,
            ord: darkswap_chain::OrdIndex::new(darkswap_chain::OrdConfig::new(&self.ord_url))?,
        })
    }
}

fn addresses(field: &'static str, addrs: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    addrs
        .iter()
        .map(|a| {
            let addr: Multiaddr = a.parse().map_err(|_| ConfigError::Address {
                field,
                addr: a.clone(),
                reason: "is not a multiaddr",
            })?;
            match darkswap_p2p::core::relay_keeper::split_peer_id(&addr) {
                Some(_) => Ok(addr),
                None => Err(ConfigError::Address {
                    field,
                    addr: a.clone(),
                    reason: "does not end in /p2p/<peer id>",
                }),
            }
        })
        .collect()
}

impl WasmConfig {
    /// The defaults for a Bitcoin network.
    pub fn for_network(network: &str) -> Self {
        WasmConfig {
            network: network.to_owned(),
            ..WasmConfig::default()
        }
    }

    /// The Bitcoin network.
    pub fn bitcoin_network(&self) -> Result<BitcoinNetwork, ConfigError> {
        match self.network.as_str() {
            "bitcoin" | "mainnet" => Ok(BitcoinNetwork::Bitcoin),
            "testnet" => Ok(BitcoinNetwork::Testnet),
            "testnet4" => Ok(BitcoinNetwork::Testnet4),
            "signet" => Ok(BitcoinNetwork::Signet),
            "regtest" => Ok(BitcoinNetwork::Regtest),
            other => Err(ConfigError::Network(other.to_owned())),
        }
    }

    /// The IndexedDB database of the identity key.
    pub fn identity_store(&self) -> String {
        self.identity_store
            .clone()
            .unwrap_or_else(|| format!("darkswap-{}", self.network))
    }

    /// Checks every field, so a bad configuration fails at construction.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bitcoin_network()?;
        addresses("relays", &self.relays)?;
        addresses("bootstrap", &self.bootstrap)?;
        if self.timeout_ms == 0 {
            return Err(ConfigError::Timeout);
        }
        if let Some(trading) = &self.trading {
            trading.services()?;
        }
        Ok(())
    }

    /// The SDK configuration of the page's node: no listener (a page
    /// cannot accept connections; it is reached through relay circuits),
    /// a Kademlia client (nobody can dial it to ask), no mDNS, no relay
    /// hop.
    pub fn network_config(&self, key: darkswap_p2p::Keypair) -> Result<NetworkConfig, ConfigError> {
        self.validate()?;
        let mut config = NetworkConfig::default()
            .with_identity(darkswap_p2p::Identity::Keypair(key))
            .with_relay_peers(addresses("relays", &self.relays)?)
            .with_bootstrap_peers(addresses("bootstrap", &self.bootstrap)?)
            .with_mdns(false);
        config.kad_mode = KadMode::Client;
        config.connection_timeout = Duration::from_millis(self.timeout_ms);
        Ok(config)
    }
}
