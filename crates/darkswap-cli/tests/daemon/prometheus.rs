//! The dashboards and alerts against a real Prometheus (Debian's
//! `prometheus`, which `scripts/test.sh` installs): it scrapes a real relay
//! (TLS on, as in production) and two real daemons that exchange an order,
//! with `deploy/prometheus-alerts.yml` loaded, and every query of
//! `deploy/grafana/dashboards/*.json` and every alert expression must return
//! data. A renamed metric, a misspelt label or a broken expression fails
//! here.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use darkswap_testkit::{RelayProcess, generate_certs};
use serde_json::Value;

use crate::support::{Events, cli_json, order_args, start_daemon};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
/// How long Prometheus may take to scrape everything and fill its windows.
const WAIT: Duration = Duration::from_secs(60);

/// A Prometheus server; dropping it kills it.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free now (Prometheus cannot report the one it picks for `:0`).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Scrapes the relay's admin port and the daemons' APIs every second
    /// and evaluates the alert rules every second.
    fn start(dir: &Path, relay: &str, daemons: &[String]) -> Self {
        let rules = PathBuf::from(DEPLOY).join("prometheus-alerts.yml");
        let targets = |t: &[String]| {
            t.iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: ['{}']\n\
             scrape_configs:\n\
             \x20 - job_name: darkswap-relay\n    static_configs: [{{ targets: [{}] }}]\n\
             \x20 - job_name: darkswap\n    static_configs: [{{ targets: [{}] }}]\n",
            rules.display(),
            targets(&[relay.to_owned()]),
            targets(daemons),
        );
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Debian's prometheus is not installed (scripts/test.sh installs it)");
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "prometheus did not start");
            // A process's port opening has no event to wait on.
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// Waits (at most [`WAIT`]) for `/-/ready`: its port opens before it
    /// answers queries (503 until then).
    async fn ready(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = reqwest::get(format!("{}/-/ready", self.url))
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "prometheus not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let v: Value = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["status"], "success", "{path} {query:?}: {v}");
        v["data"].clone()
    }

    /// The instant vector `expr` evaluates to now.
    async fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api("/api/v1/query", &[("query", expr)]).await;
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits (at most [`WAIT`]) until `expr` returns data; panics naming
    /// it and what it returned otherwise.
    async fn returns_data(&self, what: &str, expr: &str, deadline: Instant) {
        loop {
            if !self.query(expr).await.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: `{expr}` returned no data"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Every `expr` of a Grafana dashboard's panels.
fn dashboard_queries(file: &Path) -> Vec<(String, String)> {
    let d: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let mut out = Vec::new();
    for panel in d["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let what = format!(
                "{} / {}",
                file.file_name().unwrap().to_string_lossy(),
                panel["title"].as_str().unwrap()
            );
            out.push((what, target["expr"].as_str().unwrap().to_owned()));
        }
    }
    out
}

/// An alert's condition as a value: its outermost comparison with `bool`,
/// so it returns a sample (0 or 1) for every series it watches, firing or
/// not.
fn as_value(expr: &str) -> String {
    let mut depth = 0i32;
    let mut at = None;
    let bytes = expr.as_bytes();
    for (i, c) in expr.char_indices() {
        match c {
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth -= 1,
            '<' | '>' | '=' | '!' if depth == 0 => {
                let next = bytes.get(i + 1).copied();
                let prev = i.checked_sub(1).map(|p| bytes[p]);
                // The first character of `<`, `>`, `<=`, `>=`, `==`, `!=`.
                let starts = !matches!(prev, Some(b'<' | b'>' | b'=' | b'!'));
                if starts && (c != '=' || next == Some(b'=')) && (c != '!' || next == Some(b'=')) {
                    let len = if next == Some(b'=') { 2 } else { 1 };
                    at = Some(i + len);
                }
            }
            _ => {}
        }
    }
    let at = at.unwrap_or_else(|| panic!("no comparison in `{expr}`"));
    format!("{} bool{}", &expr[..at], &expr[at..])
}

#[test]
fn alert_conditions_become_values() {
    assert_eq!(as_value("a == 0"), "a == bool 0");
    assert_eq!(
        as_value("sum(rate(x{r=\"a\"}[5m])) / y > 0.2"),
        "sum(rate(x{r=\"a\"}[5m])) / y > bool 0.2"
    );
    assert_eq!(
        as_value("a - time() < 14 * 86400"),
        "a - time() < bool 14 * 86400"
    );
    assert_eq!(as_value("up{job=\"x\"} >= 1"), "up{job=\"x\"} >= bool 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_and_alert_expression_returns_data_from_a_real_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    generate_certs(&certs, &[]);
    let relay = RelayProcess::spawn_tls(
        &dir.path().join("relay"),
        &certs,
        &[
            // One connection a minute per address on the public port: the
            // second below is refused, so the rate-limit series exist.
            ("DARKSWAP_RELAY_LIMITS__CONNECTION_RATE_PER_IP__LIMIT", "1"),
        ],
    );
    let relay_addr = relay.tcp_addr.to_string();
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    let a = start_daemon(
        &dir_a,
        &["--listen", "/ip4/127.0.0.1/tcp/0", "--relay", &relay_addr].map(String::from),
    );
    let b = start_daemon(&dir_b, &["--relay", &relay_addr].map(String::from));
    // An order from a reaches b: the daemons exchange gossip.
    // a's own TCP address (its circuit address may be listed first).
    let status = cli_json(a.api, &["status"]);
    let a_addr = status["listen_addrs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|addr| !addr.contains("p2p-circuit"))
        .map(|addr| format!("{addr}/p2p/{}", status["peer_id"].as_str().unwrap()))
        .expect("a listens on TCP");
    cli_json(b.api, &["connect", &a_addr]);
    let mut b_events = Events::subscribe(b.api).await;
    let order = cli_json(a.api, &order_args("sell", "rune:840000:3", "BTC"));
    b_events
        .order_added("a's order on b", order["id"].as_str().unwrap())
        .await;
    let public = relay.signaling.unwrap();
    for _ in 0..2 {
        // Closed at once: the refused one is counted without waiting.
        drop(TcpStream::connect(public).unwrap());
    }

    let prometheus = Prometheus::start(
        dir.path(),
        &relay.metrics.unwrap().to_string(),
        &[a.api.to_string(), b.api.to_string()],
    );
    prometheus.ready().await;
    let deadline = Instant::now() + WAIT;
    // Every target up first.
    prometheus
        .returns_data("targets", "count(up == 1) == 3", deadline)
        .await;

    let mut checked = 0;
    for board in ["darkswap-node.json", "darkswap-relay.json"] {
        let file = PathBuf::from(DEPLOY).join("grafana/dashboards").join(board);
        for (what, expr) in dashboard_queries(&file) {
            prometheus.returns_data(&what, &expr, deadline).await;
            checked += 1;
        }
    }
    assert!(checked >= 16, "{checked} dashboard queries");

    let rules = prometheus.api("/api/v1/rules", &[]).await;
    let mut alerts = 0;
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["name"].as_str().unwrap();
            assert_eq!(rule["health"], "ok", "{name}: {rule}");
            let expr = as_value(rule["query"].as_str().unwrap());
            prometheus.returns_data(name, &expr, deadline).await;
            alerts += 1;
        }
    }
    assert_eq!(alerts, 14, "every alert of deploy/prometheus-alerts.yml");
}
