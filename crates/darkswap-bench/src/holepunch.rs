//! `holepunch` (P7): how long two `darkswap` daemons behind NAT routers
//! take to go from a relayed connection to a direct one (DCUtR), in the NAT
//! lab (`darkswap-natlab`: namespaces, nftables routers, a real
//! `darkswap-relay`), at several round-trip times between the two sites;
//! against 3 RTT plus the time a direct connection takes between two
//! daemons on the public segment (no NAT) at the same RTT, dialled in the
//! same trials.
//!
//! Topology: the relay on the public segment without delay; half the RTT
//! is added to every packet leaving each site router's WAN and each public
//! host (NFQUEUE, see `delay_queue`: this kernel has no netem), so site
//! to site, public host to public host and site to site through the relay
//! all take the RTT.
//!
//! A trial: a fresh daemon B (new key, new port) behind router 2 reserves
//! on the relay and dials daemon A (behind router 1, one per RTT) through
//! A's circuit; the trial waits until both list a direct connection to
//! each other. Its times come from the daemons' own logs (tracing's
//! microsecond timestamps, one clock: the same host): libp2p-swarm's
//! `Connection established` for the relayed and the direct connection, and
//! libp2p-dcutr's `Attempting to hole-punch as dialer` (the moment the
//! answering side got DCUtR's SYNC and dialled). In the same trial, in
//! alternating order, daemon P1 on the public segment dials a fresh daemon
//! P2 there through its API; the handshake is curl's time from sending
//! `POST /v1/connect` to its answer's first byte (the daemon answers when
//! the connection is established).

use std::{
    net::Ipv4Addr,
    path::Path,
    process::Command,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use darkswap_natlab::{
    nat::NatKind,
    nodes::{Binaries, Daemon, Relay, Timeline, Transport, reserved},
    topology::{PublicHost, Segment, Site},
};
use darkswap_testkit::netns::Netns;

use crate::{
    delay_queue::DelayQueue,
    report::{Conditions, Figures, Report, median, quantile},
};

/// Bound on a fresh daemon holding its reservation.
const RESERVE_WITHIN: Duration = Duration::from_secs(20);
/// Bound on the link turning direct once dialled through the relay (as the
/// NAT lab's matrix: DCUtR's second attempt after a 10 s dial timeout).
const PUNCH_WITHIN: Duration = Duration::from_secs(25);
/// Bound on the log lines of an event the API already showed.
const LOG_WITHIN: Duration = Duration::from_secs(3);
/// Bound on one curl call to a daemon's API.
const CURL_WITHIN: Duration = Duration::from_secs(20);
/// Trials per relay (and daemon A): every B comes from router 2's address,
/// and the relay's per-IP circuit rate limit (60 a minute) counts the
/// circuits of each B's DHT walk too (to A and to the Bs before it), so
/// after ten or so quick trials it refused B's dial; a fresh relay (on its
/// address, with its key) and a fresh A every few trials keep it out of
/// the way, as a fresh lab per NAT lab cell does.
const TRIALS_PER_RELAY: usize = 5;
/// Bound on a daemon stopping after SIGTERM (its shutdown grace is 2 s).
const STOP_WITHIN: Duration = Duration::from_secs(5);
/// The log filter: libp2p-swarm says when each connection is established,
/// libp2p-dcutr when a hole-punch dial starts.
const LOG_FILTER: &str = "info,libp2p_swarm=debug,libp2p_dcutr=debug";

/// What to measure.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub(crate) struct HolepunchArgs {
    /// Round-trip times between the two sites, ms (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0,20,63")]
    rtt: Vec<u64>,
    /// Trials per RTT (each a fresh dialling daemon; p95 needs ~10).
    #[arg(long, default_value_t = 10)]
    trials: usize,
    /// `quic` or `tcp`, end to end (relay, punch and reference dial).
    #[arg(long, default_value = "quic")]
    transport: String,
    /// Both routers' preset: `eim` (endpoint-independent mapping,
    /// port-restricted filtering: a punch is needed and succeeds) or `cone`
    /// (endpoint-independent filtering too).
    #[arg(long, default_value = "eim")]
    nat: String,
    /// Keep the daemons' logs (their directory is printed).
    #[arg(long)]
    keep: bool,
}

