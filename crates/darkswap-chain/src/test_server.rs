//! A small chain for tests (feature `test-server`): one HTTP server on
//! 127.0.0.1 port 0 that answers like an Esplora and an `ord server` over
//! the UTXOs a test funds, so a real node (a daemon in another process
//! included) can discover its coins, learn their runes and broadcast.
//!
//! - Esplora: `GET /address/{address}/utxo` lists the address's unspent
//!   outputs; `POST /tx` takes a transaction's hex, **checks every input
//!   with Bitcoin Core's script interpreter** against the outputs it
//!   spends (the `bitcoinconsensus` library), records it, marks its inputs
//!   spent and adds its outputs to the chain. A transaction that spends an
//!   unknown or spent output, or fails the script check, is refused with
//!   400 and Core's text and code (`-25`, `-26`), as Esplora relays them.
//! - ord: `GET /output/{outpoint}` (JSON, the fields `OrdIndex` reads) and
//!   `GET /rune/{name}` for the runes named with [`ChainTestServer::etch`].
//!   A rune transfer is not decoded: the outputs of a posted transaction
//!   hold no runes unless the test says so with [`ChainTestServer::fund`].
//!
//! ```no_run
//! # async fn demo(address: darkswap_p2p::darkswap_trade::bitcoin::Address) {
//! use std::time::Duration;
//! use darkswap_chain::{EsploraClient, EsploraConfig, test_server::ChainTestServer};
//! use darkswap_p2p::darkswap_trade::bitcoin::Amount;
//!
//! let chain = ChainTestServer::spawn().await.expect("bind 127.0.0.1:0");
//! chain.fund(&address, Amount::from_sat(50_000), None);
//! let esplora = EsploraClient::new(EsploraConfig::new(chain.base_url())).expect("an http URL");
//! assert_eq!(esplora.address_utxos(&address).await.expect("listed").len(), 1);
//! // … run a trade; then count what reached "the network":
//! let got = chain.wait_for(1, Duration::from_secs(10)).await.expect("one broadcast");
//! # let _ = got;
//! # }
//! ```
//!
//! For tests in other languages (the browser tests drive it from Node),
//! the `chain-test-server` binary serves it on a given address and two
//! routes drive it over HTTP: `POST /test/fund` with
//! `{"address", "sat", "rune": {"name", "id": "840000:3", "amount": "1000"}}`
//! (rune optional; amounts as decimal strings) answers `{"outpoint"}`, and
//! `GET /test/transactions` lists what was accepted as `[{"txid", "hex"}]`.
//! Every answer allows any origin (CORS), as Esplora and `ord server` do,
//! so a page can use it.
//!
//! Every accepted post is recorded, repeats included (a repeat of a known
//! transaction is answered like Core's "already in block chain"), so a
//! test can tell one broadcast from two. The server stops when dropped.

use std::{
    collections::BTreeMap,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use darkswap_p2p::darkswap_trade::{
    Asset,
    bitcoin::{
        Address, Amount, OutPoint, ScriptBuf, Transaction, TxOut, Txid,
        consensus::encode::deserialize_hex,
        hashes::{Hash, sha256d},
    },
    verify_consensus,
};
use serde_json::json;

mod tls;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

/// A rune holding for [`ChainTestServer::fund`]: the rune's spaced name,
/// its id and the amount in its smallest unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuneHolding {
    /// The rune's name as ord spells it (`UNCOMMON•GOODS`).
    pub name: String,
    /// Its id.
    pub rune: Asset,
    /// Amount, smallest unit.
    pub amount: u128,
}

#[derive(Debug, Clone)]
struct Utxo {
    output: TxOut,
    runes: Option<RuneHolding>,
    spent: bool,
}

#[derive(Debug, Default)]
struct Chain {
    utxos: BTreeMap<OutPoint, Utxo>,
    runes: BTreeMap<String, Asset>,
    /// Funding outputs made so far, for fresh outpoints.
    funded: u64,
}

