//! The command line: `darkswap [--api ADDR] [--json] <command>`.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use darkswap_p2p::Multiaddr;
use serde_json::{Map, Value, json};

use crate::config_file::DEFAULT_API;

/// DarkSwap node: run the daemon, or talk to a running one.
#[derive(Debug, Parser)]
#[command(name = "darkswap", version)]
pub struct Cli {
    /// Address of the daemon's API [default: 127.0.0.1:7070, or the
    /// DARKSWAP_API environment variable; the daemon also reads `api` from
    /// its config file].
    #[arg(long, global = true)]
    pub api: Option<String>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The API address a client command calls: `--api`, else
    /// `DARKSWAP_API`, else [`DEFAULT_API`].
    pub fn client_api(&self) -> String {
        self.api
            .clone()
            .or_else(|| std::env::var("DARKSWAP_API").ok())
            .unwrap_or_else(|| DEFAULT_API.to_owned())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node with a local HTTP API.
    Daemon(Box<DaemonArgs>),
    #[command(flatten)]
    Client(ClientCommand),
}

/// The flags of `darkswap daemon`. Each one given overrides the
/// configuration file and the environment (`DARKSWAP_<KEY>`); defaults are
/// listed in deploy/darkswap.toml.
// Doc comments here are clap's help, read in a terminal: `<KEY>` is text,
// not an HTML tag.
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// TOML configuration file holding any of the options below (see
    /// deploy/darkswap.toml). Precedence: built-in defaults < file <
    /// environment (DARKSWAP_<KEY>) < flags.
    #[arg(long, env = "DARKSWAP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Identity key and database [default: ~/.local/share/darkswap].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// libp2p listen address (repeatable).
    #[arg(long)]
    pub listen: Vec<Multiaddr>,
    /// Relay to reserve a slot on (repeatable): one the relay pool always
    /// knows; with auto-relay it also picks relays it discovers.
    #[arg(long)]
    pub relay: Vec<Multiaddr>,
    /// Do not use relays at all: no reservations, no circuits.
    #[arg(long)]
    pub no_relays: bool,
    /// Dial through relays but hold no reservation on any.
    #[arg(long)]
    pub no_relay_reservations: bool,
    /// Reserve only on the --relay list, whatever AutoNAT says.
    #[arg(long)]
    pub no_auto_relay: bool,
    /// Learn of relays only from --relay, not from the DHT, mDNS, identify.
    #[arg(long)]
    pub no_relay_discovery: bool,
    /// Serve as a relay too (needs --external-address).
    #[arg(long)]
    pub relay_hop: bool,
    /// Reservations held at most [default: 3].
    #[arg(long)]
    pub max_relay_connections: Option<usize>,
    /// Reservations held once publicly reachable [default: 1].
    #[arg(long)]
    pub min_relay_connections: Option<usize>,
    /// How often the relay pool looks for better relays [default: 30s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub relay_check_interval: Option<Duration>,
    /// An address this node is reachable at, announced as confirmed
    /// (repeatable).
    #[arg(long)]
    pub external_address: Vec<Multiaddr>,
    /// Kademlia's k: bucket size and replication [default: 20].
    #[arg(long)]
    pub kad_bucket_size: Option<usize>,
    /// How long a stored DHT record lives [default: 24h].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub kad_record_ttl: Option<Duration>,
    /// Bootstrap peer (repeatable).
    #[arg(long)]
    pub bootstrap: Vec<Multiaddr>,
    /// Turn local network discovery off.
    #[arg(long)]
    pub no_mdns: bool,
    /// How often this node re-announces its open orders (e.g. 3m, 30s)
    /// [default: 3m].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub order_refresh: Option<Duration>,
    /// Orders not re-announced by their maker for this long drop out of
    /// the book (e.g. 10m). Must exceed --order-refresh [default: 10m].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub order_ttl: Option<Duration>,
    /// How long a peer whose reputation falls to the threshold is first
    /// banned; each repeat ban lasts twice as long [default: 10m].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ban_duration: Option<Duration>,
    /// Longest automatic ban [default: 24h].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_ban_duration: Option<Duration>,
    /// Orders the node's book holds at most; further new orders are refused
    /// as `book_full` [default: 100000].
    #[arg(long)]
    pub max_orders: Option<usize>,
    /// Orders one maker (this node included) may have in the book; its
    /// next new order is refused as `maker_limit` [default: 1000].
    #[arg(long)]
    pub max_orders_per_maker: Option<usize>,
    /// How often the node reconciles its book with one more peer, in turn
    /// (anti-entropy: repairs what gossip dropped) [default: 30s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub anti_entropy_interval: Option<Duration>,
    /// Register on relays' signaling servers for WebRTC data channels with
    /// browsers and other nodes (`darkswap webrtc ...`).
    #[arg(long)]
    pub webrtc: bool,
    /// Serve libp2p's /perf/1.0.0 throughput protocol to any peer (for
    /// measuring links, e.g. `darkswap-bench throughput`; off by default).
    #[arg(long)]
    pub perf: bool,
    /// A relay's public signaling port, e.g. /ip4/203.0.113.7/tcp/9001/ws
    /// (repeatable).
    #[arg(long)]
    pub webrtc_signaling: Vec<Multiaddr>,
    /// The signaling port on each --relay's host; 0: only
    /// --webrtc-signaling [default: 9001].
    #[arg(long)]
    pub webrtc_signaling_port: Option<u16>,
    /// Earn relay tokens for the signaling relays (a closed relay admits
    /// only token holders).
    #[arg(long)]
    pub webrtc_tokens: bool,
    /// PEM CA certificates a wss:// signaling relay may chain to besides
    /// the system's roots.
    #[arg(long, value_name = "FILE")]
    pub webrtc_ca_file: Option<PathBuf>,
}

