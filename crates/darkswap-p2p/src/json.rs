//! JSON views of what a node shows: orders, peers, trades, the trading
//! wallet and events, with string ids and snake-case names. The daemon's
//! local API (`/v1`) serves them and the browser node (`darkswap-wasm`)
//! hands them to JavaScript, so a page or a script reads one shape from
//! either.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use web_time::{SystemTime, UNIX_EPOCH};

use crate::{PeerInfo, TradeInfo};

mod event;

pub use event::{Event, HelloRelay};

/// An order as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Hex order id.
    pub id: String,
    /// Maker peer id.
    pub maker: String,
    /// `buy` or `sell`.
    pub side: String,
    /// Base asset.
    pub base: String,
    /// Quote asset.
    pub quote: String,
    /// Base amount, smallest unit.
    pub amount: u64,
    /// Quote units per 10^8 base units.
    pub price: u64,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
}

impl From<&darkswap_proto::Order> for Order {
    fn from(o: &darkswap_proto::Order) -> Self {
        Order {
            id: o.id.to_string(),
            maker: o.maker.to_string(),
            side: o.side.to_string(),
            base: o.base.to_string(),
            quote: o.quote.to_string(),
            amount: o.amount,
            price: o.price,
            created_at: o.created_at,
            expires_at: o.expires_at,
        }
    }
}

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Its peer id.
    pub peer_id: String,
    /// The remote address of a direct connection if there is one, else of
    /// its first connection.
    pub address: String,
    /// `relayed` when every connection runs through a relay, else `direct`.
    pub path: String,
    /// Last ping's round trip, if any yet.
    pub latency_ms: Option<u64>,
    /// Every open connection, oldest first, each with its own path.
    pub connections: Vec<PeerConnection>,
}

/// One open connection to a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConnection {
    /// Its remote address.
    pub address: String,
    /// `relayed` or `direct`.
    pub path: String,
}

fn path(relayed: bool) -> String {
    if relayed { "relayed" } else { "direct" }.to_owned()
}

impl From<&PeerInfo> for Peer {
    fn from(p: &PeerInfo) -> Self {
        Peer {
            peer_id: p.peer_id.to_string(),
            address: p.address.to_string(),
            path: path(p.relayed),
            latency_ms: p
                .rtt
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            connections: p
                .connections
                .iter()
                .map(|c| PeerConnection {
                    address: c.address.to_string(),
                    path: path(c.relayed),
                })
                .collect(),
        }
    }
}

/// The trading wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    /// `bitcoin`, `testnet`, `signet` or `regtest`.
    pub network: String,
    /// Its addresses: the first receives, the last takes change.
    pub addresses: Vec<String>,
    /// The coins it knows, from the last sync.
    pub coins: Vec<Coin>,
}

/// One coin of the wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coin {
    /// `txid:vout`.
    pub outpoint: String,
    /// Satoshis.
    pub value: u64,
    /// Runes it holds: asset (`rune:<block>:<tx>`) to amount, as a
    /// decimal string (rune amounts exceed JSON's safe integers).
    pub holdings: BTreeMap<String, String>,
    /// Committed to a running trade: not offered to another.
    pub committed: bool,
}

impl From<&darkswap_trade::KeyWallet> for Wallet {
    fn from(wallet: &darkswap_trade::KeyWallet) -> Self {
        Wallet {
            network: wallet.network().to_string(),
            addresses: wallet.addresses().iter().map(ToString::to_string).collect(),
            coins: wallet
                .utxos()
                .iter()
                .map(|u| Coin {
                    outpoint: u.outpoint.to_string(),
                    value: u.prevout.value.to_sat(),
                    holdings: u
                        .holdings
                        .iter()
                        .map(|(asset, amount)| (asset.to_string(), amount.to_string()))
                        .collect(),
                    committed: wallet.is_committed(&u.outpoint),
                })
                .collect(),
        }
    }
}

/// A trade as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    /// Hex trade id.
    pub id: String,
    /// The order it fills.
    pub order_id: String,
    /// The counterparty's peer id.
    pub peer_id: String,
    /// This node's side: `maker` or `taker`.
    pub role: String,
    /// `proposed`, `accepted`, `psbt_created`, `maker_signed`,
    /// `finalized`, `broadcast`, `completed`, `rejected`, `cancelled`,
    /// `timed_out` or `failed`.
    pub state: String,
    /// What ended it: a refusal's code (`amount_above_remaining`, ...),
    /// who cancelled, the step that timed out, the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The swap transaction's id, once it is final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txid: Option<String>,
}

/// `maker` or `taker`.
pub fn role_name(role: darkswap_core::trade::Role) -> &'static str {
    match role {
        darkswap_core::trade::Role::Maker => "maker",
        darkswap_core::trade::Role::Taker => "taker",
    }
}

impl From<&TradeInfo> for Trade {
    fn from(t: &TradeInfo) -> Self {
        Trade {
            id: t.trade_id.to_string(),
            order_id: t.order_id.to_string(),
            peer_id: t.peer_id.to_string(),
            role: role_name(t.role).to_owned(),
            state: t.state.code().to_owned(),
            detail: t.state.detail(),
            txid: t.txid.clone(),
        }
    }
}

/// Unix seconds of `t`, rounded up: a ban shown never ends earlier than it
/// does.
pub fn unix_secs(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
