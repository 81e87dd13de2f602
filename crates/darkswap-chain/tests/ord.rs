//! `OrdIndex` against a real HTTP server that answers like `ord server`
//! 0.27.1: the JSON is shaped after ord's `api::Output`, `ordinals::Pile`
//! and `api::Rune` and the examples in its `docs/src/guides/api.md`.

#[path = "support/serve.rs"]
mod serve;

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use darkswap_chain::{OrdConfig, OrdError, OrdIndex};
use darkswap_p2p::darkswap_trade::{
    Asset, AssetIndex, Holdings,
    bitcoin::{
        OutPoint, Txid,
        hashes::{Hash, sha256d},
    },
};
use serve::serve;

/// UNCOMMON•GOODS, ord's own example rune: id 1:0, divisibility 0.
const GOODS: Asset = Asset::Rune { block: 1, tx: 0 };
/// A divisible rune with a supply beyond u64: id 840000:3, divisibility 5.
const MOON: Asset = Asset::Rune {
    block: 840_000,
    tx: 3,
};
/// Above u64::MAX (18446744073709551615), so it only survives as u128.
const MOON_AMOUNT: u128 = 12_345_678_901_234_567_890_123_456_789;

fn outpoint(n: u8) -> OutPoint {
    OutPoint {
        txid: Txid::from_raw_hash(sha256d::Hash::hash(&[n])),
        vout: u32::from(n),
    }
}

/// `api::Output` as ord serializes it (fields in ord's order).
fn output_json(outpoint: OutPoint, indexed: bool, spent: bool, runes: &str) -> String {
    format!(
        r#"{{
  "address": "bc1pz4kvfpurqc2hwgrq0nwtfve2lfxvdpfcdpzc6ujchyr3ztj6gd9sfr6ayf",
  "confirmations": 6,
  "indexed": {indexed},
  "inscriptions": [],
  "outpoint": "{outpoint}",
  "runes": {runes},
  "sat_ranges": null,
  "script_pubkey": "5120156cc4878306157720607cdcb4b32afa4cc6853868458d7258b907112e5a434b",
  "spent": {spent},
  "transaction": "{txid}",
  "value": 10000
}}"#,
        txid = outpoint.txid
    )
}

/// `api::Rune` as ord serializes it (the docs' UNCOMMON•GOODS example).
fn rune_json(spaced: &str, id: &str, divisibility: u8) -> String {
    format!(
        r#"{{
  "entry": {{
    "block": 1,
    "burned": 139,
    "divisibility": {divisibility},
    "etching": "0000000000000000000000000000000000000000000000000000000000000000",
    "mints": 33891693,
    "number": 0,
    "premine": 0,
    "spaced_rune": "{spaced}",
    "symbol": "⧉",
    "terms": {{
      "amount": 1,
      "cap": 340282366920938463463374607431768211455,
      "height": [840000, 1050000],
      "offset": [null, null]
    }},
    "timestamp": 0,
    "turbo": true
  }},
  "id": "{id}",
  "mintable": true,
  "parent": null
}}"#
    )
}

/// What the fake ord serves: output bodies by outpoint text, and how
/// often `/rune` was asked.
#[derive(Clone, Default)]
struct Ord {
    outputs: Arc<BTreeMap<String, String>>,
    rune_lookups: Arc<AtomicUsize>,
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// ord answers JSON only to `Accept: application/json`; HTML otherwise,
/// which the client would fail to parse.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .is_some_and(|v| v == "application/json")
}

async fn output(
    State(ord): State<Ord>,
    Path(outpoint): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !wants_json(&headers) {
        return "<!doctype html><title>Output</title>".into_response();
    }
    match ord.outputs.get(&outpoint) {
        Some(body) => json(body.clone()),
        // ord's ServerError::NotFound.
        None => (
            StatusCode::NOT_FOUND,
            format!("output {outpoint} not found"),
        )
            .into_response(),
    }
}

