//! An Esplora-like HTTP server for tests (feature `test-server`): it takes
//! `POST /tx` like Esplora, records every transaction it gets, and lets a
//! test wait, with a deadline, until it has seen some number of them.
//!
//! ```no_run
//! # async fn demo(tx: darkswap_p2p::darkswap_trade::bitcoin::Transaction) {
//! use std::time::Duration;
//! use darkswap_chain::{EsploraBroadcaster, EsploraConfig, test_server::EsploraTestServer};
//!
//! let server = EsploraTestServer::spawn().await.expect("bind 127.0.0.1:0");
//! // Give the node under test a broadcaster pointed at the server.
//! let broadcaster = EsploraBroadcaster::new(EsploraConfig::new(server.base_url()))
//!     .expect("an http URL");
//! # let _ = (broadcaster, tx);
//! // … run the trade; then count what reached "the network":
//! let got = server.wait_for(1, Duration::from_secs(10)).await.expect("one broadcast");
//! assert_eq!(server.received().len(), 1);
//! # let _ = got;
//! # }
//! ```
//!
//! Every post is recorded, repeats included, so a test can tell one
//! broadcast from two. Posts that do not decode are answered 400 with
//! Esplora's text and are not recorded. The server stops when dropped.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::State, http::StatusCode, routing::post};
use darkswap_p2p::darkswap_trade::bitcoin::{Transaction, consensus::encode::deserialize_hex};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

/// The Esplora-like server; see the module docs.
#[derive(Debug)]
pub struct EsploraTestServer {
    addr: SocketAddr,
    received: Arc<watch::Sender<Vec<Transaction>>>,
    task: JoinHandle<()>,
}

/// [`EsploraTestServer::wait_for`] ran out of time.
#[derive(Debug, thiserror::Error)]
#[error("the test Esplora got {got} transactions, not {wanted}, within {deadline:?}")]
pub struct WaitError {
    /// How many it wanted.
    pub wanted: usize,
    /// How many it had at the deadline.
    pub got: usize,
    /// The deadline it waited.
    pub deadline: Duration,
}

impl EsploraTestServer {
    /// Starts the server on 127.0.0.1, port chosen by the system.
    pub async fn spawn() -> io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(watch::Sender::new(Vec::new()));
        let router = Router::new()
            .route("/tx", post(post_tx))
            .with_state(received.clone());
        let task = tokio::spawn(async move {
            // Serving only ends with an accept error on a loopback
            // listener; the test then sees posts fail, which says enough.
            let _ = axum::serve(listener, router).await;
        });
        Ok(EsploraTestServer {
            addr,
            received,
            task,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to give an [`crate::EsploraConfig`]: `http://{addr}`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every transaction posted so far, in order.
    pub fn received(&self) -> Vec<Transaction> {
        self.received.borrow().clone()
    }

    /// Waits until at least `count` transactions were posted, at most
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

impl Drop for EsploraTestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Esplora's `POST /tx`: the body is the transaction's hex; the answer its
/// txid, or 400 with the text Esplora gives for Core's decode error.
async fn post_tx(
    State(received): State<Arc<watch::Sender<Vec<Transaction>>>>,
    body: String,
) -> (StatusCode, String) {
    match deserialize_hex::<Transaction>(body.trim()) {
        Ok(tx) => {
            let txid = tx.compute_txid();
            received.send_modify(|got| got.push(tx));
            (StatusCode::OK, txid.to_string())
        }
        Err(_) => (
            StatusCode::BAD_REQUEST,
            r#"sendrawtransaction RPC error: {"code":-22,"message":"TX decode failed"}"#.to_owned(),
        ),
    }
}
