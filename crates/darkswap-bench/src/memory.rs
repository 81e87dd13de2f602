//! `memory`: issue 18's memory figures. What the relay costs idle, per
//! libp2p circuit relay v2 reservation, per open circuit and per idle
//! signaling socket; what the daemon costs idle and per 1,000 orders in its
//! book. Every figure is a difference of the resident memory (`VmRSS`, and
//! `RssAnon`, the heap alone) of the real process read from `/proc`, each
//! read once the process has gone quiet (no CPU for a while), divided by
//! what was added in between.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use darkswap_p2p::{
    Multiaddr, Network, NetworkConfig, OrderbookConfig, core::multiaddr::Protocol,
    proto::OrderbookResponse,
};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::{
    hop_client::HopClient,
    idle_signaling::{self, IdleArgs},
    process::{self, Daemon, Usage, usage},
    relay_config::{RelayArgs, parse_env, relay_hop_toml},
    report::{Conditions, Figures, Report},
};

/// Bound on one client's reservation or circuit.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the daemon taking in the whole book.
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// The daemon's count of node events it could not take in time.
const DROPPED_EVENTS: &str = r#"darkswap_messages_dropped_total{reason="event_queue_full"}"#;

/// Flags of `memory`.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub(crate) struct MemoryArgs {
    /// Rounds (each with fresh processes; the table shows median and
    /// spread).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// libp2p clients each holding a reservation on the relay.
    #[arg(long, default_value_t = 200)]
    reservations: usize,
    /// Circuits opened through the relay between reserved clients (at most
    /// half the reservations: a client dials or is dialed, not both).
    #[arg(long, default_value_t = 100)]
    circuits: usize,
    /// Reservations and circuits requested at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Idle signaling clients (the `idle-signaling` measure's round, with
    /// fewer clients so the suite keeps its time budget).
    #[arg(long, default_value_t = 2000)]
    signaling_clients: usize,
    /// How long the signaling clients stay idle before the memory is read.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    signaling_hold: Duration,
    /// Signed orders the daemon's book is filled with (by makers of 1,000
    /// orders each, the book's per-maker limit).
    #[arg(long, default_value_t = 20_000)]
    orders: usize,
    #[command(flatten)]
    relay: RelayArgs,
    /// The daemon binary [default: darkswap next to this runner].
    #[arg(long)]
    daemon_bin: Option<std::path::PathBuf>,
    /// Environment for the daemon, `KEY=VALUE`, repeatable.
    #[arg(long = "daemon-env", value_parser = parse_env)]
    daemon_env: Vec<(String, String)>,
}

/// Runs the measure.
pub(crate) async fn run(args: MemoryArgs, quick: bool) -> anyhow::Result<Report> {
    let args = if quick {
        MemoryArgs {
            rounds: 1,
            reservations: args.reservations.min(20),
            circuits: args.circuits.min(10),
            signaling_clients: args.signaling_clients.min(100),
            signaling_hold: Duration::from_secs(1),
            orders: args.orders.min(2_000),
            ..args
        }
    } else {
        args
    };
    if args.reservations < 2 || args.circuits > args.reservations / 2 {
        bail!("--circuits must be at most half of --reservations (at least 2)");
    }
    let conditions = Conditions::now();
    let mut figures = Figures::default();
    // The book's holder serves every round: signing the orders takes longer
    // than a round's sync.
    let holder = Holder::start(args.orders).await?;
    for round in 0..args.rounds {
        eprintln!("memory: round {}/{}", round + 1, args.rounds);
        relay_round(&args, &mut figures).await?;
        signaling_round(&args, &mut figures).await?;
        daemon_round(&args, &holder, &mut figures).await?;
    }
    holder.network.shutdown().await?;
    Report::new("memory", conditions, &args, figures)
}

/// Waits until `pid` is quiet for `quiet`, at most `limit`; says so if it
/// never is (the reading is then taken anyway and is noisier).
async fn settle(pid: u32, what: &str, quiet: Duration, limit: Duration) -> anyhow::Result<Usage> {
    if !process::wait_quiet(pid, quiet, limit).await? {
        eprintln!("memory: {what}: not quiet after {limit:?}; reading anyway");
    }
    usage(pid)
}

/// KiB per item between two readings.
fn per(after: u64, before: u64, items: f64) -> f64 {
    (after as f64 - before as f64) / items
}

