//! Trades between real daemons: a maker and a taker that only the relay
//! process reaches, their key wallets funded on a small test chain (an
//! Esplora and an ord over loopback HTTP that checks every broadcast with
//! Bitcoin Core's script interpreter), the real CLI.

use std::{net::SocketAddr, path::Path, time::Duration};

use darkswap_chain::test_server::{ChainTestServer, RuneHolding};
use darkswap_p2p::{
    Multiaddr, NetworkEvent, OrderbookChange,
    darkswap_trade::{
        Asset, Holdings, InMemoryIndex, KeyKind, KeyWallet, OfferedInput,
        bitcoin::{Address, Amount, Network as BitcoinNetwork, TxOut, secp256k1::SecretKey},
    },
    proto::TradePayload,
};
use darkswap_testkit::{
    EVENT_TIMEOUT, RawTrader,
    raw_trade::{body_of, with_psbt},
    spawn_node, test_config, wait_for,
};
use serde_json::{Value, json};

use crate::support::{Events, cli, cli_json, metric, relay, reserved, start_daemon};

const RUNE: Asset = Asset::Rune {
    block: 840_000,
    tx: 3,
};

/// Writes a config file that turns trading on against `chain`.
fn trading_config(dir: &Path, chain: &ChainTestServer) -> String {
    trading_config_with(dir, chain, "")
}

