//! `EsploraBroadcaster` against real HTTP servers: the crate's own
//! Esplora-like test server, and small ones that answer as Esplora does
//! when Core refuses (`sendrawtransaction RPC error: {json}` with 400).

#[path = "support/serve.rs"]
mod serve;
#[path = "support/tx.rs"]
mod tx;

use std::{sync::Arc, time::Duration};

use axum::{Router, http::StatusCode, routing::post};
use darkswap_chain::{
    EsploraBroadcaster, EsploraConfig, EsploraError, test_server::EsploraTestServer,
};
use serve::serve;
use tx::transaction;

fn broadcaster(url: String) -> EsploraBroadcaster {
    EsploraBroadcaster::new(EsploraConfig::new(url).with_timeout(Duration::from_secs(5)))
        .expect("an http URL")
}

/// A server whose `POST /tx` always answers `status` and `body`.
async fn answering(status: StatusCode, body: &'static str) -> serve::Served {
    serve(Router::new().route("/tx", post(move || async move { (status, body) }))).await
}

#[tokio::test]
async fn a_posted_transaction_arrives_whole_and_its_txid_comes_back() {
    let server = EsploraTestServer::spawn().await.expect("bind");
    let tx = transaction(1);
    // Through the trait the node uses.
    let esplora: Arc<dyn darkswap_chain::Broadcaster> = Arc::new(broadcaster(server.base_url()));

    let txid = esplora.broadcast(tx.clone()).await.expect("accepted");

    assert_eq!(txid, tx.compute_txid());
    // The server decoded the posted hex: the very same transaction.
    assert_eq!(server.received(), vec![tx]);
}

#[tokio::test]
async fn the_test_server_counts_every_broadcast_and_waits_with_a_deadline() {
    let server = EsploraTestServer::spawn().await.expect("bind");
    let esplora = broadcaster(server.base_url());

    esplora
        .post_transaction(&transaction(1))
        .await
        .expect("accepted");
    esplora
        .post_transaction(&transaction(1))
        .await
        .expect("accepted again");
    esplora
        .post_transaction(&transaction(2))
        .await
        .expect("accepted");

    let got = server
        .wait_for(3, Duration::from_secs(5))
        .await
        .expect("three posts");
    assert_eq!(got, vec![transaction(1), transaction(1), transaction(2)]);
    let err = server
        .wait_for(4, Duration::from_millis(50))
        .await
        .expect_err("only three");
    assert_eq!((err.wanted, err.got), (4, 3));
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