/// The relay's address, the sites' and the public daemons'.
const RELAY_IP: Ipv4Addr = Ipv4Addr::new(7, 7, 7, 1);
const P1_IP: Ipv4Addr = Ipv4Addr::new(7, 7, 7, 31);
const P2_IP: Ipv4Addr = Ipv4Addr::new(7, 7, 7, 32);

/// The lab: a segment with the relay, two NAT sites, two public hosts.
/// Dropping it deletes every namespace (the relay is killed first).
struct Lab {
    /// First: dropped (rules and threads gone) before the namespaces.
    delays: Vec<DelayQueue>,
    /// `None` only while it restarts.
    relay: Option<Relay>,
    relay_dir: std::path::PathBuf,
    sites: [Site; 2],
    public: [PublicHost; 2],
    _relay_host: PublicHost,
    _segment: Segment,
}

impl Lab {
    fn new(
        bins: &Binaries,
        tag: &str,
        nat: NatKind,
        transport: Transport,
        dir: &Path,
    ) -> Result<Self> {
        let segment = Segment::new(tag)?;
        let relay_host = segment.public_host(&format!("{tag}-rl"), RELAY_IP)?;
        let sites = [segment.site(tag, 1, nat)?, segment.site(tag, 2, nat)?];
        let public = [
            segment.public_host(&format!("{tag}-p1"), P1_IP)?,
            segment.public_host(&format!("{tag}-p2"), P2_IP)?,
        ];
        let relay_dir = dir.join("relay");
        std::fs::create_dir_all(&relay_dir)?;
        let relay = Relay::start(bins, &relay_host.ns, RELAY_IP, transport, &relay_dir)?;
        let delays = vec![
            DelayQueue::start(&sites[0].router.name, &["POSTROUTING", "-o", "wan"])?,
            DelayQueue::start(&sites[1].router.name, &["POSTROUTING", "-o", "wan"])?,
            DelayQueue::start(&public[0].ns.name, &["POSTROUTING", "-o", "eth0"])?,
            DelayQueue::start(&public[1].ns.name, &["POSTROUTING", "-o", "eth0"])?,
        ];
        Ok(Lab {
            delays,
            relay: Some(relay),
            relay_dir,
            sites,
            public,
            _relay_host: relay_host,
            _segment: segment,
        })
    }

    /// Kills the relay and starts it again on its address with its key
    /// (see [`TRIALS_PER_RELAY`]).
    fn restart_relay(&mut self, bins: &Binaries, transport: Transport) -> Result<()> {
        if let Some(old) = self.relay.take() {
            let _ = old.save_logs(&self.relay_dir.join("relay.log"));
            old.kill_9();
        }
        self.relay = Some(Relay::start(
            bins,
            &self._relay_host.ns,
            RELAY_IP,
            transport,
            &self.relay_dir,
        )?);
        Ok(())
    }

    fn relay_addr(&self) -> Result<String> {
        Ok(self.relay.as_ref().context("relay running")?.addr.clone())
    }

    /// Half of `rtt_ms` on each site router's WAN egress and each public
    /// host's: every path between two of them then takes `rtt_ms`.
    fn set_rtt(&mut self, rtt_ms: u64) -> Result<()> {
        for d in &mut self.delays {
            d.set(Duration::from_micros(rtt_ms * 500))?;
        }
        Ok(())
    }
}

/// One hole punch, in ms from the first relayed connection of the pair.
#[derive(Debug, Clone, Copy)]
struct Punch {
    /// First direct connection, either side.
    direct: f64,
    /// Both sides hold the direct connection.
    both: f64,
    /// The answering side got DCUtR's SYNC and dialled.
    sync: Option<f64>,
}