/// [`trading_config`] with `extra` lines.
fn trading_config_with(dir: &Path, chain: &ChainTestServer, extra: &str) -> String {
    let path = dir.join("darkswap.toml");
    let url = chain.base_url();
    std::fs::write(
        &path,
        format!(
            "trading = true\nbitcoin_network = \"regtest\"\nesplora_url = \"{url}\"\n\
             ord_url = \"{url}\"\n# Synced by hand through the API.\nwallet_sync_interval = \"1h\"\n{extra}"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// Funds the maker at `maker` with 1,000 of the rune (on 10,000 sat) and
/// 20,000 sat, and each taker with two coins of 100,000 sat.
fn fund_wallets(chain: &ChainTestServer, maker: SocketAddr, takers: &[SocketAddr]) {
    chain.fund(
        &address(maker),
        Amount::from_sat(10_000),
        Some(RuneHolding {
            name: "DARKSWAP•TEST•RUNE".to_owned(),
            rune: RUNE,
            amount: 1_000,
        }),
    );
    chain.fund(&address(maker), Amount::from_sat(20_000), None);
    for &taker in takers {
        chain.fund(&address(taker), Amount::from_sat(100_000), None);
        chain.fund(&address(taker), Amount::from_sat(100_000), None);
    }
}

/// The maker at `api` offers 1,000 of the rune at 50 sat each; the order id.
fn sell_runes(api: SocketAddr) -> String {
    let order = cli_json(
        api,
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
            "1000",
            "--price",
            "5000000000",
        ],
    );
    order["id"].as_str().unwrap().to_owned()
}

/// A maker daemon and `takers` taker daemons on loopback TCP, every taker
/// connected to the maker, wallets funded on `chain` (the maker: 1,000 of
/// the rune and 20,000 sat; each taker: two coins of 100,000 sat); the
/// maker's order of the 1,000 at 50 sat each is in every taker's book.
/// Returns the daemons (maker first), the takers' event streams and the
/// order id.
async fn market(
    chain: &ChainTestServer,
    dirs: &[tempfile::TempDir],
    extra: &str,
) -> (Vec<crate::support::Daemon>, Vec<Events>, String) {
    let daemons: Vec<_> = dirs
        .iter()
        .map(|dir| {
            let config = trading_config_with(dir.path(), chain, extra);
            start_daemon(
                dir.path(),
                &[
                    "--config".into(),
                    config,
                    "--listen".into(),
                    "/ip4/127.0.0.1/tcp/0".into(),
                ],
            )
        })
        .collect();
    let apis: Vec<SocketAddr> = daemons.iter().map(|d| d.api).collect();
    fund_wallets(chain, apis[0], &apis[1..]);
    let maker_addr = dial_addr(daemons[0].api);
    let mut events = Vec::new();
    for daemon in &daemons {
        cli_json(daemon.api, &["wallet", "--sync"]);
    }
    for taker in &daemons[1..] {
        events.push(Events::subscribe(taker.api).await);
        cli_json(taker.api, &["connect", &maker_addr]);
    }
    let order_id = sell_runes(daemons[0].api);
    for e in &mut events {
        e.order_added("the order on a taker", &order_id).await;
    }
    (daemons, events, order_id)
}

/// Waits for trade `id` to end on a daemon; its last event.
async fn trade_end(events: &mut Events, id: &str) -> Value {
    events
        .wait("the trade's end", |v| {
            v["type"] == "trade_updated"
                && v["trade_id"] == id
                && ["completed", "rejected", "cancelled", "timed_out", "failed"]
                    .contains(&v["state"].as_str().unwrap_or_default())
        })
        .await
}

/// How many of the wallet's coins at `api` a trade holds.
fn committed_coins(api: SocketAddr) -> usize {
    let wallet = cli_json(api, &["wallet"]);
    wallet["coins"]
        .as_array()
        .unwrap_or_else(|| panic!("coins in {wallet}"))
        .iter()
        .filter(|c| c["committed"] == true)
        .count()
}

/// The wallet's receiving address.
fn address(api: SocketAddr) -> Address {
    let wallet = cli_json(api, &["wallet"]);
    assert_eq!(wallet["network"], "regtest");
    wallet["addresses"][0]
        .as_str()
        .unwrap()
        .parse::<Address<_>>()
        .unwrap()
        .assume_checked()
}

async fn trade_state(events: &mut Events, what: &str, state: &str) -> Value {
    events
        .wait(what, |v| {
            v["type"] == "trade_updated" && v["state"] == state
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_taker_takes_half_of_a_makers_rune_order_and_every_book_shows_the_rest() {
    let chain = ChainTestServer::spawn().await.unwrap();
    let (relay, _relay_dir) = relay();
    let relay_addr = relay.tcp_addr.to_string();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let start = |dir: &Path| {
        let config = trading_config(dir, &chain);
        start_daemon(
            dir,
            &[
                "--config".into(),
                config,
                "--relay".into(),
                relay_addr.clone(),
            ],
        )
    };
    // Neither listens anywhere: each is reachable only through the relay.
    let maker = start(dirs[0].path());
    let taker = start(dirs[1].path());
    let mut maker_events = Events::subscribe(maker.api).await;
    let mut taker_events = Events::subscribe(taker.api).await;
    maker_events.wait("the maker's reservation", reserved).await;
    taker_events.wait("the taker's reservation", reserved).await;

    // Fund both wallets on the test chain, then let them look.
    fund_wallets(&chain, maker.api, &[taker.api]);
    let maker_wallet = cli_json(maker.api, &["wallet", "--sync"]);
    assert_eq!(maker_wallet["coins"].as_array().unwrap().len(), 2);
    assert!(
        maker_wallet["coins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["holdings"]["rune:840000:3"] == "1000"),
        "{maker_wallet}"
    );
    assert_eq!(
        cli_json(taker.api, &["wallet", "--sync"])["coins"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let maker_id = cli_json(maker.api, &["status"])["peer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let circuit = format!("{relay_addr}/p2p-circuit/p2p/{maker_id}");
    assert_eq!(
        cli_json(taker.api, &["connect", &circuit])["peer_id"],
        maker_id.as_str()
    );

    let order_id = sell_runes(maker.api);
    taker_events
        .order_added("the order on the taker", &order_id)
        .await;

    let trade = cli_json(taker.api, &["trade", "take", &order_id, "--amount", "500"]);
    assert_eq!(trade["role"], "taker");
    let trade_id = trade["id"].as_str().unwrap().to_owned();
    trade_state(
        &mut taker_events,
        "the taker's trade completed",
        "completed",
    )
    .await;
    trade_state(
        &mut maker_events,
        "the maker's trade completed",
        "completed",
    )
    .await;
    let filled = maker_events
        .wait("the maker's fill", |v| v["type"] == "order_filled")
        .await;
    assert_eq!(
        (filled["amount"].as_u64(), filled["remaining"].as_u64()),
        (Some(500), Some(500))
    );

    // The test chain took the swap once, after checking every input.
    let got = chain.wait_for(1, Duration::from_secs(20)).await.unwrap();
    assert_eq!(got.len(), 1);
    let txid = got[0].compute_txid().to_string();
    let shown = cli_json(taker.api, &["trade", "show", &trade_id]);
    assert_eq!(
        (shown["state"].as_str(), shown["txid"].as_str()),
        (Some("completed"), Some(txid.as_str()))
    );
    let listed = cli_json(maker.api, &["trade", "list"]);
    assert_eq!(listed[0]["role"], "maker");
    assert_eq!(listed[0]["txid"], txid.as_str());

    // The maker's fill notice reached the taker's book (while the waits
    // above read its events, or later).
    let book = cli_json(
        taker.api,
        &["orderbook", "--base", "rune:840000:3", "--quote", "BTC"],
    );
    if book["asks"][0]["amount"] != 500 {
        taker_events
            .wait("the rest in the taker's book", |v| {
                v["type"] == "order_updated"
                    && v["order"]["id"] == order_id.as_str()
                    && v["order"]["amount"] == 500
            })
            .await;
    }
    for api in [maker.api, taker.api] {
        assert_eq!(
            metric(api, "darkswap_trades_total{outcome=\"completed\"}").await,
            1.0
        );
    }
    // More than what remains is refused at once: the taker's node knows
    // what remains from the maker's notice.
    let out = cli(taker.api, &["trade", "take", &order_id, "--amount", "600"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("600") && err.contains("409"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trade_requests_get_typed_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let plain = start_daemon(dir.path(), &[]);
    let http = reqwest::Client::new();
    let post = |body: Value| {
        http.post(format!("http://{}/v1/trades", plain.api))
            .json(&body)
            .send()
    };
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or_default().to_owned();

    // Not trading: 409 not_trading, for trades and the wallet alike.
    let order_id = "ab".repeat(32);
    let r = post(json!({"order_id": order_id, "amount": 5}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    assert_eq!(code(&r.json().await.unwrap()), "not_trading");
    let out = cli(plain.api, &["wallet"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not trade"));
    // Malformed requests: 400 naming the field.
    let r = post(json!({"order_id": "nope", "amount": 5}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("order_id"));
    let r = post(json!({"order_id": order_id, "amount": 0}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // An unknown trade: 404.
    let r = http
        .get(format!(
            "http://{}/v1/trades/{}",
            plain.api,
            "cd".repeat(32)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(cli_json(plain.api, &["trade", "list"]), json!([]));

    // Trading on, but the order is not in the book: 404.
    let chain = ChainTestServer::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = trading_config(dir.path(), &chain);
    let trader = start_daemon(dir.path(), &["--config".into(), config]);
    let r = http
        .post(format!("http://{}/v1/trades", trader.api))
        .json(&json!({"order_id": order_id, "amount": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // A wallet file for another network is refused at start, not replaced.
    let wallet = std::fs::read(dir.path().join("wallet.json")).unwrap();
    drop(trader);
    let toml = std::fs::read_to_string(dir.path().join("darkswap.toml"))
        .unwrap()
        .replace("regtest", "signet");
    std::fs::write(dir.path().join("darkswap.toml"), toml).unwrap();
    let out = std::process::Command::new(crate::support::BIN)
        .args(["--api", "127.0.0.1:0", "daemon", "--no-mdns", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(dir.path().join("darkswap.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("regtest wallet"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.path().join("wallet.json")).unwrap(),
        wallet
    );
}

/// A daemon's first listen address with its peer id.
fn dial_addr(api: SocketAddr) -> String {
    let status = cli_json(api, &["status"]);
    let addr = status["listen_addrs"][0]
        .as_str()
        .or_else(|| status["addresses"][0].as_str())
        .unwrap_or_else(|| panic!("a listen address in {status}"));
    format!("{addr}/p2p/{}", status["peer_id"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_killed_after_it_signed_finishes_the_trade_after_its_restart_and_signs_nothing_else()
 {
    let chain = ChainTestServer::spawn().await.unwrap();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut daemons, mut events, order_id) = market(&chain, &dirs, "").await;
    let taker = daemons.pop().unwrap();
    let maker = daemons.pop().unwrap();
    let mut taker_events = events.pop().unwrap();
    let mut maker_events = Events::subscribe(maker.api).await;
    let start = |dir: &Path| {
        let config = trading_config(dir, &chain);
        start_daemon(
            dir,
            &[
                "--config".into(),
                config,
                "--listen".into(),
                "/ip4/127.0.0.1/tcp/0".into(),
            ],
        )
    };

    let trade = cli_json(taker.api, &["trade", "take", &order_id, "--amount", "500"]);
    let trade_id = trade["id"].as_str().unwrap().to_owned();
    // The moment the maker says it signed, kill -9 it: no handler runs,
    // nothing is flushed but what was on disk before the signature left.
    trade_state(&mut maker_events, "the maker's signature", "maker_signed").await;
    maker.kill_9();

    // The same data dir: the same peer id, its order and its trade back.
    let maker = start(dirs[0].path());
    let stored = cli_json(maker.api, &["trade", "show", &trade_id]);
    assert_eq!(stored["role"], "maker");
    let mut maker_events = Events::subscribe(maker.api).await;
    let completed_before_the_kill = stored["state"] == "completed";
    if !completed_before_the_kill {
        // The taker comes back (the maker's port is new): each side sends
        // its last step again, and the maker sees the trade through with
        // the PSBT it signed.
        cli_json(taker.api, &["connect", &dial_addr(maker.api)]);
        trade_state(
            &mut maker_events,
            "the restarted maker's trade completed",
            "completed",
        )
        .await;
    }
    let shown = cli_json(taker.api, &["trade", "show", &trade_id]);
    if shown["state"] != "completed" {
        trade_state(
            &mut taker_events,
            "the taker's trade completed",
            "completed",
        )
        .await;
    }
    // One transaction, whatever was sent again: the maker signed one PSBT.
    let got = chain.wait_for(1, Duration::from_secs(20)).await.unwrap();
    let txids: std::collections::BTreeSet<_> = got.iter().map(|tx| tx.compute_txid()).collect();
    assert_eq!(txids.len(), 1, "{got:?}");
    let txid = txids.into_iter().next().unwrap().to_string();
    assert_eq!(
        cli_json(maker.api, &["trade", "show", &trade_id])["txid"],
        txid.as_str()
    );
    assert_eq!(
        cli_json(taker.api, &["trade", "show", &trade_id])["txid"],
        txid.as_str()
    );
    // The restarted maker's fill reached its own order. (Were the trade
    // done before the kill, its fill notice might not have been written
    // yet: a window of microseconds this test does not aim at.)
    if !completed_before_the_kill {
        let own = cli_json(maker.api, &["order", "list"]);
        assert_eq!(own[0]["amount"], 500, "{own}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_takers_race_for_one_order_and_one_gets_the_typed_refusal() {
    let chain = ChainTestServer::spawn().await.unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (daemons, mut events, order_id) = market(&chain, &dirs, "").await;
    // Both at once: 600 each of the 1,000. Both commands are started
    // before either is waited for: run one after the other, the first
    // trade could complete and its fill reach the second taker, which then
    // refused the take itself (a flake seen in CI).
    let takes: Vec<_> = daemons[1..]
        .iter()
        .map(|t| {
            std::process::Command::new(crate::support::BIN)
                .args([
                    "--api",
                    &t.api.to_string(),
                    "--json",
                    "trade",
                    "take",
                    &order_id,
                    "--amount",
                    "600",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ends = Vec::new();
    for (take, e) in takes.into_iter().zip(&mut events) {
        let out = take.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let trade: Value = serde_json::from_slice(&out.stdout).unwrap();
        ends.push(trade_end(e, trade["id"].as_str().unwrap()).await);
    }
    let states: Vec<_> = ends
        .iter()
        .map(|e| e["state"].as_str().unwrap().to_owned())
        .collect();
    assert!(states.contains(&"completed".to_owned()), "{ends:?}");
    let refused = ends
        .iter()
        .find(|e| e["state"] == "rejected")
        .unwrap_or_else(|| panic!("one refused: {ends:?}"));
    assert_eq!(refused["detail"], "amount_above_remaining");
    let got = chain.wait_for(1, Duration::from_secs(20)).await.unwrap();
    assert_eq!(got.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_maker_lets_the_takers_trade_time_out_and_its_coins_free_again() {
    let chain = ChainTestServer::spawn().await.unwrap();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (daemons, mut events, order_id) =
        market(&chain, &dirs, "trade_step_timeout = \"2s\"\n").await;
    // The maker stops answering (the process is frozen, its connections
    // stay open).
    daemons[0].signal("-STOP");
    let taker = daemons[1].api;
    let trade = cli_json(taker, &["trade", "take", &order_id, "--amount", "500"]);
    assert_eq!(trade["state"], "proposed");
    assert!(committed_coins(taker) > 0);
    let end = trade_end(&mut events[0], trade["id"].as_str().unwrap()).await;
    assert_eq!(end["state"], "timed_out");
    assert_eq!(end["detail"], "waiting for proposed");
    assert_eq!(
        committed_coins(taker),
        0,
        "the taker's coins are free again"
    );
    assert_eq!(
        metric(taker, "darkswap_trades_total{outcome=\"timed_out\"}").await,
        1.0
    );
    daemons[0].signal("-CONT");
    assert!(chain.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_takers_psbt_that_underpays_is_refused_before_the_maker_daemon_signs() {
    // The chain over https, under a CA the daemon trusts through
    // `chain_ca_file`: its wallet sync, ord look-ups and broadcaster all
    // go through TLS.
    let chain = ChainTestServer::spawn_tls().await.unwrap();
    let dirs = [tempfile::tempdir().unwrap()];
    let ca = dirs[0].path().join("chain-ca.pem");
    std::fs::write(&ca, chain.ca_pem().unwrap()).unwrap();
    let (daemons, _, order_id) = market(
        &chain,
        &dirs,
        &format!("chain_ca_file = \"{}\"\n", ca.display()),
    )
    .await;
    let maker = daemons[0].api;
    let maker_addr: Multiaddr = dial_addr(maker).parse().unwrap();
    let mut maker_events = Events::subscribe(maker).await;

    // The order as a node sees it, from an honest watcher's book.
    let (mut watcher, _) = spawn_node(test_config()).await;
    watcher.dial(maker_addr.clone()).await.unwrap();
    let order = wait_for(
        &mut watcher,
        "the maker's order",
        EVENT_TIMEOUT,
        |e| match e {
            NetworkEvent::OrderbookChanged(OrderbookChange::Added(o))
                if o.id.to_string() == order_id =>
            {
                Some(o.clone())
            }
            _ => None,
        },
    )
    .await;

    // A hostile taker with real coins on the chain: it proposes half the
    // order honestly, then sends a PSBT that pays the maker 1,000 sat less.
    let mut wallet = KeyWallet::new(BitcoinNetwork::Regtest)
        .with_key(SecretKey::from_slice(&[42; 32]).unwrap(), KeyKind::P2wpkh);
    let own = wallet.address(0).unwrap();
    let outpoint = chain.fund(&own, Amount::from_sat(100_000), None);
    let coin = OfferedInput {
        outpoint,
        prevout: TxOut {
            value: Amount::from_sat(100_000),
            script_pubkey: own.script_pubkey(),
        },
        holdings: Holdings::new(),
    };
    wallet.add_utxo(coin.clone()).unwrap();
    let index = InMemoryIndex::new().with(outpoint, Holdings::new());
    let mut raw = RawTrader::new(wallet, index);
    raw.connect(maker_addr).await;
    let maker_id = watcher.connected_peers().await.unwrap()[0];
    let id = raw.take(&order, 500);
    let propose = raw.next_step();
    raw.send(maker_id, propose).await;
    let (_, accept) = raw.receive().await;
    raw.feed(maker_id, &accept);
    let create = raw.next_step();
    let trade = raw.trade(id);
    let cheat = with_psbt(&raw.key, &create, |psbt| {
        let tx = &mut psbt.unsigned_tx;
        let paid = tx
            .output
            .iter()
            .position(|o| o.script_pubkey == trade.maker.receive)
            .unwrap();
        let change = tx
            .output
            .iter()
            .position(|o| o.script_pubkey == trade.taker.change)
            .unwrap();
        tx.output[paid].value -= Amount::from_sat(1_000);
        tx.output[change].value += Amount::from_sat(1_000);
    });
    raw.send(maker_id, cheat).await;

    // The daemon cancels instead of signing, and says why.
    let (_, answer) = raw.receive().await;
    let Some(TradePayload::Cancel(cancel)) = body_of(&answer).payload else {
        panic!("the maker cancels, it sent {:?}", body_of(&answer).payload);
    };
    assert_eq!(cancel.reason, "psbt_refused");
    let end = trade_end(&mut maker_events, &id.to_string()).await;
    assert_eq!(end["state"], "failed", "{end}");
    assert!(
        end["detail"]
            .as_str()
            .is_some_and(|d| d.contains("receives 24000 of BTC, 25000 agreed")),
        "{end}"
    );
    let shown = cli_json(maker, &["trade", "show", &id.to_string()]);
    assert_eq!(shown["state"], "failed", "{shown}");
    assert_eq!(
        committed_coins(maker),
        0,
        "the maker's coins are free again"
    );
    assert_eq!(
        metric(maker, "darkswap_trades_total{outcome=\"failed\"}").await,
        1.0
    );
    assert!(chain.received().is_empty(), "nothing broadcast");
    let book = cli_json(maker, &["order", "list"]);
    assert_eq!(book[0]["amount"], 1000, "{book}");
    watcher.shutdown().await.unwrap();
}
