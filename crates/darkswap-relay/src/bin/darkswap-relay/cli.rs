//! The command line: flags over the configuration file, and the `token`
//! subcommand.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use darkswap_proto::relay_auth::Role;
use libp2p::{Multiaddr, PeerId};
use serde_json::{Map, Value, json};

use crate::config_file::LogFormat;

/// DarkSwap relay server: libp2p circuit relay v2, DHT and gossip backbone,
/// Prometheus metrics and health. Runs on built-in defaults with no arguments.
///
/// Configuration: built-in defaults < TOML file (--config) < environment
/// (DARKSWAP_RELAY_<SECTION>__<KEY>) < these flags.
#[derive(Debug, Parser)]
#[command(name = "darkswap-relay", version)]
pub(crate) struct Cli {
    /// TOML configuration file (see deploy/config.toml for every key).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Directory for the identity key and state.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Listen address, replacing network.listen_addresses (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<Multiaddr>,
    /// External address to announce (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    external_address: Vec<Multiaddr>,
    /// Address of the metrics and health server.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Address of the WebSocket signaling server (/signaling and /relay).
    #[arg(long, value_name = "ADDR")]
    signaling_listen: Option<SocketAddr>,
    /// Log level filter (RUST_LOG wins when set).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Serve libp2p's /perf/1.0.0 throughput protocol (network.perf).
    #[arg(long)]
    perf: bool,
    /// Print the relay's peer id (creating its key if needed) and exit.
    #[arg(long)]
    pub(crate) print_peer_id: bool,
    /// Validate the configuration, print the effective configuration and exit.
    #[arg(long)]
    pub(crate) check_config: bool,
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Tokens for the WebSocket plane, minted offline from the relay's key.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokenCommand {
    /// Prints a token for PEER with ROLE on stdout (its id and expiry on
    /// stderr, for revoking it later).
    Issue {
        /// The peer id the token is for (only that peer can register with it).
        #[arg(long)]
        peer: PeerId,
        /// guest, user or admin.
        #[arg(long)]
        role: Role,
        /// Lifetime, e.g. 1h, 30m (at most auth.max_token_ttl_secs).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

impl Cli {
    /// The flags that were given, as a partial configuration file.
    pub(crate) fn overrides(&self) -> Value {
        let mut root = Map::new();
        let mut section = |name: &str, key: &str, value: Value| {
            let entry = root.entry(name.to_owned()).or_insert_with(|| json!({}));
            if let Value::Object(map) = entry {
                map.insert(key.to_owned(), value);
            }
        };
        let strings = |addrs: &[Multiaddr]| addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        if !self.listen.is_empty() {
            section("network", "listen_addresses", json!(strings(&self.listen)));
        }
        if !self.external_address.is_empty() {
            let addrs = strings(&self.external_address);
            section("network", "external_addresses", json!(addrs));
        }
        if self.perf {
            section("network", "perf", json!(true));
        }
        if let Some(addr) = self.metrics_listen {
            section("metrics", "listen", json!(addr.to_string()));
        }
        if let Some(addr) = self.signaling_listen {
            section("signaling", "listen", json!(addr.to_string()));
        }
        if let Some(level) = &self.log_level {
            section("log", "level", json!(level));
        }
        if let Some(format) = self.log_format {
            section("log", "format", json!(format));
        }
        if let Some(dir) = &self.data_dir {
            root.insert("data_dir".to_owned(), json!(dir));
        }
        Value::Object(root)
    }
}
