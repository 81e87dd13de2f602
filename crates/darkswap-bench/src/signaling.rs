//! `signaling`: our relay's `/signaling` against the PeerJS server under
//! the same load. Per round and server (alternating which goes first): a
//! fresh server; `clients` clients register (`concurrency` at a time) and
//! stay (memory per registered client, as `idle-signaling` reads it); then
//! `pairs` of them exchange offers and answers (the rest stay idle
//! meanwhile): offer → answer latency at each of `--rates` for
//! `phase` each, then a ladder of rising rates until one is not sustained
//! (the highest sustained is the server's message rate).

use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use tokio::sync::{Mutex, mpsc, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    client::Sources,
    peerjs::{self, PeerJs},
    process::{self, usage},
    relay_config::{RelayArgs, relay_toml},
    report::{Conditions, Figures, Report, quantile},
    signaling_load::{self as load, Event, Phase, Server},
};

/// Flags of `signaling`.
#[derive(Debug, Clone, Args, serde::Serialize)]
pub(crate) struct SignalingArgs {
    /// Rounds, each with fresh servers.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Registered clients each server holds.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Registrations in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Pairs of clients exchanging offers and answers (the rest idle).
    #[arg(long, default_value_t = 1000)]
    pairs: usize,
    /// Offer rates (offers a second, all pairs together) at which latency
    /// is measured.
    #[arg(long, value_delimiter = ',', default_value = "200,1000")]
    rates: Vec<u32>,
    /// How long each latency rate runs.
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    phase: Duration,
    /// First rate of the ladder, offers a second.
    #[arg(long, default_value_t = 1000)]
    ladder_start: u32,
    /// Each step of the ladder is this much faster than the last.
    #[arg(long, default_value_t = 1.5)]
    ladder_factor: f64,
    /// How long each step of the ladder runs.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    step: Duration,
    /// Highest offers a second one pair sends: our relay admits 20 messages
    /// a second per socket (a default the benchmark keeps), so the ladder
    /// ends at `pairs` × this.
    #[arg(long, default_value_t = 15)]
    per_pair_max: u32,
    /// Loopback source addresses (127.0.0.1..=127.0.0.N).
    #[arg(long, default_value_t = 8)]
    sources: u8,
    #[command(flatten)]
    relay: RelayArgs,
}

/// A step is sustained if this share of its offers were answered...
const SUSTAINED_SHARE: f64 = 0.99;
/// ...with this p99 latency at most, ms (a server falling behind builds a
/// queue, and its latency grows without bound).
const SUSTAINED_P99_MS: f64 = 100.0;
/// Wait after a phase's last offer for its answers.
const GRACE: Duration = Duration::from_secs(1);

/// One server's figures in one round.
#[derive(Debug, Default)]
struct Side {
    registered: usize,
    failed: usize,
    rss_per_client_kib: f64,
    registration_secs: f64,
    /// Per latency rate.
    latency: Vec<Latency>,
    max_rate: f64,
    /// Server CPU-seconds per second over the last sustained step: whether
    /// the server, or the machine (the load client shares it), ran out.
    max_rate_cores: f64,
}

/// One latency phase.
#[derive(Debug, Default, Clone, Copy)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    answered: f64,
    /// Server CPU-milliseconds per offer answered (offer and answer
    /// relayed): what the server's capacity is, whatever the load client
    /// can send.
    cpu_ms_per_offer: f64,
}

/// Runs the measure.
pub(crate) async fn run(args: SignalingArgs, quick: bool) -> anyhow::Result<Report> {
    let mut args = args;
    if quick {
        args.rounds = 1;
        args.clients = args.clients.min(300);
        args.pairs = args.pairs.min(100);
        args.phase = Duration::from_secs(1);
        args.step = Duration::from_secs(1);
    }
    args.pairs = args.pairs.min(args.clients / 2).max(1);
    let entry = peerjs::install()?;
    let conditions = Conditions::now();
    let mut figures = Figures::default();
    for round in 0..args.rounds {
        eprintln!("signaling: round {}/{}", round + 1, args.rounds);
        let (ours, theirs) = if round % 2 == 0 {
            let o = side(&args, Server::Ours, &entry).await?;
            (o, side(&args, Server::PeerJs, &entry).await?)
        } else {
            let t = side(&args, Server::PeerJs, &entry).await?;
            (side(&args, Server::Ours, &entry).await?, t)
        };
        eprintln!("signaling: ours {ours:?}\nsignaling: PeerJS {theirs:?}");
        record(&args, &mut figures, &ours, &theirs);
    }
    Report::new("signaling", conditions, &args, figures)
}

