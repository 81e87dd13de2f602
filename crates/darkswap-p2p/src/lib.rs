//! DarkSwap P2P SDK: a libp2p node for the DarkSwap decentralized exchange.
//!
//! [`Network`] runs a libp2p swarm (TCP, QUIC and WebSocket transports with
//! Noise and Yamux; Identify, Ping, Gossipsub, Kademlia, mDNS, circuit relay
//! v2 client, DCUtR hole punching and AutoNAT) in its own task, and reports
//! what happens as [`NetworkEvent`]s carrying decoded, validated
//! [`darkswap_proto::Message`]s.
//!
//! ```no_run
//! use darkswap_p2p::{Network, NetworkConfig, NetworkEvent};
//!
//! # async fn run() -> Result<(), darkswap_p2p::Error> {
//! let config = NetworkConfig {
//!     relay_peers: vec!["/ip4/203.0.113.7/tcp/9000/p2p/12D3KooWRelay...".parse().unwrap()],
//!     ..NetworkConfig::default()
//! };
//! let mut network = Network::new(config).await?;
//! network.listen_on("/ip4/0.0.0.0/tcp/0").await?;
//! while let Some(event) = network.next_event().await {
//!     if let NetworkEvent::RelayReserved { relay_peer_id, .. } = event {
//!         println!("reachable through {relay_peer_id}");
//!     }
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auth;
mod behaviour;
mod config;
pub mod connection_pool;
pub mod encryption;
mod error;
mod identity;
pub mod network;
mod orderbook;
mod perf;
mod relay_reservations;
mod reputation;
#[cfg(feature = "webrtc")]
mod signaling_client;
mod swarm_task;
mod sync;
mod task;
mod validation;
#[cfg(feature = "webrtc")]
pub mod webrtc;

pub use behaviour::{IDENTIFY_PROTOCOL_VERSION, KAD_PROTOCOL, gossipsub_behaviour};
pub use config::{
    ConnectionLimits, Identity, KadMode, NetworkConfig, ORDERBOOK_TOPIC, TRADE_TOPIC,
};
pub use connection_pool::{
    ConnectionPool, ConnectionPoolConfig, PoolError, PoolStats, PooledConnection,
};
pub use encryption::{EncryptionConfig, EncryptionError, EncryptionManager};
pub use error::Error;
pub use identity::load_or_create_keypair;
pub use network::{NatStatus, Network, NetworkEvent, NetworkHandle, PeerInfo, ReservationId};
pub use orderbook::{Book, Orderbook, OrderbookChange, OrderbookConfig, OrderbookError};
pub use perf::{PERF_PROTOCOL, PerfReport};
pub use relay_reservations::{RelayAuthStatus, RelayStatus};
pub use reputation::{
    BanReason, BannedPeer, InvalidReputationConfig, PeerReputation, Penalty, PenaltyReason,
    PenaltyWeights, ReputationConfig, ReputationManager, UnknownReason,
};
#[cfg(feature = "webrtc")]
pub use signaling_client::{SignalingError, SignalingEvent, WebRtcSignalingClient};
pub use swarm_task::{ensure_tcp_port_free, unix_now};
pub use sync::SYNC_PROTOCOL;
pub use validation::{ValidationError, validate_gossip, verify_signed_parts};
#[cfg(feature = "webrtc")]
pub use webrtc::{
    DataMessage, WebRtcConfig, WebRtcConnection, WebRtcConnectionManager, WebRtcError,
};

/// Re-exports of the libp2p and wire types that appear in this crate's API.
pub use darkswap_proto as proto;
pub use libp2p::{Multiaddr, PeerId, identity::Keypair};

/// The README's SDK example is compiled as a doc test so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
