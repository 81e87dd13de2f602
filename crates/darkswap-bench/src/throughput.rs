//! `throughput` (issue 18 P1 and P2): `/perf/1.0.0` downloads between two
//! processes, ours against rust-libp2p with default transport settings and
//! iperf3 as the ceiling, over TCP and QUIC, on loopback and between two
//! network namespaces `--rtt-ms` apart; then the same transfer relayed
//! through our relay's libp2p circuit against it direct.
//!
//! Ours: the server is the `darkswap` daemon started with `--perf`, the
//! client an SDK node (`perf-peer --stack ours`). Reference: `perf-peer
//! --stack default` on both ends. iperf3 (TCP, server sending, `-R`) runs
//! between the same two ends. Every round runs all three back to back,
//! alternating the order, so that drift of the machine hits each alike.

use std::{
    io::{BufRead as _, BufReader},
    net::Ipv4Addr,
    path::PathBuf,
    process::{Child, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::{
    netns::Namespace,
    perf_peer::PerfResult,
    process::{self, Daemon, in_netns},
    relay_config::RelayArgs,
    report::{Conditions, Figures, Report},
    tool_install,
};

/// Bound on a server reporting its address, and on a client's whole run.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(150);
/// Bound on the daemon's relay reservation.
const RESERVATION_TIMEOUT: Duration = Duration::from_secs(30);

/// What to measure.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub(crate) struct ThroughputArgs {
    /// Rounds per condition.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// MiB per transfer on loopback.
    #[arg(long, default_value_t = 256)]
    loopback_mib: u64,
    /// MiB per transfer between the namespaces.
    #[arg(long, default_value_t = 64)]
    wan_mib: u64,
    /// Round-trip time between the namespaces, ms.
    #[arg(long, default_value_t = 63)]
    rtt_ms: u64,
    /// MiB per relayed transfer (the relay's default circuit limit is 64
    /// MiB, both directions together).
    #[arg(long, default_value_t = 32)]
    relayed_mib: u64,
    /// Rounds of P2 (relayed and direct, interleaved). More than the other
    /// conditions: three processes share two cores, so a round's ratio
    /// spreads over ±20 %, and each round takes about a second.
    #[arg(long, default_value_t = 9)]
    relayed_rounds: usize,
    /// Seconds of each iperf3 run.
    #[arg(long, default_value_t = 3)]
    iperf_secs: u64,
    /// Skip the namespaces (loopback only).
    #[arg(long)]
    no_wan: bool,
    /// Skip P2 (relayed ÷ direct).
    #[arg(long)]
    no_relayed: bool,
    /// The daemon binary [default: darkswap next to this runner].
    #[arg(long)]
    daemon_bin: Option<PathBuf>,
    #[command(flatten)]
    relay: RelayArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Quic,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Quic => "QUIC",
        }
    }

    fn addr(self, ip: Ipv4Addr, port: u16) -> String {
        match self {
            Transport::Tcp => format!("/ip4/{ip}/tcp/{port}"),
            Transport::Quic => format!("/ip4/{ip}/udp/{port}/quic-v1"),
        }
    }

    /// Goal of ours ÷ default rust-libp2p.
    fn goal(self) -> &'static str {
        match self {
            Transport::Tcp => ">= 3",
            Transport::Quic => ">= 1.5",
        }
    }
}

/// Where the two ends run: both on the host's loopback, or both in a
/// namespace of our own whose loopback (MTU 1500, as a real path) delays
/// each packet by half the RTT (see `netns`).
struct Link {
    name: String,
    server_ns: Option<String>,
    client_ns: Option<String>,
    server_ip: Ipv4Addr,
    mib: u64,
    wan: bool,
    _ns: Option<Namespace>,
}

