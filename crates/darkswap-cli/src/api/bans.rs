//! `/v1/bans` and `/v1/bans/{peer}`. Bans and unbans go to the state owner,
//! which answers once the ban list is stored.

use std::time::Duration;

use axum::extract::{Path, State};
use darkswap_p2p::PeerId;

use super::{
    ApiError, ApiState,
    json::{Answer, ApiJson},
};
use crate::v1::{Ban, BanPeer, ListBans, UnbanPeer};

fn parse_peer(value: &str) -> Result<PeerId, ApiError> {
    value
        .parse()
        .map_err(|e| ApiError::bad_request(format!("peer_id: {e}")))
}

pub(super) async fn list(State(s): State<ApiState>) -> Result<Answer<ListBans>, ApiError> {
    let bans = s.network.reputation().banned().await?;
    Ok(Answer::new(bans.iter().map(Ban::from).collect()))
}

pub(super) async fn ban(
    State(s): State<ApiState>,
    ApiJson(b): ApiJson<BanPeer>,
) -> Result<Answer<BanPeer>, ApiError> {
    let peer = parse_peer(&b.peer_id)?;
    if peer == s.network.local_peer_id() {
        return Err(ApiError::bad_request("peer_id: this node's own id"));
    }
    if b.duration_secs == Some(0) {
        return Err(ApiError::bad_request(
            "duration_secs: must be greater than zero",
        ));
    }
    let ban = s
        .state
        .ban(peer, b.duration_secs.map(Duration::from_secs))
        .await?;
    Ok(Answer::new(Ban::from(&ban)))
}

pub(super) async fn unban(
    State(s): State<ApiState>,
    Path(peer): Path<String>,
) -> Result<Answer<UnbanPeer>, ApiError> {
    let peer = parse_peer(&peer)?;
    if s.state.unban(peer).await? {
        Ok(Answer::new(()))
    } else {
        Err(ApiError::not_banned(format!("{peer} is not banned")))
    }
}
