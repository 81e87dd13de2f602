//! `EsploraClient` against real HTTP servers: the crate's own
//! Esplora-like test server, and small ones that answer as Esplora does
//! when Core refuses (`sendrawtransaction RPC error: {json}` with 400).

#[path = "support/serve.rs"]
mod serve;
#[path = "support/tx.rs"]
mod tx;

use std::{sync::Arc, time::Duration};

use axum::{Router, http::StatusCode, routing::post};
use darkswap_chain::{EsploraClient, EsploraConfig, EsploraError, test_server::ChainTestServer};
use darkswap_p2p::darkswap_trade::bitcoin::{Address, Amount, Network, ScriptBuf};
use serve::serve;
use tx::{op_true, spending, transaction};

fn broadcaster(url: String) -> EsploraClient {
    EsploraClient::new(EsploraConfig::new(url).with_timeout(Duration::from_secs(5)))
        .expect("an http URL")
}

/// A server whose `POST /tx` always answers `status` and `body`.
async fn answering(status: StatusCode, body: &'static str) -> serve::Served {
    serve(Router::new().route("/tx", post(move || async move { (status, body) }))).await
}

#[tokio::test]
async fn a_posted_transaction_arrives_whole_and_its_txid_comes_back() {
    let server = ChainTestServer::spawn().await.expect("bind");
    let coin = server.fund_script(op_true(), Amount::from_sat(10_000), None);
    let tx = spending(coin, Amount::from_sat(9_000));
    // Through the trait the node uses.
    let esplora: Arc<dyn darkswap_chain::Broadcaster> = Arc::new(broadcaster(server.base_url()));

    let txid = esplora.broadcast(tx.clone()).await.expect("accepted");

    assert_eq!(txid, tx.compute_txid());
    // The server decoded the posted hex: the very same transaction.
    assert_eq!(server.received(), vec![tx]);
}

#[tokio::test]
async fn the_test_server_counts_every_broadcast_and_waits_with_a_deadline() {
    let server = ChainTestServer::spawn().await.expect("bind");
    let esplora = broadcaster(server.base_url());
    let one = spending(
        server.fund_script(op_true(), Amount::from_sat(10_000), None),
        Amount::from_sat(9_000),
    );
    let two = spending(
        server.fund_script(op_true(), Amount::from_sat(20_000), None),
        Amount::from_sat(19_000),
    );

    esplora.post_transaction(&one).await.expect("accepted");
    // A repeat is taken like Core's "already in block chain".
    esplora
        .post_transaction(&one)
        .await
        .expect("accepted again");
    esplora.post_transaction(&two).await.expect("accepted");

    let got = server
        .wait_for(3, Duration::from_secs(5))
        .await
        .expect("three posts");
    assert_eq!(got, vec![one.clone(), one, two]);
    let err = server
        .wait_for(4, Duration::from_millis(50))
        .await
        .expect_err("only three");
    assert_eq!((err.wanted, err.got), (4, 3));
}

#[tokio::test]
async fn the_test_chain_refuses_a_missing_or_spent_input_and_a_failing_script_as_core_does() {
    let server = ChainTestServer::spawn().await.expect("bind");
    let esplora = broadcaster(server.base_url());
    let code = |err: EsploraError| match err {
        EsploraError::Rejected { code, .. } => code,
        other => panic!("not a rejection: {other:?}"),
    };
    // An input the chain never had.
    let err = esplora
        .post_transaction(&transaction(1))
        .await
        .expect_err("unknown input");
    assert_eq!(code(err), Some(-25));
    // A script that fails: OP_FALSE leaves false on the stack.
    let locked = server.fund_script(
        ScriptBuf::from_bytes(vec![0x00]),
        Amount::from_sat(10_000),
        None,
    );
    let err = esplora
        .post_transaction(&spending(locked, Amount::from_sat(9_000)))
        .await
        .expect_err("the script fails");
    assert_eq!(code(err), Some(-26));
    // A double spend of an output spent before.
    let coin = server.fund_script(op_true(), Amount::from_sat(10_000), None);
    esplora
        .post_transaction(&spending(coin, Amount::from_sat(9_000)))
        .await
        .expect("accepted");
    let err = esplora
        .post_transaction(&spending(coin, Amount::from_sat(8_000)))
        .await
        .expect_err("spent");
    assert_eq!(code(err), Some(-25));
    assert_eq!(server.received().len(), 1, "only the good one recorded");
}

