//! Native WebRTC peers behind NAT routers (nftables, in network namespaces
//! this test makes and deletes), with a real `darkswap-relay` on the public
//! segment serving signaling, STUN and TURN: behind endpoint-independent
//! routers its STUN alone gives them a direct path; behind symmetric ones
//! they connect through its TURN. No relayed-circuit fallback is allowed,
//! so a success is a WebRTC path. Root only (CI runs as root).

use std::{
    io::{BufRead, BufReader},
    net::Ipv4Addr,
    path::Path,
    process::Stdio,
    sync::mpsc,
    time::Duration,
};

use darkswap_natlab::{nat::NatKind, topology::Segment};
use darkswap_testkit::{RelayProcess, target_binary};

const RELAY_IP: Ipv4Addr = Ipv4Addr::new(7, 7, 7, 1);
const WAIT: Duration = Duration::from_secs(40);

/// What one pair of peers behind two `nat` routers printed.
struct Outcome {
    /// Whether the connector reached the listener and heard its echo.
    connected: bool,
    listener_id: String,
    listener: Vec<String>,
    connector: Vec<String>,
}

fn run_pair(tag: &str, nat: NatKind, peer_args: &[&str]) -> Outcome {
    let segment = Segment::new(tag).unwrap();
    let public = segment
        .public_host(&format!("{tag}-relay"), RELAY_IP)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let relay_bin = RelayProcess::binary();
    let args: Vec<String> = [
        "netns",
        "exec",
        &public.ns.name,
        relay_bin.to_str().unwrap(),
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "/ip4/0.0.0.0/tcp/4001",
        "--metrics-listen",
        "127.0.0.1:0",
        "--signaling-listen",
        "0.0.0.0:9001",
        "--log-format",
        "json",
    ]
    .map(String::from)
    .to_vec();
    // `ip netns exec` execs the relay: the child is the relay itself.
    let _relay = RelayProcess::start(
        Path::new("ip"),
        &args,
        &[
            ("DARKSWAP_RELAY_TURN__ENABLED", "true"),
            ("DARKSWAP_RELAY_TURN__RELAY_IP", "7.7.7.1"),
        ],
    );
    let (one, two) = (
        segment.site(tag, 1, nat).unwrap(),
        segment.site(tag, 2, nat).unwrap(),
    );
    let url = format!("ws://{RELAY_IP}:9001/signaling");
    let example = target_binary("examples/webrtc_example");
    let example = example.to_str().unwrap();

    let mut listener = one
        .host
        .command(example)
        .arg(&url)
        .args(peer_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = listener.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut heard = Vec::new();
    let listener_id = loop {
        let line = lines
            .recv_timeout(WAIT)
            .expect("the listener prints its peer id");
        heard.push(line.clone());
        if let Some(id) = line.strip_prefix("peer id: ") {
            break id.to_owned();
        }
    };
    let out = two
        .host
        .command(example)
        .arg(&url)
        .arg(&listener_id)
        .args(peer_args)
        .args(["--message", "through the NATs"])
        .output()
        .unwrap();
    let connector: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    if !out.status.success() {
        eprintln!(
            "{nat}: the connector failed\n{}\n{}",
            connector.join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The listener's own view, once it has answered (bounded).
    while out.status.success() && !heard.iter().any(|l| l.starts_with("candidate: ")) {
        match lines.recv_timeout(WAIT) {
            Ok(line) => heard.push(line),
            Err(_) => break,
        }
    }
    let _ = listener.kill();
    let _ = listener.wait();
    Outcome {
        connected: out.status.success(),
        listener_id,
        listener: heard,
        connector,
    }
}

fn has(lines: &[String], wanted: &str) -> bool {
    lines.iter().any(|l| l == wanted)
}

#[test]
fn behind_nat_routers_peers_get_webrtc_paths_from_the_relays_stun_and_turn() {
    // Endpoint-independent mapping: the relay's STUN, nothing else.
    let stun = format!("stun:{RELAY_IP}:3478");
    let o = run_pair(
        "wrtc-eim",
        NatKind::EndpointIndependent,
        &["--stun", &stun, "--no-fallback"],
    );
    let id = &o.listener_id;
    assert!(o.connected);
    assert!(
        has(&o.connector, &format!("path: {id} direct")),
        "{:?}",
        o.connector
    );
    assert!(
        has(&o.connector, &format!("candidate: {id} host")),
        "{:?}",
        o.connector
    );

    // Symmetric mapping: what STUN tells is useless to the other side, so
    // STUN alone gives no path...
    let o = run_pair(
        "wrtc-sym-stun",
        NatKind::Symmetric,
        &["--stun", &stun, "--no-fallback"],
    );
    assert!(
        !o.connected,
        "symmetric routers defeat STUN: {:?}",
        o.connector
    );
    // ...and the relay's TURN carries the WebRTC path.
    let o = run_pair(
        "wrtc-sym",
        NatKind::Symmetric,
        &["--relay-ice", "--no-fallback"],
    );
    let id = &o.listener_id;
    assert!(o.connected);
    assert!(
        has(&o.connector, &format!("path: {id} direct")),
        "{:?}",
        o.connector
    );
    let through_turn = o
        .connector
        .iter()
        .chain(&o.listener)
        .any(|l| l.starts_with("candidate: ") && l.ends_with(" relay"));
    assert!(
        through_turn,
        "one side's datagrams go through TURN\n{:?}\n{:?}",
        o.connector, o.listener
    );
}