#[derive(Clone)]
struct Shared {
    chain: Arc<Mutex<Chain>>,
    received: Arc<watch::Sender<Vec<Transaction>>>,
}

impl Shared {
    fn chain(&self) -> std::sync::MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The test chain; see the module docs.
#[derive(Debug)]
pub struct ChainTestServer {
    addr: SocketAddr,
    ca_pem: Option<String>,
    chain: Arc<Mutex<Chain>>,
    received: Arc<watch::Sender<Vec<Transaction>>>,
    task: JoinHandle<()>,
}

/// [`ChainTestServer::wait_for`] ran out of time.
#[derive(Debug, thiserror::Error)]
#[error("the test chain got {got} transactions, not {wanted}, within {deadline:?}")]
pub struct WaitError {
    /// How many it wanted.
    pub wanted: usize,
    /// How many it had at the deadline.
    pub got: usize,
    /// The deadline it waited.
    pub deadline: Duration,
}

impl ChainTestServer {
    /// Starts the server on 127.0.0.1, port chosen by the system.
    pub async fn spawn() -> io::Result<Self> {
        Self::spawn_on(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts the server on `addr` (port 0: chosen by the system).
    pub async fn spawn_on(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Ok(Self::serve(listener, addr, None))
    }

    /// [`ChainTestServer::spawn`] over `https://`: a CA made for this
    /// server signs its certificate for 127.0.0.1; a client must trust
    /// [`ChainTestServer::ca_pem`] (the `extra_roots` of the clients'
    /// configs).
    pub async fn spawn_tls() -> io::Result<Self> {
        let (acceptor, ca_pem) = tls::acceptor()?;
        let tcp = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = tcp.local_addr()?;
        Ok(Self::serve(
            tls::TlsListener { tcp, acceptor },
            addr,
            Some(ca_pem),
        ))
    }

    /// The PEM certificate of the CA of a server from
    /// [`ChainTestServer::spawn_tls`].
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    fn serve<L>(listener: L, addr: SocketAddr, ca_pem: Option<String>) -> Self
    where
        L: axum::serve::Listener<Addr = SocketAddr>,
    {
        let shared = Shared {
            chain: Arc::default(),
            received: Arc::new(watch::Sender::new(Vec::new())),
        };
        let router = Router::new()
            .route("/tx", post(post_tx))
            .route("/address/{address}/utxo", get(address_utxos))
            .route("/output/{outpoint}", get(output))
            .route("/rune/{name}", get(rune))
            .route("/test/fund", post(fund))
            .route("/test/transactions", get(transactions))
            .layer(axum::middleware::map_response(allow_any_origin))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            // Serving only ends with an accept error on a loopback
            // listener; the test then sees requests fail, which says enough.
            let _ = axum::serve(listener, router).await;
        });
        ChainTestServer {
            addr,
            ca_pem,
            chain: shared.chain,
            received: shared.received,
            task,
        }
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL for an [`crate::EsploraConfig`] or an
    /// [`crate::OrdConfig`]: `http://{addr}`, or `https://{addr}` with TLS.
    pub fn base_url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// A new unspent output of `value` paying `address`, holding `runes`
    /// (whose name ord then also knows); returns its outpoint.
    pub fn fund(&self, address: &Address, value: Amount, runes: Option<RuneHolding>) -> OutPoint {
        self.fund_script(address.script_pubkey(), value, runes)
    }

    /// [`ChainTestServer::fund`] for a bare script.
    pub fn fund_script(
        &self,
        script_pubkey: ScriptBuf,
        value: Amount,
        runes: Option<RuneHolding>,
    ) -> OutPoint {
        fund_script(&self.chain, script_pubkey, value, runes)
    }

    /// Every transaction accepted so far, in order.
    pub fn received(&self) -> Vec<Transaction> {
        self.received.borrow().clone()
    }

    /// Waits until at least `count` transactions were accepted, at most
    /// `deadline`; returns them all.
    pub async fn wait_for(
        &self,
        count: usize,
        deadline: Duration,
    ) -> Result<Vec<Transaction>, WaitError> {
        let mut seen = self.received.subscribe();
        let waited = tokio::time::timeout(deadline, seen.wait_for(|got| got.len() >= count)).await;
        match waited {
            // The sender lives in `self`, so the wait cannot see it closed.
            Ok(Ok(got)) => Ok(got.clone()),
            _ => Err(WaitError {
                wanted: count,
                got: self.received.borrow().len(),
                deadline,
            }),
        }
    }
}

impl Drop for ChainTestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A new unspent output; see [`ChainTestServer::fund_script`].
fn fund_script(
    chain: &Mutex<Chain>,
    script_pubkey: ScriptBuf,
    value: Amount,
    runes: Option<RuneHolding>,
) -> OutPoint {
    let mut chain = chain.lock().unwrap_or_else(|p| p.into_inner());
    chain.funded += 1;
    let outpoint = OutPoint {
        txid: Txid::from_raw_hash(sha256d::Hash::hash(
            format!("test chain funding {}", chain.funded).as_bytes(),
        )),
        vout: 0,
    };
    if let Some(r) = &runes {
        chain.runes.insert(letters(&r.name), r.rune);
    }
    chain.utxos.insert(
        outpoint,
        Utxo {
            output: TxOut {
                value,
                script_pubkey,
            },
            runes,
            spent: false,
        },
    );
    outpoint
}

fn core_error(code: i64, message: &str) -> (StatusCode, String) {
    (
        StatusCode::BAD_REQUEST,
        format!(
            "sendrawtransaction RPC error: {}",
            json!({"code": code, "message": message})
        ),
    )
}

/// Esplora's `POST /tx`: the body is the transaction's hex; the answer its
/// txid, or 400 with Core's refusal.
async fn post_tx(State(shared): State<Shared>, body: String) -> (StatusCode, String) {
    let Ok(tx) = deserialize_hex::<Transaction>(body.trim()) else {
        return core_error(-22, "TX decode failed");
    };
    let txid = tx.compute_txid();
    let mut chain = shared.chain();
    let known = chain.utxos.contains_key(&OutPoint { txid, vout: 0 });
    if !known {
        let mut prevouts = Vec::with_capacity(tx.input.len());
        for input in &tx.input {
            match chain.utxos.get(&input.previous_output) {
                Some(utxo) if !utxo.spent => prevouts.push(utxo.output.clone()),
                _ => return core_error(-25, "bad-txns-inputs-missingorspent"),
            }
        }
        if let Err(e) = verify_consensus(&tx, &prevouts) {
            return core_error(-26, &format!("mandatory-script-verify-flag-failed ({e})"));
        }
        for input in &tx.input {
            if let Some(utxo) = chain.utxos.get_mut(&input.previous_output) {
                utxo.spent = true;
            }
        }
        for (vout, output) in tx.output.iter().enumerate() {
            let Ok(vout) = u32::try_from(vout) else { break };
            chain.utxos.insert(
                OutPoint { txid, vout },
                Utxo {
                    output: output.clone(),
                    runes: None,
                    spent: false,
                },
            );
        }
    }
    drop(chain);
    shared.received.send_modify(|got| got.push(tx));
    (StatusCode::OK, txid.to_string())
}

/// Esplora's `GET /address/{address}/utxo`.
async fn address_utxos(State(shared): State<Shared>, Path(address): Path<String>) -> Response {
    let Ok(address) = address.parse::<Address<_>>() else {
        return (StatusCode::BAD_REQUEST, "Invalid Bitcoin address").into_response();
    };
    let script = address.assume_checked().script_pubkey();
    let chain = shared.chain();
    let utxos: Vec<_> = chain
        .utxos
        .iter()
        .filter(|(_, u)| !u.spent && u.output.script_pubkey == script)
        .map(|(outpoint, u)| {
            json!({
                "txid": outpoint.txid.to_string(),
                "vout": outpoint.vout,
                "status": {"confirmed": true, "block_height": 1},
                "value": u.output.value.to_sat(),
            })
        })
        .collect();
    Json(utxos).into_response()
}

/// ord's `GET /output/{outpoint}`, the fields `OrdIndex` reads.
async fn output(State(shared): State<Shared>, Path(outpoint): Path<String>) -> Response {
    let Ok(parsed) = outpoint.parse::<OutPoint>() else {
        return (StatusCode::BAD_REQUEST, "invalid outpoint").into_response();
    };
    let chain = shared.chain();
    let Some(utxo) = chain.utxos.get(&parsed) else {
        return (StatusCode::NOT_FOUND, "output not found").into_response();
    };
    // By hand: a rune amount is a u128, which `serde_json::Value` cannot
    // hold; ord writes it as a plain JSON number.
    let runes: Vec<String> = utxo
        .runes
        .iter()
        .map(|r| {
            format!(
                r#"{}:{{"amount":{},"divisibility":0,"symbol":null}}"#,
                json!(r.name),
                r.amount
            )
        })
        .collect();
    let body = format!(
        r#"{{"outpoint":{},"indexed":true,"spent":{},"runes":{{{}}},"value":{}}}"#,
        json!(outpoint),
        utxo.spent,
        runes.join(","),
        utxo.output.value.to_sat()
    );
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// ord's `GET /rune/{name}`, the field `OrdIndex` reads.
async fn rune(State(shared): State<Shared>, Path(name): Path<String>) -> Response {
    // ord finds a rune by its letters, with or without spacers.
    match shared.chain().runes.get(&letters(&name)) {
        Some(Asset::Rune { block, tx }) => {
            Json(json!({"id": format!("{block}:{tx}")})).into_response()
        }
        _ => (StatusCode::NOT_FOUND, "rune not found").into_response(),
    }
}

/// Every answer allows any origin, as Esplora and `ord server` do.
async fn allow_any_origin(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        axum::http::HeaderValue::from_static("*"),
    );
    response
}

/// The body of `POST /test/fund`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FundRequest {
    address: String,
    sat: u64,
    rune: Option<FundRune>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FundRune {
    name: String,
    /// `block:tx`.
    id: String,
    /// Decimal: rune amounts exceed JSON's safe integers.
    amount: String,
}

/// `POST /test/fund`: [`ChainTestServer::fund`] over HTTP.
async fn fund(State(shared): State<Shared>, body: String) -> Response {
    let bad = |reason: String| (StatusCode::BAD_REQUEST, reason).into_response();
    let request: FundRequest = match serde_json::from_str(&body) {
        Ok(request) => request,
        Err(e) => return bad(format!("fund request: {e}")),
    };
    let Ok(address) = request.address.parse::<Address<_>>() else {
        return bad("invalid Bitcoin address".into());
    };
    let runes = match request.rune {
        None => None,
        Some(rune) => {
            let id = rune
                .id
                .split_once(':')
                .and_then(|(block, tx)| Some((block.parse().ok()?, tx.parse().ok()?)));
            let (Some((block, tx)), Ok(amount)) = (id, rune.amount.parse::<u128>()) else {
                return bad("rune: id is block:tx and amount a decimal".into());
            };
            Some(RuneHolding {
                name: rune.name,
                rune: Asset::Rune { block, tx },
                amount,
            })
        }
    };
    let outpoint = fund_script(
        &shared.chain,
        address.assume_checked().script_pubkey(),
        Amount::from_sat(request.sat),
        runes,
    );
    Json(json!({"outpoint": outpoint.to_string()})).into_response()
}

/// `GET /test/transactions`: every accepted transaction, in order.
async fn transactions(State(shared): State<Shared>) -> Response {
    let got: Vec<_> = shared
        .received
        .borrow()
        .iter()
        .map(|tx| {
            json!({
                "txid": tx.compute_txid().to_string(),
                "hex": darkswap_p2p::darkswap_trade::bitcoin::consensus::encode::serialize_hex(tx),
            })
        })
        .collect();
    Json(got).into_response()
}

/// A rune name without its spacers.
fn letters(name: &str) -> String {
    name.chars().filter(|c| *c != '•' && *c != '.').collect()
}
