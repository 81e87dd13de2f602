//! `join`: how long a node joining a network takes to hold the whole book,
//! and what it exchanges. Two real SDK nodes in this process on loopback
//! TCP: one holds `--orders` orders (signed by makers of 1,000 orders each,
//! put in its book without gossip), the other dials it; the time runs from
//! the dial until the joiner reports the end of its reconciliation, which
//! it does once every order is verified and in its book.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use darkswap_p2p::{
    KadMode, Network, NetworkConfig, NetworkEvent, OrderbookConfig,
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
}

/// Runs the measure.
pub(crate) async fn run(args: JoinArgs, quick: bool) -> anyhow::Result<Report> {
    let args = if quick {
        JoinArgs {
            orders: vec![1_000],
            rounds: 1,
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
            let (took, bytes) = one_join(&creates).await?;
            let goal = (orders == 100_000).then_some("< 1");
            figures.add_with_goal(
                &format!("join {orders}: time"),
                "s",
                goal,
                took.as_secs_f64(),
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
        measure: "join",
        conditions,
        params: serde_json::to_value(&args)?,
        figures: figures.finish(),
        series: vec![],
    })
}

fn config(orders: usize) -> NetworkConfig {
    NetworkConfig::default()
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
async fn one_join(creates: &[OrderCreate]) -> anyhow::Result<(Duration, u64)> {
    let holder = Network::new(config(creates.len())).await?;
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
    let mut joiner = Network::new(config(creates.len())).await?;
    let holder_id = holder.local_peer_id();
    let start = Instant::now();
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
    anyhow::ensure!(
        changes == creates.len(),
        "the joiner got {changes} of {} orders",
        creates.len()
    );
    joiner.shutdown().await?;
    holder.shutdown().await?;
    Ok((took, bytes))
}
