//! The real `darkswap-relay` binary as a child process, for tests that must
//! run what users run.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};

/// Bound on a relay process reporting that it started.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `darkswap-relay` process, killed on drop.
#[derive(Debug)]
pub struct RelayProcess {
    /// The process.
    pub child: Child,
    /// The relay's peer id.
    pub peer_id: PeerId,
    /// Its TCP listen address, ending in `/p2p/<peer id>`.
    pub tcp_addr: Multiaddr,
    /// Its WebSocket listen address, if it has one.
    pub ws_addr: Option<Multiaddr>,
    /// Its WebSocket over TLS (`/tls/ws`, `/wss`) listen address, if it has
    /// a certificate.
    pub wss_addr: Option<Multiaddr>,
    /// Its QUIC address including `/p2p/<peer id>`, if it listens on QUIC.
    pub quic_addr: Option<Multiaddr>,
    /// The metrics and health server, if enabled.
    pub metrics: Option<SocketAddr>,
    /// The signaling and relayed-circuit WebSocket server, if enabled.
    pub signaling: Option<SocketAddr>,
    /// The STUN/TURN UDP port, if `[turn]` is enabled.
    pub turn: Option<SocketAddr>,
    /// The JSON log lines it writes after start-up.
    pub logs: mpsc::Receiver<serde_json::Value>,
}

impl RelayProcess {
    /// The `darkswap-relay` binary next to the running test's target
    /// directory (`target/<profile>/darkswap-relay`), or `$DARKSWAP_TEST_RELAY_BIN`.
    /// `cargo test --workspace` builds it; a test of another crate run
    /// alone needs `cargo build -p darkswap-relay` first.
    pub fn binary() -> PathBuf {
        if let Some(bin) = std::env::var_os("DARKSWAP_TEST_RELAY_BIN") {
            return bin.into();
        }
        target_binary("darkswap-relay")
    }

    /// Arguments for a relay on loopback with OS-chosen ports, JSON logs and
    /// its key in `data_dir`.
    pub fn loopback_args(data_dir: &Path) -> Vec<String> {
        [
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--signaling-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ]
        .map(String::from)
        .to_vec()
    }

    /// Starts `bin` with `args` and `env`, and reads its JSON logs until it
    /// reports "relay started". Panics if it does not within [`START_TIMEOUT`].
    pub fn start(bin: &Path, args: &[String], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn darkswap-relay");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        let (mut tcp_addr, mut ws_addr, mut quic_addr, mut metrics, mut signaling, mut peer_id) =
            (None, None, None, None, None, None);
        let mut wss_addr = None;
        let mut turn = None;
        let deadline = Instant::now() + START_TIMEOUT;
        while peer_id.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = logs
                .recv_timeout(left)
                .expect("darkswap-relay did not report start");
            let fields = &v["fields"];
            let text = |k: &str| fields[k].as_str().unwrap_or_default().to_owned();
            match fields["message"].as_str() {
                Some("listening") => {
                    let a: Multiaddr = text("address").parse().expect("listen multiaddr");
                    if a.iter()
                        .any(|p| matches!(p, Protocol::Tls | Protocol::Wss(_)))
                    {
                        wss_addr = Some(a);
                    } else if a.iter().any(|p| matches!(p, Protocol::Ws(_))) {
                        ws_addr = Some(a);
                    } else if a.iter().any(|p| matches!(p, Protocol::QuicV1)) {
                        quic_addr = Some(a);
                    } else if a.iter().any(|p| matches!(p, Protocol::Tcp(_))) {
                        tcp_addr = Some(a);
                    }
                }
                Some("metrics server listening") => {
                    metrics = Some(text("addr").parse().expect("metrics address"))
                }
                Some("signaling server listening") => {
                    signaling = Some(text("addr").parse().expect("signaling address"))
                }
                Some("STUN/TURN server listening") => {
                    turn = Some(text("addr").parse().expect("STUN/TURN address"))
                }
                Some("relay started") => {
                    peer_id = Some(text("peer_id").parse().expect("relay peer id"))
                }
                _ => {}
            }
        }
        RelayProcess {
            child,
            peer_id: peer_id.expect("peer id"),
            tcp_addr: tcp_addr.expect("tcp listen address"),
            ws_addr,
            wss_addr,
            quic_addr,
            metrics,
            signaling,
            turn,
            logs,
        }
    }

    /// Starts [`binary`](Self::binary) on loopback with its key in `data_dir`
    /// and `extra` arguments.
    pub fn spawn(data_dir: &Path, extra: &[&str]) -> Self {
        let mut args = Self::loopback_args(data_dir);
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start(&Self::binary(), &args, &[])
    }

    /// Starts [`binary`](Self::binary) on loopback with its key in
    /// `data_dir`, serving the certificate [`generate_certs`] wrote to
    /// `certs` (public port `wss://`/`https://`, libp2p `/tls/ws` on
    /// loopback), with `env` on top.
    pub fn spawn_tls(data_dir: &Path, certs: &Path, env: &[(&str, &str)]) -> Self {
        let (cert, key) = (certs.join("relay.pem"), certs.join("relay-key.pem"));
        let mut all = vec![
            (
                "DARKSWAP_RELAY_TLS__CERT_FILE",
                cert.to_str().expect("utf-8 path"),
            ),
            (
                "DARKSWAP_RELAY_TLS__KEY_FILE",
                key.to_str().expect("utf-8 path"),
            ),
            (
                "DARKSWAP_RELAY_TLS__LIBP2P_LISTEN_ADDRESSES",
                "[\"/ip4/127.0.0.1/tcp/0/tls/ws\"]",
            ),
        ];
        all.extend_from_slice(env);
        Self::start(&Self::binary(), &Self::loopback_args(data_dir), &all)
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits, bounded by `limit` plus a margin, for the process to exit;
    /// returns its status and how long that took.
    pub fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, start.elapsed());
            }
            assert!(
                start.elapsed() < limit + Duration::from_secs(5),
                "relay did not exit"
            );
            // Polling a child's exit status has no event to wait on.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs `deploy/generate-certs.sh dir args...`: a private CA (`ca.pem`,
/// reused if `dir` has one) and a relay certificate (`relay.pem`,
/// `relay-key.pem`). Panics with the script's error if it fails.
pub fn generate_certs(dir: &Path, args: &[&str]) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/generate-certs.sh"
    );
    let out = Command::new("bash")
        .arg(script)
        .arg(dir)
        .args(args)
        .output()
        .expect("run deploy/generate-certs.sh");
    assert!(
        out.status.success(),
        "generate-certs.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A binary of this workspace built next to the running test
/// (`target/<profile>/<path>`, e.g. `darkswap-relay` or
/// `examples/webrtc_example`). `cargo test --workspace` builds binaries and
/// examples; a test of one crate run alone with `--test` may not: the panic
/// says what to build.
pub fn target_binary(path: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<path>
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .join(path);
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo test --workspace` or `cargo build --workspace --all-targets`)",
        bin.display()
    );
    bin
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
