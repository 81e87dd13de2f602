//! DarkSwap P2P SDK: a libp2p node for the DarkSwap decentralized exchange.
//!
//! [`Network`] runs a libp2p swarm (TCP, QUIC and WebSocket transports with
//! Noise and Yamux; Identify, Ping, Gossipsub, Kademlia, mDNS, circuit relay
//! v2 client, DCUtR hole punching and AutoNAT) in its own task, and reports
//! what happens as [`NetworkEvent`]s carrying decoded, validated
//! [`darkswap_proto::Message`]s. The task is a thin IO shell: what the node
//! decides (which gossip to accept, when to re-announce, whom to ask for the
//! book, when to re-reserve on a relay, whom to ban) is `darkswap-core`'s
//! sans-IO services, re-exported here where the API needs them.
//!
//! The handle's commands come in facets: the network itself (listen, dial,
//! topics, peers) on [`NetworkHandle`], and [`NetworkHandle::orderbook`],
//! [`NetworkHandle::auth`] and [`NetworkHandle::reputation`], each with its
//! own error type.
//!
//! ```no_run
//! use darkswap_p2p::{Network, NetworkConfig, NetworkEvent};
//!
//! # async fn run() -> Result<(), darkswap_p2p::Error> {
//! let relay = "/ip4/203.0.113.7/tcp/9000/p2p/12D3KooWRelay...".parse().unwrap();
//! let mut network = Network::new(NetworkConfig::default().with_relay_peers([relay])).await?;
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
mod bandwidth;
mod behaviour;
mod command;
mod config;
mod error;
mod identity;
pub mod json;
pub mod metrics;
mod network;
mod perf;
pub mod runtime;
mod swarm_task;
mod sync;
mod trade;
#[cfg(not(target_arch = "wasm32"))]
mod webrtc_channels;
#[cfg(not(target_arch = "wasm32"))]
mod webrtc_direct;

pub use bandwidth::Bandwidth;
pub use behaviour::{KAD_PROTOCOL, gossipsub_behaviour};
pub use config::{
    ConnectionLimits, DEFAULT_WEBRTC_SIGNALING_PORT, Identity, KadMode, NetworkConfig, RelayConfig,
    WebRtcSignalingConfig,
};
pub use darkswap_core::{
    GossipDropReason, NatStatus, NetworkEvent, ReservationId,
    gossip::{GossipRateLimit, ValidationError, validate_gossip},
    orderbook::{Book, OrderbookChange, OrderbookConfig, OrderbookError},
    own_orders::OrderChanges,
    protocols::{IDENTIFY_PROTOCOL_VERSION, ORDERBOOK_TOPIC, TRADE_TOPIC},
    reconnect::ReconnectConfig,
    relay_discovery::RelaySource,
    relay_keeper::{RelayAuthStatus, RelayStatus},
    relay_pool::{RelayConnectionPoolConfig, RelayPoolStats},
    reputation::{
        BanReason, BannedPeer, InvalidReputationConfig, PeerReputation, Penalty, PenaltyReason,
        PenaltyWeights, ReputationConfig, UnknownReason,
    },
    sync::SyncConfig,
};
/// The trade layer this node runs (PSBTs, wallets, the negotiation).
pub use darkswap_trade;
/// WebRTC data channels: what they carry and which path they took.
#[cfg(not(target_arch = "wasm32"))]
pub use darkswap_webrtc::{
    ConnectionPath, ConnectionState as SignalingState, DataMessage, RelayAuth, SignalingOptions,
    TlsRoots, WebRtcError,
};
#[cfg(not(target_arch = "wasm32"))]
pub use error::WebRtcCommandError;
pub use error::{
    AuthCommandError, CommandError, Error, OrderbookCommandError, PerfError, TradeCommandError,
};
pub use identity::load_or_create_keypair;
pub use network::{
    AuthHandle, ConnectionInfo, Network, NetworkHandle, OrderbookHandle, PeerInfo, RelaysHandle,
    ReputationHandle, TradeInfo, TradesHandle,
};
pub use perf::{PERF_PROTOCOL, PerfReport, run_client as perf_client, serve as serve_perf};
pub use sync::SYNC_PROTOCOL;
pub use trade::{
    Broadcaster, HoldingsSource, TRADE_PROTOCOL, TradeCodec, TradeStore, Trading, trade_behaviour,
};
#[cfg(not(target_arch = "wasm32"))]
pub use webrtc_direct::{
    WebRtcCertificate, generate_webrtc_certificate, load_or_create_webrtc_certificate,
    webrtc_direct_transport,
};

/// The sans-IO state machines this SDK runs, and the wire crate.
pub use darkswap_core as core;
pub use darkswap_proto as proto;
/// Re-exports of the libp2p types that appear in this crate's API.
pub use libp2p::{Multiaddr, PeerId, identity::Keypair};

/// The README's SDK example is compiled as a doc test so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
