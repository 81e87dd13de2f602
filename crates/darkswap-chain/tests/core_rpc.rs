//! `CoreRpcBroadcaster` against a real HTTP server that speaks Bitcoin
//! Core's JSON-RPC as Core does for a JSON-RPC 1.0 request: a result with
//! 200, an error object with 500, an empty 401 for wrong credentials.

#[path = "support/serve.rs"]
mod serve;
#[path = "support/tx.rs"]
mod tx;

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine as _;
use darkswap_chain::{CoreRpcAuth, CoreRpcBroadcaster, CoreRpcConfig, CoreRpcError};
use darkswap_p2p::darkswap_trade::bitcoin::{Transaction, consensus::encode::deserialize_hex};
use serde_json::{Value, json};
use serve::serve;
use tx::transaction;

/// What the fake Core accepts and how it answers a valid call.
#[derive(Clone)]
struct Core {
    /// `user:password` it accepts; the test changes it to model a restart.
    credentials: Arc<Mutex<String>>,
    /// The error it answers, or `None` to accept.
    error: Option<(i64, &'static str)>,
}

async fn rpc(State(core): State<Core>, headers: HeaderMap, Json(request): Json<Value>) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(core.credentials.lock().unwrap().as_str())
    );
    if headers
        .get(header::AUTHORIZATION)
        .is_none_or(|v| v != expected.as_str())
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    assert_eq!(request["method"], "sendrawtransaction");
    assert_eq!(request["jsonrpc"], "1.0");
    let params = request["params"].as_array().expect("params is an array");
    assert_eq!(params.len(), 1, "only the hex: no maxfeerate override");
    let hex = params[0].as_str().expect("the hex is a string");
    let tx: Transaction = deserialize_hex(hex).expect("the hex is a transaction");
    let id = request["id"].clone();
    match core.error {
        None => Json(json!({"result": tx.compute_txid().to_string(), "error": null, "id": id}))
            .into_response(),
        Some((code, message)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"result": null, "error": {"code": code, "message": message}, "id": id})),
        )
            .into_response(),
    }
}

async fn core(error: Option<(i64, &'static str)>, credentials: &str) -> (serve::Served, Core) {
    let core = Core {
        credentials: Arc::new(Mutex::new(credentials.to_owned())),
        error,
    };
    let router = Router::new().route("/", post(rpc)).with_state(core.clone());
    (serve(router).await, core)
}

fn broadcaster(url: String, auth: CoreRpcAuth) -> CoreRpcBroadcaster {
    CoreRpcBroadcaster::new(CoreRpcConfig::new(url, auth).with_timeout(Duration::from_secs(5)))
        .expect("an http URL")
}

fn write_cookie(path: &Path, password: &str) {
    std::fs::write(path, format!("__cookie__:{password}")).expect("write the cookie");
}

#[tokio::test]
async fn sendrawtransaction_with_cookie_auth_returns_the_txid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cookie = dir.path().join(".cookie");
    write_cookie(&cookie, "c0ffee");
    let (server, _core) = core(None, "__cookie__:c0ffee").await;
    let tx = transaction(1);
    // Through the trait the node uses.
    let core: Arc<dyn darkswap_chain::Broadcaster> =
        Arc::new(broadcaster(server.url(), CoreRpcAuth::CookieFile(cookie)));

    let txid = core.broadcast(tx.clone()).await.expect("accepted");

    assert_eq!(txid, tx.compute_txid());
}

#[tokio::test]
async fn the_cookie_is_read_again_at_each_call_so_a_core_restart_is_followed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cookie = dir.path().join(".cookie");
    write_cookie(&cookie, "first");
    let (server, core) = core(None, "__cookie__:first").await;
    let rpc = broadcaster(server.url(), CoreRpcAuth::CookieFile(cookie.clone()));
    rpc.send_raw_transaction(&transaction(1))
        .await
        .expect("first cookie");

    // Core restarts: a new cookie on disk, the old one refused.
    *core.credentials.lock().unwrap() = "__cookie__:second".to_owned();
    write_cookie(&cookie, "second");

    rpc.send_raw_transaction(&transaction(2))
        .await
        .expect("second cookie");
}

#[tokio::test]
async fn user_and_password_auth_works_and_a_wrong_password_is_unauthorized() {
    let (server, _core) = core(None, "alice:right").await;
    let auth = |password: &str| CoreRpcAuth::UserPassword {
        user: "alice".to_owned(),
        password: password.to_owned(),
    };

    broadcaster(server.url(), auth("right"))
        .send_raw_transaction(&transaction(1))
        .await
        .expect("accepted");
    let err = broadcaster(server.url(), auth("wrong"))
        .send_raw_transaction(&transaction(1))
        .await
        .expect_err("refused");

    assert!(matches!(err, CoreRpcError::Unauthorized), "{err:?}");
}

#[tokio::test]
async fn a_missing_cookie_file_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, _core) = core(None, "__cookie__:x").await;

    let err = broadcaster(
        server.url(),
        CoreRpcAuth::CookieFile(dir.path().join(".cookie")),
    )
    .send_raw_transaction(&transaction(1))
    .await
    .expect_err("no cookie");

    assert!(matches!(err, CoreRpcError::Cookie { .. }), "{err:?}");
}

#[tokio::test]
async fn a_policy_rejection_carries_cores_code_and_message() {
    let (server, _core) = core(Some((-26, "min relay fee not met, 100 < 141")), "u:p").await;
    let auth = CoreRpcAuth::UserPassword {
        user: "u".to_owned(),
        password: "p".to_owned(),
    };

    let err = broadcaster(server.url(), auth)
        .send_raw_transaction(&transaction(1))
        .await
        .expect_err("rejected");

    match err {
        CoreRpcError::Rejected { code, message } => {
            assert_eq!(code, -26);
            assert_eq!(message, "min relay fee not met, 100 < 141");
        }
        other => panic!("not a rejection: {other:?}"),
    }
}

#[tokio::test]
async fn already_in_block_chain_counts_as_broadcast() {
    let (server, _core) = core(Some((-27, "Transaction already in block chain")), "u:p").await;
    let auth = CoreRpcAuth::UserPassword {
        user: "u".to_owned(),
        password: "p".to_owned(),
    };
    let tx = transaction(1);

    let txid = broadcaster(server.url(), auth)
        .send_raw_transaction(&tx)
        .await
        .expect("already confirmed is success");

    assert_eq!(txid, tx.compute_txid());
}

#[tokio::test]
async fn another_rpc_error_keeps_its_code() {
    let (server, _core) = core(Some((-22, "TX decode failed")), "u:p").await;
    let auth = CoreRpcAuth::UserPassword {
        user: "u".to_owned(),
        password: "p".to_owned(),
    };

    let err = broadcaster(server.url(), auth)
        .send_raw_transaction(&transaction(1))
        .await
        .expect_err("an RPC error");

    assert!(
        matches!(err, CoreRpcError::Rpc { code: -22, .. }),
        "{err:?}"
    );
}
