//! The command line: `darkswap [--api ADDR] [--json] <command>`.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use darkswap_p2p::{Multiaddr, OrderbookConfig};

use crate::daemon::DaemonOptions;

const DEFAULT_API: &str = "127.0.0.1:7070";

/// DarkSwap node: run the daemon, or talk to a running one.
#[derive(Debug, Parser)]
#[command(name = "darkswap", version)]
pub struct Cli {
    /// Address of the daemon's API.
    #[arg(long, global = true, default_value = DEFAULT_API)]
    pub api: String,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node with a local HTTP API.
    Daemon(DaemonArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

/// The flags of `darkswap daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Identity key and database.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// libp2p listen address (repeatable).
    #[arg(long)]
    pub listen: Vec<Multiaddr>,
    /// Relay to reserve a slot on (repeatable).
    #[arg(long)]
    pub relay: Vec<Multiaddr>,
    /// Bootstrap peer (repeatable).
    #[arg(long)]
    pub bootstrap: Vec<Multiaddr>,
    /// Turn local network discovery off.
    #[arg(long)]
    pub no_mdns: bool,
    /// How often this node re-announces its open orders (e.g. 3m, 30s).
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub order_refresh: Duration,
    /// Orders not re-announced by their maker for this long drop out of
    /// the book (e.g. 10m). Must exceed --order-refresh.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub order_ttl: Duration,
    /// How long a peer whose reputation falls to the threshold is first
    /// banned; each repeat ban lasts twice as long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub ban_duration: Duration,
    /// Longest automatic ban.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub max_ban_duration: Duration,
    /// Orders the node's book holds at most; further new orders are refused
    /// as `book_full`.
    #[arg(long, env = "DARKSWAP_MAX_ORDERS", default_value_t = OrderbookConfig::default().max_orders)]
    pub max_orders: usize,
    /// Orders one maker (this node included) may have in the book; its
    /// next new order is refused as `maker_limit`.
    #[arg(
        long,
        env = "DARKSWAP_MAX_ORDERS_PER_MAKER",
        default_value_t = OrderbookConfig::default().max_orders_per_maker
    )]
    pub max_orders_per_maker: usize,
    /// How often the node reconciles its book with one more peer, in turn
    /// (anti-entropy: repairs what gossip dropped).
    #[arg(
        long,
        env = "DARKSWAP_ANTI_ENTROPY_INTERVAL",
        default_value = "30s",
        value_parser = humantime::parse_duration
    )]
    pub anti_entropy_interval: Duration,
}

impl DaemonArgs {
    /// What to run, with the API on `api`. Without `--data-dir`, the data
    /// lives in `$XDG_DATA_HOME/darkswap` (or `~/.local/share/darkswap`).
    pub fn options(self, api: std::net::SocketAddr) -> DaemonOptions {
        DaemonOptions {
            data_dir: self
                .data_dir
                .unwrap_or_else(|| dirs_data().unwrap_or_else(|| PathBuf::from("darkswap-data"))),
            api,
            listen: self.listen,
            relays: self.relay,
            bootstrap: self.bootstrap,
            mdns: !self.no_mdns,
            order_refresh: self.order_refresh,
            order_ttl: self.order_ttl,
            ban_duration: self.ban_duration,
            max_ban_duration: self.max_ban_duration,
            max_orders: self.max_orders,
            max_orders_per_maker: self.max_orders_per_maker,
            anti_entropy_interval: self.anti_entropy_interval,
        }
    }
}

fn dirs_data() -> Option<PathBuf> {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map(|d| d.join("darkswap"))
}

/// The commands that call a running daemon.
// Doc comments here are clap's help, read in a terminal: `<peer id>` is
// text, not an HTML tag.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Node status: peer id, addresses, NAT, relays.
    Status,
    /// Connected peers.
    Peers,
    /// Connect to a peer.
    Connect {
        /// The peer's multiaddr, ending in /p2p/<peer id>.
        addr: String,
    },
    /// Own orders.
    #[command(subcommand)]
    Order(OrderCommand),
    /// The orderbook of a pair.
    Orderbook {
        /// Base asset.
        #[arg(long)]
        base: String,
        /// Quote asset.
        #[arg(long)]
        quote: String,
    },
    /// Follow network and orderbook events.
    Events,
    /// Banned peers; ban or unban one.
    Bans {
        #[command(subcommand)]
        action: Option<BanCommand>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BanCommand {
    /// List the bans in force (the default).
    List,
    /// Ban a peer: close its connections and refuse new ones.
    Add {
        /// The peer id.
        peer: String,
        /// How long, e.g. 1h; without it, until `darkswap bans remove`.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// Lift a peer's ban.
    Remove {
        /// The peer id.
        peer: String,
    },
}

/// `darkswap order ...`.
// Doc comments here are clap's help, read in a terminal: `<block>` is
// text, not an HTML tag.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Sign and publish an order.
    Create {
        /// buy or sell.
        #[arg(long)]
        side: String,
        /// Base asset: BTC, rune:<block>:<tx> or alkane:<block>:<tx>.
        #[arg(long)]
        base: String,
        /// Quote asset.
        #[arg(long)]
        quote: String,
        /// Base amount, smallest unit.
        #[arg(long)]
        amount: u64,
        /// Quote units per 10^8 base units.
        #[arg(long)]
        price: u64,
        /// Lifetime, e.g. 1h, 30m.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        expires_in: Duration,
    },
    /// Cancel an own order.
    Cancel {
        /// The order id.
        id: String,
    },
    /// List own orders.
    List,
}
