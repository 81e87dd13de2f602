//! The sans-IO state machines of a DarkSwap node.
//!
//! Everything a node decides lives here; everything it does with sockets,
//! tasks and clocks lives in the shells around it (the `darkswap-p2p` swarm
//! task for native nodes, `darkswap-wasm` in browsers). No tokio, no sockets,
//! no clock reads: time is passed in, as a [`Now`] (both clocks, read once
//! by the shell) or as unix seconds where a rule is shared with peers. The
//! crate builds for `wasm32-unknown-unknown`.
//!
//! The state:
//! - [`orderbook::Orderbook`]: the replicated, maker-signed book and its
//!   merge rules;
//! - [`reputation::ReputationManager`]: peer scores and bans;
//! - [`auth::AuthManager`]: challenges, proofs and tokens of
//!   `/darkswap/auth/1.0.0`.
//!
//! The services a shell drives (inputs are `handle_*` calls, outputs are
//! drained with `poll_*`, each unit-tested without a network):
//! - [`gossip::GossipValidator`]: the verdict on one gossip message
//!   (accept, reject or ignore; the events; the penalty for the forwarder);
//! - [`gossip::GossipRateLimiter`]: how many gossip messages each peer may
//!   hand us, checked before any is decoded;
//! - [`own_orders::OwnOrders`]: this node's orders, signed, announced,
//!   re-announced and cancelled;
//! - [`sync::OrderbookSync`]: who is asked for their book, what a snapshot
//!   holds, what a peer's snapshot brings and costs it;
//! - [`relay_keeper::RelayKeeper`]: reservations on configured relays, kept
//!   with backoff, behind an authentication gate;
//! - [`relay_discovery::RelayDiscoveryManager`]: the relays a node knows
//!   (configured, DHT, mDNS, identify) and their scores;
//! - [`relay_pool::RelayConnectionPool`]: which of them to hold
//!   reservations on, with failover and auto-relay;
//! - [`paced::Paced`]: where re-announcements wait, so they never delay a
//!   cancel, a fill notice or a new order.
//!
//! Names shared with every peer (topics, protocol ids) are in
//! [`protocols`]; what a node reports is [`NetworkEvent`].
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auth;
pub mod event;
pub mod gossip;
pub mod orderbook;
pub mod own_orders;
pub mod paced;
pub mod protocols;
pub mod reconnect;
pub mod relay_discovery;
pub mod relay_keeper;
pub mod relay_pool;
pub mod reputation;
pub mod sync;
mod time;
pub mod trade;

#[cfg(test)]
mod fixtures;

pub use event::{GossipDropReason, NatStatus, NetworkEvent, ReservationId};
pub use time::Now;

/// The wire crate, re-exported so users of this crate name one version of it.
pub use darkswap_proto as proto;
/// Peer ids and keys, as libp2p defines them.
pub use darkswap_proto::identity::{Keypair, PeerId, PublicKey};
/// Network addresses, as libp2p defines them.
pub use multiaddr::{self, Multiaddr};
