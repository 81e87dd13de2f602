//! `PATCH /v1/orders/{id}` and `darkswap order update`: an own order's new
//! terms reach peers (by gossip, and by sync to a daemon that joins later),
//! survive a kill -9, and bad requests get the documented refusals.

use serde_json::{Value, json};

use crate::support::{Events, cli, cli_json, full_addr, metric, post_order, start_daemon};

fn listen() -> Vec<String> {
    vec!["--listen".to_owned(), "/ip4/127.0.0.1/tcp/0".to_owned()]
}

fn book(api: std::net::SocketAddr) -> Value {
    cli_json(api, &["orderbook", "--base", "BTC", "--quote", "rune:1:0"])
}

/// Waits for `id`'s `order_updated` event with this amount and price.
async fn updated(events: &mut Events, what: &str, id: &str, amount: u64, price: u64) {
    events
        .wait(what, |v| {
            v["type"] == "order_updated"
                && v["order"]["id"] == id
                && v["order"]["amount"] == amount
                && v["order"]["price"] == price
        })
        .await;
}

async fn patch(api: std::net::SocketAddr, id: &str, body: String) -> (u16, Value) {
    let r = reqwest::Client::new()
        .patch(format!("http://{api}/v1/orders/{id}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_made_with_the_cli_reaches_a_peer_and_a_daemon_that_joins_later() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start_daemon(dirs[0].path(), &listen());
    let b = start_daemon(dirs[1].path(), &listen());
    let (a_addr, _) = full_addr(a.api);
    let mut b_events = Events::subscribe(b.api).await;
    cli_json(b.api, &["connect", &a_addr]);
    let http = reqwest::Client::new();
    let created: Value = post_order(&http, a.api, "sell", 50)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    b_events.order_added("the order on b", &id).await;

    let now = cli_json(
        a.api,
        &["order", "update", &id, "--amount", "7", "--price", "3"],
    );
    assert_eq!(
        (now["id"].as_str(), now["amount"].as_u64()),
        (Some(id.as_str()), Some(7))
    );
    assert_eq!(now["price"], 3);
    assert_eq!(now["expires_at"], created["expires_at"], "expiry kept");
    updated(&mut b_events, "the update on b", &id, 7, 3).await;
    assert_eq!(book(b.api)["asks"][0], now, "b's book as a's answer");

    // The table form prints the order as it now stands.
    let human = cli(a.api, &["order", "update", &id, "--amount", "6"]);
    assert!(human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with(&id))
        .expect("the order's row");
    assert_eq!(row.split_whitespace().nth(2), Some("6"), "{text}");
    updated(&mut b_events, "the second update on b", &id, 6, 3).await;

    // c joins late, knowing only b, and gets the order as it stands by sync.
    let c = start_daemon(dirs[2].path(), &listen());
    let mut c_events = Events::subscribe(c.api).await;
    let (b_addr, _) = full_addr(b.api);
    cli_json(c.api, &["connect", &b_addr]);
    updated(&mut c_events, "the order on c by sync", &id, 6, 3).await;
    assert_eq!(book(c.api)["asks"], book(a.api)["asks"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_answered_200_survives_a_kill_9_and_the_next_one_reaches_peers() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_daemon(dir_a.path(), &listen());
    let b = start_daemon(dir_b.path(), &listen());
    let (b_addr, _) = full_addr(b.api);
    let mut b_events = Events::subscribe(b.api).await;
    cli_json(a.api, &["connect", &b_addr]);
    let http = reqwest::Client::new();
    let created: Value = post_order(&http, a.api, "buy", 50)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    b_events.order_added("the order on b", &id).await;

    let (status, v) = patch(a.api, &id, json!({ "amount": 7 }).to_string()).await;
    assert_eq!(status, 200, "{v}");
    // b holds the first update (so a new life that signed sequence 1 again
    // would be ignored there); a is killed milliseconds after its answer,
    // well before its book is saved (2 s after a change), so only the
    // write the answer waited for can bring the update back.
    updated(&mut b_events, "the first update on b", &id, 7, 1).await;
    a.kill_9();

    let a = start_daemon(dir_a.path(), &listen());
    let own = cli_json(a.api, &["order", "list"]);
    assert_eq!(own[0]["id"], id.as_str(), "{own}");
    assert_eq!(
        (own[0]["amount"].as_u64(), own[0]["price"].as_u64()),
        (Some(7), Some(1))
    );
    assert_eq!(book(a.api)["bids"][0]["amount"], 7);

    // The next update continues the sequence: b, which holds the first,
    // takes it (when they reconnect, by sync).
    let (status, v) = patch(a.api, &id, json!({ "price": 3 }).to_string()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["amount"].as_u64(), v["price"].as_u64()),
        (Some(7), Some(3))
    );
    cli_json(a.api, &["connect", &b_addr]);
    updated(&mut b_events, "the second update on b", &id, 7, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_updates_are_refused_with_their_status_and_code() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_daemon(dir_a.path(), &listen());
    let b = start_daemon(dir_b.path(), &listen());
    let (a_addr, _) = full_addr(a.api);
    let mut a_events = Events::subscribe(a.api).await;
    cli_json(b.api, &["connect", &a_addr]);
    let http = reqwest::Client::new();
    let id_of = |v: Value| v["id"].as_str().unwrap().to_owned();
    let own = id_of(
        post_order(&http, a.api, "sell", 5)
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    let theirs = id_of(
        post_order(&http, b.api, "sell", 6)
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    a_events.order_added("b's order on a", &theirs).await;

    let refusals = [
        (
            own.as_str(),
            "{not json".to_owned(),
            400,
            "invalid_request",
            "",
        ),
        (
            &own,
            json!({ "amount": 0 }).to_string(),
            400,
            "invalid_request",
            "amount",
        ),
        (
            &own,
            json!({ "price": 0 }).to_string(),
            400,
            "invalid_request",
            "price",
        ),
        (
            &own,
            json!({}).to_string(),
            400,
            "invalid_request",
            "nothing to change",
        ),
        (
            &own,
            json!({ "amount": 1, "pad": 0 }).to_string(),
            400,
            "invalid_request",
            "pad",
        ),
        (
            &own,
            json!({ "amount": -1 }).to_string(),
            400,
            "invalid_request",
            "amount",
        ),
        // post_order's orders live ten minutes; an update cannot extend that.
        (
            &own,
            json!({ "expires_in_secs": 3600 }).to_string(),
            400,
            "invalid_request",
            "expires_in_secs",
        ),
        (
            "xyz",
            json!({ "amount": 1 }).to_string(),
            400,
            "invalid_request",
            "id",
        ),
        (
            &"00".repeat(32),
            json!({ "amount": 1 }).to_string(),
            404,
            "not_found",
            "",
        ),
        (
            &theirs,
            json!({ "amount": 1 }).to_string(),
            404,
            "not_found",
            "not one of this node's orders",
        ),
    ];
    for (id, body, status, code, mentions) in refusals {
        let (got, v) = patch(a.api, id, body.clone()).await;
        assert_eq!(
            (got, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {v}"
        );
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{body}: {message}");
    }
    assert_eq!(
        book(a.api)["asks"].as_array().unwrap().len(),
        2,
        "nothing changed"
    );
    let unchanged = cli_json(a.api, &["order", "list"]);
    assert_eq!(unchanged[0]["amount"], 5);

    let out = cli(a.api, &["order", "update", &own, "--amount", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("amount: must be greater than zero"));

    let r = http
        .delete(format!("http://{}/v1/orders/{own}", a.api))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (got, v) = patch(a.api, &own, json!({ "amount": 1 }).to_string()).await;
    assert_eq!(
        (got, v["error"]["code"].as_str()),
        (409, Some("cancelled")),
        "{v}"
    );
    assert_eq!(
        metric(
            a.api,
            r#"darkswap_orders_rejected_total{source="api",reason="cancelled"}"#
        )
        .await,
        1.0
    );
}