impl DaemonArgs {
    /// The flags that were given (and `--api`, if given), as a partial
    /// configuration file: what overrides the file and the environment.
    pub fn overrides(&self, api: Option<&str>) -> Value {
        let mut root = Map::new();
        let mut set = |key: &str, value: Value| {
            root.insert(key.to_owned(), value);
        };
        let strings = |addrs: &[Multiaddr]| addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let duration = |d: Duration| json!(humantime::format_duration(d).to_string());
        if let Some(api) = api {
            set("api", json!(api));
        }
        if let Some(dir) = &self.data_dir {
            set("data_dir", json!(dir));
        }
        for (key, addrs) in [
            ("listen", &self.listen),
            ("relay", &self.relay),
            ("bootstrap", &self.bootstrap),
            ("external_address", &self.external_address),
            ("webrtc_signaling", &self.webrtc_signaling),
        ] {
            if !addrs.is_empty() {
                set(key, json!(strings(addrs)));
            }
        }
        for (key, flag, value) in [
            ("mdns", self.no_mdns, false),
            ("relay_enabled", self.no_relays, false),
            ("relay_active", self.no_relay_reservations, false),
            ("auto_relay", self.no_auto_relay, false),
            ("relay_discovery", self.no_relay_discovery, false),
            ("relay_hop", self.relay_hop, true),
            ("webrtc", self.webrtc, true),
            ("webrtc_tokens", self.webrtc_tokens, true),
            ("perf", self.perf, true),
        ] {
            if flag {
                set(key, json!(value));
            }
        }
        for (key, value) in [
            ("max_relay_connections", self.max_relay_connections),
            ("min_relay_connections", self.min_relay_connections),
            ("kad_bucket_size", self.kad_bucket_size),
        ] {
            if let Some(n) = value {
                set(key, json!(n));
            }
        }
        for (key, value) in [
            ("order_refresh", self.order_refresh),
            ("order_ttl", self.order_ttl),
            ("ban_duration", self.ban_duration),
            ("max_ban_duration", self.max_ban_duration),
            ("anti_entropy_interval", self.anti_entropy_interval),
            ("relay_check_interval", self.relay_check_interval),
            ("kad_record_ttl", self.kad_record_ttl),
        ] {
            if let Some(d) = value {
                set(key, duration(d));
            }
        }
        for (key, value) in [
            ("max_orders", self.max_orders),
            ("max_orders_per_maker", self.max_orders_per_maker),
        ] {
            if let Some(n) = value {
                set(key, json!(n));
            }
        }
        if let Some(port) = self.webrtc_signaling_port {
            set("webrtc_signaling_port", json!(port));
        }
        if let Some(file) = &self.webrtc_ca_file {
            set("webrtc_ca_file", json!(file));
        }
        Value::Object(root)
    }
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
    /// Trades: take an order, list, show, cancel.
    #[command(subcommand)]
    Trade(TradeCommand),
    /// The trading wallet: network, addresses, coins.
    Wallet {
        /// Ask Esplora and ord for the coins first.
        #[arg(long)]
        sync: bool,
    },
    /// Follow network and orderbook events.
    Events,
    /// WebRTC data channels to peers on the node's signaling relays
    /// (browsers too): status, open, send, receive, close.
    #[command(subcommand)]
    Webrtc(WebRtcCommand),
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
    /// Change the amount, price and/or expiry of an own open order; prints
    /// the order as it now stands.
    Update {
        /// The order id.
        id: String,
        /// New base amount, smallest unit.
        #[arg(long)]
        amount: Option<u64>,
        /// New price: quote units per 10^8 base units.
        #[arg(long)]
        price: Option<u64>,
        /// New remaining life from now, e.g. 30m (not past the expiry the
        /// order was created with).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
    },
    /// Cancel an own order.
    Cancel {
        /// The order id.
        id: String,
    },
    /// List own orders.
    List,
}

/// `darkswap trade ...`.
#[derive(Debug, Subcommand)]
pub enum TradeCommand {
    /// Take part of another maker's order; prints the trade as proposed
    /// (follow it with `trade show` or `events`).
    Take {
        /// The order id.
        order_id: String,
        /// Base units to take, smallest unit.
        #[arg(long)]
        amount: u64,
    },
    /// List this node's trades.
    List,
    /// Show one trade.
    Show {
        /// The trade id.
        id: String,
    },
    /// Cancel a trade no party has signed yet.
    Cancel {
        /// The trade id.
        id: String,
    },
}

/// `darkswap webrtc ...` (the daemon runs with `--webrtc`).
#[derive(Debug, Subcommand)]
pub enum WebRtcCommand {
    /// Signaling relays and open channels.
    Status,
    /// Open a channel to a peer (WebRTC, else a relayed circuit); prints
    /// its path.
    Open {
        /// The peer id.
        peer: String,
    },
    /// Send one message, opening the channel first if needed.
    Send {
        /// The peer id.
        peer: String,
        /// The message: text, or with --hex the bytes in hex.
        message: String,
        /// Send MESSAGE as a binary frame given in hex.
        #[arg(long)]
        hex: bool,
    },
    /// Print the next message from a peer (text as is, binary frames as
    /// hex); nothing if none came within --wait.
    Receive {
        /// The peer id.
        peer: String,
        /// How long to wait, at most 60s.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        wait: Duration,
    },
    /// Close the channel to a peer.
    Close {
        /// The peer id.
        peer: String,
    },
}
