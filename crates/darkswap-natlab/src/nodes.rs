//! Real `darkswap-relay` and `darkswap` processes inside the lab's
//! namespaces, driven the way an operator drives them: flags, the CLI and
//! the daemon's event stream.

use std::{
    fs::File,
    io::{BufRead, BufReader, Write},
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use darkswap_testkit::{RelayProcess, netns::Netns};
use serde_json::Value;

/// Bound on a daemon reporting that it started.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on one CLI call.
const CLI_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the binaries under test are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `darkswap`.
    pub darkswap: PathBuf,
    /// `darkswap-relay`.
    pub relay: PathBuf,
}

impl Binaries {
    /// `$DARKSWAP_BIN` and `$DARKSWAP_RELAY_BIN`, else the binaries next to
    /// this one (the same `target/<profile>` directory).
    pub fn locate() -> Result<Self> {
        let here = std::env::current_exe()?;
        let dir = here.parent().context("executable directory")?;
        let pick = |var: &str, name: &str| -> Result<PathBuf> {
            let path = std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| dir.join(name));
            if !path.exists() {
                bail!(
                    "{} is missing: build it (`cargo build -p darkswap-cli -p darkswap-relay`) or set {var}",
                    path.display()
                );
            }
            Ok(path)
        };
        Ok(Binaries {
            darkswap: pick("DARKSWAP_BIN", "darkswap")?,
            relay: pick("DARKSWAP_RELAY_BIN", "darkswap-relay")?,
        })
    }
}

/// The transport a lab run uses end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// TCP with Noise and Yamux; hole punching by simultaneous open.
    Tcp,
    /// QUIC v1.
    Quic,
}

impl Transport {
    /// Both, in the matrix's order.
    pub const ALL: [Transport; 2] = [Transport::Tcp, Transport::Quic];

    /// Its name in the matrix.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Quic => "quic",
        }
    }

    /// Parses [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The listen multiaddr on `ip`:`port`.
    pub fn listen(self, ip: Ipv4Addr, port: u16) -> String {
        match self {
            Transport::Tcp => format!("/ip4/{ip}/tcp/{port}"),
            Transport::Quic => format!("/ip4/{ip}/udp/{port}/quic-v1"),
        }
    }
}

/// A `darkswap-relay` process on a public host, killed on drop.
#[derive(Debug)]
pub struct Relay {
    process: RelayProcess,
    /// Its peer id.
    pub peer_id: String,
    /// Its address for the lab's transport, ending in `/p2p/<id>`.
    pub addr: String,
}

impl Relay {
    /// Starts the relay in `ns`, TCP and QUIC on port 4001 of every
    /// interface (as its defaults do, so it lists `127.0.0.1` among its
    /// addresses: daemons elsewhere must not dial that), reached at `ip`,
    /// with its key (kept across restarts) in `data_dir`.
    pub fn start(
        bins: &Binaries,
        ns: &Netns,
        ip: Ipv4Addr,
        transport: Transport,
        data_dir: &Path,
    ) -> Result<Self> {
        let relay = bins.relay.to_str().context("utf-8 path")?;
        let args: Vec<String> = [
            "netns",
            "exec",
            &ns.name,
            relay,
            "--data-dir",
            data_dir.to_str().context("utf-8 path")?,
            "--listen",
            &Transport::Tcp.listen(Ipv4Addr::UNSPECIFIED, 4001),
            "--listen",
            &Transport::Quic.listen(Ipv4Addr::UNSPECIFIED, 4001),
            "--log-format",
            "json",
        ]
        .map(String::from)
        .to_vec();
        let mut args = args;
        // `NAT_LAB_RELAY_LOG` (a RUST_LOG filter) for more detail in the
        // relay's log.
        if let Ok(filter) = std::env::var("NAT_LAB_RELAY_LOG") {
            args.extend(["--log-level".to_owned(), filter]);
        }
        // RelayProcess reads the start-up logs; `ip netns exec` execs the
        // relay, so the child is the relay itself (a kill reaches it).
        let process = RelayProcess::start(Path::new("ip"), &args, &[]);
        let peer_id = process.peer_id.to_string();
        let addr = format!("{}/p2p/{peer_id}", transport.listen(ip, 4001));
        Ok(Relay {
            process,
            peer_id,
            addr,
        })
    }

