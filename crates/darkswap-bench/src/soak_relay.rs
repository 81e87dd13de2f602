//! `soak-relay`: the relay under signaling and circuit churn for a long
//! time. `clients` slots each run clients one after another: a client
//! registers, lives a random time, sends offers to random registered peers
//! (which answer), sometimes asks one for a WebSocket circuit (which
//! accepts; both ends attach on `/relay`, send `frames` binary frames each
//! and close), then leaves. The relay's memory is sampled throughout.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Args;
use darkswap_proto::signaling::{ClientToServer, ServerToClient};
use futures::{SinkExt, StreamExt};
use libp2p_identity::PeerId;
use rand::{Rng, seq::SliceRandom};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::task::TaskTracker;

use crate::{
    client::{self, Sources, Ws},
    idle_signaling::wait_for_metric,
    process::{self, Relay, metric},
    relay_config::{RelayArgs, relay_toml},
    report::{Conditions, Figures, Report},
    sampler::{self, SoakTimes},
};

/// Flags of `soak-relay`.
#[derive(Debug, Clone, Args, serde::Serialize)]
pub(crate) struct SoakRelayArgs {
    #[command(flatten)]
    times: SoakTimes,
    /// Client slots churning at once.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Shortest life of one client.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    min_life: Duration,
    /// Longest life of one client.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    max_life: Duration,
    /// Offers each client sends in its life.
    #[arg(long, default_value_t = 3)]
    offers: u32,
    /// Chance that a client asks for a circuit in its life.
    #[arg(long, default_value_t = 0.3)]
    circuit_chance: f64,
    /// Binary frames each end of a circuit sends.
    #[arg(long, default_value_t = 8)]
    frames: usize,
    /// Bytes in each frame.
    #[arg(long, default_value_t = 16 * 1024)]
    frame_size: usize,
    /// Loopback source addresses (127.0.0.1..=127.0.0.N).
    #[arg(long, default_value_t = 8)]
    sources: u8,
    #[command(flatten)]
    relay: RelayArgs,
}

/// What the clients did, for the report.
#[derive(Debug, Default)]
struct Stats {
    registrations: AtomicU64,
    registration_failures: AtomicU64,
    offers: AtomicU64,
    answers: AtomicU64,
    circuit_requests: AtomicU64,
    circuit_ends_open: AtomicU64,
    circuit_ends_done: AtomicU64,
    circuit_bytes: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    fn error(&self, what: impl Into<String>) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(what.into()).or_default() += 1;
    }
}

/// What every client slot shares.
struct Shared {
    args: SoakRelayArgs,
    server: std::net::SocketAddr,
    sources: Sources,
    /// Peers registered now, to send offers and circuit requests to.
    roster: Mutex<Vec<PeerId>>,
    stats: Arc<Stats>,
    circuits: TaskTracker,
}

impl Shared {
    fn someone_else(&self, me: &PeerId) -> Option<PeerId> {
        let roster = self.roster.lock().unwrap_or_else(|e| e.into_inner());
        let mut rng = rand::thread_rng();
        (0..4)
            .filter_map(|_| roster.choose(&mut rng).copied())
            .find(|p| p != me)
    }

    fn roster(&self, peer: PeerId, present: bool) {
        let mut roster = self.roster.lock().unwrap_or_else(|e| e.into_inner());
        if present {
            roster.push(peer);
        } else if let Some(i) = roster.iter().position(|p| *p == peer) {
            roster.swap_remove(i);
        }
    }
}

