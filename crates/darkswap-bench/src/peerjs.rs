//! The PeerJS server (npm `peer`), the reference of `signaling`: run with
//! node from `$HOME/.cache/darkswap-tools/peerjs`, on a loopback port, as
//! a child killed on drop.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context as _, bail};

use crate::{
    coturn::Killed,
    tool_install::{ensure_npm, free_port},
};

/// The connection key PeerJS clients present (its default).
pub(crate) const KEY: &str = "peerjs";

/// Installs `peer` if missing; returns its command-line entry point.
pub(crate) fn install() -> anyhow::Result<PathBuf> {
    ensure_npm("peerjs", "peer", "dist/bin/peerjs.js")
}

/// A running PeerJS server.
#[derive(Debug)]
pub(crate) struct PeerJs {
    child: Killed,
    pub(crate) addr: SocketAddr,
}

impl PeerJs {
    /// Starts `entry` (from [`install`]) on a free loopback port, admitting
    /// `clients` at once (its `concurrent_limit`, 5,000 by default, would
    /// refuse the load). Its liveness check is its default, as our relay's
    /// is: a client silent for `alive_timeout` (90 s) is closed, so the
    /// load's clients send heartbeats as the peerjs client does
    /// (`signaling_load::PEERJS_HEARTBEAT`).
    pub(crate) fn start(entry: &std::path::Path, clients: usize) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut child = Command::new("node")
            .arg(entry)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--concurrent_limit", &(clients + 16).to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn node (PeerJS server)")?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let child = Killed(child);
        // It logs a line per client: read them all, or it blocks on a full
        // pipe; only the start line matters.
        let (tx, started) = mpsc::sync_channel(1);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("Started PeerServer") {
                    let _ = tx.try_send(());
                }
            }
        });
        if started.recv_timeout(Duration::from_secs(30)).is_err() {
            bail!("the PeerJS server did not report its start within 30 s");
        }
        Ok(PeerJs {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.0.id()
    }
}