/// Runs the measure.
pub(crate) fn run(args: HolepunchArgs, quick: bool) -> Result<Report> {
    let args = if quick {
        HolepunchArgs {
            rtt: vec![args.rtt.iter().copied().max().unwrap_or(20)],
            trials: 2,
            ..args
        }
    } else {
        args
    };
    let transport = Transport::from_name(&args.transport)
        .ok_or_else(|| anyhow!("--transport: `quic` or `tcp`, not {}", args.transport))?;
    let nat = NatKind::from_name(&args.nat)
        .filter(|n| n.maps_independently())
        .ok_or_else(|| {
            anyhow!(
                "--nat: `eim` or `cone` (a punch must be able to work), not {}",
                args.nat
            )
        })?;
    if !darkswap_testkit::netns::is_root() {
        bail!("holepunch makes network namespaces: run it as root");
    }
    ensure_tools()?;
    let bins = Binaries::locate()?;
    let conditions = Conditions::now();
    let work = tempfile::Builder::new()
        .prefix("darkswap-bench-p7-")
        .tempdir()?;
    let mut lab = Lab::new(&bins, "dsb-p7", nat, transport, work.path())?;
    let mut figures = Figures::default();
    let mut port = 4100u16;
    let mut result = Ok(());
    for (i, &rtt) in args.rtt.iter().enumerate() {
        let dir = work.path().join(format!("rtt{rtt}"));
        if let Err(e) = at_rtt(
            &bins,
            &mut lab,
            &args,
            transport,
            rtt,
            4050 + i as u16,
            &mut port,
            &dir,
            &mut figures,
        ) {
            result = Err(e.context(format!("at {rtt} ms RTT (logs in {})", dir.display())));
            break;
        }
    }
    if let Some(relay) = &lab.relay {
        let _ = relay.save_logs(&work.path().join("relay.log"));
    }
    drop(lab);
    if result.is_err() || args.keep {
        eprintln!("holepunch: logs kept in {}", work.keep().display());
    }
    result?;
    Report::new("holepunch", conditions, &args, figures)
}

/// `ip` and `nft` (iproute2, nftables) run the lab; curl times the
/// reference dial.
fn ensure_tools() -> Result<()> {
    for (tool, package) in [("ip", "iproute2"), ("nft", "nftables"), ("curl", "curl")] {
        let found = Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            continue;
        }
        eprintln!("holepunch: installing {package} for `{tool}`");
        let ok = Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            bail!("`{tool}` is missing and `apt-get install {package}` failed");
        }
    }
    Ok(())
}

fn daemon_args(transport: Transport, port: u16, relay: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "--listen".to_owned(),
        transport.listen(Ipv4Addr::UNSPECIFIED, port),
    ];
    match relay {
        Some(addr) => args.extend(["--relay".to_owned(), addr.to_owned()]),
        None => args.push("--no-relays".to_owned()),
    }
    args
}

fn start(bins: &Binaries, ns: &Netns, dir: &Path, args: &[String]) -> Result<Daemon> {
    std::fs::create_dir_all(dir)?;
    Daemon::start_logging(bins, ns, dir, args, Some(LOG_FILTER))
}

/// Asks `daemon` to stop; a thread waits for it (killing it if it does not
/// stop), so that the next trial need not.
fn retire(mut daemon: Daemon) -> JoinHandle<()> {
    daemon.terminate();
    std::thread::spawn(move || {
        daemon.wait_exit(STOP_WITHIN);
    })
}

