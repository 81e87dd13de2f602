//! What waiting costs: the real `darkswap-relay` binary holding a thousand
//! connections that each sent one byte of a request and then nothing. The
//! relay's CPU time, read from `/proc`, must not grow while they wait: a
//! socket with nothing to read is not polled. Alone in its test binary so
//! nothing else runs in the measured process.
#![cfg(all(feature = "server", target_os = "linux"))]

use std::{path::Path, process::Command, time::Duration};

use darkswap_testkit::RelayProcess;
use tokio::io::AsyncWriteExt;

const BIN: &str = env!("CARGO_BIN_EXE_darkswap-relay");
const SOCKETS: usize = 1000;
/// Each measurement covers this much wall time.
const WINDOW: Duration = Duration::from_secs(3);

/// User plus system CPU time of process `pid`, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is the first, utime the 12th, stime the 13th.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    let per_sec: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Duration::from_millis(ticks * 1000 / per_sec)
}

/// CPU time `pid` spends in one [`WINDOW`] of wall time. The window is a
/// measurement, not a wait for something to happen.
async fn cpu_over_window(pid: u32) -> Duration {
    let before = cpu_time(pid);
    tokio::time::sleep(WINDOW).await;
    cpu_time(pid) - before
}

async fn metric(relay: &RelayProcess, sample: &str) -> Option<f64> {
    let url = format!("http://{}/metrics", relay.metrics.unwrap());
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_relay_waits_instead_of_spinning_on_accept() {
    let dir = tempfile::tempdir().unwrap();
    // The relay under a limit of 48 open files: its runtime, libp2p and
    // listeners take about 14, the connections below the rest.
    let mut args = vec![
        "-c".to_owned(),
        format!("ulimit -n 48 && exec {BIN} \"$@\""),
        "relay".to_owned(),
    ];
    args.extend(RelayProcess::loopback_args(dir.path()));
    let relay = RelayProcess::start(Path::new("/bin/sh"), &args, &[]);
    let pid = relay.child.id();
    let addr = relay.signaling.unwrap();
    let idle = cpu_over_window(pid).await;
    // More connections than the relay has descriptors for (and fewer than
    // one address may open): once it runs out, every accept fails at once
    // while the rest wait in the backlog.
    let mut held = Vec::new();
    for _ in 0..60 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"G").await.unwrap();
        held.push(s);
    }
    let starved = cpu_over_window(pid).await;
    eprintln!("relay CPU over {WINDOW:?}: {idle:?} idle, {starved:?} out of descriptors");
    assert!(
        starved <= idle + WINDOW / 20,
        "{starved:?} out of descriptors, {idle:?} before"
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_one_byte_connections_cost_no_cpu_while_they_wait() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        "[signaling]\nrequest_head_timeout_secs = 120\n\
         [limits]\nmax_connections_per_ip = 2000\n\
         connection_rate_per_ip = { limit = 100000, interval_secs = 1 }\n",
    )
    .unwrap();
    let mut args = RelayProcess::loopback_args(dir.path());
    args.extend(["--config".to_owned(), config.to_str().unwrap().to_owned()]);
    let relay = RelayProcess::start(Path::new(BIN), &args, &[]);
    let pid = relay.child.id();
    let addr = relay.signaling.unwrap();

    let idle = cpu_over_window(pid).await;
    let mut held = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"G").await.unwrap();
        held.push(s);
    }
    // Every one of them accepted and waiting for the rest of its head.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let sample = "darkswap_relay_public_connections";
    while metric(&relay, sample).await != Some(SOCKETS as f64) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sample}: {:?}",
            metric(&relay, sample).await
        );
        // Metrics have no change notification; poll them, bounded.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waiting = cpu_over_window(pid).await;
    eprintln!(
        "relay CPU over {WINDOW:?}: {idle:?} idle, {waiting:?} holding {SOCKETS} one-byte connections"
    );
    // Waiting costs nothing: at most the idle relay's own background work
    // plus 5 % of one core (scheduling noise, the metrics scrape).
    assert!(
        waiting <= idle + WINDOW / 20,
        "{waiting:?} with {SOCKETS} one-byte connections, {idle:?} without"
    );
    drop(held);
}
