//! The DarkSwap relay server.
//!
//! A libp2p node that is the network's backbone: circuit relay v2 hop (with
//! every limit from configuration) so peers behind NATs are reachable,
//! Kademlia in server mode and gossipsub on the DarkSwap topics so it is a
//! bootstrap and propagation point, AutoNAT server, identify and ping. Beside
//! it, on a public port, the WebSocket signaling server (`/signaling`), the
//! WebSocket circuits (`/relay`) and the token service (`/auth/*`), and on an
//! admin port `/metrics` and `/health`.
//!
//! [`RelayServer::spawn`] starts it from a [`RelayConfig`] (port 0 allowed)
//! and tells what it bound; [`RelayServer::shutdown`] stops it cleanly.
//!
//! # Features
//!
//! - `server` (default): the server above, with tokio, libp2p, axum, hyper
//!   and prometheus. Without it the crate holds only its sans-IO parts,
//!   which build in a fraction of the time: [`signaling::hub`] (the
//!   signaling state machine), [`token`] (relay token claims and their
//!   check) and [`defaults`]. The fuzz crate drives them that way.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod defaults;
pub mod signaling;
pub mod token;

#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
mod http;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod peer_auth;
#[cfg(feature = "server")]
mod public_http;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod transport;

#[cfg(feature = "server")]
pub use config::{ConfigError, LogFormat, RelayConfig};
#[cfg(feature = "server")]
pub use server::{KEY_FILE, RelayServer, StartError, load_identity};
#[cfg(feature = "server")]
pub use signaling::SignalingServer;
