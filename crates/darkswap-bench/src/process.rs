//! The processes under measurement: the relay and daemon binaries started
//! as children (killed on drop), and what `/proc` tells about them (resident
//! memory, CPU time).

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use darkswap_testkit::RelayProcess;

/// Bound on a child process reporting that it started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the binaries are looked for by default: next to this runner
/// (`target/release/` when it runs from `cargo run --release`).
pub(crate) fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Raises this process's open-file limit to its hard limit, so that it can
/// hold thousands of sockets; children (the relay) inherit it. Returns the
/// new soft limit.
pub(crate) fn raise_fd_limit() -> anyhow::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(RLIMIT_NOFILE)")?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("setrlimit(RLIMIT_NOFILE)")?;
    Ok(hard)
}

/// What `/proc/<pid>` says about a process now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    /// Resident set size (`VmRSS`), KiB.
    pub(crate) rss_kib: u64,
    /// Anonymous resident memory (`RssAnon`): the heap, without the
    /// binary's mapped pages. KiB.
    pub(crate) anon_kib: u64,
    /// User plus system CPU time since start, seconds.
    pub(crate) cpu_secs: f64,
}

/// Reads [`Usage`] of `pid`.
pub(crate) fn usage(pid: u32) -> anyhow::Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count from after its ')'.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); fields[0] is field 3.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i - 3)
            .and_then(|v| v.parse().ok())
            .context("malformed /proc/<pid>/stat")
    };
    let per_sec = clock_ticks_per_second();
    Ok(Usage {
        rss_kib: field("VmRSS:")?,
        anon_kib: field("RssAnon:")?,
        cpu_secs: (ticks(14)? + ticks(15)?) as f64 / per_sec,
    })
}

fn clock_ticks_per_second() -> f64 {
    use nix::unistd::{SysconfVar, sysconf};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(n)) if n > 0 => n as f64,
        // Linux has used 100 on every architecture for decades.
        _ => 100.0,
    }
}

/// Waits until `pid` has used no CPU for `quiet` (its backlog of work is
/// done), at most `limit`. Returns whether it went quiet.
pub(crate) async fn wait_quiet(pid: u32, quiet: Duration, limit: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + limit;
    let mut last = usage(pid)?.cpu_secs;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = usage(pid)?.cpu_secs;
        // One clock tick of slack: timers and pings cost a little.
        if now - last > 0.02 {
            quiet_since = Instant::now();
        }
        last = now;
        if quiet_since.elapsed() >= quiet {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The relay binary as a child process with the benchmark's configuration
/// file, on loopback ports the OS chooses.
#[derive(Debug)]
pub(crate) struct Relay {
    pub(crate) process: RelayProcess,
    pub(crate) signaling: SocketAddr,
    pub(crate) metrics: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Relay {
    /// Starts `bin` with `config` (TOML), `env` and `extra` flags (e.g.
    /// another `--listen`); its data dir is a temp dir removed on drop.
    pub(crate) fn start_with(
        bin: &Path,
        config: &str,
        env: &[(&str, &str)],
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        if !bin.exists() {
            bail!(
                "{} is missing: cargo build --release -p darkswap-relay (or pass --relay-bin)",
                bin.display()
            );
        }
        let dir = tempfile::tempdir().context("temp dir")?;
        let config_path = dir.path().join("relay.toml");
        std::fs::write(&config_path, config).context("write the relay's config")?;
        let mut args = RelayProcess::loopback_args(dir.path());
        args.push("--config".to_owned());
        args.push(config_path.display().to_string());
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        // RelayProcess::start panics if the relay does not report its start.
        let process = RelayProcess::start(bin, &args, env);
        let signaling = process
            .signaling
            .context("the relay reported no signaling address")?;
        let metrics = process
            .metrics
            .context("the relay reported no metrics address")?;
        Ok(Relay {
            process,
            signaling,
            metrics,
            _dir: dir,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.process.child.id()
    }
}

/// A `darkswap daemon` child process with its API on a loopback port it
/// chose and its data in a temp dir; killed on drop.
#[derive(Debug)]
pub(crate) struct Daemon {
    child: Child,
    pub(crate) api: SocketAddr,
    /// The daemon's peer id, from its start line.
    pub(crate) peer_id: String,
    pub(crate) dir: tempfile::TempDir,
    _logs: mpsc::Receiver<String>,
}

impl Daemon {
    /// Starts `bin daemon` with `extra` flags, and waits for its "daemon
    /// started" line (which names the API address).
    pub(crate) fn start(
        bin: &Path,
        extra: &[String],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::start_in(None, bin, extra, env)
    }

    /// As [`Daemon::start`], inside network namespace `netns` if given
    /// (its API then answers only inside it).
    pub(crate) fn start_in(
        netns: Option<&str>,
        bin: &Path,
        extra: &[String],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        if !bin.exists() {
            bail!(
                "{} is missing: cargo build --release -p darkswap-cli (or pass --daemon-bin)",
                bin.display()
            );
        }
        let dir = tempfile::tempdir().context("temp dir")?;
        let mut cmd = in_netns(netns, bin);
        cmd.args(["--api", "127.0.0.1:0", "daemon", "--no-mdns", "--data-dir"])
            .arg(dir.path())
            .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("spawn the daemon")?;
        let stderr = child.stderr.take().context("piped stderr")?;
        // Bounded: start-up lines only; later lines are read and dropped
        // once the channel is full, so the daemon never blocks on its log.
        let (tx, logs) = mpsc::sync_channel(1024);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.try_send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let (api, peer_id) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = logs
                .recv_timeout(left)
                .context("the daemon did not report its start")?;
            if line.contains("daemon started")
                && let Some(rest) = line.split("api=").nth(1)
            {
                let clean: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .filter(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                let peer_id = line
                    .split("peer_id=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap_or_default()
                    .to_owned();
                break (clean.parse().context("the daemon's API address")?, peer_id);
            }
        };
        Ok(Daemon {
            child,
            api,
            peer_id,
            dir,
            _logs: logs,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command running `program`, inside network namespace `netns` if given
/// (`ip netns exec`, which execs it: the child's pid is the program's).
pub(crate) fn in_netns(netns: Option<&str>, program: &Path) -> Command {
    match netns {
        Some(ns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// The value of the unlabelled metric `name` in an OpenMetrics text page.
pub(crate) async fn metric(
    http: &reqwest::Client,
    addr: SocketAddr,
    name: &str,
) -> anyhow::Result<f64> {
    let page = http
        .get(format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await?
        .text()
        .await?;
    page.lines()
        .find_map(|l| {
            let (key, value) = l.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
        .with_context(|| format!("no metric {name}"))
}