fn record(args: &SignalingArgs, figures: &mut Figures, ours: &Side, theirs: &Side) {
    const VS: &str = "PeerJS server";
    figures.add_with_goal(
        "clients registered (ours)",
        "count",
        Some(">= 10000"),
        ours.registered as f64,
    );
    figures.add(
        "clients registered (PeerJS)",
        "count",
        theirs.registered as f64,
    );
    figures.add_versus(
        "registrations failed",
        "count",
        VS,
        None,
        ours.failed as f64,
        theirs.failed as f64,
    );
    figures.add_with_goal(
        "RSS per idle client (ours)",
        "KiB",
        Some("<= 8"),
        ours.rss_per_client_kib,
    );
    figures.add_versus(
        "RSS per registered client",
        "KiB",
        VS,
        None,
        ours.rss_per_client_kib,
        theirs.rss_per_client_kib,
    );
    figures.add_versus(
        "registration time (all)",
        "s",
        VS,
        None,
        ours.registration_secs,
        theirs.registration_secs,
    );
    for (i, rate) in args.rates.iter().enumerate() {
        let (Some(o), Some(t)) = (ours.latency.get(i), theirs.latency.get(i)) else {
            continue;
        };
        figures.add_versus(
            &format!("offer→answer p50 at {rate}/s"),
            "ms",
            VS,
            None,
            o.p50_ms,
            t.p50_ms,
        );
        if *rate >= 1000 {
            figures.add_with_goal(
                &format!("offer→answer p99 at {rate}/s (ours)"),
                "ms",
                Some("<= 5"),
                o.p99_ms,
            );
        }
        figures.add_versus(
            &format!("offer→answer p99 at {rate}/s"),
            "ms",
            VS,
            None,
            o.p99_ms,
            t.p99_ms,
        );
        figures.add_versus(
            &format!("answered at {rate}/s"),
            "%",
            VS,
            None,
            o.answered * 100.0,
            t.answered * 100.0,
        );
        figures.add_versus(
            &format!("server CPU per 1000 offers at {rate}/s"),
            "CPU-ms",
            VS,
            Some("<= 0.33"),
            o.cpu_ms_per_offer * 1000.0,
            t.cpu_ms_per_offer * 1000.0,
        );
    }
    figures.add_versus(
        "max sustained offer rate (offer + answer relayed)",
        "1/s",
        VS,
        Some(">= 3"),
        ours.max_rate,
        theirs.max_rate,
    );
    figures.add_versus(
        "server CPU busy at the max sustained rate",
        "cores",
        VS,
        None,
        ours.max_rate_cores,
        theirs.max_rate_cores,
    );
}

