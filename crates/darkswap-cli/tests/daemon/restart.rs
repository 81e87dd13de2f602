//! What a daemon holds across a restart, even a kill -9: the book, and
//! nothing its maker gave up.

use crate::support::{Events, cli_json, full_addr, order_args, start_daemon};

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
    let b = start_daemon(dir_b.path(), &timing());
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
    a.kill_9();
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
    b.kill_9();
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