    /// Appends the JSON log lines the relay wrote so far to `path`.
    pub fn save_logs(&self, path: &Path) -> Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for line in self.process.logs.try_iter() {
            writeln!(file, "{line}")?;
        }
        Ok(())
    }

    /// `kill -9`: no goodbye to anyone.
    pub fn kill_9(mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }
}

/// A `darkswap daemon` in a host namespace, killed on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    bins: Binaries,
    ns: String,
    /// Its API address (inside its namespace).
    pub api: SocketAddr,
    /// Its peer id.
    pub peer_id: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts a daemon in `ns` with its data in `data_dir`, its log in
    /// `data_dir/daemon.log`, and `args` after `daemon`.
    pub fn start(bins: &Binaries, ns: &Netns, data_dir: &Path, args: &[String]) -> Result<Self> {
        Self::start_logging(bins, ns, data_dir, args, None)
    }

    /// As [`start`](Self::start), with `log` (a RUST_LOG filter) for its
    /// log instead of `NAT_LAB_LOG` or `info`: a caller that reads timings
    /// from the log asks for the debug lines it needs.
    pub fn start_logging(
        bins: &Binaries,
        ns: &Netns,
        data_dir: &Path,
        args: &[String],
        log: Option<&str>,
    ) -> Result<Self> {
        let filter = match log {
            Some(filter) => filter.to_owned(),
            // `NAT_LAB_LOG` (a RUST_LOG filter) for more detail in the logs.
            None => std::env::var("NAT_LAB_LOG").unwrap_or_else(|_| "info".to_owned()),
        };
        let mut cmd = ns.command(bins.darkswap.to_str().context("utf-8 path")?);
        cmd.args(["--api", "127.0.0.1:0", "daemon", "--no-mdns", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", filter)
            .env("NO_COLOR", "1")
            .env_remove("DARKSWAP_CONFIG")
            .env_remove("DARKSWAP_API")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("spawn darkswap daemon")?;
        let stderr = child.stderr.take().context("piped stderr")?;
        let mut log = File::create(data_dir.join("daemon.log"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut found = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                if !found && line.contains("daemon started") {
                    found = true;
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| anyhow!("daemon in {} did not start; see its log", ns.name))?;
        let api = line
            .split("api=")
            .nth(1)
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect::<String>()
            })
            .context("api address in the start-up line")?
            .parse()?;
        let mut daemon = Daemon {
            child,
            bins: bins.clone(),
            ns: ns.name.clone(),
            api,
            peer_id: String::new(),
        };
        daemon.peer_id = daemon.cli(&["status"])?["peer_id"]
            .as_str()
            .context("peer id in status")?
            .to_owned();
        Ok(daemon)
    }

    /// Asks the daemon to shut down (SIGTERM), as a user stopping it does.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Waits, at most `limit`, for the daemon to exit (after
    /// [`terminate`](Self::terminate)); whether it did.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            // A child's exit has no event to wait on here.
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn cli_command(&self) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(&self.bins.darkswap)
            .arg("--api")
            .arg(self.api.to_string());
        cmd
    }

    /// Runs `darkswap --json args` against this daemon.
    pub fn cli(&self, args: &[&str]) -> Result<Value> {
        let mut cmd = self.cli_command();
        cmd.arg("--json").args(args);
        let out = darkswap_testkit::netns::run_with_timeout(cmd, CLI_TIMEOUT);
        if !out.status.success() {
            bail!("darkswap {args:?}: {}", out.output.trim());
        }
        Ok(serde_json::from_str(&out.output)?)
    }

    /// Follows the daemon's event stream (`darkswap events`) into
    /// `timeline`, each event tagged with `tag`.
    pub fn follow(&self, tag: usize, timeline: &Timeline) -> Result<Follower> {
        let mut cmd = self.cli_command();
        cmd.arg("events")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().context("spawn darkswap events")?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let tx = timeline.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && tx
                        .send(Seen {
                            tag,
                            at: Instant::now(),
                            event,
                        })
                        .is_err()
                {
                    break;
                }
            }
        });
        Ok(Follower(child))
    }
}

