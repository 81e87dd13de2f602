//! `darkswap-bench`: runs the release binaries of the relay and the daemon
//! as real processes on loopback, loads them with real clients, and reads
//! their memory and CPU time from `/proc`. Each measure prints a table
//! (median and spread over its rounds) and writes JSON. Not part of
//! `cargo test`: see `docs/benchmarks.md` for what each measure means and
//! the figures measured.
//!
//! ```text
//! cargo build --release -p darkswap-relay -p darkswap-cli -p darkswap-bench
//! target/release/darkswap-bench idle-signaling --clients 2000
//! target/release/darkswap-bench soak-relay --duration 10m
//! target/release/darkswap-bench soak-daemon --duration 10m
//! target/release/darkswap-bench ingest
//! target/release/darkswap-bench join
//! target/release/darkswap-bench burst
//! ```

mod burst;
mod client;
mod hop_client;
mod idle_signaling;
mod ingest;
mod join;
mod memory;
mod process;
mod relay_config;
mod report;
mod sampler;
mod soak_daemon;
mod soak_relay;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Benchmarks of the DarkSwap relay and daemon (memory per client, soaks).
#[derive(Debug, Parser)]
#[command(name = "darkswap-bench")]
struct Cli {
    /// Where to write the JSON report [default: bench-MEASURE.json].
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// A few seconds and few clients: checks that the measure runs, not
    /// what it measures.
    #[arg(long, global = true)]
    quick: bool,
    #[command(subcommand)]
    measure: Measure,
}

#[derive(Debug, Subcommand)]
enum Measure {
    /// Relay memory and CPU per registered, idle signaling client.
    IdleSignaling(idle_signaling::IdleArgs),
    /// Relay memory under signaling and WebSocket-circuit churn.
    SoakRelay(soak_relay::SoakRelayArgs),
    /// Daemon memory under create/cancel churn through its HTTP API.
    SoakDaemon(soak_daemon::SoakDaemonArgs),
    /// Orders verified and applied per second, against raw Ed25519
    /// verification (in process).
    Ingest(ingest::IngestArgs),
    /// Time and bytes for a node to join a network holding 10,000 and
    /// 100,000 orders (in process, on loopback).
    Join(join::JoinArgs),
    /// Ten maker daemons burst 10,000 orders through a hub: what each book
    /// holds, how long they take to converge, what the metrics say.
    Burst(burst::BurstArgs),
    /// Memory of the idle relay, per reservation, per circuit, per idle
    /// signaling socket; of the idle daemon and per 1,000 orders.
    Memory(memory::MemoryArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let fds = process::raise_fd_limit()?;
    eprintln!("open-file limit: {fds}");
    let (name, report) = match cli.measure {
        Measure::IdleSignaling(a) => ("idle-signaling", idle_signaling::run(a, cli.quick).await?),
        Measure::SoakRelay(a) => ("soak-relay", soak_relay::run(a, cli.quick).await?),
        Measure::SoakDaemon(a) => ("soak-daemon", soak_daemon::run(a, cli.quick).await?),
        Measure::Ingest(a) => ("ingest", ingest::run(a, cli.quick)?),
        Measure::Join(a) => ("join", join::run(a, cli.quick).await?),
        Measure::Burst(a) => ("burst", burst::run(a, cli.quick).await?),
        Measure::Memory(a) => ("memory", memory::run(a, cli.quick).await?),
    };
    report.print();
    let path = cli
        .json
        .unwrap_or_else(|| PathBuf::from(format!("bench-{name}.json")));
    report.write_json(&path)?;
    Ok(())
}
