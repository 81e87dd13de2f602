//! Native WebRTC for DarkSwap peers: data channels to browsers running
//! `darkswap-relay-client.js` and to other native nodes, set up through the
//! relay's WebSocket signaling server (`docs/signaling.md`).
//!
//! - [`WebRtcSignalingClient`]: registers this node's peer id on a relay's
//!   `/signaling` endpoint (proved with its libp2p identity key) and carries
//!   offers, answers and ICE candidates.
//! - [`WebRtcConnectionManager`]: makes and accepts [`WebRtcConnection`]s
//!   ([str0m](https://docs.rs/str0m): sans-IO ICE, DTLS and SCTP, one task
//!   per connection over UDP) and keeps them in a [`ConnectionPool`]. When
//!   WebRTC cannot connect it falls back to a relayed circuit through the
//!   relay's `/relay` endpoint, end-to-end encrypted like the browser
//!   client's ([`ConnectionPath`]).
//! - [`RelayManager`]: both of them for one relay, from its multiaddr
//!   ([`RelayUrls`]).
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use darkswap_webrtc::{Keypair, WebRtcConfig, WebRtcConnectionManager, WebRtcSignalingClient};
//! # async fn run() -> Result<(), darkswap_webrtc::WebRtcError> {
//! let signaling = Arc::new(WebRtcSignalingClient::new(Keypair::generate_ed25519()));
//! signaling.connect("ws://127.0.0.1:9001/signaling").await?;
//! let manager = WebRtcConnectionManager::new(signaling, WebRtcConfig::default());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod circuit;
mod config;
mod connection;
mod connection_pool;
mod error;
mod ice;
mod manager;
mod peer_task;
mod relay_manager;
mod relay_token;
mod signaling_client;
mod tls;

pub use circuit::frames::MAX_RELAYED_MESSAGE;
pub use config::{DATA_CHANNEL_LABEL, IceTransportPolicy, WebRtcConfig};
pub use connection::{ConnectionPath, DataMessage, WebRtcConnection};
pub use connection_pool::{
    ConnectionPool, ConnectionPoolConfig, PoolError, PoolStats, PooledConnection,
};
/// An ICE server (`RTCIceServer`): STUN or TURN URLs and TURN credentials.
pub use darkswap_proto::relay_auth::{IceServer, IceServersResponse};
pub use error::WebRtcError;
pub use ice::CandidateType;
pub use manager::WebRtcConnectionManager;
pub use relay_manager::{RelayAddrError, RelayManager, RelayUrls};
pub use relay_token::RelayToken;
pub use signaling_client::{
    ConnectionState, MAX_WATCHED, PeerPage, Presence, ReconnectPolicy, RelayAuth, SignalingError,
    SignalingEvent, SignalingOptions, WebRtcSignalingClient,
};
pub use tls::{TlsRoots, TlsRootsError};

/// Roles a relay token grants.
pub use darkswap_proto::relay_auth::Role;

/// The identity types this crate's API uses.
pub use libp2p_identity::{Keypair, PeerId};
