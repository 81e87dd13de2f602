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
//! `docs/trade.md` ("Chain services") says what each client calls, what it
//! trusts, and how errors map.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used)]

mod core_rpc;
mod esplora;
mod http;
mod ord;
#[cfg(feature = "test-server")]
pub mod test_server;

pub use core_rpc::{CoreRpcAuth, CoreRpcBroadcaster, CoreRpcConfig, CoreRpcError};
pub use darkswap_p2p::{Broadcaster, HoldingsSource};
pub use esplora::{AddressUtxo, EsploraClient, EsploraConfig, EsploraError};
pub use http::{ConfigError, DEFAULT_TIMEOUT};
pub use ord::{OrdConfig, OrdError, OrdIndex};
