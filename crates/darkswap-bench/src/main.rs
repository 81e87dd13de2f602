//! `darkswap-bench`: the benchmark runner (issue 18). It runs the release
//! binaries of the relay and the daemon, SDK nodes and the reference tools
//! (rust-libp2p with default settings, iperf3, coturn, the PeerJS server)
//! as real processes on loopback or in network namespaces of its own,
//! measures ours and the reference in the same rounds, interleaved, and
//! prints each figure's median, spread and ratio to its reference. Writes
//! JSON; `suite` (or `--record`) keeps the results in
//! `docs/benchmarks.json` and regenerates `docs/benchmarks.md`. Not part of
//! `cargo test`: `scripts/bench.sh` builds and runs it.
//!
//! ```text
//! scripts/bench.sh                      # the whole suite, ~30 min on 2 cores
//! scripts/bench.sh --only throughput    # one measure of the suite
//! target/release/darkswap-bench --record e2e --rounds 9
//! target/release/darkswap-bench render  # docs from docs/benchmarks.json
//! ```

mod burst;
mod client;
mod coturn;
mod delay_queue;
mod e2e;
mod gossip;
mod holepunch;
mod hop_client;
mod idle_signaling;
mod ingest;
mod join;
mod memory;
mod netns;
mod peerjs;
mod perf_peer;
mod process;
mod record;
mod relay_config;
mod report;
mod sampler;
mod signaling;
mod signaling_load;
mod soak_daemon;
mod soak_relay;
mod throughput;
mod tool_install;
mod trade;
mod ws_circuits;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::{record::Record, report::Report};

/// Benchmarks of the DarkSwap stack side by side with the tools people
/// would pick instead (rust-libp2p defaults, iperf3, coturn, the PeerJS
/// server), and of its memory.
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
    /// Keep the report in docs/benchmarks.json and regenerate the results
    /// of docs/benchmarks.md (`suite` always does, unless --quick).
    #[arg(long, global = true)]
    record: bool,
    /// The directory of benchmarks.json and benchmarks.md [default: docs/
    /// of the git work tree here].
    #[arg(long, global = true)]
    docs: Option<PathBuf>,
    #[command(subcommand)]
    measure: Measure,
}

/// The measures `suite` runs, in this order: issue 18's P1..P9, memory.
const SUITE: &[&str] = &[
    "throughput",
    "ws-circuits",
    "signaling",
    "gossip",
    "e2e",
    "holepunch",
    "join",
    "ingest",
    "trade",
    "memory",
];

/// Which measures `suite` runs.
#[derive(Debug, Clone, clap::Args)]
struct SuiteArgs {
    /// Only these measures (comma-separated names of subcommands).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// All but these.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
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
    /// P1 and P2: /perf/1.0.0 throughput of ours against rust-libp2p with
    /// default settings and iperf3, on loopback and at 63 ms RTT, TCP and
    /// QUIC; relayed against direct.
    Throughput(throughput::ThroughputArgs),
    /// P3: messages and bytes a second through our WebSocket circuits
    /// against coturn relaying the same load.
    WsCircuits(ws_circuits::WsCircuitsArgs),
    /// P4: registered clients, offer-to-answer latency and message rate of
    /// our signaling against the PeerJS server under the same load.
    Signaling(signaling::SignalingArgs),
    /// P5: a hundred SDK nodes gossip signed orders over 20 ms links: p99
    /// delivery against a 3-hop path, duplicates per message.
    Gossip(gossip::GossipArgs),
    /// P6: end-to-end encryption against the raw AEAD it is built on.
    E2e(e2e::E2eArgs),
    /// P7: relayed → direct (DCUtR) between two daemons behind NAT routers
    /// in the NAT lab at 0, 20 and 63 ms RTT, against 3 RTT plus a direct
    /// handshake without NAT.
    Holepunch(holepunch::HolepunchArgs),
    /// P9: proposal to finalized PSBT between two SDK nodes at 0 and 63 ms
    /// RTT, in round trips, signing apart.
    Trade(trade::TradeArgs),
    /// Memory of the idle relay, per reservation, per circuit, per idle
    /// signaling socket; of the idle daemon and per 1,000 orders.
    Memory(memory::MemoryArgs),
    /// Every measure of issue 18, one after another (or those named with
    /// --only), each recorded in docs/benchmarks.json and
    /// docs/benchmarks.md as it completes; ~30 minutes on 2 cores.
    Suite(SuiteArgs),
    /// Regenerates the results of docs/benchmarks.md from
    /// docs/benchmarks.json (no measuring), after keeping the reports of
    /// the JSON files given (a measure's `--json` output).
    Render {
        /// Reports to keep first.
        reports: Vec<PathBuf>,
    },
    /// One end of a perf run (used by `throughput`).
    #[command(hide = true)]
    PerfPeer(perf_peer::PerfPeerArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let fds = process::raise_fd_limit()?;
    let docs = match &cli.docs {
        Some(d) => d.clone(),
        None => docs_dir(),
    };
    match cli.measure {
        // A child of `throughput`: no report of its own.
        Measure::PerfPeer(a) => perf_peer::run(a).await,
        Measure::Render { reports } => {
            for path in reports {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("read {}", path.display()))?;
                let report: Report = serde_json::from_str(&text)
                    .with_context(|| format!("parse {}", path.display()))?;
                Record::keep(&docs, &report)?;
            }
            let record = Record::load(&docs.join("benchmarks.json"))?;
            record.render_into(&docs.join("benchmarks.md"))
        }
        Measure::Suite(a) => {
            eprintln!("open-file limit: {fds}");
            suite(a, cli.quick, &docs).await
        }
        measure => {
            eprintln!("open-file limit: {fds}");
            let report = run_measure(measure, cli.quick).await?;
            report.print();
            let path = cli
                .json
                .unwrap_or_else(|| PathBuf::from(format!("bench-{}.json", report.measure)));
            report.write_json(&path)?;
            if cli.record && !cli.quick {
                Record::keep(&docs, &report)?;
            }
            Ok(())
        }
    }
}

