//! The DarkSwap relay server.
//!
//! A libp2p node that is the network's backbone: circuit relay v2 hop (with
//! every limit from configuration) so peers behind NATs are reachable,
//! Kademlia in server mode and gossipsub on the DarkSwap topics so it is a
//! bootstrap and propagation point, AutoNAT server, identify and ping. Beside
//! it an HTTP server serves `/metrics` and `/health`.
//!
//! [`RelayServer::spawn`] starts it from a [`RelayConfig`] (port 0 allowed)
//! and tells what it bound; [`RelayServer::shutdown`] stops it cleanly.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auth;
pub mod config;
mod http;
pub mod metrics;
pub mod peer_auth;
mod public_http;
mod server;
pub mod signaling;
mod transport;

pub use config::{ConfigError, LogFormat, RelayConfig};
pub use server::{KEY_FILE, RelayServer, StartError, load_identity};
pub use signaling::SignalingServer;