#[allow(clippy::too_many_arguments)]
fn at_rtt(
    bins: &Binaries,
    lab: &mut Lab,
    args: &HolepunchArgs,
    transport: Transport,
    rtt: u64,
    fixed_port: u16,
    port: &mut u16,
    dir: &Path,
    figures: &mut Figures,
) -> Result<()> {
    lab.set_rtt(rtt)?;
    let p1 = start(
        bins,
        &lab.public[0].ns,
        &dir.join("p1"),
        &daemon_args(transport, fixed_port, None),
    )?;
    let mut a: Option<(Daemon, std::path::PathBuf)> = None;
    let mut relay = String::new();
    let mut punches = Vec::new();
    let mut handshakes = Vec::new();
    let mut first_dials = Vec::new();
    let mut failed = 0usize;
    let mut stopping = Vec::new();
    for n in 0..args.trials {
        if n % TRIALS_PER_RELAY == 0 {
            if let Some((old, _)) = a.take() {
                stopping.push(retire(old));
            }
            lab.restart_relay(bins, transport)?;
            relay = lab.relay_addr()?;
            *port += 1;
            let a_dir = dir.join(format!("a{n}"));
            a = Some((
                start_a(bins, &lab.sites[0].host, &a_dir, transport, *port, &relay)?,
                a_dir,
            ));
        }
        let (a, a_dir) = a.as_ref().context("A running")?;
        let relay = relay.as_str();
        *port += 1;
        let trial_dir = dir.join(format!("trial{n}"));
        let (b_dir, p2_dir) = (trial_dir.join("b"), trial_dir.join("p2"));
        // The two fresh daemons start together: neither is being timed.
        let (b_ns, b_args) = (
            &lab.sites[1].host,
            daemon_args(transport, *port, Some(relay)),
        );
        let (b, p2) = std::thread::scope(|s| {
            let b = s.spawn(|| start(bins, b_ns, &b_dir, &b_args));
            let p2 = start(
                bins,
                &lab.public[1].ns,
                &p2_dir,
                &daemon_args(transport, *port, None),
            );
            (b.join().map_err(|_| anyhow!("starting B panicked")), p2)
        });
        let (b, p2) = (b??, p2?);
        // Alternate which goes first: a machine busier in one half of a
        // trial weighs on both sides alike.
        let punch_first = n % 2 == 0;
        let mut hs = None;
        if !punch_first {
            hs = Some(handshake(&lab.public[0].ns, &p1, &p2, transport, *port)?);
        }
        let punch = punch(a, a_dir, &b, &b_dir, relay);
        if punch_first {
            hs = Some(handshake(&lab.public[0].ns, &p1, &p2, transport, *port)?);
        }
        stopping.push(retire(b));
        stopping.push(retire(p2));
        let (first_dial, hs) = hs.context("handshake measured")?;
        handshakes.push(hs);
        first_dials.push(first_dial);
        match punch {
            Ok(p) => {
                eprintln!(
                    "holepunch: {rtt} ms RTT, trial {}/{}: direct after {:.1} ms (both sides {:.1} ms, SYNC at {}), direct handshake {hs:.1} ms (first dial {first_dial:.1} ms)",
                    n + 1,
                    args.trials,
                    p.direct,
                    p.both,
                    p.sync.map_or("-".to_owned(), |s| format!("{s:.1} ms")),
                );
                punches.push(p);
            }
            Err(e) => {
                eprintln!(
                    "holepunch: {rtt} ms RTT, trial {}: no direct connection: {e:#}",
                    n + 1
                );
                failed += 1;
            }
        }
    }
    for d in a.map(|(a, _)| a).into_iter().chain([p1]) {
        stopping.push(retire(d));
    }
    for t in stopping {
        let _ = t.join();
    }
    if punches.is_empty() {
        bail!("no trial turned direct ({failed} failed)");
    }
    add_figures(figures, rtt, &punches, &handshakes, failed);
    figures.add(
        &format!("first direct dial to a fresh peer (no NAT) median, {rtt} ms RTT"),
        "ms",
        median(&first_dials),
    );
    Ok(())
}

/// Starts daemon A behind router 1 and waits for its reservation.
fn start_a(
    bins: &Binaries,
    ns: &Netns,
    dir: &Path,
    transport: Transport,
    port: u16,
    relay: &str,
) -> Result<Daemon> {
    let a = start(bins, ns, dir, &daemon_args(transport, port, Some(relay)))?;
    let mut timeline = Timeline::default();
    let _follow = a.follow(0, &timeline)?;
    timeline
        .wait(Instant::now() + RESERVE_WITHIN, |s| {
            reserved(&s.event, None)
        })
        .ok_or_else(|| anyhow!("A held no reservation within {RESERVE_WITHIN:?}"))?;
    Ok(a)
}