async fn run_measure(measure: Measure, quick: bool) -> anyhow::Result<Report> {
    match measure {
        Measure::IdleSignaling(a) => idle_signaling::run(a, quick).await,
        Measure::SoakRelay(a) => soak_relay::run(a, quick).await,
        Measure::SoakDaemon(a) => soak_daemon::run(a, quick).await,
        Measure::Ingest(a) => ingest::run(a, quick),
        Measure::Join(a) => join::run(a, quick).await,
        Measure::Burst(a) => burst::run(a, quick).await,
        Measure::Throughput(a) => throughput::run(a, quick).await,
        Measure::E2e(a) => e2e::run(a, quick),
        Measure::WsCircuits(a) => ws_circuits::run(a, quick).await,
        Measure::Signaling(a) => signaling::run(a, quick).await,
        Measure::Gossip(a) => gossip::run(a, quick).await,
        Measure::Holepunch(a) => holepunch::run(a, quick),
        Measure::Trade(a) => trade::run(a, quick).await,
        Measure::Memory(a) => memory::run(a, quick).await,
        Measure::Suite(_) | Measure::Render { .. } | Measure::PerfPeer(_) => {
            anyhow::bail!("not a measure")
        }
    }
}

/// Runs the suite's measures with their defaults, recording each as it
/// completes, so a failure late in the run keeps what came before.
async fn suite(args: SuiteArgs, quick: bool, docs: &Path) -> anyhow::Result<()> {
    let names: Vec<&str> = SUITE
        .iter()
        .copied()
        .filter(|n| args.only.is_empty() || args.only.iter().any(|o| o == n))
        .filter(|n| !args.skip.iter().any(|s| s == n))
        .collect();
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    for name in &names {
        eprintln!("\n=== {name} ({:.0?} into the suite)", started.elapsed());
        let flags: &[&str] = if quick { &["--quick"] } else { &[] };
        let cli = Cli::try_parse_from(["darkswap-bench", name].iter().chain(flags))
            .with_context(|| format!("{name} is not a measure of this runner"))?;
        let t = std::time::Instant::now();
        match run_measure(cli.measure, quick).await {
            Ok(report) => {
                report.print();
                println!("{name}: {:.0?}", t.elapsed());
                report.write_json(Path::new(&format!("bench-{name}.json")))?;
                if !quick && let Err(e) = Record::keep(docs, &report) {
                    eprintln!("{name}: not recorded: {e:#}");
                    failed.push(format!("{name}: not recorded: {e:#}"));
                }
            }
            Err(e) => {
                eprintln!("{name} FAILED: {e:#}");
                failed.push(format!("{name}: {e:#}"));
            }
        }
    }
    println!(
        "\nsuite: {} measures in {:.0?}",
        names.len(),
        started.elapsed()
    );
    if !failed.is_empty() {
        anyhow::bail!("{} measures failed:\n{}", failed.len(), failed.join("\n"));
    }
    Ok(())
}

/// `docs/` of the git work tree the runner is started in, else `./docs`.
fn docs_dir() -> PathBuf {
    std::process::Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("docs"))
        .unwrap_or_else(|| PathBuf::from("docs"))
}