async fn rune(State(ord): State<Ord>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    if !wants_json(&headers) {
        return "<!doctype html><title>Rune</title>".into_response();
    }
    ord.rune_lookups.fetch_add(1, Ordering::SeqCst);
    match name.as_str() {
        "UNCOMMONGOODS" => json(rune_json("UNCOMMON•GOODS", "1:0", 0)),
        "DOGGOTOTHEMOON" => json(rune_json("DOG•GO•TO•THE•MOON", "840000:3", 5)),
        // ord answers a JSON request for an unknown rune with a bare 404.
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn ord_router(ord: Ord) -> Router {
    Router::new()
        .route("/output/{outpoint}", get(output))
        .route("/rune/{rune}", get(rune))
        .with_state(ord)
}

fn index(url: String) -> OrdIndex {
    OrdIndex::new(OrdConfig::new(url).with_timeout(Duration::from_secs(5))).expect("an http URL")
}

fn two_runes() -> String {
    format!(
        r#"{{
    "DOG•GO•TO•THE•MOON": {{"amount": {MOON_AMOUNT}, "divisibility": 5, "symbol": "🐕"}},
    "UNCOMMON•GOODS": {{"amount": 2, "divisibility": 0, "symbol": "⧉"}}
  }}"#
    )
}

#[tokio::test]
async fn an_output_holding_two_runes_gives_both_with_exact_raw_amounts() {
    let (a, b) = (outpoint(1), outpoint(2));
    let ord = Ord {
        outputs: Arc::new(BTreeMap::from([
            (a.to_string(), output_json(a, true, false, &two_runes())),
            (b.to_string(), output_json(b, true, false, &two_runes())),
        ])),
        ..Ord::default()
    };
    let server = serve(ord_router(ord.clone())).await;

    // Through the trait the node uses.
    let source: Arc<dyn darkswap_chain::HoldingsSource> = Arc::new(index(server.url()));
    let got = source.holdings(vec![a, b]).await.expect("ord answers");

    let expected = Holdings::from([(GOODS, 2), (MOON, MOON_AMOUNT)]);
    assert_eq!(got.holdings(&a), Some(expected.clone()));
    assert_eq!(got.holdings(&b), Some(expected));
    // Two outputs, two runes: each rune id is asked once (the outputs are
    // looked up in parallel, so at most twice), then cached.
    let asked = ord.rune_lookups.load(Ordering::SeqCst);
    assert!((2..=4).contains(&asked), "{asked} rune lookups");
}

