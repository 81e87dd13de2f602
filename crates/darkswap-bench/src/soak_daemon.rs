//! `soak-daemon`: a daemon under create/cancel churn through its HTTP API.
//! `concurrency` workers each create an own order (`POST /v1/orders`) and
//! cancel it (`DELETE /v1/orders/{id}`), again and again, for a duration or
//! a number of pairs; the daemon's memory is sampled throughout. Every
//! cancel leaves tombstones (in the node's book and in the daemon's store)
//! that must expire: run it longer than the order TTL to see them do so.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;
use tokio_util::task::TaskTracker;

use crate::{
    process::{self, Daemon},
    relay_config::parse_env,
    report::{Conditions, Figures, Report, quantile},
    sampler::{self, SoakTimes},
};

/// Flags of `soak-daemon`.
#[derive(Debug, Clone, Args, serde::Serialize)]
pub(crate) struct SoakDaemonArgs {
    #[command(flatten)]
    times: SoakTimes,
    /// Stop after this many create/cancel pairs (or at the duration,
    /// whichever comes first).
    #[arg(long)]
    pairs: Option<u64>,
    /// Pairs per second, all workers together (0: as fast as the daemon
    /// answers). A fixed rate makes runs on different machines comparable.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Workers creating and cancelling at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// `expires_in` of each order, seconds. The node's book keeps a
    /// cancelled order's tombstone until it would have expired, so the
    /// default is short enough for the tombstones to reach their steady
    /// state within the default warm-up.
    #[arg(long, default_value_t = 120)]
    expires_in: u64,
    /// The daemon's `--order-ttl` (its store keeps tombstones this long).
    #[arg(long, default_value = "2m")]
    order_ttl: String,
    /// The daemon's `--order-refresh` (shorter than `--order-ttl`).
    #[arg(long, default_value = "30s")]
    order_refresh: String,
    /// The daemon binary [default: darkswap next to this runner].
    #[arg(long)]
    daemon_bin: Option<PathBuf>,
    /// Environment for the daemon, `KEY=VALUE`, repeatable.
    #[arg(long = "daemon-env", value_parser = parse_env)]
    daemon_env: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct Stats {
    pairs: AtomicU64,
    failures: AtomicU64,
}

/// Runs the measure.
pub(crate) async fn run(mut args: SoakDaemonArgs, quick: bool) -> anyhow::Result<Report> {
    if quick {
        args.times = SoakTimes::quick();
    }
    let conditions = Conditions::now();
    let bin = args
        .daemon_bin
        .clone()
        .unwrap_or_else(|| process::sibling_binary("darkswap"));
    let env: Vec<(&str, &str)> = args
        .daemon_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let extra = [
        "--order-ttl".to_owned(),
        args.order_ttl.clone(),
        "--order-refresh".to_owned(),
        args.order_refresh.clone(),
    ];
    let daemon = Daemon::start(&bin, &extra, &env)?;
    let pid = daemon.pid();
    process::wait_quiet(pid, Duration::from_secs(1), Duration::from_secs(15)).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = format!("http://{}", daemon.api);
    let stats = Arc::new(Stats::default());
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = Instant::now();
    let deadline = start + args.times.duration;
    let workers = TaskTracker::new();
    let workers_n = args.concurrency.max(1);
    // Each worker keeps its share of the rate.
    let period = (args.rate > 0.0).then(|| Duration::from_secs_f64(workers_n as f64 / args.rate));
    for w in 0..workers_n {
        let (http, base, stats, latencies) =
            (http.clone(), base.clone(), stats.clone(), latencies.clone());
        let (limit, expires_in) = (args.pairs, args.expires_in);
        workers.spawn(async move {
            let mut i = 0u64;
            let mut ticks = period.map(|p| {
                let mut t = tokio::time::interval(p);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            while Instant::now() < deadline
                && limit.is_none_or(|l| stats.pairs.load(Ordering::Relaxed) < l)
            {
                if let Some(t) = ticks.as_mut() {
                    t.tick().await;
                }
                i += 1;
                let t = Instant::now();
                match pair(&http, &base, w, i, expires_in).await {
                    Ok(()) => {
                        stats.pairs.fetch_add(1, Ordering::Relaxed);
                        let mut l = latencies.lock().unwrap_or_else(|e| e.into_inner());
                        l.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    Err(e) => {
                        if stats.failures.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("soak-daemon: a pair failed: {e:#}");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    workers.close();
    let series = sampler::sample(pid, start, &args.times, &workers, || {
        let pairs = stats.pairs.load(Ordering::Relaxed) as f64;
        async move { pairs }
    })
    .await?;
    let churn_time = start.elapsed();
    process::wait_quiet(pid, Duration::from_secs(3), Duration::from_secs(60)).await?;
    let after = process::usage(pid)?;
    let db_kib = std::fs::read_dir(daemon.dir.path())
        .context("the daemon's data dir")?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("orders.sqlite3")
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum::<u64>() as f64
        / 1024.0;

    let mut figures = Figures::default();
    sampler::soak_figures(&mut figures, &series, &args.times, after);
    let pairs = stats.pairs.load(Ordering::Relaxed) as f64;
    let latencies = latencies.lock().unwrap_or_else(|e| e.into_inner()).clone();
    figures.add("create/cancel pairs", "count", pairs);
    figures.add("pairs per second", "1/s", pairs / churn_time.as_secs_f64());
    figures.add(
        "pairs failed",
        "count",
        stats.failures.load(Ordering::Relaxed) as f64,
    );
    figures.add("pair p50", "ms", quantile(&latencies, 0.5));
    figures.add("pair p99", "ms", quantile(&latencies, 0.99));
    figures.add("database files at the end", "KiB", db_kib);
    Ok(Report {
        measure: "soak-daemon".to_owned(),
        conditions,
        params: serde_json::to_value(&args)?,
        figures: figures.finish(),
        series,
    })
}

/// Creates one own order and cancels it.
async fn pair(
    http: &reqwest::Client,
    base: &str,
    worker: usize,
    i: u64,
    expires_in: u64,
) -> anyhow::Result<()> {
    let created = http
        .post(format!("{base}/v1/orders"))
        .json(&json!({
            "side": if i.is_multiple_of(2) { "buy" } else { "sell" },
            "base": "rune:840000:3",
            "quote": "BTC",
            // Distinct orders: the amount carries the worker and the round.
            "amount": 1_000 + (worker as u64) * 1_000_000_000 + i,
            "price": 300_000,
            "expires_in": expires_in,
        }))
        .send()
        .await
        .context("POST /v1/orders")?;
    if created.status() != reqwest::StatusCode::CREATED {
        bail!(
            "POST /v1/orders: {} {}",
            created.status(),
            created.text().await.unwrap_or_default()
        );
    }
    let order: serde_json::Value = created.json().await.context("the created order")?;
    let id = order["id"].as_str().context("the order's id")?;
    let cancelled = http
        .delete(format!("{base}/v1/orders/{id}"))
        .send()
        .await
        .context("DELETE /v1/orders/{id}")?;
    if cancelled.status() != reqwest::StatusCode::NO_CONTENT {
        bail!(
            "DELETE /v1/orders/{id}: {} {}",
            cancelled.status(),
            cancelled.text().await.unwrap_or_default()
        );
    }
    Ok(())
}