/// Runs the measure.
pub(crate) async fn run(args: ThroughputArgs, quick: bool) -> anyhow::Result<Report> {
    let args = if quick {
        ThroughputArgs {
            rounds: 1,
            loopback_mib: 16,
            wan_mib: 4,
            relayed_mib: 8,
            relayed_rounds: 1,
            iperf_secs: 1,
            ..args
        }
    } else {
        args
    };
    tool_install::ensure_apt("iperf3", &["iperf3"])?;
    let conditions = Conditions::now();
    let daemon_bin = args
        .daemon_bin
        .clone()
        .unwrap_or_else(|| process::sibling_binary("darkswap"));
    let mut figures = Figures::default();
    let mut links = vec![Link {
        name: "loopback".to_owned(),
        server_ns: None,
        client_ns: None,
        server_ip: Ipv4Addr::LOCALHOST,
        mib: args.loopback_mib,
        wan: false,
        _ns: None,
    }];
    if !args.no_wan {
        let ns = Namespace::create("tp")?;
        let name = ns.name().to_owned();
        let out = std::process::Command::new("ip")
            .args(["-n", &name, "link", "set", "lo", "mtu", "1500"])
            .output()?;
        anyhow::ensure!(out.status.success(), "set the namespace's MTU");
        ns.set_delay(Duration::from_micros(args.rtt_ms * 500))?;
        links.push(Link {
            name: format!("{} ms RTT", args.rtt_ms),
            server_ns: Some(name.clone()),
            client_ns: Some(name),
            server_ip: Ipv4Addr::LOCALHOST,
            mib: args.wan_mib,
            wan: true,
            _ns: Some(ns),
        });
    }
    for link in &links {
        for transport in [Transport::Tcp, Transport::Quic] {
            direct(&args, &daemon_bin, link, transport, &mut figures).await?;
        }
    }
    drop(links);
    if !args.no_relayed {
        for transport in [Transport::Tcp, Transport::Quic] {
            relayed(&args, &daemon_bin, transport, &mut figures).await?;
        }
    }
    Report::new("throughput", conditions, &args, figures)
}

/// P1 on one link and transport.
async fn direct(
    args: &ThroughputArgs,
    daemon_bin: &std::path::Path,
    link: &Link,
    transport: Transport,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let ip = link.server_ip;
    let ports = [
        tool_install::free_port()?,
        tool_install::free_port()?,
        tool_install::free_port()?,
    ];
    let ours_listen = transport.addr(ip, ports[0]);
    let daemon = Daemon::start_in(
        link.server_ns.as_deref(),
        daemon_bin,
        &daemon_flags(&ours_listen),
        &[],
    )?;
    let ours_addr = format!("{ours_listen}/p2p/{}", daemon.peer_id);
    let reference = PerfPeer::server(
        link.server_ns.as_deref(),
        &transport.addr(ip, ports[1]),
        transport,
    )?;
    let bytes = link.mib << 20;
    let goal_iperf = link.wan.then_some(">= 0.25");
    for round in 0..args.rounds {
        eprintln!(
            "throughput: {} {}, round {}/{}",
            transport.name(),
            link.name,
            round + 1,
            args.rounds
        );
        let mut results = [0.0f64; 3];
        let order: [usize; 3] = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for which in order {
            results[which] = match which {
                0 => client(link.client_ns.as_deref(), "ours", &ours_addr, bytes)?,
                1 => client(link.client_ns.as_deref(), "default", &reference.addr, bytes)?,
                _ => iperf3(link, ports[2], args.iperf_secs)?,
            };
        }
        let name = format!("P1 {} {}", transport.name(), link.name);
        figures.add_versus(
            &format!("{name}: ours ÷ rust-libp2p defaults"),
            "Mbit/s",
            "rust-libp2p 0.57, default transport settings",
            Some(transport.goal()),
            results[0],
            results[1],
        );
        figures.add_versus(
            &format!("{name}: ours ÷ iperf3"),
            "Mbit/s",
            "iperf3 (TCP) between the same ends",
            goal_iperf,
            results[0],
            results[2],
        );
    }
    Ok(())
}

