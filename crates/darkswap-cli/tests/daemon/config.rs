//! `darkswap daemon --config FILE`: the real binary takes its options from
//! the file, and refuses a bad one before it starts.

use std::process::Command;

use serde_json::Value;

use crate::support::{BIN, post_order, start_daemon};

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
