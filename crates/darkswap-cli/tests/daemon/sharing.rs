//! Orders travel between daemons: through a relay circuit, by sync to a
//! late joiner, and through a bootstrap relay's gossip.

use crate::support::{
    Events, cli, cli_json, metric, order_args, relay, reserved, start_daemon, words,
};

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
    let b = start_daemon(dir_b.path(), &["--relay".into(), relay_addr.clone()]);
    let mut b_events = Events::subscribe(b.api).await;
    b_events.wait("b's reservation", reserved).await;
    let b_status = cli_json(b.api, &["status"]);
    let b_id = b_status["peer_id"].as_str().unwrap().to_owned();
    // The status shows the relay pool: the named relay, reserved, ranked.
    let pooled = &b_status["relays"][0];
    assert_eq!(
        pooled["peer_id"],
        relay.peer_id.to_string().as_str(),
        "{b_status}"
    );
    assert_eq!(pooled["state"], "reserved", "{b_status}");
    assert!(pooled["score"].as_f64().unwrap() > 0.0, "{b_status}");
    assert!(
        pooled["sources"]
            .as_array()
            .unwrap()
            .contains(&"configured".into()),
        "{b_status}"
    );
    let human = String::from_utf8_lossy(&cli(b.api, &["status"]).stdout).into_owned();
    assert!(
        human.contains(&format!("relay:     {} reserved score=", relay.peer_id)),
        "{human}"
    );

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
        &words(
            "order create --side sell --base rune:840000:3 --quote BTC --amount 5000 --price 300000 --expires-in 1h",
        ),
    );
    let id = created["id"].as_str().unwrap().to_owned();
    a_events.order_added("order added on a", &id).await;
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

    // b's /metrics has the node's series after the daemon's, in one
    // exposition: b holds its reservation, took a's connection, dialled
    // the relay.
    let text = reqwest::get(format!("http://{}/metrics", b.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(metric(b.api, "p2p_relay_connections").await, 1.0);
    assert!(metric(b.api, "p2p_connection_successes_total").await >= 1.0);
    assert!(metric(b.api, "p2p_connections_total").await >= 2.0);
    assert!(metric(b.api, "darkswap_own_orders").await == 1.0);
    assert!(text.contains(&format!("p2p_relay_score{{relay=\"{}\"}}", relay.peer_id)));
    assert!(text.contains("libp2p_swarm_connections_established_total"));

    // a cannot cancel b's order.
    let refused = cli(a.api, &["order", "cancel", &id]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not one of this node's orders"));

    // b's own orders survive a kill -9.
    b.kill_9();
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
    let b = start_daemon(dirs[1].path(), &listen());
    let mut a_events = Events::subscribe(a.api).await;
    cli_json(b.api, &["connect", &a_addr]);
    let order = cli_json(
        b.api,
        &words("order create --side buy --base BTC --quote alkane:2:1 --amount 7 --price 9"),
    );
    let id = order["id"].as_str().unwrap().to_owned();
    a_events.order_added("order on a", &id).await;

    // c joins late, knowing only a, and gets b's order by sync.
    let c = start_daemon(dirs[2].path(), &listen());
    let mut c_events = Events::subscribe(c.api).await;
    cli_json(c.api, &["connect", &a_addr]);
    c_events.order_added("order on c by sync", &id).await;

    // b is killed and restarted: its order is back in its own list and,
    // re-announced, still in everyone's book.
    b.kill_9();
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
        .order_added("b's order on a, through the relay's gossip", &id)
        .await;
}
