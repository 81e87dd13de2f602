//! DarkSwap's chain services: the production implementations of the two IO
//! services a trade needs (see `darkswap_p2p::Trading`).
//!
//! - [`OrdIndex`] is a [`HoldingsSource`]: it asks an `ord server`'s JSON
//!   API which runes each outpoint holds (`GET /output/{outpoint}`, and
//!   `GET /rune/{name}` once per rune for its id).
//! - [`EsploraClient`] is a [`Broadcaster`] over Esplora's
//!   `POST /tx`, and lists a wallet's coins (`GET /address/{a}/utxo`).
//! - [`CoreRpcBroadcaster`] is a [`Broadcaster`] over Bitcoin Core's
//!   `sendrawtransaction` JSON-RPC call, with user/password or cookie-file
//!   authentication.
//!
//! Each has a config struct (base URL, timeout with a documented default,
//! credentials where the service has them) and a typed error enum; the
//! trait implementations turn that error into its message, which is what
//! the trade layer records.
//!
//! Every request has a deadline: the configured timeout bounds the whole
//! call, connection included, so a service that never answers costs the
//! trade at most that long.
//!
//! Transport: `http://` or `https://`. TLS is rustls (aws-lc-rs) with the
//! platform verifier: the system's roots, plus the PEM certificates a config
//! names in `extra_roots` for a service with a private CA. A certificate
//! that does not verify fails the call with the client's error; nothing
//! falls back to plain HTTP.
//!
//! Alkanes: `ord` does not index them, and no alkanes indexer (metashrew)
//! client exists here yet, so [`OrdIndex`] reports runes only. An offer
//! that claims an alkane is then refused by the trade checks, which see an
//! outpoint without it: alkane trades need that future client.
//!
//! With the `test-server` feature, `test_server::ChainTestServer` is a
//! small chain for other crates' end-to-end tests: an Esplora and an ord
//! on 127.0.0.1 port 0 over the coins a test funds; it checks every
//! transaction posted to it with Bitcoin Core's script interpreter and
//! records it.
//!
//! [`sync_wallet`] brings a key wallet up to date with the chain: its
//! coins from Esplora, their runes from ord.
//!
//! In a browser (wasm32) the clients make their calls with the page's
//! `fetch`, which uses the browser's own certificate roots (`extra_roots`
//! is refused there) and needs the services to allow the page's origin
//! (CORS: Esplora and `ord server` allow any); [`CoreRpcBroadcaster`], which
//! reads a cookie file, is native only.
//!
//! `docs/trade.md` ("Chain services") says what each client calls, what it
//! trusts, and how errors map.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used)]

#[cfg(not(target_arch = "wasm32"))]
mod core_rpc;
mod esplora;
mod http;
mod ord;
#[cfg(all(feature = "test-server", not(target_arch = "wasm32")))]
pub mod test_server;
mod wallet_sync;

#[cfg(not(target_arch = "wasm32"))]
pub use core_rpc::{CoreRpcAuth, CoreRpcBroadcaster, CoreRpcConfig, CoreRpcError};
pub use darkswap_p2p::{Broadcaster, HoldingsSource};
pub use esplora::{AddressUtxo, EsploraClient, EsploraConfig, EsploraError};
pub use http::{ConfigError, DEFAULT_TIMEOUT};
pub use ord::{OrdConfig, OrdError, OrdIndex};
pub use wallet_sync::{WalletSyncError, sync_wallet};

/// `future` boxed as the `Send` future the trade traits return. In a
/// browser the HTTP calls are not `Send`: they run on the page's event
/// loop and the box waits for their output.
#[cfg(not(target_arch = "wasm32"))]
fn send_future<T: Send + 'static>(
    future: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
) -> futures::future::BoxFuture<'static, Result<T, String>> {
    futures::FutureExt::boxed(future)
}

#[cfg(target_arch = "wasm32")]
fn send_future<T: Send + 'static>(
    future: impl std::future::Future<Output = Result<T, String>> + 'static,
) -> futures::future::BoxFuture<'static, Result<T, String>> {
    let output = darkswap_p2p::runtime::on_page(future);
    futures::FutureExt::boxed(async move { output.await.map_err(|e| e.to_string())? })
}