fn add_figures(
    figures: &mut Figures,
    rtt: u64,
    punches: &[Punch],
    handshakes: &[f64],
    failed: usize,
) {
    let at = format!("{rtt} ms RTT");
    let direct: Vec<f64> = punches.iter().map(|p| p.direct).collect();
    let both: Vec<f64> = punches.iter().map(|p| p.both).collect();
    let sync: Vec<f64> = punches.iter().filter_map(|p| p.sync).collect();
    let (p50, p95) = (quantile(&direct, 0.5), quantile(&direct, 0.95));
    let hs = median(handshakes);
    let budget = 3.0 * rtt as f64 + hs;
    figures.add_versus(
        &format!("relayed → direct p95, {at}"),
        "ms",
        "3 RTT + direct handshake (no NAT)",
        Some("<= 1.0"),
        p95,
        budget,
    );
    figures.add(&format!("relayed → direct p50, {at}"), "ms", p50);
    if rtt > 0 {
        figures.add(
            &format!("relayed → direct p50, {at}, in RTTs"),
            "RTT",
            p50 / rtt as f64,
        );
        figures.add(
            &format!("relayed → direct p95, {at}, in RTTs"),
            "RTT",
            p95 / rtt as f64,
        );
    }
    figures.add(
        &format!("relayed → direct on both sides p95, {at}"),
        "ms",
        quantile(&both, 0.95),
    );
    if !sync.is_empty() {
        figures.add(
            &format!("relayed → punch dial (SYNC) p50, {at}"),
            "ms",
            quantile(&sync, 0.5),
        );
    }
    figures.add(&format!("direct handshake (no NAT) median, {at}"), "ms", hs);
    figures.add(
        &format!("direct handshake (no NAT) p95, {at}"),
        "ms",
        quantile(handshakes, 0.95),
    );
    figures.add(
        &format!("trials turned direct, {at}"),
        "trials",
        punches.len() as f64,
    );
    figures.add(&format!("trials not direct, {at}"), "trials", failed as f64);
}

/// B reserves, dials A through the relay, and the pair goes direct; the
/// times from both daemons' logs.
fn punch(a: &Daemon, a_dir: &Path, b: &Daemon, b_dir: &Path, relay: &str) -> Result<Punch> {
    let mut timeline = Timeline::default();
    let _follow = [a.follow(0, &timeline)?, b.follow(1, &timeline)?];
    timeline
        .wait(Instant::now() + RESERVE_WITHIN, |s| {
            s.tag == 1 && reserved(&s.event, None)
        })
        .ok_or_else(|| anyhow!("B held no reservation within {RESERVE_WITHIN:?}"))?;
    b.cli(&["connect", &format!("{relay}/p2p-circuit/p2p/{}", a.peer_id)])?;
    // A punch's outcome is an event; whether both sides hold the direct
    // connection is only in their connection lists, asked between waits.
    let deadline = Instant::now() + PUNCH_WITHIN;
    loop {
        let step = deadline.min(Instant::now() + Duration::from_millis(100));
        timeline.wait(step, |s| {
            s.event["type"] == "hole_punch_succeeded" || s.event["type"] == "hole_punch_failed"
        });
        if has_direct(b, &a.peer_id)? && has_direct(a, &b.peer_id)? {
            break;
        }
        if Instant::now() >= deadline {
            timeline.catch_up();
            let failures: Vec<String> = timeline
                .seen
                .iter()
                .filter(|s| s.event["type"] == "hole_punch_failed")
                .map(|s| s.event["error"].to_string())
                .collect();
            bail!("not direct on both sides within {PUNCH_WITHIN:?}; punch failures: {failures:?}");
        }
    }
    // The API shows a connection after the swarm logged it; the log
    // reaches its file through a pipe and a thread.
    let deadline = Instant::now() + LOG_WITHIN;
    loop {
        let a_marks = marks(&read(&a_dir.join("daemon.log"))?, &b.peer_id);
        let b_marks = marks(&read(&b_dir.join("daemon.log"))?, &a.peer_id);
        if let Some(p) = punch_times(&a_marks, &b_marks) {
            return Ok(p);
        }
        if Instant::now() >= deadline {
            bail!(
                "the logs lack a relayed or a direct `Connection established` (A: {a_marks:?}, B: {b_marks:?})"
            );
        }
        // A file has no event to wait on; the lines are due within ms.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
}

/// Whether `from` lists a direct connection to `peer`.
fn has_direct(from: &Daemon, peer: &str) -> Result<bool> {
    let peers = from.cli(&["peers"])?;
    Ok(peers.as_array().is_some_and(|ps| {
        ps.iter().any(|p| {
            p["peer_id"] == peer
                && p["connections"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["path"] == "direct"))
        })
    }))
}

