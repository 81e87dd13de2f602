//! The node itself: `/v1/status`, `/v1/peers`, `/v1/connect`.

use darkswap_p2p::RelayStatus;
use serde::{Deserialize, Serialize};

pub use darkswap_p2p::json::Peer;

use super::{Ban, Endpoint, Verb};

/// `GET /v1/status`: what the node is and how it is doing.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GetStatus;

impl Endpoint for GetStatus {
    const VERB: Verb = Verb::Get;
    const ROUTE: &'static str = "/v1/status";
    type Response = Status;
}

/// The answer to [`GetStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// This node's peer id.
    pub peer_id: String,
    /// The addresses it listens on.
    pub listen_addrs: Vec<String>,
    /// `unknown`, `private` or `public <address>`, as AutoNAT sees it.
    pub nat_status: String,
    /// The relays it knows, best first, with their reservation state.
    pub relays: Vec<Relay>,
    /// Connected peers.
    pub peers: usize,
    /// Own open orders.
    pub own_orders: usize,
    /// Messages refused so far, whatever the reason or topic.
    pub rejected_messages: u64,
    /// The bans in force.
    pub banned_peers: Vec<Ban>,
}

/// A relay in [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relay {
    /// The relay's peer id.
    pub peer_id: String,
    /// The circuit address listened on through it (or that would be).
    pub circuit_addr: String,
    /// Whether a reservation is held now.
    pub reserved: bool,
    /// `reserved`, `reserving` (asked for, not confirmed yet),
    /// `cooling_down` (failed; not tried again for a while) or `standby`
    /// (known, not needed now).
    pub state: String,
    /// Its score in the relay pool, 0 to 100 (`docs/relays.md`).
    pub score: f64,
    /// Its smoothed ping round trip, once measured.
    pub rtt_ms: Option<u64>,
    /// Where it was learned of: `configured`, `dht`, `mdns`, `identify`.
    pub sources: Vec<String>,
}

impl From<&RelayStatus> for Relay {
    fn from(r: &RelayStatus) -> Self {
        let state = if r.reserved {
            "reserved"
        } else if r.held {
            "reserving"
        } else if r.cooling_down {
            "cooling_down"
        } else {
            "standby"
        };
        Relay {
            peer_id: r.relay_peer_id.to_string(),
            circuit_addr: r.circuit_addr.to_string(),
            reserved: r.reserved,
            state: state.to_owned(),
            // One decimal: enough to compare, stable to read.
            score: (r.score * 10.0).round() / 10.0,
            rtt_ms: r
                .rtt
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            sources: r.sources.iter().map(|s| s.as_str().to_owned()).collect(),
        }
    }
}

/// `GET /v1/peers`: the connected peers.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ListPeers;

impl Endpoint for ListPeers {
    const VERB: Verb = Verb::Get;
    const ROUTE: &'static str = "/v1/peers";
    type Response = Vec<Peer>;
}

/// `POST /v1/connect`: dial a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    /// The peer's multiaddr, ending in `/p2p/<peer id>`.
    pub addr: String,
}

impl Endpoint for Connect {
    const VERB: Verb = Verb::Post;
    const ROUTE: &'static str = "/v1/connect";
    type Response = Connected;
}

/// The answer to [`Connect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connected {
    /// The peer now connected.
    pub peer_id: String,
}
