//! `darkswap`: the DarkSwap node daemon and the commands that talk to it,
//! the way `ipfs daemon` / `ipfs swarm peers` work.

// A binary: nothing here is reachable from outside, so `pub` just marks
// what modules offer each other.
#![allow(unreachable_pub)]

mod api;
mod client;
mod daemon;
mod metrics;
mod store;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use client::{Client, ORDER_HEADER, order_row, table};
use darkswap_p2p::Multiaddr;
use serde_json::{Value, json};

const DEFAULT_API: &str = "127.0.0.1:7070";

/// DarkSwap node: run the daemon, or talk to a running one.
#[derive(Debug, Parser)]
#[command(name = "darkswap", version)]
struct Cli {
    /// Address of the daemon's API.
    #[arg(long, global = true, default_value = DEFAULT_API)]
    api: String,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node with a local HTTP API.
    Daemon {
        /// Identity key and database.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// libp2p listen address (repeatable).
        #[arg(long)]
        listen: Vec<Multiaddr>,
        /// Relay to reserve a slot on (repeatable).
        #[arg(long)]
        relay: Vec<Multiaddr>,
        /// Bootstrap peer (repeatable).
        #[arg(long)]
        bootstrap: Vec<Multiaddr>,
        /// Turn local network discovery off.
        #[arg(long)]
        no_mdns: bool,
        /// How often this node re-announces its open orders (e.g. 3m, 30s).
        #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
        order_refresh: Duration,
        /// Orders not re-announced by their maker for this long drop out of
        /// the book (e.g. 10m). Must exceed --order-refresh.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        order_ttl: Duration,
        /// How long a peer whose reputation falls to the threshold is first
        /// banned; each repeat ban lasts twice as long.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        ban_duration: Duration,
        /// Longest automatic ban.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        max_ban_duration: Duration,
    },
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
enum BanCommand {
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

#[derive(Debug, Subcommand)]
enum OrderCommand {
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Daemon {
            data_dir,
            listen,
            relay,
            bootstrap,
            no_mdns,
            order_refresh,
            order_ttl,
            ban_duration,
            max_ban_duration,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            match cli.api.parse::<SocketAddr>() {
                Ok(api) => {
                    let data_dir = data_dir.unwrap_or_else(|| {
                        dirs_data().unwrap_or_else(|| PathBuf::from("darkswap-data"))
                    });
                    daemon::run(daemon::DaemonOptions {
                        data_dir,
                        api,
                        listen,
                        relays: relay,
                        bootstrap,
                        mdns: !no_mdns,
                        order_refresh,
                        order_ttl,
                        ban_duration,
                        max_ban_duration,
                    })
                    .await
                }
                Err(e) => Err(anyhow::anyhow!("--api {}: {e}", cli.api)),
            }
        }
        command => run_client(&Client::new(&cli.api), command, cli.json).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("darkswap: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A ban's end for people: RFC 3339 UTC, or `until lifted`.
fn until_text(until: &Value) -> String {
    match until.as_u64() {
        Some(secs) => {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs))
                .to_string()
        }
        None => "until lifted".to_owned(),
    }
}

fn ban_line(b: &Value) -> String {
    let until = match b["until"] {
        Value::Null => "until lifted".to_owned(),
        ref t => format!("until {}", until_text(t)),
    };
    format!(
        "{} {until} ({})",
        b["peer_id"].as_str().unwrap_or(""),
        b["reason"].as_str().unwrap_or("")
    )
}

fn dirs_data() -> Option<PathBuf> {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map(|d| d.join("darkswap"))
}

fn print(json_out: bool, value: &Value, human: impl FnOnce(&Value)) {
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        human(value);
    }
}

async fn run_client(client: &Client, command: Command, json_out: bool) -> anyhow::Result<()> {
    match command {
        Command::Daemon { .. } => unreachable!("handled in main"),
        Command::Status => {
            let v = client.get("/v1/status").await?;
            print(json_out, &v, |v| {
                println!("peer id:   {}", v["peer_id"].as_str().unwrap_or(""));
                println!("nat:       {}", v["nat_status"].as_str().unwrap_or(""));
                println!("peers:     {}", v["peers"]);
                println!("own orders:{}", v["own_orders"]);
                println!("rejected:  {}", v["rejected_messages"]);
                for a in v["listen_addrs"].as_array().into_iter().flatten() {
                    println!("listening: {}", a.as_str().unwrap_or(""));
                }
                for r in v["relays"].as_array().into_iter().flatten() {
                    println!(
                        "relay:     {} reserved={}",
                        r["peer_id"].as_str().unwrap_or(""),
                        r["reserved"]
                    );
                }
                let bans = v["banned_peers"]
                    .as_array()
                    .map_or(&[][..], |b| b.as_slice());
                println!("banned:    {}", bans.len());
                for b in bans {
                    println!("banned:    {}", ban_line(b));
                }
            });
        }
        Command::Bans { action } => match action.unwrap_or(BanCommand::List) {
            BanCommand::List => {
                let v = client.get("/v1/bans").await?;
                print(json_out, &v, |v| {
                    let rows = v
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|b| {
                            vec![
                                b["peer_id"].as_str().unwrap_or("").to_owned(),
                                until_text(&b["until"]),
                                b["reason"].as_str().unwrap_or("").to_owned(),
                                b["bans"].to_string(),
                            ]
                        })
                        .collect();
                    table(&["PEER", "UNTIL", "REASON", "BANS"], rows);
                });
            }
            BanCommand::Add { peer, duration } => {
                let v = client
                    .post(
                        "/v1/bans",
                        json!({ "peer_id": peer, "duration_secs": duration.map(|d| d.as_secs().max(1)) }),
                    )
                    .await?;
                print(json_out, &v, |v| println!("banned {}", ban_line(v)));
            }
            BanCommand::Remove { peer } => {
                client.delete(&format!("/v1/bans/{peer}")).await?;
                print(json_out, &json!({ "unbanned": peer }), |_| {
                    println!("unbanned {peer}")
                });
            }
        },
        Command::Peers => {
            let v = client.get("/v1/peers").await?;
            print(json_out, &v, |v| {
                let rows = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        vec![
                            p["peer_id"].as_str().unwrap_or("").to_owned(),
                            p["path"].as_str().unwrap_or("").to_owned(),
                            p["latency_ms"].to_string(),
                            p["address"].as_str().unwrap_or("").to_owned(),
                        ]
                    })
                    .collect();
                table(&["PEER", "PATH", "LATENCY_MS", "ADDRESS"], rows);
            });
        }
        Command::Connect { addr } => {
            let v = client.post("/v1/connect", json!({ "addr": addr })).await?;
            print(json_out, &v, |v| {
                println!("connected to {}", v["peer_id"].as_str().unwrap_or(""))
            });
        }
        Command::Order(OrderCommand::Create {
            side,
            base,
            quote,
            amount,
            price,
            expires_in,
        }) => {
            let body =
                client::create_body(&side, &base, &quote, amount, price, expires_in.as_secs());
            let v = client.post("/v1/orders", body).await?;
            print(json_out, &v, |v| {
                println!("{}", v["id"].as_str().unwrap_or(""))
            });
        }
        Command::Order(OrderCommand::Cancel { id }) => {
            client.delete(&format!("/v1/orders/{id}")).await?;
            print(json_out, &json!({ "cancelled": id }), |_| {
                println!("cancelled {id}")
            });
        }
        Command::Order(OrderCommand::List) => {
            let v = client.get("/v1/orders").await?;
            print(json_out, &v, |v| {
                table(
                    &ORDER_HEADER,
                    v.as_array().into_iter().flatten().map(order_row).collect(),
                )
            });
        }
        Command::Orderbook { base, quote } => {
            let v = client
                .get(&format!("/v1/orderbook?base={base}&quote={quote}"))
                .await?;
            print(json_out, &v, |v| {
                println!("asks (lowest first)");
                table(
                    &ORDER_HEADER,
                    v["asks"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(order_row)
                        .collect(),
                );
                println!("bids (highest first)");
                table(
                    &ORDER_HEADER,
                    v["bids"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(order_row)
                        .collect(),
                );
            });
        }
        Command::Events => client.follow_events().await?,
    }
    Ok(())
}
