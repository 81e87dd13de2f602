//! Real `darkswap` daemon processes, a real `darkswap-relay` process, the
//! real CLI.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

use darkswap_p2p::{ORDERBOOK_TOPIC, PeerId};
use darkswap_proto::{Message, OrderBody, OrderCreate, encode};
use darkswap_testkit::{RawGossip, RelayProcess, order_body, sign_raw_order};
use futures::StreamExt;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_darkswap");
const TIMEOUT: Duration = Duration::from_secs(20);

struct Daemon {
    child: Child,
    api: SocketAddr,
    _logs: mpsc::Receiver<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_daemon(data_dir: &Path, extra: &[String]) -> Daemon {
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
    };
    Daemon {
        child,
        api,
        _logs: rx,
    }
}

fn cli(api: SocketAddr, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--api")
        .arg(api.to_string())
        .args(args)
        .output()
        .unwrap()
}

fn cli_json(api: SocketAddr, args: &[&str]) -> Value {
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
fn reserved(v: &Value) -> bool {
    v["type"] == "relay_reserved"
        || (v["type"] == "hello"
            && v["relays"]
                .as_array()
                .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["reserved"] == true)))
}

/// Subscribes to a daemon's event stream; `wait` returns the first event
/// matching `pick`, within the timeout.
type ByteStream = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

struct Events(ByteStream, String);

impl Events {
    async fn subscribe(api: SocketAddr) -> Self {
        let resp = reqwest::get(format!("http://{api}/v1/events"))
            .await
            .unwrap();
        assert!(resp.status().is_success());
        Events(
            Box::pin(resp.bytes_stream().map(|r| r.map(|b| b.to_vec()))),
            String::new(),
        )
    }

