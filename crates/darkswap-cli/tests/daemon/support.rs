//! What every daemon test uses: a real `darkswap daemon` process on port 0,
//! the real CLI, the event stream, a relay process, metrics.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

use darkswap_p2p::PeerId;
use darkswap_testkit::RelayProcess;
use futures::StreamExt;
use serde_json::Value;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_darkswap");
const TIMEOUT: Duration = Duration::from_secs(20);

/// A running `darkswap daemon`; dropping it kills it.
pub(crate) struct Daemon {
    child: Child,
    pub(crate) api: SocketAddr,
    /// Lines logged before "daemon started".
    early: Vec<String>,
    logs: mpsc::Receiver<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Waits (at most the timeout) for a log line containing `needle`,
    /// skipping the lines before it.
    pub(crate) fn wait_for_log(&mut self, needle: &str) {
        if let Some(at) = self.early.iter().position(|l| l.contains(needle)) {
            self.early.drain(..=at);
            return;
        }
        self.early.clear();
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!("the daemon did not log {needle:?} within {TIMEOUT:?}"),
            }
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`, ...) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success());
    }

    /// `kill -9`: no signal handler, no last save, nothing flushed.
    pub(crate) fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// `kill -TERM`, then waits for the daemon to exit (at most the
    /// timeout); returns whether it exited successfully.
    pub(crate) fn sigterm(mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = std::time::Instant::now() + TIMEOUT;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the daemon did not stop within {TIMEOUT:?} of SIGTERM");
    }
}

/// Starts a daemon on `data_dir` with its API on a free loopback port.
pub(crate) fn start_daemon(data_dir: &Path, extra: &[String]) -> Daemon {
    let mut args: Vec<String> = ["--api", "127.0.0.1:0", "daemon", "--no-mdns", "--data-dir"]
        .map(String::from)
        .to_vec();
    args.push(data_dir.to_str().unwrap().to_owned());
    args.extend_from_slice(extra);
    let mut child = Command::new(BIN)
        .args(&args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut early = Vec::new();
    let api = loop {
        let line = rx.recv_timeout(TIMEOUT).expect("daemon did not start");
        if line.contains("daemon started")
            && let Some(rest) = line.split("api=").nth(1)
        {
            // Strip ANSI colour codes around the value.
            let clean: String = rest
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            break clean.parse().unwrap();
        }
        early.push(line);
    };
    Daemon {
        child,
        api,
        early,
        logs: rx,
    }
}

/// Runs the CLI against the daemon at `api`.
pub(crate) fn cli(api: SocketAddr, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--api")
        .arg(api.to_string())
        .args(args)
        .output()
        .unwrap()
}

/// Runs the CLI with `--json`, asserts success and parses what it printed.
pub(crate) fn cli_json(api: SocketAddr, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = cli(api, &all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Whether an event says the daemon holds its relay reservation: the
/// `hello` snapshot sent on subscription, or a later `relay_reserved`.
pub(crate) fn reserved(v: &Value) -> bool {
    v["type"] == "relay_reserved"
        || (v["type"] == "hello"
            && v["relays"]
                .as_array()
                .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["reserved"] == true)))
}

type ByteStream = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

/// Subscribes to a daemon's event stream; `wait` returns the first event
/// matching `pick`, within the timeout.
pub(crate) struct Events(ByteStream, String);

impl Events {
    pub(crate) async fn subscribe(api: SocketAddr) -> Self {
        let resp = reqwest::get(format!("http://{api}/v1/events"))
            .await
            .unwrap();
        assert!(resp.status().is_success());
        Events(
            Box::pin(resp.bytes_stream().map(|r| r.map(|b| b.to_vec()))),
            String::new(),
        )
    }

    pub(crate) async fn wait(&mut self, what: &str, mut pick: impl FnMut(&Value) -> bool) -> Value {
        let fut = async {
            loop {
                while let Some(end) = self.1.find("\n\n") {
                    let frame: String = self.1.drain(..end + 2).collect();
                    for line in frame.lines() {
                        if let Some(data) = line.strip_prefix("data:")
                            && let Ok(v) = serde_json::from_str::<Value>(data.trim())
                            && pick(&v)
                        {
                            return v;
                        }
                    }
                }
                let chunk = self.0.next().await.expect("event stream ended").unwrap();
                self.1.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        tokio::time::timeout(TIMEOUT, fut)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }

    /// Waits for the `order_added` event of order `id`.
    pub(crate) async fn order_added(&mut self, what: &str, id: &str) -> Value {
        self.wait(what, |v| {
            v["type"] == "order_added" && v["order"]["id"] == id
        })
        .await
    }
}

/// The words of a command line, for [`cli`] and [`cli_json`].
pub(crate) fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// A `darkswap-relay` process on loopback; its TCP address ends in /p2p/<id>.
pub(crate) fn relay() -> (RelayProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (RelayProcess::spawn(dir.path(), &[]), dir)
}

/// A daemon's first listen address with its peer id.
pub(crate) fn full_addr(api: SocketAddr) -> (String, PeerId) {
    let status = cli_json(api, &["status"]);
    let id: PeerId = status["peer_id"].as_str().unwrap().parse().unwrap();
    let addr = format!("{}/p2p/{id}", status["listen_addrs"][0].as_str().unwrap());
    (addr, id)
}

/// The value of one sample of the daemon's `/metrics`, 0 if absent.
pub(crate) async fn metric(api: SocketAddr, sample: &str) -> f64 {
    let text = reqwest::get(format!("http://{api}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `order create` arguments for an order of 5 at price 9.
pub(crate) fn order_args<'a>(side: &'a str, base: &'a str, quote: &'a str) -> Vec<&'a str> {
    vec![
        "order", "create", "--side", side, "--base", base, "--quote", quote, "--amount", "5",
        "--price", "9",
    ]
}

/// `POST /v1/orders`: a BTC/rune:1:0 order of `amount` at price 1, for
/// ten minutes.
pub(crate) async fn post_order(
    http: &reqwest::Client,
    api: std::net::SocketAddr,
    side: &str,
    amount: u64,
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("http://{api}/v1/orders"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"side":"{side}","base":"BTC","quote":"rune:1:0","amount":{amount},"price":1,"expires_in":600}}"#
        ))
        .send()
        .await
}
