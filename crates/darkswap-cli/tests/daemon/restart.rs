//! What a daemon holds across a restart, even a kill -9: the book, and
//! nothing its maker gave up.

use serde_json::{Value, json};

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
    a_events.order_added("order on a", &id).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_that_stops_takes_its_orders_off_peers_books_until_it_is_back() {
    // Default refresh (3 min) and TTL (10 min): only the maker's
    // `Disconnect` can take its order off a's book within this test.
    let listen = || vec!["--listen".to_owned(), "/ip4/127.0.0.1/tcp/0".to_owned()];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_daemon(dir_a.path(), &listen());
    let b = start_daemon(dir_b.path(), &listen());
    let (a_addr, _) = full_addr(a.api);
    let mut a_events = Events::subscribe(a.api).await;
    cli_json(b.api, &["connect", &a_addr]);
    let id = cli_json(b.api, &order_args("sell", "BTC", "rune:1:0"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    a_events.order_added("order on a", &id).await;

    assert!(b.sigterm(), "b stops cleanly");
    a_events
        .wait("the leaving maker's order off a's book", |v| {
            v["type"] == "orders_expired"
                && v["ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|i| i == id.as_str()))
        })
        .await;
    let book = cli_json(
        a.api,
        &["orderbook", "--base", "BTC", "--quote", "rune:1:0"],
    );
    assert!(book["asks"].as_array().unwrap().is_empty(), "{book}");

    // Back: it announces its order again, and a takes it back.
    let b = start_daemon(dir_b.path(), &listen());
    cli_json(b.api, &["connect", &a_addr]);
    a_events.order_added("the order back on a", &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_answered_before_a_kill_9_stay_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(dir.path(), &[]);
    let http = reqwest::Client::new();
    let orders = format!("http://{}/v1/orders", d.api);
    let mut events = Events::subscribe(d.api).await;
    let mut ids = Vec::new();
    for n in 0..50u64 {
        let r = http
            .post(&orders)
            .json(&json!({ "side": "sell", "base": "BTC", "quote": "rune:1:0",
                "amount": 1 + n, "price": 9, "expires_in": 3600 }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    // The stored book holds all fifty: what a restart could bring back.
    events
        .wait("the book with the fifty saved", |v| {
            v["type"] == "book_saved" && v["orders"] == 50
        })
        .await;

    for id in &ids {
        let r = http.delete(format!("{orders}/{id}")).send().await.unwrap();
        assert_eq!(r.status(), 204, "{id}");
    }
    d.kill_9();

    // Twice: the first start must not bring them back, nor leave anything
    // that brings them back at the second; nor may the order made and
    // cancelled in between.
    for round in 0..2 {
        let d = start_daemon(dir.path(), &[]);
        let own = cli_json(d.api, &["order", "list"]);
        assert_eq!(own, json!([]), "round {round}");
        let book = cli_json(
            d.api,
            &["orderbook", "--base", "BTC", "--quote", "rune:1:0"],
        );
        let back = book["asks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| ids.iter().any(|id| o["id"] == id.as_str()))
            .count();
        assert_eq!(back, 0, "round {round}: cancelled orders came back");
        assert_eq!(book["asks"], json!([]), "round {round}: {book}");
        assert_eq!(cli_json(d.api, &["status"])["own_orders"], 0);
        let again = cli_json(d.api, &order_args("sell", "BTC", "rune:1:0"));
        let r = http
            .delete(format!(
                "http://{}/v1/orders/{}",
                d.api,
                again["id"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        d.kill_9();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_daemon_whose_events_are_followed_and_keeps_its_orders() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(dir.path(), &[]);
    let mut events = Events::subscribe(d.api).await;
    let id = cli_json(d.api, &order_args("buy", "BTC", "rune:1:0"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    events.order_added("the order", &id).await;
    assert!(d.sigterm(), "the daemon failed on SIGTERM");

    let d = start_daemon(dir.path(), &[]);
    assert_eq!(cli_json(d.api, &["order", "list"])[0]["id"], id.as_str());
}
