//! Hostile peers: tampered orders are refused and counted by every daemon,
//! a forger is banned and the ban outlives a kill -9.

use std::net::SocketAddr;

use darkswap_p2p::{ORDERBOOK_TOPIC, PeerId};
use darkswap_proto::{Message, OrderBody, OrderCreate, encode};
use darkswap_testkit::{RawGossip, order_body, sign_raw_order};

use crate::support::{Daemon, Events, cli, cli_json, full_addr, metric, order_args, start_daemon};

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
async fn a_forger_is_banned_and_the_ban_survives_a_kill_9() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let listen = || vec!["--listen".to_owned(), "/ip4/127.0.0.1/tcp/0".to_owned()];
    let a = start_daemon(dirs[0].path(), &listen());
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
    a_events.order_added("the honest order on a", &id).await;

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
    a.kill_9();
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
