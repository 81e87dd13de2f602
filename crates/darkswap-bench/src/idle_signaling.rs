//! `idle-signaling`: what an idle, registered signaling client costs the
//! relay. Each round starts a fresh relay, registers `clients` WebSocket
//! clients (real signed registrations, `concurrency` at a time, spread over
//! loopback source addresses), holds them idle, then closes them, and reads
//! the relay's resident memory and CPU time at each step from `/proc`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt;
use tokio::sync::Mutex;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    client::{self, Sources},
    process::{self, Relay, Usage, metric, usage},
    relay_config::{RelayArgs, relay_toml},
    report::{Conditions, Figures, Report, quantile},
    signaling_load::{self as load, Server},
};

/// Default of `--concurrency`.
const CONCURRENCY: usize = 32;
/// Default of `--sources`.
const SOURCES: u8 = 8;
/// Default of `--register-timeout`.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags of `idle-signaling`.
#[derive(Debug, Clone, Args, serde::Serialize)]
pub(crate) struct IdleArgs {
    /// Registered clients to hold.
    #[arg(long, default_value_t = 2000)]
    clients: usize,
    /// Rounds, each with a fresh relay (the table shows median and spread).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Registrations in flight at once.
    #[arg(long, default_value_t = CONCURRENCY)]
    concurrency: usize,
    /// Loopback source addresses (127.0.0.1..=127.0.0.N).
    #[arg(long, default_value_t = SOURCES)]
    sources: u8,
    /// Bound on one client's connection and registration (a relay busy
    /// broadcasting to thousands of peers registers slowly).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    register_timeout: Duration,
    /// How long the clients stay idle before the memory is read.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    hold: Duration,
    #[command(flatten)]
    relay: RelayArgs,
}

impl IdleArgs {
    /// One round's parameters for another measure (`memory`): `clients`
    /// held `hold` on a relay from `relay`, the other flags at their
    /// defaults.
    pub(crate) fn for_round(clients: usize, hold: Duration, relay: RelayArgs) -> Self {
        IdleArgs {
            clients,
            rounds: 1,
            concurrency: CONCURRENCY,
            sources: SOURCES,
            register_timeout: REGISTER_TIMEOUT,
            hold,
            relay,
        }
    }
}

/// What one round measured.
#[derive(Debug, Clone)]
pub(crate) struct IdleRound {
    /// Registration latencies of the clients registered, ms.
    pub(crate) latencies: Vec<f64>,
    pub(crate) failures: usize,
    /// Peers the relay's metric counted with the clients registered.
    pub(crate) peers: f64,
    /// The relay idle before the clients came.
    pub(crate) before: Usage,
    /// Once the registrations' backlog was done.
    pub(crate) registered: Usage,
    /// After holding the clients idle for `hold`.
    pub(crate) held: Usage,
    /// Once they closed and the relay went quiet.
    pub(crate) closed: Usage,
    pub(crate) registration_time: Duration,
}

impl IdleRound {
    /// Clients registered (at least 1, to divide by).
    pub(crate) fn clients(&self) -> f64 {
        self.latencies.len().max(1) as f64
    }

    /// RSS per idle client, KiB.
    pub(crate) fn rss_per_client(&self) -> f64 {
        (self.held.rss_kib as f64 - self.before.rss_kib as f64) / self.clients()
    }

    /// `RssAnon` (the heap) per idle client, KiB.
    pub(crate) fn anon_per_client(&self) -> f64 {
        (self.held.anon_kib as f64 - self.before.anon_kib as f64) / self.clients()
    }
}

/// Runs the measure.
pub(crate) async fn run(args: IdleArgs, quick: bool) -> anyhow::Result<Report> {
    let args = if quick {
        IdleArgs {
            clients: args.clients.min(200),
            rounds: 1,
            hold: Duration::from_secs(1),
            ..args
        }
    } else {
        args
    };
    let conditions = Conditions::now();
    let mut figures = Figures::default();
    for round in 0..args.rounds {
        eprintln!(
            "idle-signaling: round {}/{}, {} clients",
            round + 1,
            args.rounds,
            args.clients
        );
        one_round(&args, &mut figures).await?;
    }
    Ok(Report {
        measure: "idle-signaling".to_owned(),
        conditions,
        params: serde_json::to_value(&args)?,
        figures: figures.finish(),
        series: vec![],
    })
}