/// The reference: `p1` dials `p2` directly (both on the public segment, no
/// NAT), twice; curl's time from the request sent to the answer's first
/// byte, ms, of each. The second is the handshake the goal counts: a
/// punched connection is also a second connection to its peer (the relayed
/// one came first), while the first connection to a peer pays the node's
/// first-contact work too (see the `holepunch` section of
/// docs/benchmarks.md).
fn handshake(
    ns: &Netns,
    p1: &Daemon,
    p2: &Daemon,
    transport: Transport,
    port: u16,
) -> Result<(f64, f64)> {
    let addr = format!("{}/p2p/{}", transport.listen(P2_IP, port), p2.peer_id);
    let first = dial_time(ns, p1, &addr)?;
    let second = dial_time(ns, p1, &addr)?;
    Ok((first, second))
}

/// `from` dials `addr` through its API (`POST /v1/connect`, answered once
/// the connection is established); the ms curl counts from the request
/// sent to the answer's first byte.
fn dial_time(ns: &Netns, from: &Daemon, addr: &str) -> Result<f64> {
    let body = serde_json::json!({ "addr": addr }).to_string();
    let mut cmd = ns.command("curl");
    cmd.args([
        "-sS",
        "-o",
        "/dev/null",
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
    ])
    .args([
        "--max-time",
        &CURL_WITHIN.as_secs().to_string(),
        "-d",
        &body,
    ])
    .args([
        "-w",
        "%{http_code} %{time_pretransfer} %{time_starttransfer}",
    ])
    .arg(format!("http://{}/v1/connect", from.api));
    let out = cmd.output().context("run curl")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "curl {addr}: {} {}",
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    curl_times(&text).with_context(|| format!("direct dial of {addr}: curl says {text}"))
}

/// `200 <pretransfer s> <starttransfer s>` → the ms between the two.
fn curl_times(text: &str) -> Result<f64> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [code, pre, start] = fields[..] else {
        bail!("expected three fields");
    };
    if code != "200" {
        bail!("HTTP {code}");
    }
    let (pre, start): (f64, f64) = (pre.parse()?, start.parse()?);
    Ok((start - pre) * 1000.0)
}

/// What one daemon's log says about its connections to one peer: the first
/// of each, in microseconds since the Unix epoch.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Marks {
    relayed: Option<i64>,
    direct: Option<i64>,
    /// `Attempting to hole-punch as dialer`: DCUtR's SYNC arrived.
    sync: Option<i64>,
}

/// Reads [`Marks`] about `peer` from a daemon's log.
fn marks(log: &str, peer: &str) -> Marks {
    let mut m = Marks::default();
    let peer_field = format!("peer={peer}");
    let target_field = format!("target={peer}");
    for line in log.lines() {
        let slot = if line.contains("Connection established") && line.contains(&peer_field) {
            if line.contains("/p2p-circuit") {
                &mut m.relayed
            } else {
                &mut m.direct
            }
        } else if line.contains("Attempting to hole-punch as dialer")
            && line.contains(&target_field)
        {
            &mut m.sync
        } else {
            continue;
        };
        if slot.is_none() {
            *slot = line.split_whitespace().next().and_then(timestamp_micros);
        }
    }
    m
}