/// Runs the measure.
pub(crate) async fn run(mut args: SoakRelayArgs, quick: bool) -> anyhow::Result<Report> {
    if quick {
        args.times = SoakTimes::quick();
        args.clients = args.clients.min(20);
    }
    let conditions = Conditions::now();
    let relay = args
        .relay
        .start(&relay_toml(args.clients * 2 + 16, args.clients * 2 + 16))?;
    let http = reqwest::Client::new();
    process::wait_quiet(relay.pid(), Duration::from_secs(1), Duration::from_secs(15)).await?;
    let shared = Arc::new(Shared {
        server: relay.signaling,
        sources: Sources::new(args.sources),
        roster: Mutex::new(Vec::new()),
        stats: Arc::default(),
        circuits: TaskTracker::new(),
        args: args.clone(),
    });
    let start = Instant::now();
    let deadline = start + args.times.duration;
    let slots = TaskTracker::new();
    for i in 0..args.clients {
        slots.spawn(slot(i, shared.clone(), deadline));
    }
    slots.close();
    let metrics = relay.metrics;
    let series = sampler::sample(relay.pid(), start, &args.times, &slots, || {
        let http = http.clone();
        async move {
            metric(&http, metrics, "darkswap_relay_signaling_peers")
                .await
                .unwrap_or(f64::NAN)
        }
    })
    .await?;
    let churn_time = start.elapsed();
    shared.circuits.close();
    let _ = tokio::time::timeout(Duration::from_secs(60), shared.circuits.wait()).await;
    let after = settle(&http, &relay).await?;

    let mut figures = Figures::default();
    sampler::soak_figures(&mut figures, &series, &args.times, after);
    let s = &shared.stats;
    let count = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    let secs = churn_time.as_secs_f64();
    figures.add("registrations", "count", count(&s.registrations));
    figures.add(
        "registrations per second",
        "1/s",
        count(&s.registrations) / secs,
    );
    figures.add(
        "registrations failed",
        "count",
        count(&s.registration_failures),
    );
    figures.add("offers sent", "count", count(&s.offers));
    figures.add("answers received", "count", count(&s.answers));
    figures.add("circuits requested", "count", count(&s.circuit_requests));
    figures.add("circuit ends opened", "count", count(&s.circuit_ends_open));
    figures.add("circuit ends done", "count", count(&s.circuit_ends_done));
    figures.add(
        "circuit data received",
        "MiB",
        count(&s.circuit_bytes) / 1_048_576.0,
    );
    let errors = s.errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if !errors.is_empty() {
        eprintln!("soak-relay: errors seen by clients: {errors:?}");
    }
    let mut params = serde_json::to_value(&args)?;
    params["client_errors"] = serde_json::to_value(&errors)?;
    Ok(Report {
        measure: "soak-relay".to_owned(),
        conditions,
        params,
        figures: figures.finish(),
        series,
    })
}

/// After the churn: waits until no peer is registered and the relay is
/// idle, and reads its usage.
async fn settle(http: &reqwest::Client, relay: &Relay) -> anyhow::Result<process::Usage> {
    if let Err(e) = wait_for_metric(http, relay, "darkswap_relay_signaling_peers", 0.0).await {
        eprintln!("soak-relay: {e:#}");
    }
    process::wait_quiet(relay.pid(), Duration::from_secs(2), Duration::from_secs(60)).await?;
    process::usage(relay.pid())
}

