//! `burst`: issue 14's experiment with the release daemons. A hub daemon
//! and `--makers` maker daemons, each connected to the hub only, on
//! loopback; every maker creates `--per-maker` orders through its HTTP API,
//! `--rate` orders a second in all. Then each node's book is read every
//! second until all hold every order or `--settle` passes. Figures: what
//! each node held when the burst ended and at the end, how long the books
//! took to converge, and what the nodes' metrics say of the orders gossip
//! did not deliver (dropped by reason, brought by reconciliation).
//!
//! `--anti-entropy-interval 1h` shows what gossip alone delivers; the
//! default (30 s) shows the repair.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::{
    process::{self, Daemon},
    report::{Conditions, Figures, Report},
};

/// What to run.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub(crate) struct BurstArgs {
    /// Maker daemons besides the hub.
    #[arg(long, default_value_t = 10)]
    makers: usize,
    /// Orders each maker creates.
    #[arg(long, default_value_t = 1_000)]
    per_maker: u64,
    /// Orders a second, all makers together.
    #[arg(long, default_value_t = 180.0)]
    rate: f64,
    /// The daemons' `--anti-entropy-interval`.
    #[arg(long, default_value = "30s")]
    anti_entropy_interval: String,
    /// How long the makers wait, once the hub counts them all, before
    /// they start (gossipsub needs a heartbeat or two to build its mesh);
    /// 0 starts at once, as a maker that publishes on connect does.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// How long to wait after the burst for the books to converge.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// The daemon binary [default: darkswap next to this runner].
    #[arg(long)]
    daemon_bin: Option<std::path::PathBuf>,
}

/// Runs the measure.
pub(crate) async fn run(args: BurstArgs, quick: bool) -> anyhow::Result<Report> {
    let args = if quick {
        BurstArgs {
            makers: 2,
            per_maker: 20,
            settle: Duration::from_secs(30),
            ..args
        }
    } else {
        args
    };
    let conditions = Conditions::now();
    let bin = args
        .daemon_bin
        .clone()
        .unwrap_or_else(|| process::sibling_binary("darkswap"));
    let extra = [
        "--anti-entropy-interval".to_owned(),
        args.anti_entropy_interval.clone(),
    ];
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let hub = Daemon::start(&bin, &extra, &[])?;
    let status: Value = http
        .get(format!("http://{}/v1/status", hub.api))
        .send()
        .await?
        .json()
        .await?;
    let hub_addr = format!(
        "{}/p2p/{}",
        status["listen_addrs"][0].as_str().context("hub address")?,
        status["peer_id"].as_str().context("hub peer id")?
    );
    let mut makers = Vec::with_capacity(args.makers);
    for _ in 0..args.makers {
        let maker = Daemon::start(&bin, &extra, &[])?;
        let r = http
            .post(format!("http://{}/v1/connect", maker.api))
            .json(&json!({ "addr": hub_addr }))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "connect: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        makers.push(maker);
    }
    if !args.warmup.is_zero() {
        wait_peers(&http, &hub, args.makers).await?;
        tokio::time::sleep(args.warmup).await;
    }

    let total = args.makers as u64 * args.per_maker;
    let refused = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let period = Duration::from_secs_f64(args.makers as f64 / args.rate.max(0.001));
    let bursts = makers.iter().enumerate().map(|(m, maker)| {
        let (http, refused, api) = (http.clone(), refused.clone(), maker.api);
        async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for i in 0..args.per_maker {
                ticks.tick().await;
                let r = http
                    .post(format!("http://{api}/v1/orders"))
                    .json(&json!({
                        "side": "sell",
                        "base": "rune:840000:3",
                        "quote": "BTC",
                        "amount": 1_000 + m as u64 * 1_000_000 + i,
                        "price": 300_000,
                        "expires_in": 3600,
                    }))
                    .send()
                    .await;
                if !matches!(&r, Ok(r) if r.status() == reqwest::StatusCode::CREATED) {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    futures::future::join_all(bursts).await;
    let burst_time = start.elapsed();
    let nodes: Vec<&Daemon> = std::iter::once(&hub).chain(makers.iter()).collect();
    let at_burst_end = book_sizes(&http, &nodes).await?;
    let settle_start = Instant::now();
    let mut sizes = at_burst_end.clone();
    let mut converged = None;
    while settle_start.elapsed() < args.settle {
        if sizes.iter().all(|&n| n >= total) {
            converged = Some(settle_start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        sizes = book_sizes(&http, &nodes).await?;
    }

    let mut figures = Figures::default();
    figures.add(
        "orders created",
        "count",
        (total - refused.load(Ordering::Relaxed)) as f64,
    );
    figures.add("burst time", "s", burst_time.as_secs_f64());
    figures.add(
        "fewest orders on a node at burst end",
        "count",
        min(&at_burst_end),
    );
    figures.add("fewest orders on a node at the end", "count", min(&sizes));
    figures.add(
        "orders missing, all nodes, at the end",
        "count",
        sizes.iter().map(|&n| total.saturating_sub(n)).sum::<u64>() as f64,
    );
    figures.add(
        "time to converge after the burst",
        "s",
        converged.map_or(f64::NAN, |d| d.as_secs_f64()),
    );
    for (name, key) in [
        (
            "dropped: slow peer (all nodes)",
            r#"darkswap_messages_dropped_total{reason="slow_peer"}"#,
        ),
        (
            "dropped: publish failed (all nodes)",
            r#"darkswap_messages_dropped_total{reason="publish_failed"}"#,
        ),
        (
            "dropped: event queue full (all nodes)",
            r#"darkswap_messages_dropped_total{reason="event_queue_full"}"#,
        ),
        (
            "brought by reconciliation (all nodes)",
            "darkswap_orderbook_sync_changes_total",
        ),
    ] {
        let mut sum = 0.0;
        for node in &nodes {
            sum += process::metric(&http, node.api, key).await.unwrap_or(0.0);
        }
        figures.add(name, "count", sum);
    }
    Ok(Report {
        measure: "burst".to_owned(),
        conditions,
        params: serde_json::to_value(&args)?,
        figures: figures.finish(),
        series: vec![],
    })
}

fn min(sizes: &[u64]) -> f64 {
    sizes.iter().copied().min().unwrap_or(0) as f64
}

/// Waits until the hub counts `n` connected peers, at most 30 s.
async fn wait_peers(http: &reqwest::Client, hub: &Daemon, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let peers = process::metric(http, hub.api, "darkswap_peers_connected")
            .await
            .unwrap_or(0.0);
        if peers >= n as f64 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the hub counts {peers} peers, not {n}, after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The orders in each node's book (the one pair the makers use).
async fn book_sizes(http: &reqwest::Client, nodes: &[&Daemon]) -> anyhow::Result<Vec<u64>> {
    let mut sizes = Vec::with_capacity(nodes.len());
    for node in nodes {
        let book: Value = http
            .get(format!(
                "http://{}/v1/orderbook?base=rune:840000:3&quote=BTC",
                node.api
            ))
            .send()
            .await?
            .json()
            .await?;
        let n = |side: &str| book[side].as_array().map_or(0, |a| a.len() as u64);
        sizes.push(n("bids") + n("asks"));
    }
    Ok(sizes)
}
