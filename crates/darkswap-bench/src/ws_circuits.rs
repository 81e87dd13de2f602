//! `ws-circuits`: messages and bytes relayed through our WebSocket
//! circuits (`/relay`) against coturn relaying the same load. Two loads,
//! each with `flows` concurrent flows sending `messages` messages:
//!
//! - *small* (120 B): each flow's sender sends as fast as it can and its
//!   far end echoes every message back; the figure is messages back per
//!   second. coturn: `turnutils_uclient -m flows -n messages -l 120 -z 0`
//!   over UDP to `turnutils_peer`, which echoes.
//! - *large* (16 KiB): flows in pairs, both ends of a pair send to each
//!   other; the figure is bytes received per second. coturn: the same with
//!   `-T` (TCP allocations between pairs of uclient's sessions, RFC 6062),
//!   as coturn does not bring UDP datagrams of 16 KiB back.
//!
//! Besides the rates, the CPU time the relay process (ours: the relay;
//! theirs: `turnserver`) spent per 1,000 messages, which does not depend
//! on how fast the load client is.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Args;
use darkswap_proto::signaling::{ClientToServer, ServerToClient};
use futures::{FutureExt as _, SinkExt, StreamExt, future::try_join_all};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::{
    client::{self, Sources, Ws},
    coturn::{self, Coturn},
    process::{self, usage},
    relay_config::{RelayArgs, relay_toml},
    report::{Conditions, Figures, Report},
};

/// Flags of `ws-circuits`.
#[derive(Debug, Clone, Args, serde::Serialize)]
pub(crate) struct WsCircuitsArgs {
    /// Rounds; each runs both loads through both relays, alternating which
    /// goes first.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent flows (uclient's `-m`; an even number, as the large load
    /// pairs them).
    #[arg(long, default_value_t = 20)]
    flows: usize,
    /// Size of the small messages, bytes.
    #[arg(long, default_value_t = 120)]
    small_size: usize,
    /// Small messages each flow sends.
    #[arg(long, default_value_t = 3000)]
    small_messages: usize,
    /// Size of the large messages, bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    large_size: usize,
    /// Large messages each flow sends.
    #[arg(long, default_value_t = 300)]
    large_messages: usize,
    /// `turnutils_uclient` processes sharing the flows: one paces itself to
    /// some 15,000-20,000 messages a second whatever its sessions, well
    /// below what `turnserver` relays.
    #[arg(long, default_value_t = 4)]
    uclient_processes: usize,
    /// Loopback source addresses of our clients (127.0.0.1..=127.0.0.N).
    #[arg(long, default_value_t = 8)]
    sources: u8,
    #[command(flatten)]
    relay: RelayArgs,
}

/// Bound on one load through one relay.
const LOAD_LIMIT: Duration = Duration::from_secs(120);

/// One load's outcome through one relay.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    messages_per_sec: f64,
    bytes_per_sec: f64,
    /// Relay CPU-seconds per message received.
    cpu_secs_per_message: f64,
    /// Relay CPU-seconds per second of the load: whether it was the
    /// bottleneck (1.0 is a core).
    cpu_cores: f64,
    lost: u64,
}

/// Runs the measure.
pub(crate) async fn run(args: WsCircuitsArgs, quick: bool) -> anyhow::Result<Report> {
    let mut args = args;
    if quick {
        args.rounds = 1;
        args.flows = args.flows.min(4);
        args.small_messages = args.small_messages.min(1000);
        args.large_messages = args.large_messages.min(100);
    }
    args.flows = args.flows.max(2) & !1;
    coturn::install()?;
    let conditions = Conditions::now();
    let mut figures = Figures::default();
    for round in 0..args.rounds {
        eprintln!("ws-circuits: round {}/{}", round + 1, args.rounds);
        let ours_first = round % 2 == 0;
        for (small, size, messages) in [
            (true, args.small_size, args.small_messages),
            (false, args.large_size, args.large_messages),
        ] {
            let (ours, theirs) = if ours_first {
                let o = ours(&args, small, size, messages).await?;
                (o, theirs(&args, small, size, messages).await?)
            } else {
                let t = theirs(&args, small, size, messages).await?;
                (ours(&args, small, size, messages).await?, t)
            };
            eprintln!("ws-circuits: {size} B: ours {ours:?}, coturn {theirs:?}");
            record(&mut figures, small, size, ours, theirs);
        }
    }
    Report::new("ws-circuits", conditions, &args, figures)
}