async fn one_round(args: &IdleArgs, figures: &mut Figures) -> anyhow::Result<()> {
    let r = measure_round(args).await?;
    let n = r.clients();
    let kib = |a: u64, b: u64| a as f64 - b as f64;
    figures.add("clients registered", "count", r.latencies.len() as f64);
    figures.add("registrations failed", "count", r.failures as f64);
    figures.add("peers the relay counts", "count", r.peers);
    figures.add("relay RSS before", "MiB", r.before.rss_kib as f64 / 1024.0);
    figures.add(
        "relay RSS with the clients",
        "MiB",
        r.held.rss_kib as f64 / 1024.0,
    );
    figures.add(
        "relay RSS after they closed",
        "MiB",
        r.closed.rss_kib as f64 / 1024.0,
    );
    figures.add_with_goal(
        "RSS per idle client",
        "KiB",
        Some("<= 8"),
        r.rss_per_client(),
    );
    figures.add("heap (RssAnon) per idle client", "KiB", r.anon_per_client());
    figures.add(
        "RSS kept per client after close",
        "KiB",
        kib(r.closed.rss_kib, r.before.rss_kib) / n,
    );
    let cpu = r.registered.cpu_secs - r.before.cpu_secs;
    figures.add("registration CPU", "CPU-s", cpu);
    figures.add(
        "registration CPU per 1000 clients",
        "CPU-s",
        1000.0 * cpu / n,
    );
    figures.add(
        "registration time (all)",
        "s",
        r.registration_time.as_secs_f64(),
    );
    figures.add("registration p50", "ms", quantile(&r.latencies, 0.5));
    figures.add("registration p99", "ms", quantile(&r.latencies, 0.99));
    Ok(())
}

/// One round: a fresh relay, `args.clients` registered and held idle, then
/// closed; the relay's usage at each step.
pub(crate) async fn measure_round(args: &IdleArgs) -> anyhow::Result<IdleRound> {
    let relay = args.relay.start(&relay_toml(args.clients + 16, 256))?;
    let pid = relay.pid();
    let http = reqwest::Client::new();
    process::wait_quiet(pid, Duration::from_secs(1), Duration::from_secs(15)).await?;
    let before = usage(pid)?;

    let sources = Sources::new(args.sources);
    let server = relay.signaling;
    let stop = CancellationToken::new();
    let holders = TaskTracker::new();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(args.clients)));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let start = Instant::now();
    futures::stream::iter(0..args.clients)
        .for_each_concurrent(args.concurrency.max(1), |i| {
            let (stop, holders) = (stop.clone(), holders.clone());
            let (latencies, failures) = (latencies.clone(), failures.clone());
            let timeout = args.register_timeout;
            async move {
                match client::register(server, sources.get(i), timeout).await {
                    Ok(r) => {
                        latencies.lock().await.push(r.took.as_secs_f64() * 1e3);
                        holders.spawn(load::idle(Server::Ours, r.ws, stop));
                    }
                    Err(e) => failures.lock().await.push(format!("{e:#}")),
                }
            }
        })
        .await;
    let registration_time = start.elapsed();
    // The relay's backlog (broadcasts to every peer) counts as registering.
    process::wait_quiet(pid, Duration::from_secs(2), Duration::from_secs(300)).await?;
    let registered = usage(pid)?;
    let peers = metric(&http, relay.metrics, "darkswap_relay_signaling_peers").await?;
    tokio::time::sleep(args.hold).await;
    let held = usage(pid)?;

    stop.cancel();
    holders.close();
    if tokio::time::timeout(Duration::from_secs(60), holders.wait())
        .await
        .is_err()
    {
        eprintln!("idle-signaling: some clients did not close within 60 s");
    }
    wait_for_metric(&http, &relay, "darkswap_relay_signaling_peers", 0.0).await?;
    process::wait_quiet(pid, Duration::from_secs(2), Duration::from_secs(60)).await?;
    let closed = usage(pid)?;

    let latencies = latencies.lock().await.clone();
    let failures = failures.lock().await.clone();
    if let Some(first) = failures.first() {
        eprintln!(
            "idle-signaling: {} registrations failed, first: {first}",
            failures.len()
        );
    }
    Ok(IdleRound {
        latencies,
        failures: failures.len(),
        peers,
        before,
        registered,
        held,
        closed,
        registration_time,
    })
}

/// Waits until the relay's metric `name` reads `value`, at most 60 s.
pub(crate) async fn wait_for_metric(
    http: &reqwest::Client,
    relay: &Relay,
    name: &str,
    value: f64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = metric(http, relay.metrics, name).await?;
        if now == value {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(anyhow::anyhow!("{name} is {now}, not {value}, after 60 s"))
                .context("waiting for the relay");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