/// One slot: clients one after another until `deadline`.
async fn slot(i: usize, shared: Arc<Shared>, deadline: Instant) {
    // Slots start spread over the shortest life, not all at once.
    let stagger = shared
        .args
        .min_life
        .mul_f64(i as f64 / shared.args.clients as f64);
    tokio::time::sleep(stagger).await;
    while Instant::now() < deadline {
        let source = shared.sources.get(i);
        let registered =
            match client::register(shared.server, source, client::REGISTER_TIMEOUT).await {
                Ok(r) => r,
                Err(e) => {
                    shared
                        .stats
                        .registration_failures
                        .fetch_add(1, Ordering::Relaxed);
                    shared.stats.error(format!("register: {e:#}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
        shared.stats.registrations.fetch_add(1, Ordering::Relaxed);
        let peer = registered.peer;
        shared.roster(peer, true);
        let life = {
            let (lo, hi) = (
                shared.args.min_life,
                shared.args.max_life.max(shared.args.min_life),
            );
            lo + (hi - lo).mul_f64(rand::thread_rng().r#gen::<f64>())
        };
        let end = (Instant::now() + life).min(deadline);
        if let Err(e) = session(registered.ws, peer, end, source, &shared).await {
            shared.stats.error(format!("session: {e:#}"));
        }
        shared.roster(peer, false);
    }
}

/// One client's life after it registered.
async fn session(
    mut ws: Ws,
    me: PeerId,
    end: Instant,
    source: std::net::Ipv4Addr,
    shared: &Shared,
) -> anyhow::Result<()> {
    let args = &shared.args;
    let now = Instant::now();
    let span = end.saturating_duration_since(now);
    let mut actions: Vec<(Instant, bool)> = {
        let mut rng = rand::thread_rng();
        let mut a: Vec<(Instant, bool)> = (0..args.offers)
            .map(|_| (now + span.mul_f64(0.8 * rng.r#gen::<f64>()), false))
            .collect();
        if rng.r#gen::<f64>() < args.circuit_chance {
            a.push((now + span.mul_f64(0.2 * rng.r#gen::<f64>()), true));
        }
        a.sort();
        a.reverse();
        a
    };
    loop {
        let next_at = actions.last().map_or(end, |a| a.0.min(end));
        tokio::select! {
            _ = tokio::time::sleep_until(next_at.into()) => {
                if Instant::now() >= end {
                    break;
                }
                let Some((_, circuit)) = actions.pop() else { continue };
                let Some(to) = shared.someone_else(&me) else { continue };
                let message = if circuit {
                    shared.stats.circuit_requests.fetch_add(1, Ordering::Relaxed);
                    ClientToServer::CircuitRequest { to: to.to_string() }
                } else {
                    shared.stats.offers.fetch_add(1, Ordering::Relaxed);
                    ClientToServer::Offer {
                        to: to.to_string(),
                        sdp: BENCH_SDP.to_owned(),
                        session: Some("bench".to_owned()),
                        from: None,
                    }
                };
                client::send(&mut ws, &message).await?;
            }
            message = client::next(&mut ws) => {
                let reply = on_message(message?, source, shared);
                if let Some(reply) = reply {
                    client::send(&mut ws, &reply).await?;
                }
            }
        }
    }
    client::close(ws).await;
    Ok(())
}

/// A plausible offer's size (SDP offers are 0.5-4 KB).
pub(crate) const BENCH_SDP: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:bench\r\na=ice-pwd:benchbenchbenchbenchbench\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n";

/// What a client does with a message; the reply to send, if any.
fn on_message(
    message: ServerToClient,
    source: std::net::Ipv4Addr,
    shared: &Shared,
) -> Option<ClientToServer> {
    match message {
        ServerToClient::Offer { from, session, .. } => Some(ClientToServer::Answer {
            to: from,
            sdp: BENCH_SDP.to_owned(),
            session,
            from: None,
        }),
        ServerToClient::Answer { .. } => {
            shared.stats.answers.fetch_add(1, Ordering::Relaxed);
            None
        }
        ServerToClient::CircuitRequest { circuit_id, .. } => {
            Some(ClientToServer::CircuitAccept { circuit_id })
        }
        ServerToClient::CircuitReady {
            circuit_id, token, ..
        } => {
            let (server, frames, size) =
                (shared.server, shared.args.frames, shared.args.frame_size);
            let stats = shared.stats.clone();
            let task = circuit_end(server, source, circuit_id, token, frames, size);
            shared.circuits.spawn(async move {
                match tokio::time::timeout(Duration::from_secs(30), task).await {
                    Ok(Ok((opened, got))) => {
                        stats
                            .circuit_ends_open
                            .fetch_add(u64::from(opened), Ordering::Relaxed);
                        stats.circuit_bytes.fetch_add(got as u64, Ordering::Relaxed);
                        if got >= frames * size {
                            stats.circuit_ends_done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(Err(e)) => stats.error(format!("circuit: {e:#}")),
                    Err(_) => stats.error("circuit: timed out"),
                }
            });
            None
        }
        ServerToClient::Error { code, .. } => {
            shared
                .stats
                .error(format!("signaling error {}", code.as_str()));
            None
        }
        _ => None,
    }
}

/// One end of a circuit: attaches on `/relay`, waits for `open`, sends
/// `frames` frames of `size` bytes while reading what the other end sends,
/// and closes once it has them all (or the circuit closed). Returns whether
/// the circuit opened and how many bytes arrived.
async fn circuit_end(
    server: std::net::SocketAddr,
    source: std::net::Ipv4Addr,
    circuit_id: String,
    token: String,
    frames: usize,
    size: usize,
) -> anyhow::Result<(bool, usize)> {
    let mut ws = client::open(server, "/relay", source).await?;
    client::send(&mut ws, &ClientToServer::Attach { circuit_id, token }).await?;
    loop {
        match client::next(&mut ws).await {
            Ok(ServerToClient::Open { .. }) => break,
            Ok(ServerToClient::Attached { .. }) => {}
            Ok(other) => anyhow::bail!("expected open, got {other:?}"),
            // The other end never attached (its client left): not an error.
            Err(_) => return Ok((false, 0)),
        }
    }
    let (mut sink, mut stream) = ws.split();
    let payload = bytes::Bytes::from(vec![0x5a; size]);
    let send = async {
        for _ in 0..frames {
            sink.send(Message::Binary(payload.clone())).await?;
        }
        anyhow::Ok(())
    };
    let receive = async {
        let mut got = 0;
        while got < frames * size {
            match stream.next().await {
                Some(Ok(Message::Binary(data))) => got += data.len(),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
        got
    };
    let (sent, got) = futures::join!(send, receive);
    // The other end may have closed first, once it had everything.
    let _ = sent;
    client::close(sink.reunite(stream).context("reunite")?).await;
    Ok((true, got))
}