fn record(figures: &mut Figures, small: bool, size: usize, ours: Outcome, theirs: Outcome) {
    let versus = if small {
        "coturn (UDP, turnutils_uclient)"
    } else {
        "coturn (TCP relay, turnutils_uclient -T)"
    };
    if small {
        figures.add_versus(
            &format!("messages per second, {size} B"),
            "1/s",
            versus,
            Some(">= 1.0"),
            ours.messages_per_sec,
            theirs.messages_per_sec,
        );
    } else {
        figures.add_versus(
            &format!("throughput, {} KiB messages", size / 1024),
            "MiB/s",
            versus,
            Some(">= 1.0"),
            ours.bytes_per_sec / 1_048_576.0,
            theirs.bytes_per_sec / 1_048_576.0,
        );
    }
    figures.add_versus(
        &format!("relay CPU per 1000 messages, {size} B"),
        "CPU-ms",
        versus,
        Some("<= 1.0"),
        ours.cpu_secs_per_message * 1e6,
        theirs.cpu_secs_per_message * 1e6,
    );
    figures.add_versus(
        &format!("relay CPU busy during the load, {size} B"),
        "cores",
        versus,
        None,
        ours.cpu_cores,
        theirs.cpu_cores,
    );
    figures.add_versus(
        &format!("messages lost, {size} B"),
        "count",
        versus,
        None,
        ours.lost as f64,
        theirs.lost as f64,
    );
}

/// The load through coturn, with a fresh `turnserver`.
async fn theirs(
    args: &WsCircuitsArgs,
    small: bool,
    size: usize,
    messages: usize,
) -> anyhow::Result<Outcome> {
    let (flows, processes) = (args.flows, args.uclient_processes.clamp(1, args.flows / 2));
    tokio::task::spawn_blocking(move || {
        let coturn = Coturn::start()?;
        let before = usage(coturn.pid())?;
        let start = Instant::now();
        // Flows split over the processes (even shares: -T pairs them).
        let share = |i: usize| {
            let pairs = flows / 2;
            2 * (pairs / processes + usize::from(i < pairs % processes))
        };
        let runs = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..processes)
                .map(|i| {
                    let coturn = &coturn;
                    scope
                        .spawn(move || coturn.uclient(share(i), messages, size, !small, LOAD_LIMIT))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("uclient thread panicked")))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })?;
        let wall = start.elapsed().as_secs_f64();
        let after = usage(coturn.pid())?;
        let cpu = after.cpu_secs - before.cpu_secs;
        let received: u64 = runs.iter().map(|r| r.received).sum();
        Ok(Outcome {
            // The processes' transfers overlap but need not coincide:
            // summing their rates flatters coturn, if anything.
            messages_per_sec: runs.iter().map(|r| r.messages_per_sec).sum(),
            bytes_per_sec: runs.iter().map(|r| r.bytes_per_sec).sum(),
            cpu_secs_per_message: cpu / received.max(1) as f64,
            cpu_cores: cpu / wall,
            lost: runs.iter().map(|r| r.sent - r.received).sum(),
        })
    })
    .await
    .context("coturn task")?
}

/// The relay's config: the benchmark's (connection limits raised), with
/// the WebSocket circuits' bandwidth caps raised as well, as coturn runs
/// without any (its `max-bps` is 0 by default): the measure is what the
/// relay can carry, not the policy a deployment sets.
fn config(flows: usize) -> String {
    relay_toml(2 * flows + 16, flows + 16)
        .replace(
            "[ws_relay]\n",
            "[ws_relay]\nbandwidth_per_circuit = 1099511627776\nbandwidth_per_peer = 1099511627776\nmax_circuit_bytes = 1099511627776\n",
        )
        .replace(
            "[limits]\n",
            "[limits]\nbandwidth_global = 1099511627776\n",
        )
}

/// The load through our relay, with a fresh relay process.
async fn ours(
    args: &WsCircuitsArgs,
    small: bool,
    size: usize,
    messages: usize,
) -> anyhow::Result<Outcome> {
    let relay = args.relay.start(&config(args.flows))?;
    let pid = relay.pid();
    process::wait_quiet(pid, Duration::from_secs(1), Duration::from_secs(15)).await?;
    let sources = Sources::new(args.sources);
    let stop = CancellationToken::new();
    // Small: one circuit per flow, one end echoes. Large: one circuit per
    // pair of flows, both ends send.
    let circuits = if small { args.flows } else { args.flows / 2 };
    let opened = try_join_all(
        (0..circuits).map(|i| open_circuit(relay.signaling, sources.get(i), stop.clone())),
    )
    .await?;
    let before = usage(pid)?;
    let payload = bytes::Bytes::from(vec![0x5a; size]);
    let start = Instant::now();
    let tasks = opened.into_iter().map(|(a, b)| {
        let payload = payload.clone();
        async move {
            if small {
                let (got, ()) =
                    tokio::try_join!(send_and_count(a, payload, messages), echo(b, messages))?;
                anyhow::Ok(got)
            } else {
                let (x, y) = tokio::try_join!(
                    send_and_count(a, payload.clone(), messages),
                    send_and_count(b, payload, messages)
                )?;
                Ok(x + y)
            }
        }
    });
    let received: u64 = tokio::time::timeout(LOAD_LIMIT, try_join_all(tasks))
        .await
        .context("the load through our relay timed out")??
        .into_iter()
        .sum();
    let elapsed = start.elapsed().as_secs_f64();
    let after = usage(pid)?;
    stop.cancel();
    let sent = (args.flows * messages) as u64;
    Ok(Outcome {
        messages_per_sec: received as f64 / elapsed,
        bytes_per_sec: (received * size as u64) as f64 / elapsed,
        cpu_secs_per_message: (after.cpu_secs - before.cpu_secs) / received.max(1) as f64,
        cpu_cores: (after.cpu_secs - before.cpu_secs) / elapsed,
        lost: sent.saturating_sub(received),
    })
}