/// A fresh relay: idle, then `reservations` clients reserve, then
/// `circuits` of them dial as many others through it.
async fn relay_round(args: &MemoryArgs, figures: &mut Figures) -> anyhow::Result<()> {
    let relay = args
        .relay
        .start(&relay_hop_toml(args.reservations + 64, args.circuits + 64))?;
    let pid = relay.pid();
    let addr = relay.process.tcp_addr.clone();
    let http = reqwest::Client::new();
    let idle = settle(
        pid,
        "idle relay",
        Duration::from_secs(2),
        Duration::from_secs(20),
    )
    .await?;

    let started = Instant::now();
    let results: Vec<anyhow::Result<HopClient>> = futures::stream::iter(0..args.reservations)
        .map(|_| HopClient::reserve(&addr, CLIENT_TIMEOUT))
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let mut clients = Vec::with_capacity(results.len());
    for r in results {
        // Debug: some transport errors display as nothing.
        clients.push(r.map_err(|e| anyhow::anyhow!("a client's reservation: {e:?}"))?);
    }
    let reserve_time = started.elapsed();
    let n = clients.len() as f64;
    idle_signaling::wait_for_metric(&http, &relay, "darkswap_relay_reservations_active", n).await?;
    let reserved = settle(
        pid,
        "reservations",
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await?;

    // Client i dials client i + N/2: no client is at both ends of circuits.
    let half = clients.len() / 2;
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..args.circuits)
        .map(|i| clients[i].circuit_to(&addr, clients[i + half].peer, CLIENT_TIMEOUT))
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    for r in results {
        r.context("a circuit")?;
    }
    let circuit_time = started.elapsed();
    let m = args.circuits as f64;
    idle_signaling::wait_for_metric(&http, &relay, "darkswap_relay_circuits_active", m).await?;
    let open = settle(
        pid,
        "circuits",
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await?;
    // Still all there once quiet: nothing closed while the relay settled.
    let held = process::metric(&http, relay.metrics, "darkswap_relay_reservations_active").await?;
    let circuits = process::metric(&http, relay.metrics, "darkswap_relay_circuits_active").await?;
    drop(clients);

    figures.add("relay idle: RSS", "KiB", idle.rss_kib as f64);
    figures.add("relay idle: RssAnon", "KiB", idle.anon_kib as f64);
    figures.add("reservations held", "count", held);
    figures.add(
        "RSS per reservation",
        "KiB",
        per(reserved.rss_kib, idle.rss_kib, n),
    );
    figures.add(
        "RssAnon per reservation",
        "KiB",
        per(reserved.anon_kib, idle.anon_kib, n),
    );
    figures.add(
        "reservations: time to reserve all",
        "s",
        reserve_time.as_secs_f64(),
    );
    figures.add("circuits open", "count", circuits);
    figures.add(
        "RSS per circuit",
        "KiB",
        per(open.rss_kib, reserved.rss_kib, m),
    );
    figures.add(
        "RssAnon per circuit",
        "KiB",
        per(open.anon_kib, reserved.anon_kib, m),
    );
    figures.add(
        "circuits: time to open all",
        "s",
        circuit_time.as_secs_f64(),
    );
    Ok(())
}

/// The `idle-signaling` measure's round with `--signaling-clients`.
async fn signaling_round(args: &MemoryArgs, figures: &mut Figures) -> anyhow::Result<()> {
    let idle = IdleArgs::for_round(
        args.signaling_clients,
        args.signaling_hold,
        args.relay.clone(),
    );
    let r = idle_signaling::measure_round(&idle).await?;
    if r.failures > 0 {
        bail!(
            "{} of {} signaling registrations failed",
            r.failures,
            args.signaling_clients
        );
    }
    figures.add(
        "signaling clients registered",
        "count",
        r.latencies.len() as f64,
    );
    figures.add_with_goal(
        "RSS per idle signaling socket",
        "KiB",
        Some("<= 8"),
        r.rss_per_client(),
    );
    figures.add(
        "RssAnon per idle signaling socket",
        "KiB",
        r.anon_per_client(),
    );
    Ok(())
}

/// An SDK node in this process holding the book the daemon takes in.
struct Holder {
    network: Network,
    addr: Multiaddr,
    orders: usize,
}

impl Holder {
    async fn start(orders: usize) -> anyhow::Result<Self> {
        let creates = darkswap_testkit::signed_creates(orders, 1_000);
        let config = NetworkConfig::default()
            .with_mdns(false)
            .with_connection_timeout(Duration::from_secs(300))
            .with_orderbook(OrderbookConfig {
                max_orders: orders.max(OrderbookConfig::default().max_orders),
                ..OrderbookConfig::default()
            });
        let network = Network::new(config).await?;
        let addr = network.listen_on("/ip4/127.0.0.1/tcp/0").await?;
        // Put in its book without gossip, as `join` does.
        for chunk in creates.chunks(5_000) {
            let (_, rejected) = network
                .orderbook()
                .import(OrderbookResponse {
                    orders: chunk.to_vec(),
                    ..Default::default()
                })
                .await?;
            anyhow::ensure!(rejected.is_empty(), "the holder refused {rejected:?}");
        }
        let addr = addr.with(Protocol::P2p(network.local_peer_id()));
        Ok(Holder {
            network,
            addr,
            orders,
        })
    }
}

/// A fresh daemon: idle, then it connects to the holder and its sync takes
/// in the whole book.
async fn daemon_round(
    args: &MemoryArgs,
    holder: &Holder,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let bin = args
        .daemon_bin
        .clone()
        .unwrap_or_else(|| process::sibling_binary("darkswap"));
    let env: Vec<(&str, &str)> = args
        .daemon_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let extra: Vec<String> = if holder.orders > OrderbookConfig::default().max_orders {
        vec!["--max-orders".to_owned(), holder.orders.to_string()]
    } else {
        vec![]
    };
    let daemon = Daemon::start(&bin, &extra, &env)?;
    let pid = daemon.pid();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let idle = settle(
        pid,
        "idle daemon",
        Duration::from_secs(2),
        Duration::from_secs(20),
    )
    .await?;

    let started = Instant::now();
    let r = http
        .post(format!("http://{}/v1/connect", daemon.api))
        .json(&json!({ "addr": holder.addr.to_string() }))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!(
            "connect: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    // The daemon's own count of what sync brought; the book itself is read
    // through the API only after the memory, as a 20,000-order answer
    // costs memory of its own (kept by the allocator).
    let synced_name = "darkswap_orderbook_sync_changes_total";
    loop {
        let synced = process::metric(&http, daemon.api, synced_name)
            .await
            .unwrap_or(0.0);
        if synced >= holder.orders as f64 {
            break;
        }
        // The daemon's event queue (1,024) overflows while sync adds
        // thousands of orders, and the event that ends the sync (what the
        // counter counts) may be among those it drops. Then the sync is over
        // once the daemon is quiet; its book is checked below either way.
        let dropped = process::metric(&http, daemon.api, DROPPED_EVENTS)
            .await
            .unwrap_or(0.0);
        if dropped > 0.0
            && process::wait_quiet(pid, Duration::from_secs(2), Duration::from_secs(10)).await?
        {
            break;
        }
        if started.elapsed() > SYNC_TIMEOUT {
            let book = book_size(&http, &daemon).await.unwrap_or(0);
            let peers = process::metric(&http, daemon.api, "darkswap_peers_connected")
                .await
                .unwrap_or(0.0);
            bail!(
                "the daemon synced {synced} of {} orders in {SYNC_TIMEOUT:?} \
                 (its book holds {book}, it counts {peers} peers)",
                holder.orders
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let sync_time = started.elapsed();
    let full = settle(
        pid,
        "daemon with the book",
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await?;
    let book = book_size(&http, &daemon).await?;
    if book != holder.orders {
        bail!(
            "the daemon's book holds {book} orders, not {}",
            holder.orders
        );
    }
    let thousands = holder.orders as f64 / 1000.0;
    figures.add("daemon idle: RSS", "KiB", idle.rss_kib as f64);
    figures.add("daemon idle: RssAnon", "KiB", idle.anon_kib as f64);
    figures.add("daemon: orders in its book", "count", book as f64);
    figures.add(
        "daemon: RSS per 1000 orders",
        "KiB",
        per(full.rss_kib, idle.rss_kib, thousands),
    );
    figures.add(
        "daemon: RssAnon per 1000 orders",
        "KiB",
        per(full.anon_kib, idle.anon_kib, thousands),
    );
    figures.add(
        "daemon: time to sync the book",
        "s",
        sync_time.as_secs_f64(),
    );
    Ok(())
}

/// Orders in the daemon's book, both sides of the one pair the holder's
/// orders are on.
async fn book_size(http: &reqwest::Client, daemon: &Daemon) -> anyhow::Result<usize> {
    let book: Value = http
        .get(format!(
            "http://{}/v1/orderbook?base=rune:840000:3&quote=BTC",
            daemon.api
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let n = |side: &str| book[side].as_array().map_or(0, Vec::len);
    Ok(n("bids") + n("asks"))
}
