//! `darkswap daemon --config FILE` and its flags: the real binary takes its
//! options from the file and the command line, and refuses a bad file
//! before it starts.

use std::process::Command;

use serde_json::Value;

use crate::support::{BIN, full_addr, post_order, start_daemon};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_limit_set_in_the_config_file_refuses_the_third_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("darkswap.toml");
    std::fs::write(&file, "mdns = false\nmax_orders_per_maker = 2\n").unwrap();
    let d = start_daemon(
        &dir.path().join("data"),
        &["--config".to_owned(), file.to_str().unwrap().to_owned()],
    );
    let http = reqwest::Client::new();
    for n in 0..2 {
        assert_eq!(
            post_order(&http, d.api, "buy", 1 + n)
                .await
                .unwrap()
                .status(),
            201
        );
    }
    let r = post_order(&http, d.api, "buy", 3).await.unwrap();
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "maker_limit", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 orders per maker"),
        "{v}"
    );
}

#[test]
fn a_config_file_with_an_unknown_key_stops_the_daemon_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("darkswap.toml");
    std::fs::write(&file, "max_orders_per_makr = 2\n").unwrap();
    let out = Command::new(BIN)
        .args(["--api", "127.0.0.1:0", "daemon", "--config"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_orders_per_makr"), "{err}");
    assert!(err.contains("darkswap.toml"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing was started");
}

/// `--perf` (off by default) serves `/perf/1.0.0`: a node measures its link
/// to the daemon both ways, byte for byte; a daemon without the flag
/// refuses the protocol and the measurement fails instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_is_served_with_the_flag_and_refused_without() {
    let dir = tempfile::tempdir().unwrap();
    let listen = ["--listen", "/ip4/127.0.0.1/tcp/0"].map(String::from);
    let with_perf = [&listen[..], &["--perf".to_owned()]].concat();
    let serving = start_daemon(&dir.path().join("serving"), &with_perf);
    let silent = start_daemon(&dir.path().join("silent"), &listen);
    let node = darkswap_p2p::Network::new(darkswap_testkit::test_config().with_perf(true))
        .await
        .unwrap();
    let bound = darkswap_testkit::EVENT_TIMEOUT;

    let (addr, _) = full_addr(serving.api);
    let id = node
        .dial(addr.parse::<darkswap_p2p::Multiaddr>().unwrap())
        .await
        .unwrap();
    let report = tokio::time::timeout(bound, node.perf(id, 1 << 20, 2 << 20))
        .await
        .expect("perf against the daemon finishes")
        .unwrap();
    assert_eq!((report.uploaded, report.downloaded), (1 << 20, 2 << 20));

    let (addr, _) = full_addr(silent.api);
    let id = node
        .dial(addr.parse::<darkswap_p2p::Multiaddr>().unwrap())
        .await
        .unwrap();
    let refused = tokio::time::timeout(bound, node.perf(id, 1 << 10, 1 << 10))
        .await
        .expect("a refused perf fails within the bound");
    assert!(refused.is_err(), "{refused:?}");
    node.shutdown().await.unwrap();
}