/// Registers two clients, has the first request a circuit to the second,
/// which accepts, and attaches both ends on `/relay`. The signaling
/// sockets stay open (read, which answers pings) until `stop`.
async fn open_circuit(
    server: SocketAddr,
    source: Ipv4Addr,
    stop: CancellationToken,
) -> anyhow::Result<(Ws, Ws)> {
    let timeout = client::REGISTER_TIMEOUT;
    let (mut a, mut b) = tokio::try_join!(
        client::register(server, source, timeout),
        client::register(server, source, timeout)
    )?;
    let to = b.peer.to_string();
    client::send(&mut a.ws, &ClientToServer::CircuitRequest { to }).await?;
    let setup = async {
        let circuit_id = loop {
            if let ServerToClient::CircuitRequest { circuit_id, .. } =
                client::next(&mut b.ws).await?
            {
                break circuit_id;
            }
        };
        client::send(&mut b.ws, &ClientToServer::CircuitAccept { circuit_id }).await?;
        let (ta, tb) = tokio::try_join!(ready(&mut a.ws), ready(&mut b.ws))?;
        tokio::try_join!(attach(server, source, ta), attach(server, source, tb))
    };
    let ends = tokio::time::timeout(Duration::from_secs(30), setup)
        .await
        .context("circuit set-up timed out")??;
    for ws in [a.ws, b.ws] {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut ws = ws;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    frame = ws.next() => if !matches!(frame, Some(Ok(_))) { return },
                }
            }
            client::close(ws).await;
        });
    }
    Ok(ends)
}

/// Waits for `circuit_ready`: (circuit id, this side's token).
async fn ready(ws: &mut Ws) -> anyhow::Result<(String, String)> {
    loop {
        match client::next(ws).await? {
            ServerToClient::CircuitReady {
                circuit_id, token, ..
            } => return Ok((circuit_id, token)),
            ServerToClient::Error { code, message, .. } => {
                bail!("circuit refused: {}: {message}", code.as_str())
            }
            _ => {}
        }
    }
}

/// Attaches one end on `/relay` and waits until the circuit is open.
async fn attach(
    server: SocketAddr,
    source: Ipv4Addr,
    (circuit_id, token): (String, String),
) -> anyhow::Result<Ws> {
    let mut ws = client::open(server, "/relay", source).await?;
    client::send(&mut ws, &ClientToServer::Attach { circuit_id, token }).await?;
    loop {
        match client::next(&mut ws).await? {
            ServerToClient::Open { .. } => return Ok(ws),
            ServerToClient::Attached { .. } => {}
            other => bail!("expected open, got {other:?}"),
        }
    }
}

/// Sends `count` binary frames of `payload` as fast as the socket takes
/// them while counting the frames that arrive, until `count` arrived.
async fn send_and_count(ws: Ws, payload: bytes::Bytes, count: usize) -> anyhow::Result<u64> {
    let (mut sink, mut stream) = ws.split();
    let send = async {
        for _ in 0..count {
            // `feed` queues without flushing each frame, as a client
            // writing as fast as it can does; tungstenite flushes when its
            // buffer fills.
            sink.feed(Message::Binary(payload.clone())).await?;
        }
        sink.flush().await?;
        anyhow::Ok(())
    };
    let receive = async {
        let mut got = 0u64;
        while got < count as u64 {
            match stream.next().await {
                Some(Ok(Message::Binary(_))) => got += 1,
                Some(Ok(Message::Close(_))) | None => bail!("circuit closed after {got} frames"),
                Some(Err(e)) => bail!("circuit failed after {got} frames: {e}"),
                Some(Ok(_)) => {}
            }
        }
        Ok(got)
    };
    let ((), got) = tokio::try_join!(send, receive)?;
    client::close(sink.reunite(stream).context("reunite")?).await;
    Ok(got)
}

/// Sends every binary frame back, until `count` came. Frames already
/// arrived go back in one write, as a client relaying a burst would.
async fn echo(ws: Ws, count: usize) -> anyhow::Result<()> {
    let (mut sink, mut stream) = ws.split();
    let mut n = 0;
    while n < count {
        let mut frame = Some(stream.next().await);
        while let Some(item) = frame {
            match item {
                Some(Ok(Message::Binary(data))) => {
                    n += 1;
                    sink.feed(Message::Binary(data)).await?;
                }
                Some(Ok(Message::Close(_))) | None => bail!("circuit closed after {n} frames"),
                Some(Err(e)) => bail!("circuit failed after {n} frames: {e}"),
                Some(Ok(_)) => {}
            }
            frame = if n < count {
                stream.next().now_or_never()
            } else {
                None
            };
        }
        sink.flush().await?;
    }
    Ok(())
}