#[tokio::test]
async fn an_address_lists_its_unspent_outputs_until_they_are_spent() {
    let server = ChainTestServer::spawn().await.expect("bind");
    let esplora = broadcaster(server.base_url());
    // A P2WSH address whose witness script is OP_TRUE: spendable here
    // only with the script in the witness, which is beside the point.
    let address = Address::p2wsh(&op_true(), Network::Regtest);
    let other = Address::p2wsh(&ScriptBuf::from_bytes(vec![0x52]), Network::Regtest);
    let a = server.fund(&address, Amount::from_sat(10_000), None);
    let b = server.fund(&address, Amount::from_sat(25_000), None);
    server.fund(&other, Amount::from_sat(7_000), None);

    let mut utxos = esplora.address_utxos(&address).await.expect("listed");
    utxos.sort_by_key(|u| u.value);
    assert_eq!(
        utxos
            .iter()
            .map(|u| (u.outpoint, u.value.to_sat(), u.confirmed))
            .collect::<Vec<_>>(),
        vec![(a, 10_000, true), (b, 25_000, true)]
    );
    assert!(
        esplora
            .address_utxos(&Address::p2wsh(
                &ScriptBuf::from_bytes(vec![0x53]),
                Network::Regtest
            ))
            .await
            .expect("listed")
            .is_empty()
    );
}

#[tokio::test]
async fn a_base_url_with_a_path_posts_under_it() {
    let router = Router::new().route(
        "/api/tx",
        post(|body: String| async move {
            let tx = darkswap_p2p::darkswap_trade::bitcoin::consensus::encode::deserialize_hex::<
                darkswap_p2p::darkswap_trade::bitcoin::Transaction,
            >(&body)
            .expect("the body is the transaction's hex");
            tx.compute_txid().to_string()
        }),
    );
    let server = serve(router).await;

    let txid = broadcaster(format!("{}/api", server.url()))
        .post_transaction(&transaction(3))
        .await
        .expect("accepted");

    assert_eq!(txid, transaction(3).compute_txid());
}

#[tokio::test]
async fn a_refusal_carries_esploras_text_and_cores_code() {
    const TEXT: &str =
        r#"sendrawtransaction RPC error: {"code":-26,"message":"min relay fee not met, 14 < 141"}"#;
    let server = answering(StatusCode::BAD_REQUEST, TEXT).await;

    let err = broadcaster(server.url())
        .post_transaction(&transaction(1))
        .await
        .expect_err("refused");

    match err {
        EsploraError::Rejected { status, text, code } => {
            assert_eq!(status, 400);
            assert_eq!(text, TEXT);
            assert_eq!(code, Some(-26));
        }
        other => panic!("not a rejection: {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_txid_in_the_answer_is_an_error() {
    let server = answering(
        StatusCode::OK,
        "0000000000000000000000000000000000000000000000000000000000000001",
    )
    .await;

    let err = broadcaster(server.url())
        .post_transaction(&transaction(1))
        .await
        .expect_err("wrong txid");

    assert!(
        matches!(err, EsploraError::TxidMismatch { expected, .. } if expected == transaction(1).compute_txid()),
        "{err:?}"
    );
}

#[tokio::test]
async fn already_in_the_chain_counts_as_broadcast() {
    let server = answering(
        StatusCode::BAD_REQUEST,
        r#"sendrawtransaction RPC error: {"code":-27,"message":"Transaction outputs already in utxo set"}"#,
    )
    .await;

    let txid = broadcaster(server.url())
        .post_transaction(&transaction(1))
        .await
        .expect("already confirmed is success");

    assert_eq!(txid, transaction(1).compute_txid());
}