#[tokio::test]
async fn a_rune_id_is_asked_once_and_then_cached() {
    let a = outpoint(1);
    let ord = Ord {
        outputs: Arc::new(BTreeMap::from([(
            a.to_string(),
            output_json(a, true, false, &two_runes()),
        )])),
        ..Ord::default()
    };
    let server = serve(ord_router(ord.clone())).await;
    let index = index(server.url());

    index.lookup(vec![a]).await.expect("ord answers");
    index.lookup(vec![a]).await.expect("ord answers");

    assert_eq!(ord.rune_lookups.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_output_ord_answers_404_for_is_left_out_not_empty() {
    let (known, unknown) = (outpoint(1), outpoint(9));
    let ord = Ord {
        outputs: Arc::new(BTreeMap::from([(
            known.to_string(),
            output_json(known, true, false, "{}"),
        )])),
        ..Ord::default()
    };
    let server = serve(ord_router(ord)).await;

    let got = index(server.url())
        .lookup(vec![known, unknown])
        .await
        .expect("ord answers");

    assert_eq!(got.holdings(&known), Some(Holdings::new()));
    assert_eq!(got.holdings(&unknown), None);
}

#[tokio::test]
async fn an_output_ord_has_not_indexed_or_that_is_spent_is_left_out() {
    // ord reports no runes for both, which must not read as "holds none".
    let (unindexed, spent) = (outpoint(3), outpoint(4));
    let ord = Ord {
        outputs: Arc::new(BTreeMap::from([
            (
                unindexed.to_string(),
                output_json(unindexed, false, false, "{}"),
            ),
            (spent.to_string(), output_json(spent, true, true, "{}")),
        ])),
        ..Ord::default()
    };
    let server = serve(ord_router(ord)).await;

    let got = index(server.url())
        .lookup(vec![unindexed, spent])
        .await
        .expect("ord answers");

    assert_eq!(got, Default::default());
}

#[tokio::test]
async fn a_malformed_answer_is_a_clear_error() {
    let a = outpoint(1);
    let ord = Ord {
        outputs: Arc::new(BTreeMap::from([(
            a.to_string(),
            r#"{"outpoint": "#.to_owned(),
        )])),
        ..Ord::default()
    };
    let server = serve(ord_router(ord)).await;

    let err = index(server.url())
        .lookup(vec![a])
        .await
        .expect_err("not JSON");

    assert!(matches!(err, OrdError::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("/output/{a}")), "{err}");
}

#[tokio::test]
async fn an_ord_without_a_rune_index_is_an_error_not_an_empty_answer() {
    let a = outpoint(1);
    let ord = Ord {
        outputs: Arc::new(BTreeMap::from([(
            a.to_string(),
            output_json(a, true, false, "null"),
        )])),
        ..Ord::default()
    };
    let server = serve(ord_router(ord)).await;

    let err = index(server.url())
        .lookup(vec![a])
        .await
        .expect_err("no rune index");

    assert!(matches!(err, OrdError::NoRuneIndex(_)), "{err:?}");
}

#[tokio::test]
async fn a_rune_ord_does_not_know_is_an_error() {
    let a = outpoint(1);
    let runes = r#"{"NOTARUNE": {"amount": 1, "divisibility": 0, "symbol": null}}"#;
    let ord = Ord {
        outputs: Arc::new(BTreeMap::from([(
            a.to_string(),
            output_json(a, true, false, runes),
        )])),
        ..Ord::default()
    };
    let server = serve(ord_router(ord)).await;

    let err = index(server.url())
        .lookup(vec![a])
        .await
        .expect_err("unknown rune");

    assert!(
        matches!(err, OrdError::UnknownRune(ref name) if name == "NOTARUNE"),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_ord_that_never_answers_times_out_within_the_deadline() {
    let router = Router::new().route(
        "/output/{outpoint}",
        get(|| async {
            std::future::pending::<()>().await;
            StatusCode::OK
        }),
    );
    let server = serve(router).await;
    let deadline = Duration::from_millis(300);
    let index =
        OrdIndex::new(OrdConfig::new(server.url()).with_timeout(deadline)).expect("an http URL");

    let started = Instant::now();
    let err = index
        .lookup(vec![outpoint(1)])
        .await
        .expect_err("no answer");
    let took = started.elapsed();

    assert!(
        matches!(err, OrdError::Timeout(d) if d == deadline),
        "{err:?}"
    );
    assert!(took >= deadline, "gave up early: {took:?}");
    // Generous slack for a loaded machine; the point is it does not hang.
    assert!(took < deadline + Duration::from_secs(3), "took {took:?}");
}

#[tokio::test]
async fn basic_credentials_are_sent_when_configured() {
    use base64::Engine as _;
    let a = outpoint(1);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("ord:secret")
    );
    let router = Router::new().route(
        "/output/{outpoint}",
        get(move |headers: HeaderMap| async move {
            if headers
                .get(header::AUTHORIZATION)
                .is_none_or(|v| v != expected.as_str())
            {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            json(output_json(a, true, false, "{}"))
        }),
    );
    let server = serve(router).await;
    let config = OrdConfig::new(server.url()).with_credentials("ord", "secret");

    let got = OrdIndex::new(config)
        .expect("an http URL")
        .lookup(vec![a])
        .await
        .expect("authorised");

    assert_eq!(got.holdings(&a), Some(Holdings::new()));
}

#[tokio::test]
async fn the_test_chain_answers_ord_lookups_for_the_runes_a_test_funds() {
    use darkswap_chain::test_server::{ChainTestServer, RuneHolding};
    use darkswap_p2p::darkswap_trade::bitcoin::{Amount, ScriptBuf};

    let chain = ChainTestServer::spawn().await.expect("bind");
    let runes = chain.fund_script(
        ScriptBuf::from_bytes(vec![0x51]),
        Amount::from_sat(10_000),
        Some(RuneHolding {
            name: "UNCOMMON•GOODS".to_owned(),
            rune: GOODS,
            amount: MOON_AMOUNT,
        }),
    );
    let coins = chain.fund_script(
        ScriptBuf::from_bytes(vec![0x51]),
        Amount::from_sat(5_000),
        None,
    );

    let index = index(chain.base_url())
        .lookup(vec![runes, coins, outpoint(9)])
        .await
        .expect("answered");

    assert_eq!(
        index.holdings(&runes),
        Some(Holdings::from([(GOODS, MOON_AMOUNT)]))
    );
    assert_eq!(index.holdings(&coins), Some(Holdings::new()));
    assert_eq!(index.holdings(&outpoint(9)), None, "unknown: left out");
}