/// One server through the whole load.
async fn side(
    args: &SignalingArgs,
    server: Server,
    entry: &std::path::Path,
) -> anyhow::Result<Side> {
    // Whichever runs, the other's handle is None; both drop (and are
    // killed) at the end of this function.
    let (relay, peerjs) = match server {
        Server::Ours => (
            Some(args.relay.start(&relay_toml(args.clients + 16, 256))?),
            None,
        ),
        Server::PeerJs => (None, Some(PeerJs::start(entry, args.clients)?)),
    };
    let (pid, addr) = match (&relay, &peerjs) {
        (Some(r), _) => (r.pid(), r.signaling),
        (_, Some(p)) => (p.pid(), p.addr),
        _ => unreachable!("one server was started"),
    };
    process::wait_quiet(pid, Duration::from_secs(1), Duration::from_secs(15)).await?;
    let before = usage(pid)?;

    // Register: the first 2 × pairs become the pairs, the rest idle.
    let sources = Sources::new(args.sources);
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    // The pairs' clients are kept alive (PeerJS's expire without their
    // heartbeats) until the phases begin; then their sockets are handed over.
    let handover = CancellationToken::new();
    let active = Mutex::new(Vec::with_capacity(2 * args.pairs));
    let failures = Mutex::new(Vec::<String>::new());
    let start = Instant::now();
    futures::stream::iter(0..args.clients)
        .for_each_concurrent(args.concurrency.max(1), |i| {
            let (stop, tasks, active, failures) = (stop.clone(), &tasks, &active, &failures);
            let handover = handover.clone();
            async move {
                match load::register(server, addr, sources.get(i)).await {
                    Ok(r) if i < 2 * args.pairs => {
                        let kept = tokio::spawn(load::keep(server, r.ws, handover));
                        active.lock().await.push((r.id, kept));
                    }
                    Ok(r) => {
                        tasks.spawn(load::idle(server, r.ws, stop));
                    }
                    Err(e) => failures.lock().await.push(format!("{e:#}")),
                }
            }
        })
        .await;
    let registration_secs = start.elapsed().as_secs_f64();
    let failures = failures.into_inner();
    if let Some(first) = failures.first() {
        eprintln!(
            "signaling: {server:?}: {} registrations failed, first: {first}",
            failures.len()
        );
    }
    let registered = args.clients - failures.len();
    // Quiet, or at least settled: with its clients' heartbeats PeerJS is
    // never quiet.
    process::wait_quiet(pid, Duration::from_secs(2), Duration::from_secs(10)).await?;
    let held = usage(pid)?;
    let rss_per_client_kib =
        (held.rss_kib as f64 - before.rss_kib as f64) / registered.max(1) as f64;

    // Pairs: offerer i sends to answerer i; phases steer the offerers.
    let (phase_tx, phase_rx) = watch::channel(None::<Phase>);
    // Read all through each phase: the bound is slack for late answers.
    let (event_tx, mut events) = mpsc::channel(1 << 16);
    handover.cancel();
    let mut offerers = Vec::new();
    for (id, kept) in active.into_inner() {
        match kept.await {
            Ok(Some(ws)) => offerers.push(load::Registered { ws, id }),
            _ => eprintln!("signaling: {server:?}: a pair's client failed before the phases"),
        }
    }
    let pairs = offerers.len() / 2;
    let answerers = offerers.split_off(pairs);
    for (index, (offerer, answerer)) in offerers.into_iter().zip(answerers).enumerate() {
        let to = answerer.id.clone();
        tasks.spawn(load::answerer(server, answerer.ws, stop.clone()));
        let (phases, events) = (phase_rx.clone(), event_tx.clone());
        tasks.spawn(load::offerer(
            server,
            offerer.ws,
            to,
            index,
            phases,
            events,
            stop.clone(),
        ));
    }
    drop(event_tx);
    let mut phase_id = 0;
    let mut run_phase = |rate: f64, length: Duration| {
        phase_id += 1;
        let phase = Phase {
            id: phase_id,
            start: Instant::now() + Duration::from_millis(100),
            end: Instant::now() + Duration::from_millis(100) + length,
            interval: Duration::from_secs_f64(pairs as f64 / rate),
            pairs,
        };
        let _ = phase_tx.send(Some(phase));
        phase
    };
    let mut latency = Vec::new();
    for rate in &args.rates {
        let cpu = usage(pid)?.cpu_secs;
        let phase = run_phase(f64::from(*rate), args.phase);
        let (p50_ms, p99_ms, answered, count) = collect(&mut events, phase).await;
        latency.push(Latency {
            p50_ms,
            p99_ms,
            answered,
            cpu_ms_per_offer: (usage(pid)?.cpu_secs - cpu) * 1e3 / count.max(1) as f64,
        });
    }
    let (mut max_rate, mut max_rate_cores) = (0.0, 0.0);
    let mut rate = f64::from(args.ladder_start);
    let ceiling = f64::from(args.per_pair_max) * pairs as f64;
    loop {
        let rate_now = rate.min(ceiling);
        let (cpu, at) = (usage(pid)?.cpu_secs, Instant::now());
        let phase = run_phase(rate_now, args.step);
        let (_, p99, share, _) = collect(&mut events, phase).await;
        let cores = (usage(pid)?.cpu_secs - cpu) / at.elapsed().as_secs_f64();
        eprintln!(
            "signaling: {server:?}: {rate_now:.0}/s: p99 {p99:.1} ms, answered {:.1} %",
            share * 100.0
        );
        if share < SUSTAINED_SHARE || p99 > SUSTAINED_P99_MS {
            break;
        }
        (max_rate, max_rate_cores) = (rate_now, cores);
        if rate_now >= ceiling {
            eprintln!(
                "signaling: {server:?}: sustained the ladder's ceiling ({ceiling:.0}/s): raise --pairs"
            );
            break;
        }
        rate *= args.ladder_factor;
    }
    stop.cancel();
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(30), tasks.wait()).await;
    Ok(Side {
        registered,
        failed: failures.len(),
        rss_per_client_kib,
        registration_secs,
        latency,
        max_rate,
        max_rate_cores,
    })
}

/// Waits for `phase` to end (and its answers to come), and reads its
/// events: (p50 ms, p99 ms, share of offers answered, offers answered).
async fn collect(events: &mut mpsc::Receiver<Event>, phase: Phase) -> (f64, f64, f64, usize) {
    let deadline = phase.end + GRACE;
    let (mut sent, mut latencies) = (0u64, Vec::new());
    loop {
        let event = tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => break,
            e = events.recv() => e,
        };
        match event {
            Some(Event::Sent(id)) if id == phase.id => sent += 1,
            Some(Event::Answered(id, ms)) if id == phase.id => latencies.push(ms),
            Some(_) => {}
            None => break,
        }
    }
    // Later answers of this phase would be counted in the next; drain them.
    while let Ok(_late) = events.try_recv() {}
    let share = latencies.len() as f64 / sent.max(1) as f64;
    if latencies.is_empty() {
        return (f64::NAN, f64::NAN, share, 0);
    }
    (
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        share,
        latencies.len(),
    )
}
