//! `join`: how long a node joining a network takes to hold the whole book,
//! and what it exchanges. Two real SDK nodes in this process on loopback
//! TCP: one holds `--orders` orders (signed by makers of 1,000 orders each,
//! put in its book without gossip), the other dials it; the time runs from
//! the dial until the joiner reports the end of its reconciliation, which
//! it does once every order is verified and in its book.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use darkswap_p2p::{
    KadMode, Network, NetworkConfig, NetworkEvent, OrderbookConfig, SyncConfig,
    core::multiaddr::Protocol,
    proto::{OrderCreate, OrderbookResponse},
};

use crate::report::{Conditions, Figures, Report};

/// How long one join may take before the measure gives up.
const JOIN_TIMEOUT: Duration = Duration::from_secs(600);

/// What to measure.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub(crate) struct JoinArgs {
    /// Book sizes to join, each measured in turn.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    orders: Vec<usize>,
    /// Rounds per size.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Items the joiner asks for in one fetch (the node's default when
    /// absent).
    #[arg(long)]
    fetch_batch: Option<usize>,
    /// Fetches the joiner keeps in flight (the node's default when absent).
    #[arg(long)]
    fetch_pipeline: Option<usize>,
}

/// Runs the measure.
pub(crate) async fn run(args: JoinArgs, quick: bool) -> anyhow::Result<Report> {
    let args = if quick {
        JoinArgs {
            orders: vec![1_000],
            rounds: 1,
            ..args
        }
    } else {
        args
    };
    let conditions = Conditions::now();
    let mut figures = Figures::default();
    for &orders in &args.orders {
        let creates = darkswap_testkit::signed_creates(orders, 1_000);
        for round in 0..args.rounds {
            eprintln!("join: {orders} orders, round {}/{}", round + 1, args.rounds);
            let (took, cpu, bytes) = one_join(&creates, &args).await?;
            let goal = (orders == 100_000).then_some("< 1");
            figures.add_with_goal(
                &format!("join {orders}: time"),
                "s",
                goal,
                took.as_secs_f64(),
            );
            figures.add(
                &format!("join {orders}: CPU time (both nodes)"),
                "s",
                cpu.as_secs_f64(),
            );
            figures.add(
                &format!("join {orders}: bytes exchanged"),
                "MiB",
                bytes as f64 / (1024.0 * 1024.0),
            );
            figures.add(
                &format!("join {orders}: orders per second"),
                "1/s",
                orders as f64 / took.as_secs_f64(),
            );
        }
    }
    Ok(Report {
        measure: "join".to_owned(),
        conditions,
        params: serde_json::to_value(&args)?,
        figures: figures.finish(),
        series: vec![],
    })
}

fn config(orders: usize, args: &JoinArgs) -> NetworkConfig {
    let mut sync = SyncConfig::default();
    if let Some(batch) = args.fetch_batch {
        sync = sync.with_fetch_batch(batch);
    }
    if let Some(fetches) = args.fetch_pipeline {
        sync = sync.with_fetch_pipeline(fetches);
    }
    NetworkConfig::default()
        .with_sync(sync)
        .with_mdns(false)
        .with_kad_mode(KadMode::Server)
        .with_connection_timeout(Duration::from_secs(120))
        // Room for every change event, so the one the measure waits for
        // is not dropped from a full queue.
        .with_event_buffer(orders + 1024)
        .with_orderbook(OrderbookConfig {
            max_orders: orders.max(OrderbookConfig::default().max_orders),
            ..OrderbookConfig::default()
        })
}

/// One join: a node holding `creates`, a fresh one dialing it.
async fn one_join(
    creates: &[OrderCreate],
    args: &JoinArgs,
) -> anyhow::Result<(Duration, Duration, u64)> {
    let holder = Network::new(config(creates.len(), args)).await?;
    let addr = holder.listen_on("/ip4/127.0.0.1/tcp/0").await?;
    for chunk in creates.chunks(5_000) {
        let (_, rejected) = holder
            .orderbook()
            .import(OrderbookResponse {
                orders: chunk.to_vec(),
                ..Default::default()
            })
            .await?;
        anyhow::ensure!(rejected.is_empty(), "the holder refused {rejected:?}");
    }
    let mut joiner = Network::new(config(creates.len(), args)).await?;
    let holder_id = holder.local_peer_id();
    let start = Instant::now();
    let cpu_start = process_cpu()?;
    joiner.dial(addr.with(Protocol::P2p(holder_id))).await?;
    let wait = async {
        loop {
            match joiner.next_event().await {
                Some(NetworkEvent::OrderbookSynced {
                    peer_id,
                    changes,
                    bytes,
                    ..
                }) if peer_id == holder_id => return Ok((changes, bytes)),
                Some(_) => {}
                None => anyhow::bail!("the joiner stopped"),
            }
        }
    };
    let (changes, bytes) = tokio::time::timeout(JOIN_TIMEOUT, wait)
        .await
        .context("join timed out")??;
    let took = start.elapsed();
    // Both nodes run in this process: what it used is what the join cost
    // (a machine busy with other work slows the time, not this).
    let cpu = process_cpu()?.saturating_sub(cpu_start);
    anyhow::ensure!(
        changes == creates.len(),
        "the joiner got {changes} of {} orders",
        creates.len()
    );
    joiner.shutdown().await?;
    holder.shutdown().await?;
    Ok((took, cpu, bytes))
}

/// User and system CPU time this process has used.
fn process_cpu() -> anyhow::Result<Duration> {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
    let secs = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    Ok(secs(usage.user_time()) + secs(usage.system_time()))
}
