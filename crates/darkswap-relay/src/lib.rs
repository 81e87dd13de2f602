//! The DarkSwap relay server.
//!
//! A libp2p node that is the network's backbone: circuit relay v2 hop (with
//! every limit from configuration) so peers behind NATs are reachable,
//! Kademlia in server mode and gossipsub on the DarkSwap topics so it is a
//! bootstrap and propagation point, AutoNAT server, identify and ping. Beside
//! it, on a public port, the WebSocket signaling server (`/signaling`), the
//! WebSocket circuits (`/relay`) and the token service (`/auth/*`) of the
//! token authority (`token_authority`), over TLS when it has a certificate
//! (`tls`), and on an admin port `/metrics` and
//! `/health`.
//!
//! Three things are called "relay" around here, and the code keeps them
//! apart: the relay server itself (`RelayServer`); libp2p circuit relay v2,
//! which it serves as a hop (`config::HopConfig`, the `libp2p_node`
//! module); and WebSocket circuits on `/relay` for browsers
//! (`config::WsCircuitConfig`, `signaling::ws_circuit`).
//!
//! `RelayServer::spawn` starts it from a `RelayConfig` (port 0 allowed) and
//! tells what it bound; `RelayServer::shutdown` stops it cleanly. (These
//! need the `server` feature.)
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
pub mod turn_credentials;

#[cfg(feature = "server")]
mod admin_http;
#[cfg(feature = "server")]
mod clock;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
mod libp2p_node;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
pub mod stun_turn;
#[cfg(feature = "server")]
pub mod tls;
#[cfg(feature = "server")]
pub mod token_authority;
#[cfg(feature = "server")]
mod token_service;

#[cfg(feature = "server")]
pub use config::RelayConfig;
#[cfg(feature = "server")]
pub use server::{KEY_FILE, RelayServer, StartError, load_identity};
#[cfg(feature = "server")]
pub use signaling::{PublicPortOptions, SignalingServer};
