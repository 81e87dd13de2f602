//! Names every DarkSwap node agrees on: gossip topics and protocol ids.
//!
//! They are plain strings here; the libp2p shells wrap them in their own
//! types (`StreamProtocol`, `IdentTopic`).

/// Gossipsub topic carrying signed order creates, cancels and updates.
pub const ORDERBOOK_TOPIC: &str = "darkswap/orderbook/v1";
/// Gossipsub topic carrying trade negotiation and PSBT messages.
pub const TRADE_TOPIC: &str = "darkswap/trade/v1";
/// The request-response protocol nodes reconcile their books with.
/// Version 2: range-based set reconciliation (version 1 sent a snapshot
/// capped at 2,000 orders).
pub const ORDERBOOK_SYNC_PROTOCOL: &str = "/darkswap/orderbook-sync/2.0.0";
/// The request-response protocol peers authenticate each other with.
pub const AUTH_PROTOCOL: &str = "/darkswap/auth/1.0.0";
/// Kademlia protocol of the DarkSwap DHT, apart from the public IPFS DHT.
pub const KAD_PROTOCOL: &str = "/darkswap/kad/1.0.0";
/// Identify protocol version string of DarkSwap nodes.
pub const IDENTIFY_PROTOCOL_VERSION: &str = "/darkswap/1.0.0";
/// libp2p's throughput measurement protocol (libp2p specs, `perf/perf.md`).
pub const PERF_PROTOCOL: &str = "/perf/1.0.0";
/// The Kademlia key relays announce themselves under (as providers): nodes
/// look it up to find relays they were not told of.
pub const RELAY_PROVIDER_KEY: &str = "/darkswap/relays/v1";