    async fn wait(&mut self, what: &str, mut pick: impl FnMut(&Value) -> bool) -> Value {
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
}

/// A `darkswap-relay` process on loopback; its TCP address ends in /p2p/<id>.
fn relay() -> (RelayProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (RelayProcess::spawn(dir.path(), &[]), dir)
}

/// A daemon's first listen address with its peer id.
fn full_addr(api: SocketAddr) -> (String, PeerId) {
    let status = cli_json(api, &["status"]);
    let id: PeerId = status["peer_id"].as_str().unwrap().parse().unwrap();
    let addr = format!("{}/p2p/{id}", status["listen_addrs"][0].as_str().unwrap());
    (addr, id)
}

/// The value of one sample of the daemon's `/metrics`, 0 if absent.
async fn metric(api: SocketAddr, sample: &str) -> f64 {
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

fn order_args<'a>(side: &'a str, base: &'a str, quote: &'a str) -> Vec<&'a str> {
    vec![
        "order", "create", "--side", side, "--base", base, "--quote", quote, "--amount", "5",
        "--price", "9",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_share_orders_through_a_relay() {
    let (relay, _relay_dir) = relay();
    let relay_addr = relay.tcp_addr.to_string();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_daemon(
        dir_a.path(),
        &[
            "--listen".into(),
            "/ip4/127.0.0.1/tcp/0".into(),
            "--relay".into(),
            relay_addr.clone(),
        ],
    );
    // b listens nowhere: only reachable through the relay.
    let mut b = start_daemon(dir_b.path(), &["--relay".into(), relay_addr.clone()]);
    let mut b_events = Events::subscribe(b.api).await;
    b_events.wait("b's reservation", reserved).await;
    let b_id = cli_json(b.api, &["status"])["peer_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut a_events = Events::subscribe(a.api).await;
    let circuit = format!("{relay_addr}/p2p-circuit/p2p/{b_id}");
    let connected = cli_json(a.api, &["connect", &circuit]);
    assert_eq!(connected["peer_id"], b_id.as_str());
    let peers = cli_json(a.api, &["peers"]);
    let b_peer = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == b_id.as_str())
        .expect("b in peers");
    // The hole punch may already have added a direct connection on loopback;
    // what matters is that b is connected and listed with a path.
    assert!(
        b_peer["path"] == "relayed" || b_peer["path"] == "direct",
        "{b_peer}"
    );

    // An order made with the CLI on b shows up in a's orderbook.
    let created = cli_json(
        b.api,
        &[
            "order",
            "create",
            "--side",
            "sell",
            "--base",
            "rune:840000:3",
            "--quote",
            "BTC",
            "--amount",
            "5000",
            "--price",
            "300000",
            "--expires-in",
            "1h",
        ],
    );
    let id = created["id"].as_str().unwrap().to_owned();
    a_events
        .wait("order added on a", |v| {
            v["type"] == "order_added" && v["order"]["id"] == id.as_str()
        })
        .await;
    let book = cli_json(
        a.api,
        &["orderbook", "--base", "rune:840000:3", "--quote", "BTC"],
    );
    assert_eq!(book["asks"][0]["id"], id.as_str());
    assert_eq!(book["asks"][0]["maker"], b_id.as_str());
    let human = cli(
        a.api,
        &["orderbook", "--base", "rune:840000:3", "--quote", "BTC"],
    );
    assert!(String::from_utf8_lossy(&human.stdout).contains(&id));

    // a cannot cancel b's order.
    let refused = cli(a.api, &["order", "cancel", &id]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not one of this node's orders"));

    // b's own orders survive a kill -9.
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    drop(b);
    let b = start_daemon(dir_b.path(), &["--relay".into(), relay_addr.clone()]);
    let own = cli_json(b.api, &["order", "list"]);
    assert_eq!(own[0]["id"], id.as_str(), "{own}");

    // The cancel propagates.
    let mut b_events = Events::subscribe(b.api).await;
    b_events.wait("b's reservation again", reserved).await;
    cli_json(a.api, &["connect", &circuit]);
    let out = cli(b.api, &["order", "cancel", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    a_events
        .wait("cancel on a", |v| {
            v["type"] == "order_cancelled" && v["id"] == id.as_str()
        })
        .await;
    assert!(
        cli_json(
            a.api,
            &["orderbook", "--base", "rune:840000:3", "--quote", "BTC"]
        )["asks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_bad_requests_and_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(dir.path(), &[]);
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/orders", d.api);
    let post = |body: String| {
        http.post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let r = post("{not json".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_request");

    let r =
        post(r#"{"base":"BTC","quote":"rune:1:0","amount":1,"price":1,"expires_in":60}"#.into())
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("side"),
        "{v}"
    );

    for (body, field) in [
        (
            r#"{"side":"buy","base":"DOGE","quote":"BTC","amount":1,"price":1,"expires_in":60}"#,
            "base",
        ),
        (
            r#"{"side":"buy","base":"BTC","quote":"rune:1:0","amount":-5,"price":1,"expires_in":60}"#,
            "amount",
        ),
        (
            r#"{"side":"buy","base":"BTC","quote":"rune:1:0","amount":0,"price":1,"expires_in":60}"#,
            "amount",
        ),
        (
            r#"{"side":"hold","base":"BTC","quote":"rune:1:0","amount":1,"price":1,"expires_in":60}"#,
            "side",
        ),
    ] {
        let r = post(body.into()).await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {v}"
        );
    }

    let r = post(format!("{{\"pad\":\"{}\"}}", "x".repeat(200_000)))
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // The server closes a connection whose body it refused: use a fresh one.
    let http = reqwest::Client::new();
    let r = http
        .delete(format!("http://{}/v1/orders/zz", d.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .get(format!("http://{}/v1/nope", d.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Still serving.
    assert!(cli_json(d.api, &["status"])["peer_id"].is_string());
}

#[test]
fn commands_without_a_daemon_say_so_in_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = cli(port, &["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no darkswap daemon is running"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_daemon_gets_the_book_and_a_killed_maker_comes_back() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let listen = || vec!["--listen".to_owned(), "/ip4/127.0.0.1/tcp/0".to_owned()];
    let a = start_daemon(dirs[0].path(), &listen());
    let a_status = cli_json(a.api, &["status"]);
    let a_addr = format!(
        "{}/p2p/{}",
        a_status["listen_addrs"][0].as_str().unwrap(),
        a_status["peer_id"].as_str().unwrap()
    );
    let mut b = start_daemon(dirs[1].path(), &listen());
    let mut a_events = Events::subscribe(a.api).await;
    cli_json(b.api, &["connect", &a_addr]);
    let order = cli_json(
        b.api,
        &[
            "order",
            "create",
            "--side",
            "buy",
            "--base",
            "BTC",
            "--quote",
            "alkane:2:1",
            "--amount",
            "7",
            "--price",
            "9",
        ],
    );
    let id = order["id"].as_str().unwrap().to_owned();
    a_events
        .wait("order on a", |v| {
            v["type"] == "order_added" && v["order"]["id"] == id.as_str()
        })
        .await;

    // c joins late, knowing only a, and gets b's order by sync.
    let c = start_daemon(dirs[2].path(), &listen());
    let mut c_events = Events::subscribe(c.api).await;
    cli_json(c.api, &["connect", &a_addr]);
    c_events
        .wait("order on c by sync", |v| {
            v["type"] == "order_added" && v["order"]["id"] == id.as_str()
        })
        .await;

    // b is killed and restarted: its order is back in its own list and,
    // re-announced, still in everyone's book.
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    drop(b);
    let b = start_daemon(dirs[1].path(), &listen());
    assert_eq!(cli_json(b.api, &["order", "list"])[0]["id"], id.as_str());
    cli_json(b.api, &["connect", &a_addr]);
    for api in [a.api, b.api, c.api] {
        let book = cli_json(
            api,
            &["orderbook", "--base", "BTC", "--quote", "alkane:2:1"],
        );
        assert_eq!(book["bids"][0]["id"], id.as_str(), "{book}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_orders_are_rejected_by_every_daemon_and_counted() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let listen = || vec!["--listen".to_owned(), "/ip4/127.0.0.1/tcp/0".to_owned()];
    let daemons: Vec<Daemon> = dirs
        .iter()
        .map(|d| start_daemon(d.path(), &listen()))
        .collect();
    let addrs: Vec<(String, PeerId)> = daemons.iter().map(|d| full_addr(d.api)).collect();
    cli_json(daemons[1].api, &["connect", &addrs[0].0]);
    let mut events = Vec::new();
    for d in &daemons {
        events.push(Events::subscribe(d.api).await);
    }

    // Two hostile makers (a peer's gossip score drops with each invalid
    // message; two keep every message above the graylist threshold). Each
    // sends one valid order first, then hand-signed bad ones.
    let targets: Vec<_> = addrs.iter().map(|(a, _)| a.parse().unwrap()).collect();
    let ids: Vec<PeerId> = addrs.iter().map(|(_, id)| *id).collect();
    let now = darkswap_testkit::now();
    let mut valid_ids = Vec::new();
    let mut drivers = Vec::new();
    type Tamper = Box<dyn Fn(&mut OrderBody)>;
    let bad_orders: [Vec<(&str, Tamper)>; 2] = [
        vec![
            ("bad signature", Box::new(|_| {})),
            ("negative amount", Box::new(|b| b.amount = (-5i64) as u64)),
            ("zero amount", Box::new(|b| b.amount = 0)),
        ],
        vec![
            ("unknown asset", Box::new(|b| b.base = "DOGE".into())),
            (
                "expired",
                Box::new(move |b| {
                    b.created_at = now - 120;
                    b.expires_at = now - 60;
                }),
            ),
        ],
    ];
    for (n, bad) in bad_orders.iter().enumerate() {
        let mut hostile = RawGossip::new(&[ORDERBOOK_TOPIC]);
        hostile.connect(&targets, &ids, ORDERBOOK_TOPIC).await;
        let key = hostile.key.clone();
        let valid = sign_raw_order(&key, &order_body(&key, n as u64));
        valid_ids.push(valid.id().to_string());
        hostile.publish(
            ORDERBOOK_TOPIC,
            encode(&Message::OrderCreate(OrderCreate::from_order(valid))),
        );
        for (i, (what, tamper)) in bad.iter().enumerate() {
            let mut body = order_body(&key, 100 + i as u64);
            tamper(&mut body);
            let mut signed = sign_raw_order(&key, &body);
            if *what == "bad signature" {
                signed.signature[7] ^= 0x20;
            }
            hostile.publish(
                ORDERBOOK_TOPIC,
                encode(&Message::OrderCreate(OrderCreate::from_order(signed))),
            );
        }
        drivers.push(hostile.run());
    }

    // Every daemon takes both valid orders and judges all five bad ones.
    for ev in &mut events {
        let (mut added, mut invalid) = (0, 0);
        ev.wait("2 valid and 5 rejected orders", |v| {
            if v["type"] == "order_added"
                && valid_ids.iter().any(|id| v["order"]["id"] == id.as_str())
            {
                added += 1;
            }
            if v["type"] == "invalid_message" {
                invalid += 1;
            }
            added == 2 && invalid == 5
        })
        .await;
    }
    for d in &daemons {
        for (reason, count) in [
            ("bad_signature", 1.0),
            ("invalid_amount", 2.0),
            ("invalid_asset", 1.0),
            ("expired", 1.0),
        ] {
            let sample =
                format!("darkswap_orders_rejected_total{{source=\"gossip\",reason=\"{reason}\"}}");
            assert_eq!(metric(d.api, &sample).await, count, "{sample}");
        }
        let book = cli_json(
            d.api,
            &["orderbook", "--base", "rune:840000:3", "--quote", "BTC"],
        );
        assert_eq!(book["asks"].as_array().unwrap().len(), 2, "{book}");
        assert_eq!(cli_json(d.api, &["status"])["rejected_messages"], 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_keeps_the_book_and_a_dead_makers_orders_drop_out() {
    // Short refresh and TTL so a dead maker's order leaves within the test;
    // the TTL leaves room for a restart under load.
    let timing = || {
        vec![
            "--listen".to_owned(),
            "/ip4/127.0.0.1/tcp/0".to_owned(),
            "--order-refresh".to_owned(),
            "1s".to_owned(),
            "--order-ttl".to_owned(),
            "10s".to_owned(),
        ]
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = start_daemon(dir_a.path(), &timing());
    let mut b = start_daemon(dir_b.path(), &timing());
    let (a_addr, _) = full_addr(a.api);
    let mut a_events = Events::subscribe(a.api).await;
    cli_json(b.api, &["connect", &a_addr]);
    let id = cli_json(b.api, &order_args("sell", "BTC", "rune:1:0"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    a_events
        .wait("order on a", |v| {
            v["type"] == "order_added" && v["order"]["id"] == id.as_str()
        })
        .await;
    a_events
        .wait("a saved its book", |v| {
            v["type"] == "book_saved" && v["orders"].as_u64() >= Some(1)
        })
        .await;

    // a dies hard and comes back alone: the book is there before any peer
    // could have sent it.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    drop(a);
    a = start_daemon(dir_a.path(), &timing());
    assert!(cli_json(a.api, &["peers"]).as_array().unwrap().is_empty());
    let book = cli_json(
        a.api,
        &["orderbook", "--base", "BTC", "--quote", "rune:1:0"],
    );
    assert_eq!(book["bids"].as_array().unwrap().len(), 0, "{book}");
    assert_eq!(book["asks"][0]["id"], id.as_str(), "{book}");

    // b, the maker, dies for good: its order drops out of a's book after
    // the TTL, and stays out after another restart of a.
    let mut a_events = Events::subscribe(a.api).await;
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    a_events
        .wait("the dead maker's order expired", |v| {
            v["type"] == "orders_expired"
                && v["ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|i| i == id.as_str()))
        })
        .await;
    a_events
        .wait("a saved the empty book", |v| {
            v["type"] == "book_saved" && v["orders"] == 0
        })
        .await;
    drop(a);
    let a = start_daemon(dir_a.path(), &timing());
    let book = cli_json(
        a.api,
        &["orderbook", "--base", "BTC", "--quote", "rune:1:0"],
    );
    assert!(book["asks"].as_array().unwrap().is_empty(), "{book}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_bootstrapped_on_a_relay_share_orders_through_it() {
    let (relay, _relay_dir) = relay();
    // A publish made before the relay's subscription is known reaches nobody;
    // the next re-announcement (1 s here) carries the order then.
    let args = || {
        [
            "--bootstrap",
            &relay.tcp_addr.to_string(),
            "--order-refresh",
            "1s",
            "--order-ttl",
            "30s",
        ]
        .map(String::from)
        .to_vec()
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_daemon(dir_a.path(), &args());
    let b = start_daemon(dir_b.path(), &args());
    let relay_id = relay.peer_id.to_string();
    // Neither listens anywhere: the relay's gossip carries the order.
    let mut a_events = None;
    for d in [&a, &b] {
        // Subscribe before looking, so a connection made in between is an event.
        let mut events = Events::subscribe(d.api).await;
        let peers = cli_json(d.api, &["peers"]);
        if !peers
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["peer_id"] == relay_id.as_str())
        {
            events
                .wait("connected to the bootstrap relay", |v| {
                    v["type"] == "peer_connected" && v["peer_id"] == relay_id.as_str()
                })
                .await;
        }
        let status = cli_json(d.api, &["status"]);
        assert!(status["nat_status"].is_string(), "{status}");
        a_events.get_or_insert(events);
    }
    let mut a_events = a_events.unwrap();
    let id = cli_json(b.api, &order_args("buy", "alkane:2:1", "BTC"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    a_events
        .wait("b's order on a, through the relay's gossip", |v| {
            v["type"] == "order_added" && v["order"]["id"] == id.as_str()
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forger_is_banned_and_the_ban_survives_a_kill_9() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let listen = || vec!["--listen".to_owned(), "/ip4/127.0.0.1/tcp/0".to_owned()];
    let mut a = start_daemon(dirs[0].path(), &listen());
    let honest = start_daemon(dirs[1].path(), &listen());
    let (a_addr, a_id) = full_addr(a.api);
    cli_json(honest.api, &["connect", &a_addr]);
    let mut a_events = Events::subscribe(a.api).await;

    // Four forged orders cross the default threshold.
    let mut hostile = RawGossip::new(&[ORDERBOOK_TOPIC]);
    hostile
        .connect(&[a_addr.parse().unwrap()], &[a_id], ORDERBOOK_TOPIC)
        .await;
    let key = hostile.key.clone();
    let hostile_id = hostile.peer_id().to_string();
    for nonce in 0..4 {
        let mut signed = sign_raw_order(&key, &order_body(&key, nonce));
        signed.signature[5] ^= 0x10;
        hostile.publish(
            ORDERBOOK_TOPIC,
            encode(&Message::OrderCreate(OrderCreate::from_order(signed))),
        );
    }
    let driver = hostile.run();
    let banned = a_events
        .wait("the forger banned", |v| v["type"] == "peer_banned")
        .await;
    assert_eq!(banned["peer_id"], hostile_id.as_str(), "{banned}");
    assert_eq!(banned["reason"], "invalid_signature");
    let until = banned["until"].as_u64().unwrap();
    let now = darkswap_testkit::now();
    assert!(until > now + 500 && until <= now + 601, "{until} vs {now}");
    a_events
        .wait("the ban list saved", |v| {
            v["type"] == "bans_saved" && v["bans"] == 1
        })
        .await;

    // The honest peer keeps trading with a.
    let id = cli_json(honest.api, &order_args("sell", "BTC", "rune:1:0"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    a_events
        .wait("the honest order on a", |v| {
            v["type"] == "order_added" && v["order"]["id"] == id.as_str()
        })
        .await;

    let check = |api: SocketAddr| {
        let status = cli_json(api, &["status"]);
        let bans = status["banned_peers"].as_array().unwrap();
        assert_eq!(bans.len(), 1, "{status}");
        assert_eq!(bans[0]["peer_id"], hostile_id.as_str());
        assert_eq!(bans[0]["until"], until);
        assert_eq!(bans[0]["reason"], "invalid_signature");
        let human = String::from_utf8_lossy(&cli(api, &["status"]).stdout).into_owned();
        assert!(human.contains(&hostile_id), "{human}");
        let listed = String::from_utf8_lossy(&cli(api, &["bans"]).stdout).into_owned();
        assert!(
            listed.contains(&hostile_id) && listed.contains("invalid_signature"),
            "{listed}"
        );
    };
    check(a.api);
    assert_eq!(metric(a.api, "darkswap_peers_banned").await, 1.0);
    assert_eq!(metric(a.api, "darkswap_bans_total").await, 1.0);
    assert_eq!(
        metric(
            a.api,
            "darkswap_reputation_penalties_total{reason=\"invalid_signature\"}"
        )
        .await,
        4.0
    );
    drop(driver);

    // kill -9 and back: the ban is still in force and shown.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    drop(a);
    let a = start_daemon(dirs[0].path(), &listen());
    check(a.api);
    assert_eq!(metric(a.api, "darkswap_peers_banned").await, 1.0);
    // The forger's identity cannot be dialled.
    let (comeback, comeback_addr) = darkswap_testkit::spawn_node(
        darkswap_testkit::test_config().with_identity(darkswap_p2p::Identity::Keypair(key)),
    )
    .await;
    let refused = cli(a.api, &["connect", &comeback_addr.to_string()]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("block list"), "{err}");

    // The operator lifts it, bans someone else by hand, and unknown or
    // malformed peers are refused with their own errors.
    let out = cli(a.api, &["bans", "remove", &hostile_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        cli_json(a.api, &["connect", &comeback_addr.to_string()])["peer_id"],
        hostile_id.as_str()
    );
    let again = cli(a.api, &["bans", "remove", &hostile_id]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not banned"));
    let bad = cli(a.api, &["bans", "add", "not-a-peer"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("peer_id"));
    let other = PeerId::random().to_string();
    let manual = cli_json(a.api, &["bans", "add", &other, "--duration", "1h"]);
    assert_eq!(manual["reason"], "manual");
    let listed = cli_json(a.api, &["bans"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["peer_id"], other.as_str());
    comeback.shutdown().await.unwrap();
}
