//! `DarkSwapWasm` in headless Chromium (`wasm-bindgen-test-runner` with
//! Debian's chromedriver): configuration, the identity kept in IndexedDB,
//! the node's lifecycle and its own book. What crosses the network (relays,
//! daemons, other pages) is in `clients/wasm/test`, against real processes.
#![cfg(target_arch = "wasm32")]

use darkswap_wasm::{DarkSwapWasm, load_or_create_identity};
use js_sys::{Array, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn object(json: &str) -> JsValue {
    js_sys::JSON::parse(json).expect("test JSON parses")
}

fn get(value: &JsValue, key: &str) -> JsValue {
    Reflect::get(value, &JsValue::from_str(key)).expect("an object")
}

fn message(error: JsValue) -> String {
    error
        .dyn_into::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .unwrap_or_else(|e| format!("{e:?}"))
}

async fn wait(promise: js_sys::Promise) -> Result<JsValue, String> {
    JsFuture::from(promise).await.map_err(message)
}

/// A store name of its own per test: IndexedDB outlives a test.
fn store(test: &str) -> String {
    format!("darkswap-test-{test}-{}", js_sys::Math::random())
}

#[wasm_bindgen_test]
fn a_bad_configuration_is_refused_at_construction_with_the_field_named() {
    for (config, expected) in [
        (r#"{"network": "dogecoin"}"#, "network"),
        (r#"{"relays": ["not an address"]}"#, "relays"),
        (
            r#"{"relays": ["/ip4/127.0.0.1/tcp/1/ws"]}"#,
            "/p2p/<peer id>",
        ),
        (r#"{"timeout_ms": 0}"#, "timeout_ms"),
        (r#"{"relay": []}"#, "unknown field `relay`"),
        (
            r#"{"trading": {"esplora_url": "ftp://x", "ord_url": "http://127.0.0.1:1"}}"#,
            "trading",
        ),
        (
            r#"{"trading": {"esplora_url": "http://127.0.0.1:1"}}"#,
            "missing field `ord_url`",
        ),
        (
            r#"{"trading": {"esplora_url": "http://127.0.0.1:1", "ord_url": "http://127.0.0.1:1", "max_trades": 0}}"#,
            "max_trades",
        ),
    ] {
        let error = message(DarkSwapWasm::new(object(config)).expect_err(config));
        assert!(error.contains(expected), "{config}: {error}");
    }
    assert!(DarkSwapWasm::new_with_defaults("dogecoin").is_err());
    for network in ["regtest", "signet", "testnet", "testnet4", "bitcoin"] {
        assert_eq!(
            DarkSwapWasm::new_with_defaults(network).unwrap().network(),
            network
        );
    }
    assert_eq!(
        DarkSwapWasm::new(JsValue::UNDEFINED).unwrap().network(),
        "regtest"
    );
}

#[wasm_bindgen_test]
async fn the_identity_key_stays_in_indexeddb() {
    let name = store("identity");
    let first = load_or_create_identity(&name).await.unwrap();
    let again = load_or_create_identity(&name).await.unwrap();
    assert_eq!(first.public(), again.public());
    let other = load_or_create_identity(&store("other")).await.unwrap();
    assert_ne!(first.public(), other.public());
}

#[wasm_bindgen_test]
async fn a_node_started_twice_on_one_store_is_the_same_peer() {
    let config = object(&format!(r#"{{"identity_store": "{}"}}"#, store("node")));
    let node = DarkSwapWasm::new(config.clone()).unwrap();
    assert_eq!(node.peer_id(), None);
    let peer = wait(node.start()).await.unwrap();
    assert_eq!(node.peer_id(), peer.as_string());
    assert!(node.running());
    assert!(
        wait(node.start())
            .await
            .unwrap_err()
            .contains("already started")
    );
    wait(node.stop()).await.unwrap();
    assert!(!node.running());
    assert_eq!(node.peer_id(), None);

    // Started again, and as a new object on the same store (a reload).
    assert_eq!(wait(node.start()).await.unwrap(), peer);
    wait(node.stop()).await.unwrap();
    let reloaded = DarkSwapWasm::new(config).unwrap();
    assert_eq!(wait(reloaded.start()).await.unwrap(), peer);
    wait(reloaded.stop()).await.unwrap();

    let ephemeral = DarkSwapWasm::new(object(r#"{"ephemeral": true}"#)).unwrap();
    assert_ne!(wait(ephemeral.start()).await.unwrap(), peer);
    wait(ephemeral.stop()).await.unwrap();
}

/// Trading against services nobody answers at (port 1 refuses at once):
/// the wallet still comes up from IndexedDB, a sync fails with a clear
/// error and loses nothing.
fn trading_config(store: &str) -> JsValue {
    object(&format!(
        r#"{{"identity_store": "{store}", "trading": {{"esplora_url": "http://127.0.0.1:1", "ord_url": "http://127.0.0.1:1"}}}}"#
    ))
}

fn addresses(wallet: &JsValue) -> Vec<String> {
    Array::from(&get(wallet, "addresses"))
        .iter()
        .map(|a| a.as_string().expect("an address"))
        .collect()
}

#[wasm_bindgen_test]
async fn the_wallet_keys_stay_in_indexeddb_and_a_failed_sync_says_why() {
    let name = store("wallet");
    let node = DarkSwapWasm::new(trading_config(&name)).unwrap();
    wait(node.start()).await.unwrap();
    let wallet = wait(node.wallet()).await.unwrap();
    assert_eq!(get(&wallet, "network").as_string().unwrap(), "regtest");
    let first = addresses(&wallet);
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first[0].starts_with("bcrt1p") && first[1].starts_with("bcrt1q"));
    let error = wait(node.sync_wallet()).await.unwrap_err();
    assert!(error.contains("wallet sync"), "{error}");
    assert_eq!(addresses(&wait(node.wallet()).await.unwrap()), first);
    wait(node.stop()).await.unwrap();

    // A reload: the same keys. Another store: other keys.
    let reloaded = DarkSwapWasm::new(trading_config(&name)).unwrap();
    wait(reloaded.start()).await.unwrap();
    assert_eq!(addresses(&wait(reloaded.wallet()).await.unwrap()), first);
    wait(reloaded.stop()).await.unwrap();
    let other = DarkSwapWasm::new(trading_config(&store("wallet-other"))).unwrap();
    wait(other.start()).await.unwrap();
    assert_ne!(addresses(&wait(other.wallet()).await.unwrap()), first);
    wait(other.stop()).await.unwrap();
}

#[wasm_bindgen_test]
async fn without_trading_the_wallet_and_take_say_how_to_turn_it_on() {
    let node = DarkSwapWasm::new(object(r#"{"ephemeral": true}"#)).unwrap();
    wait(node.start()).await.unwrap();
    let error = wait(node.wallet()).await.unwrap_err();
    assert!(error.contains("trading is off"), "{error}");
    let error = wait(node.take_order("00".repeat(32), 1.0))
        .await
        .unwrap_err();
    assert!(error.contains("trading is off"), "{error}");
    wait(node.stop()).await.unwrap();
}

#[wasm_bindgen_test]
async fn commands_before_start_say_the_node_is_not_started() {
    let node = DarkSwapWasm::new(object(r#"{"ephemeral": true}"#)).unwrap();
    let error = wait(node.orderbook("BTC".into(), "rune:840000:3".into()))
        .await
        .unwrap_err();
    assert!(error.contains("not started"), "{error}");
}

#[wasm_bindgen_test]
async fn own_orders_are_signed_shown_updated_and_cancelled_with_events() {
    let node = DarkSwapWasm::new(object(r#"{"ephemeral": true}"#)).unwrap();
    let events = Array::new();
    let sink = events.clone();
    let listener = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |e| {
        sink.push(&e);
    });
    node.on_event(
        listener
            .as_ref()
            .unchecked_ref::<js_sys::Function>()
            .clone(),
    );
    listener.forget();
    let peer = wait(node.start()).await.unwrap();

    let order = wait(node.create_order(object(
        r#"{"side": "sell", "base": "rune:840000:3", "quote": "BTC",
            "amount": 1000, "price": 100000000, "expires_in": 600}"#,
    )))
    .await
    .unwrap();
    assert_eq!(get(&order, "maker"), peer);
    assert_eq!(get(&order, "side").as_string().unwrap(), "sell");
    assert_eq!(get(&order, "amount").as_f64(), Some(1000.0));
    let id = get(&order, "id").as_string().unwrap();
    assert_eq!(id.len(), 64);

    let book = wait(node.orderbook("rune:840000:3".into(), "BTC".into()))
        .await
        .unwrap();
    let asks = Array::from(&get(&book, "asks"));
    assert_eq!(asks.length(), 1);
    assert_eq!(get(&asks.get(0), "id").as_string().unwrap(), id);
    assert_eq!(Array::from(&get(&book, "bids")).length(), 0);

    let updated = wait(node.update_order(id.clone(), object(r#"{"amount": 400}"#)))
        .await
        .unwrap();
    assert_eq!(get(&updated, "amount").as_f64(), Some(400.0));
    let refused = wait(node.update_order(id.clone(), object(r#"{}"#)))
        .await
        .unwrap_err();
    assert!(refused.contains("nothing to change"), "{refused}");

    wait(node.cancel_order(id.clone())).await.unwrap();
    let book = wait(node.orderbook("rune:840000:3".into(), "BTC".into()))
        .await
        .unwrap();
    assert_eq!(Array::from(&get(&book, "asks")).length(), 0);
    let again = wait(node.cancel_order(id.clone())).await.unwrap_err();
    assert!(!again.is_empty());

    // Bad terms name the field.
    for (terms, field) in [
        (
            r#"{"side": "hold", "base": "BTC", "quote": "rune:1:1", "amount": 1, "price": 1, "expires_in": 60}"#,
            "side",
        ),
        (
            r#"{"side": "buy", "base": "DOGE", "quote": "rune:1:1", "amount": 1, "price": 1, "expires_in": 60}"#,
            "base",
        ),
        (
            r#"{"side": "buy", "base": "BTC", "quote": "rune:1:1", "amount": 1, "price": 1, "expires_in": 0}"#,
            "expires_in",
        ),
        (
            r#"{"side": "buy", "base": "BTC", "quote": "rune:1:1", "amount": 1, "price": 1}"#,
            "expires_in",
        ),
    ] {
        let error = wait(node.create_order(object(terms))).await.unwrap_err();
        assert!(error.contains(field), "{terms}: {error}");
    }

    wait(node.stop()).await.unwrap();
    let types: Vec<String> = events
        .iter()
        .map(|e| get(&e, "type").as_string().unwrap())
        .collect();
    for expected in ["order_added", "order_updated", "order_cancelled"] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} in {types:?}"
        );
    }
}
