//! Bans: `/v1/bans`, `/v1/bans/{peer}`.

use axum::http::StatusCode;
use darkswap_p2p::BannedPeer;
use serde::{Deserialize, Serialize};

use super::{Endpoint, Verb, unix_secs};

/// A ban in force, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// The banned peer.
    pub peer_id: String,
    /// Unix seconds when it ends (rounded up); `null` until lifted by hand.
    pub until: Option<u64>,
    /// Why: `manual` or the misbehaviour, e.g. `invalid_signature`.
    pub reason: String,
    /// Automatic bans the peer has had.
    pub bans: u32,
}

impl From<&BannedPeer> for Ban {
    fn from(b: &BannedPeer) -> Self {
        Ban {
            peer_id: b.peer_id.to_string(),
            until: b.until.map(unix_secs),
            reason: b.reason.as_str().to_owned(),
            bans: b.bans,
        }
    }
}

/// `GET /v1/bans`: the bans in force, sorted by peer id.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ListBans;

impl Endpoint for ListBans {
    const VERB: Verb = Verb::Get;
    const ROUTE: &'static str = "/v1/bans";
    type Response = Vec<Ban>;
}

/// `POST /v1/bans`: ban a peer; answers `201` with the ban once stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanPeer {
    /// The peer id.
    pub peer_id: String,
    /// Seconds; absent (or `null`) for a ban until lifted.
    pub duration_secs: Option<u64>,
}

impl Endpoint for BanPeer {
    const VERB: Verb = Verb::Post;
    const ROUTE: &'static str = "/v1/bans";
    const SUCCESS: StatusCode = StatusCode::CREATED;
    type Response = Ban;
}

/// `DELETE /v1/bans/{peer}`: lift a ban; answers `204` once stored.
#[derive(Debug, Clone, Serialize)]
pub struct UnbanPeer {
    /// The peer id.
    pub peer_id: String,
}

impl Endpoint for UnbanPeer {
    const VERB: Verb = Verb::Delete;
    const ROUTE: &'static str = "/v1/bans/{peer}";
    const SUCCESS: StatusCode = StatusCode::NO_CONTENT;
    type Response = ();

    fn path(&self) -> String {
        format!("/v1/bans/{}", self.peer_id)
    }
}