/// A `darkswap events` process feeding a [`Timeline`], killed on drop.
#[derive(Debug)]
pub struct Follower(Child);

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One event of one daemon, with the time the lab read it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Which daemon (the tag given to [`Daemon::follow`]).
    pub tag: usize,
    /// When it arrived.
    pub at: Instant,
    /// The event's JSON.
    pub event: Value,
}

/// The events of several daemons in the order they arrived; every event
/// read is kept, so a wait never hides one from a later question.
#[derive(Debug)]
pub struct Timeline {
    tx: mpsc::Sender<Seen>,
    rx: mpsc::Receiver<Seen>,
    /// Every event read so far.
    pub seen: Vec<Seen>,
}

impl Default for Timeline {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel();
        Timeline {
            tx,
            rx,
            seen: Vec::new(),
        }
    }
}

impl Timeline {
    /// The first event, already seen or arriving before `deadline`, for
    /// which `pick` holds; `None` at the deadline.
    pub fn wait(&mut self, deadline: Instant, mut pick: impl FnMut(&Seen) -> bool) -> Option<Seen> {
        if let Some(s) = self.seen.iter().find(|s| pick(s)) {
            return Some(s.clone());
        }
        self.next_until(deadline, pick)
    }

    /// The first event that arrived at or after `after` (already seen, or
    /// arriving before `deadline`) for which `pick` holds.
    pub fn wait_after(
        &mut self,
        after: Instant,
        deadline: Instant,
        mut pick: impl FnMut(&Seen) -> bool,
    ) -> Option<Seen> {
        self.wait(deadline, |s| s.at >= after && pick(s))
    }

    /// The first event arriving from now on before `deadline` for which
    /// `pick` holds.
    pub fn next_until(
        &mut self,
        deadline: Instant,
        mut pick: impl FnMut(&Seen) -> bool,
    ) -> Option<Seen> {
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let seen = self.rx.recv_timeout(left).ok()?;
            self.seen.push(seen.clone());
            if pick(&seen) {
                return Some(seen);
            }
        }
    }

    /// Writes every event seen so far to `path`, one JSON line each with
    /// the daemon's tag and milliseconds since `since`.
    pub fn save(&mut self, path: &Path, since: Instant) -> Result<()> {
        self.catch_up();
        let mut out = String::new();
        for s in &self.seen {
            let ms = s.at.saturating_duration_since(since).as_millis();
            out.push_str(
                &serde_json::json!({"tag": s.tag, "ms": ms, "event": s.event}).to_string(),
            );
            out.push('\n');
        }
        std::fs::write(path, out)?;
        Ok(())
    }

    /// Reads what has arrived without waiting.
    pub fn catch_up(&mut self) {
        self.seen.extend(self.rx.try_iter());
    }
}

/// Whether `v` says the daemon holds a reservation (the `hello` snapshot or
/// a later `relay_reserved`), on `relay` if given.
pub fn reserved(v: &Value, relay: Option<&str>) -> bool {
    let on = |id: &Value| relay.is_none_or(|r| id == r);
    (v["type"] == "relay_reserved" && on(&v["relay_peer_id"]))
        || (v["type"] == "hello"
            && v["relays"].as_array().is_some_and(|rs| {
                rs.iter()
                    .any(|r| r["reserved"] == true && on(&r["peer_id"]))
            }))
}