/// The punch's times from both logs, once both show the relayed and the
/// direct connection.
fn punch_times(a: &Marks, b: &Marks) -> Option<Punch> {
    let t0 = a.relayed?.min(b.relayed?);
    let (da, db) = (a.direct?, b.direct?);
    let ms = |t: i64| (t - t0) as f64 / 1000.0;
    Some(Punch {
        direct: ms(da.min(db)),
        both: ms(da.max(db)),
        sync: a.sync.or(b.sync).map(ms),
    })
}

/// `2026-12-07T18:14:48.123456Z` (tracing's default) → µs since the epoch.
fn timestamp_micros(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    // The fraction to microseconds, whatever its number of digits.
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    let micros: i64 = digits.parse().ok()?;
    let days = days_from_civil(y, mo, day);
    Some(((days * 24 + h) * 60 + mi) * 60_000_000 + sec * 1_000_000 + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_count_from_the_epoch_in_microseconds() {
        assert_eq!(timestamp_micros("1970-01-01T00:00:00.000000Z"), Some(0));
        assert_eq!(
            timestamp_micros("1970-01-02T00:00:01.5Z"),
            Some(86_401_500_000)
        );
        // 2026-12-07 is day 20,794 since the epoch.
        assert_eq!(
            timestamp_micros("2026-12-07T18:14:48.123456Z"),
            Some(20_794 * 86_400_000_000 + ((18 * 60 + 14) * 60 + 48) * 1_000_000 + 123_456)
        );
        assert_eq!(timestamp_micros("18:14:48"), None);
    }

    #[test]
    fn the_first_relayed_direct_and_sync_lines_about_the_peer_count() {
        let log = "\
2026-12-07T18:00:00.000100Z DEBUG libp2p_swarm: Connection established peer=RELAY endpoint=Dialer { address: /ip4/7.7.7.1/udp/4001/quic-v1 } total_peers=1
2026-12-07T18:00:01.000000Z DEBUG libp2p_swarm: Connection established peer=B endpoint=Listener { local_addr: /ip4/7.7.7.1/udp/4001/quic-v1/p2p/R/p2p-circuit, send_back_addr: /p2p/B } total_peers=1
2026-12-07T18:00:01.010000Z DEBUG libp2p_dcutr::behaviour: Attempting to hole-punch as dialer target=B addresses=[]
2026-12-07T18:00:01.020000Z DEBUG libp2p_swarm: Connection established peer=B endpoint=Dialer { address: /ip4/7.7.7.12/udp/4101/quic-v1/p2p/B } total_peers=2
2026-12-07T18:00:02.000000Z DEBUG libp2p_swarm: Connection established peer=B endpoint=Dialer { address: /ip4/7.7.7.12/udp/4101/quic-v1/p2p/B } total_peers=3
";
        let m = marks(log, "B");
        let base = timestamp_micros("2026-12-07T18:00:01.000000Z").unwrap_or_default();
        assert_eq!(m.relayed, Some(base));
        assert_eq!(m.sync, Some(base + 10_000));
        assert_eq!(m.direct, Some(base + 20_000));
        assert_eq!(marks(log, "C"), Marks::default());
    }

    #[test]
    fn a_punch_counts_from_the_first_relayed_connection_of_either_side() {
        let a = Marks {
            relayed: Some(1_000),
            direct: Some(9_000),
            sync: None,
        };
        let b = Marks {
            relayed: Some(500),
            direct: Some(8_500),
            sync: Some(4_500),
        };
        let p = punch_times(&a, &b).expect("complete");
        assert_eq!((p.direct, p.both, p.sync), (8.0, 8.5, Some(4.0)));
        assert!(punch_times(&a, &Marks { direct: None, ..b }).is_none());
    }

    #[test]
    fn curl_gives_the_time_from_request_to_answer() {
        let ms = curl_times("200 0.000412 0.023412").expect("parses");
        assert!((ms - 23.0).abs() < 1e-9);
        assert!(curl_times("502 0.1 0.2").is_err());
        assert!(curl_times("200 0.1").is_err());
    }
}
