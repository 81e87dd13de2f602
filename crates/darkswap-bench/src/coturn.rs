//! The coturn reference of `ws-circuits`: `turnserver` on loopback with a
//! long-term user, `turnutils_peer` (a UDP echo peer) and
//! `turnutils_uclient` (coturn's load client), whose own per-second
//! counters are read to time the transfer.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::tool_install::{ensure_apt, free_port};

const USER: &str = "bench";
const PASSWORD: &str = "benchpass";

/// A child process killed on drop.
#[derive(Debug)]
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `turnserver` and `turnutils_peer` on loopback.
#[derive(Debug)]
pub(crate) struct Coturn {
    server: Killed,
    _peer: Killed,
    port: u16,
    peer_port: u16,
    _dir: tempfile::TempDir,
}

/// Installs coturn if missing.
pub(crate) fn install() -> anyhow::Result<()> {
    ensure_apt(
        "coturn",
        &["turnserver", "turnutils_uclient", "turnutils_peer"],
    )
}

impl Coturn {
    /// Starts both, and waits until the server accepts TCP connections.
    pub(crate) fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("temp dir")?;
        let port = free_port()?;
        let user = format!("--user={USER}:{PASSWORD}");
        let server = Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                // Relayed addresses away from the ephemeral range the
                // clients' sockets use.
                "--min-port=50000",
                "--max-port=59999",
                "--lt-cred-mech",
                &user,
                "--realm=bench",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",
                "--log-file=stdout",
                "--simple-log",
            ])
            .arg(format!(
                "--pidfile={}",
                dir.path().join("turn.pid").display()
            ))
            .arg(format!("--userdb={}", dir.path().join("turndb").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn turnserver")?;
        let server = Killed(server);
        let peer_port = free_port()?;
        let peer = Command::new("turnutils_peer")
            .args(["-L", "127.0.0.1", "-p", &peer_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn turnutils_peer")?;
        let peer = Killed(peer);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                bail!("turnserver did not listen on {addr} within 15 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Coturn {
            server,
            _peer: peer,
            port,
            peer_port,
            _dir: dir,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.server.0.id()
    }

    /// Runs `turnutils_uclient` with `flows` sessions each sending
    /// `messages` messages of `size` bytes as fast as it can (`-z 0`):
    /// over UDP to the echo peer, or, with `tcp_c2c`, over TCP allocations
    /// between pairs of its own clients (RFC 6062; UDP datagrams of 16 KiB
    /// do not come back through coturn and its peer). Bounded by `limit`.
    pub(crate) fn uclient(
        &self,
        flows: usize,
        messages: usize,
        size: usize,
        tcp_c2c: bool,
        limit: Duration,
    ) -> anyhow::Result<UclientRun> {
        let mut cmd = Command::new("turnutils_uclient");
        cmd.args(["-p", &self.port.to_string(), "-u", USER, "-w", PASSWORD])
            .args(["-m", &flows.to_string(), "-n", &messages.to_string()])
            .args(["-l", &size.to_string(), "-z", "0"]);
        if tcp_c2c {
            cmd.arg("-T");
        } else {
            cmd.args(["-c", "-e", "127.0.0.1", "-r", &self.peer_port.to_string()]);
        }
        cmd.arg("127.0.0.1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = Killed(cmd.spawn().context("spawn turnutils_uclient")?);
        let stdout = child.0.stdout.take().context("piped stdout")?;
        let start = Instant::now();
        // Lines are timestamped as they arrive: uclient prints its counters
        // once a second, and their arrival times are finer than the whole
        // seconds it prints.
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((start.elapsed().as_secs_f64(), line)).is_err() {
                    break;
                }
            }
        });
        let deadline = start + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("turnutils_uclient did not finish within {limit:?}")
                }
            }
        }
        let status = child.0.wait().context("wait for turnutils_uclient")?;
        if !status.success() {
            let tail: Vec<&str> = seen.iter().rev().take(5).map(|l| l.1.as_str()).collect();
            bail!("turnutils_uclient failed ({status}): {tail:?}");
        }
        parse_uclient(&seen, tcp_c2c)
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.server.0.kill();
    }
}