/// P2: the same download through our relay's circuit, against it direct
/// (loopback; the relay with `--perf`, so also measured: ours to the relay).
async fn relayed(
    args: &ThroughputArgs,
    daemon_bin: &std::path::Path,
    transport: Transport,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    // Every dial comes from 127.0.0.1 and each client's Kademlia walk opens
    // circuits of its own: the per-IP circuit rate (60 a minute) would
    // refuse the third round. Only request rates are raised.
    let config = format!(
        "{}\n[network]\nperf = true\n",
        crate::relay_config::relay_hop_toml(0, 0)
    );
    let relay = args.relay.start_with(
        &config,
        &[
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--listen",
            "/ip4/127.0.0.1/udp/0/quic-v1",
        ],
    )?;
    let relay_addr = match transport {
        Transport::Tcp => relay.process.tcp_addr.clone(),
        Transport::Quic => relay
            .process
            .quic_addr
            .clone()
            .context("the relay reported no QUIC address")?,
    };
    let relay_addr = if relay_addr
        .iter()
        .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
    {
        relay_addr.to_string()
    } else {
        format!("{relay_addr}/p2p/{}", relay.process.peer_id)
    };
    let listen = transport.addr(Ipv4Addr::LOCALHOST, tool_install::free_port()?);
    let mut flags = daemon_flags(&listen);
    flags.retain(|f| f != "--no-relays");
    flags.extend(["--relay".to_owned(), relay_addr.clone()]);
    let daemon = Daemon::start_in(None, daemon_bin, &flags, &[])?;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + RESERVATION_TIMEOUT;
    while process::metric(&http, daemon.api, "p2p_relay_connections")
        .await
        .unwrap_or(0.0)
        < 1.0
    {
        if Instant::now() > deadline {
            bail!("the daemon held no reservation on the relay within {RESERVATION_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let direct_addr = format!("{listen}/p2p/{}", daemon.peer_id);
    let circuit = format!("{relay_addr}/p2p-circuit/p2p/{}", daemon.peer_id);
    let bytes = args.relayed_mib << 20;
    let relayed_bytes = "darkswap_relay_bytes_relayed_total";
    for round in 0..args.relayed_rounds {
        eprintln!(
            "throughput: relayed {}, round {}/{}",
            transport.name(),
            round + 1,
            args.relayed_rounds
        );
        let before = process::metric(&http, relay.metrics, relayed_bytes).await?;
        let (mut via_relay, mut direct, mut to_relay) = (0.0, 0.0, 0.0);
        let order: [usize; 3] = if round % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for which in order {
            match which {
                0 => via_relay = client(None, "ours", &circuit, bytes)?,
                1 => direct = client(None, "ours", &direct_addr, bytes)?,
                _ => to_relay = client(None, "ours", &relay_addr, bytes)?,
            }
        }
        let carried = process::metric(&http, relay.metrics, relayed_bytes).await? - before;
        // The circuit's transfer must have crossed the relay, not a direct
        // connection the nodes upgraded to meanwhile.
        if carried < bytes as f64 {
            bail!("the relay carried {carried} bytes of a {bytes}-byte relayed transfer");
        }
        let name = format!("P2 {} loopback", transport.name());
        figures.add_versus(
            &format!("{name}: relayed ÷ direct"),
            "Mbit/s",
            "the same nodes, direct",
            Some(">= 0.5"),
            via_relay,
            direct,
        );
        figures.add(
            &format!("{name}: ours to the relay (relay --perf)"),
            "Mbit/s",
            to_relay,
        );
    }
    Ok(())
}

/// The daemon serving perf on `listen` and nothing else it would dial.
fn daemon_flags(listen: &str) -> Vec<String> {
    [
        "--perf",
        "--listen",
        listen,
        "--no-relays",
        "--no-relay-discovery",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A `perf-peer --stack default` server, killed on drop.
struct PerfPeer {
    child: Child,
    addr: String,
}

impl PerfPeer {
    fn server(ns: Option<&str>, listen: &str, transport: Transport) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("this runner's path")?;
        let mut child = in_netns(ns, &exe)
            .args(["perf-peer", "--stack", "default", "--listen", listen])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn perf-peer")?;
        let lines = lines_of(&mut child)?;
        let want = match transport {
            Transport::Tcp => "/tcp/",
            Transport::Quic => "/quic-v1/",
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    bail!("perf-peer did not report its address");
                }
            };
            if let Some(addr) = line.strip_prefix("LISTEN ")
                && addr.contains(want)
            {
                return Ok(PerfPeer {
                    child,
                    addr: addr.to_owned(),
                });
            }
        }
    }
}

impl Drop for PerfPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_of(child: &mut Child) -> anyhow::Result<mpsc::Receiver<String>> {
    let stdout = child.stdout.take().context("piped stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Runs one `perf-peer` client of `stack` to the end; its Mbit/s.
fn client(ns: Option<&str>, stack: &str, addr: &str, bytes: u64) -> anyhow::Result<f64> {
    let exe = std::env::current_exe().context("this runner's path")?;
    let mut cmd = in_netns(ns, &exe);
    cmd.args(["perf-peer", "--stack", stack, "--dial", addr])
        .arg(format!("--bytes={bytes}"));
    let out = tool_install::output_within(cmd, CLIENT_TIMEOUT)?;
    let result: PerfResult = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| format!("perf-peer {stack} to {addr} gave no result: {out}"))
        .and_then(|json| Ok(serde_json::from_str(json)?))?;
    anyhow::ensure!(
        result.bytes == bytes,
        "perf-peer {stack} received {} of {bytes} bytes",
        result.bytes
    );
    Ok(result.mbit_per_sec())
}

/// One iperf3 run, server sending (`-R`, as perf's download); Mbit/s.
fn iperf3(link: &Link, port: u16, secs: u64) -> anyhow::Result<f64> {
    let iperf = PathBuf::from("iperf3");
    let mut server = in_netns(link.server_ns.as_deref(), &iperf)
        .args([
            "-s",
            "-1",
            "--forceflush",
            "-B",
            &link.server_ip.to_string(),
        ])
        .arg(format!("-p{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("spawn iperf3 -s")?;
    let lines = lines_of(&mut server)?;
    let ready = lines.recv_timeout(START_TIMEOUT);
    let result = (|| {
        ready.context("iperf3 -s did not start")?;
        let mut cmd = in_netns(link.client_ns.as_deref(), &iperf);
        cmd.args(["-J", "-R", "-c", &link.server_ip.to_string()])
            .arg(format!("-p{port}"))
            .arg(format!("-t{secs}"));
        let out = tool_install::output_within(cmd, Duration::from_secs(secs + 30))?;
        iperf3_mbit(&out)
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}

/// The received rate of an `iperf3 -J` report, Mbit/s.
fn iperf3_mbit(json: &str) -> anyhow::Result<f64> {
    let v: serde_json::Value = serde_json::from_str(json).context("iperf3 -J output")?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        bail!("iperf3: {e}");
    }
    v.pointer("/end/sum_received/bits_per_second")
        .and_then(|b| b.as_f64())
        .map(|b| b / 1e6)
        .context("iperf3 -J: no end.sum_received.bits_per_second")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf3_reports_are_read_and_errors_named() {
        let ok = r#"{"start":{},"end":{"sum_sent":{"bits_per_second":2e9},"sum_received":{"bits_per_second":1.5e9}}}"#;
        assert_eq!(iperf3_mbit(ok).unwrap(), 1500.0);
        let err = r#"{"start":{},"end":{},"error":"unable to connect to server"}"#;
        assert!(
            iperf3_mbit(err)
                .unwrap_err()
                .to_string()
                .contains("unable to connect")
        );
        assert!(iperf3_mbit("not json").is_err());
    }
}
