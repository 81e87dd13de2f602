//! The reputation facet of the handle.

use std::time::Duration;

use darkswap_core::reputation::{BannedPeer, PeerReputation, Penalty, PenaltyReason};
use libp2p::PeerId;

use crate::{command::ReputationCommand, error::CommandError, network::NetworkHandle};

/// Peer scores and bans: what [`NetworkHandle::reputation`] returns.
#[derive(Debug, Clone, Copy)]
pub struct ReputationHandle<'a> {
    pub(super) handle: &'a NetworkHandle,
}

impl ReputationHandle<'_> {
    /// Reports a misbehaviour of `peer` seen outside the swarm (a failed
    /// authentication, a limit violation, ...). Its score drops by the
    /// reason's weight; at the threshold it is banned and disconnected.
    /// Returns what the report did, or `None` if it counted for nothing
    /// (scoring is off, or the peer is banned already).
    pub async fn report(
        &self,
        peer: PeerId,
        reason: PenaltyReason,
    ) -> Result<Option<Penalty>, CommandError> {
        self.handle
            .ask(|reply| ReputationCommand::Report {
                peer,
                reason,
                reply,
            })
            .await
    }

    /// Bans `peer` for `duration`, or until [`unban`](Self::unban) with
    /// `None`: closes its connections and refuses new ones in either
    /// direction. Replaces any ban in force.
    pub async fn ban(
        &self,
        peer: PeerId,
        duration: Option<Duration>,
    ) -> Result<BannedPeer, CommandError> {
        self.handle
            .ask(|reply| ReputationCommand::Ban {
                peer,
                duration,
                reply,
            })
            .await
    }

    /// Lifts `peer`'s ban and clears its score. Returns whether it was banned.
    pub async fn unban(&self, peer: PeerId) -> Result<bool, CommandError> {
        self.handle
            .ask(|reply| ReputationCommand::Unban { peer, reply })
            .await
    }

    /// The bans in force, with their expiry and reason, sorted by peer id.
    /// This is the list to store and give back after a restart, with
    /// [`import`](Self::import) or in
    /// [`ReputationConfig::initial_bans`](crate::ReputationConfig::initial_bans).
    pub async fn banned(&self) -> Result<Vec<BannedPeer>, CommandError> {
        self.handle
            .ask(|reply| ReputationCommand::Banned { reply })
            .await
    }

    /// `peer`'s score, ban and ban count.
    pub async fn peer(&self, peer: PeerId) -> Result<PeerReputation, CommandError> {
        self.handle
            .ask(|reply| ReputationCommand::Peer { peer, reply })
            .await
    }

    /// Puts stored bans in force (expired entries are skipped; a longer ban
    /// in force wins) and disconnects the peers. Returns how many apply.
    pub async fn import(&self, bans: Vec<BannedPeer>) -> Result<usize, CommandError> {
        self.handle
            .ask(|reply| ReputationCommand::Import { bans, reply })
            .await
    }
}