/// What one `turnutils_uclient` run delivered, from its own counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct UclientRun {
    /// Messages sent by all sessions.
    pub(crate) sent: u64,
    /// Messages that came back (at most `sent`).
    pub(crate) received: u64,
    /// Bytes that came back (at most the bytes sent).
    pub(crate) received_bytes: u64,
    /// Messages received per second while the transfer ran.
    pub(crate) messages_per_sec: f64,
    /// Bytes received per second while the transfer ran.
    pub(crate) bytes_per_sec: f64,
}

/// One of uclient's once-a-second counter lines.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tick {
    t: f64,
    recv: u64,
    recv_bytes: u64,
}

/// The number after `key` in `line` (`tot_recv_msgs=12`,
/// `tot_recv_bytes ~ 34`).
fn field(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start_matches([' ', '=', '~'])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Reads uclient's output (arrival time in seconds, line). The rate is
/// taken between the first counter line showing data and the last one
/// before all of it: both inside the transfer, so neither the allocations
/// and uclient's random start delay (up to 0.5 s) nor its one-second wait
/// at the end count. Runs too short for two such lines fall back to
/// everything between "Total connect time" and the last counter line.
///
/// Over UDP the counter is what came back. Over TCP (`tcp`) uclient's
/// receive counters run ahead of what was sent (it counts reads: 10 %
/// more bytes than sent in a run), so the rate is read from its send
/// counters instead, which TCP delivers in full (uclient reports none
/// lost) and which run ahead of delivery only by the sockets' buffers.
fn parse_uclient(lines: &[(f64, String)], tcp: bool) -> anyhow::Result<UclientRun> {
    let mut ticks = Vec::new();
    let (mut sent, mut received, mut sent_bytes, mut received_bytes) = (None, None, None, None);
    let mut connected = None;
    for (t, line) in lines {
        if line.contains("Total connect time") {
            connected = Some(*t);
        }
        if line.contains("start_mclient: msz=") {
            let (msgs, bytes) = if tcp {
                ("tot_send_msgs", "tot_send_bytes")
            } else {
                ("tot_recv_msgs", "tot_recv_bytes")
            };
            ticks.push(Tick {
                t: *t,
                recv: field(line, msgs).context("tot_*_msgs")?,
                recv_bytes: field(line, bytes).context("tot_*_bytes")?,
            });
        } else if line.contains("start_mclient: tot_send_msgs=") {
            sent = field(line, "tot_send_msgs");
            received = field(line, "tot_recv_msgs");
        } else if line.contains("start_mclient: tot_send_bytes") {
            sent_bytes = field(line, "tot_send_bytes");
            received_bytes = field(line, "tot_recv_bytes");
        }
    }
    let (Some(sent), Some(received), Some(sent_bytes), Some(received_bytes)) =
        (sent, received, sent_bytes, received_bytes)
    else {
        bail!("turnutils_uclient printed no totals");
    };
    // Over TCP uclient counts reads, which may exceed the messages sent.
    let received = received.min(sent);
    let received_bytes = received_bytes.min(sent_bytes);
    if received == 0 {
        bail!("nothing came back through coturn ({sent} messages sent)");
    }
    let total_bytes = if tcp { sent_bytes } else { received_bytes };
    let first = ticks.iter().position(|k| k.recv > 0);
    let last = ticks.iter().rposition(|k| k.recv_bytes < total_bytes);
    let (messages_per_sec, bytes_per_sec) = match (first, last) {
        (Some(i), Some(j)) if j > i && ticks[j].recv > ticks[i].recv => {
            let (a, b) = (ticks[i], ticks[j]);
            let dt = b.t - a.t;
            (
                (b.recv - a.recv) as f64 / dt,
                (b.recv_bytes - a.recv_bytes) as f64 / dt,
            )
        }
        _ => {
            let from = connected.context("no \"Total connect time\" line")?;
            let to = ticks.last().map_or(from, |k| k.t);
            let dt = to - from;
            if dt <= 0.0 {
                bail!("turnutils_uclient's transfer has no duration");
            }
            (received as f64 / dt, received_bytes as f64 / dt)
        }
    };
    Ok(UclientRun {
        sent,
        received,
        received_bytes,
        messages_per_sec,
        bytes_per_sec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(f64, String)> {
        text.lines()
            .enumerate()
            .map(|(i, l)| (i as f64 * 0.5, l.to_owned()))
            .collect()
    }

    #[test]
    fn rate_between_interior_counter_lines() {
        let out = lines(
            "0: : Total connect time is 0
1: : start_mclient: msz=4, tot_send_msgs=0, tot_recv_msgs=0, tot_send_bytes ~ 0, tot_recv_bytes ~ 0
2: : start_mclient: msz=4, tot_send_msgs=2000, tot_recv_msgs=1000, tot_send_bytes ~ 240000, tot_recv_bytes ~ 120000
3: : start_mclient: msz=4, tot_send_msgs=4000, tot_recv_msgs=3000, tot_send_bytes ~ 480000, tot_recv_bytes ~ 360000
4: : start_mclient: msz=4, tot_send_msgs=8000, tot_recv_msgs=8000, tot_send_bytes ~ 960000, tot_recv_bytes ~ 960000
4: : start_mclient: tot_send_msgs=8000, tot_recv_msgs=8000
4: : start_mclient: tot_send_bytes ~ 960000, tot_recv_bytes ~ 960000
4: : Total transmit time is 4",
        );
        let run = parse_uclient(&out, false).unwrap();
        assert_eq!(run.sent, 8000);
        assert_eq!(run.received, 8000);
        // Lines 2 and 3 arrived 0.5 s apart: 2000 messages in between.
        assert!((run.messages_per_sec - 4000.0).abs() < 1e-9);
        assert!((run.bytes_per_sec - 480_000.0).abs() < 1e-9);
    }

    #[test]
    fn short_run_falls_back_to_the_whole_transfer() {
        let out = lines(
            "0: : Total connect time is 0
1: : start_mclient: msz=1, tot_send_msgs=0, tot_recv_msgs=0, tot_send_bytes ~ 0, tot_recv_bytes ~ 0
1: : start_mclient: msz=1, tot_send_msgs=100, tot_recv_msgs=100, tot_send_bytes ~ 100, tot_recv_bytes ~ 100
1: : start_mclient: tot_send_msgs=100, tot_recv_msgs=120
1: : start_mclient: tot_send_bytes ~ 100, tot_recv_bytes ~ 130",
        );
        let run = parse_uclient(&out, false).unwrap();
        // Capped at what was sent; 1 s from the connect line to the last tick.
        assert_eq!(run.received, 100);
        assert_eq!(run.received_bytes, 100);
        assert!((run.messages_per_sec - 100.0).abs() < 1e-9);
    }

    #[test]
    fn tcp_reads_the_send_counters() {
        let out = lines(
            "0: : Total connect time is 0
1: : start_mclient: msz=4, tot_send_msgs=0, tot_recv_msgs=0, tot_send_bytes ~ 0, tot_recv_bytes ~ 0
2: : start_mclient: msz=4, tot_send_msgs=100, tot_recv_msgs=125, tot_send_bytes ~ 1000, tot_recv_bytes ~ 1250
3: : start_mclient: msz=4, tot_send_msgs=300, tot_recv_msgs=365, tot_send_bytes ~ 3000, tot_recv_bytes ~ 3650
4: : start_mclient: msz=4, tot_send_msgs=400, tot_recv_msgs=440, tot_send_bytes ~ 4000, tot_recv_bytes ~ 4400
4: : start_mclient: tot_send_msgs=400, tot_recv_msgs=440
4: : start_mclient: tot_send_bytes ~ 4000, tot_recv_bytes ~ 4400",
        );
        let run = parse_uclient(&out, true).unwrap();
        assert_eq!((run.received, run.received_bytes), (400, 4000));
        // 200 messages, 2000 bytes between lines 2 and 3, 0.5 s apart.
        assert!((run.messages_per_sec - 400.0).abs() < 1e-9);
        assert!((run.bytes_per_sec - 4000.0).abs() < 1e-9);
    }

    #[test]
    fn nothing_back_is_an_error() {
        let out = lines(
            "0: : Total connect time is 0
1: : start_mclient: tot_send_msgs=100, tot_recv_msgs=0
1: : start_mclient: tot_send_bytes ~ 100, tot_recv_bytes ~ 0",
        );
        assert!(parse_uclient(&out, false).is_err());
    }

    #[test]
    fn fields_with_equals_and_tilde() {
        let l = "3: : start_mclient: msz=4, tot_send_msgs=2000, tot_recv_msgs=1999, tot_send_bytes ~ 240000, tot_recv_bytes ~ 239880";
        assert_eq!(field(l, "tot_recv_msgs"), Some(1999));
        assert_eq!(field(l, "tot_recv_bytes"), Some(239_880));
        assert_eq!(field(l, "nope"), None);
    }
}
