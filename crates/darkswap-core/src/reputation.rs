//! Peer reputation and bans: a sans-IO state machine fed with misbehaviour
//! reports and the current time.
//!
//! Every peer starts with a clean score of 0. Each misbehaviour subtracts the
//! weight of its [`PenaltyReason`]; the score recovers towards 0 with a
//! configurable half-life. A peer whose score falls to the ban threshold is
//! banned for `base_ban_duration`; each further automatic ban within
//! `ban_memory` of the previous one lasts `ban_escalation` times longer, up
//! to `max_ban_duration`. Operators may also ban by hand, for a while or for
//! good.
//!
//! Time is the wall clock ([`SystemTime`]) passed in by the caller: bans
//! outlive the process (they are exported, stored and imported again), so
//! their expiry must mean the same thing after a restart. A clock that jumps
//! backwards only makes scores recover more slowly.
//!
//! The SDK's swarm task enforces bans with libp2p's
//! `allow_block_list`: a banned peer's connections are closed at once and
//! new ones, in either direction, are refused until the ban ends.

use std::{collections::HashMap, fmt, str::FromStr, time::Duration};

use darkswap_proto::{OrderError, identity::PeerId};
use web_time::SystemTime;

use crate::{auth::AuthError, gossip::ValidationError, orderbook::OrderbookError};

/// A kind of misbehaviour that costs a peer reputation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PenaltyReason {
    /// An undecodable message, or one that does not belong where it was sent.
    InvalidMessage,
    /// A signed order, cancel or update whose signature does not verify.
    InvalidSignature,
    /// A correctly signed order message that breaks the orderbook rules
    /// (bad terms, a cancel by someone other than the maker).
    InvalidOrder,
    /// A failed authentication attempt.
    FailedAuth,
    /// A rate or resource limit exceeded.
    RateLimit,
    /// A broken protocol exchange (malformed or oversized frames).
    ProtocolViolation,
}

impl PenaltyReason {
    /// Every reason, in a fixed order.
    pub const ALL: [PenaltyReason; 6] = [
        PenaltyReason::InvalidMessage,
        PenaltyReason::InvalidSignature,
        PenaltyReason::InvalidOrder,
        PenaltyReason::FailedAuth,
        PenaltyReason::RateLimit,
        PenaltyReason::ProtocolViolation,
    ];

    /// A short, stable label for metrics and storage: `invalid_message`,
    /// `invalid_signature`, `invalid_order`, `failed_auth`, `rate_limit`,
    /// `protocol_violation`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PenaltyReason::InvalidMessage => "invalid_message",
            PenaltyReason::InvalidSignature => "invalid_signature",
            PenaltyReason::InvalidOrder => "invalid_order",
            PenaltyReason::FailedAuth => "failed_auth",
            PenaltyReason::RateLimit => "rate_limit",
            PenaltyReason::ProtocolViolation => "protocol_violation",
        }
    }
}

impl fmt::Display for PenaltyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A label that names no [`PenaltyReason`] or [`BanReason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reason {0:?}")]
pub struct UnknownReason(String);

impl FromStr for PenaltyReason {
    type Err = UnknownReason;

    fn from_str(s: &str) -> Result<Self, UnknownReason> {
        PenaltyReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

/// Why a peer is banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BanReason {
    /// Its score fell to the threshold; this misbehaviour tipped it over.
    Misbehaviour(PenaltyReason),
    /// An operator banned it ([`ReputationManager::ban`]; the SDK's
    /// `network.reputation().ban`).
    Manual,
}

impl BanReason {
    /// `manual`, or the label of the [`PenaltyReason`].
    pub fn as_str(&self) -> &'static str {
        match self {
            BanReason::Misbehaviour(r) => r.as_str(),
            BanReason::Manual => "manual",
        }
    }
}

impl fmt::Display for BanReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BanReason {
    type Err = UnknownReason;

    fn from_str(s: &str) -> Result<Self, UnknownReason> {
        if s == "manual" {
            return Ok(BanReason::Manual);
        }
        s.parse().map(BanReason::Misbehaviour)
    }
}

/// Score lost per misbehaviour, by reason. Positive numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct PenaltyWeights {
    /// Default: 20.
    pub invalid_message: f64,
    /// Default: 30.
    pub invalid_signature: f64,
    /// Default: 20.
    pub invalid_order: f64,
    /// Default: 30.
    pub failed_auth: f64,
    /// Default: 10.
    pub rate_limit: f64,
    /// Default: 30.
    pub protocol_violation: f64,
}

impl Default for PenaltyWeights {
    fn default() -> Self {
        PenaltyWeights {
            invalid_message: 20.0,
            invalid_signature: 30.0,
            invalid_order: 20.0,
            failed_auth: 30.0,
            rate_limit: 10.0,
            protocol_violation: 30.0,
        }
    }
}

impl PenaltyWeights {
    /// The weight of `reason`.
    pub fn weight(&self, reason: PenaltyReason) -> f64 {
        match reason {
            PenaltyReason::InvalidMessage => self.invalid_message,
            PenaltyReason::InvalidSignature => self.invalid_signature,
            PenaltyReason::InvalidOrder => self.invalid_order,
            PenaltyReason::FailedAuth => self.failed_auth,
            PenaltyReason::RateLimit => self.rate_limit,
            PenaltyReason::ProtocolViolation => self.protocol_violation,
        }
    }
}

/// Reputation policy of a node.
///
/// With the defaults a peer is banned after about four invalid signed
/// messages in quick succession (three forged signatures and an invalid
/// order, or five undecodable messages), for 10 minutes; a repeat offender
/// for 20, then 40, ... up to a day.
#[derive(Debug, Clone, PartialEq)]
pub struct ReputationConfig {
    /// Ban peers automatically when their score falls to `ban_threshold`.
    /// When off, misbehaviour is neither scored nor reported, and only
    /// manual and imported bans apply. Default: on.
    pub enabled: bool,
    /// Score lost per misbehaviour. Default: [`PenaltyWeights::default`].
    pub penalties: PenaltyWeights,
    /// A score at or below this (negative) value bans the peer. Default: -100.
    pub ban_threshold: f64,
    /// Time for a score to recover half-way back to 0. Default: 10 min.
    pub score_half_life: Duration,
    /// Length of a first automatic ban. Default: 10 min.
    pub base_ban_duration: Duration,
    /// Each further automatic ban lasts this many times longer than the
    /// previous one (at least 1). Default: 2.
    pub ban_escalation: f64,
    /// Longest automatic ban. Default: 24 h.
    pub max_ban_duration: Duration,
    /// How long after a ban ends it still counts towards escalation.
    /// Default: 24 h.
    pub ban_memory: Duration,
    /// Peers tracked at most. When full, the peer with the best score that
    /// is not banned is forgotten first. Default: 10 000.
    pub max_peers: usize,
    /// Bans in force from the start, e.g. the list a previous run exported
    /// with [`ReputationManager::bans`] (the SDK's `network.reputation().banned()`).
    /// Expired entries are ignored. Default: none.
    pub initial_bans: Vec<BannedPeer>,
}

impl Default for ReputationConfig {
    fn default() -> Self {
        ReputationConfig {
            enabled: true,
            penalties: PenaltyWeights::default(),
            ban_threshold: -100.0,
            score_half_life: Duration::from_secs(600),
            base_ban_duration: Duration::from_secs(600),
            ban_escalation: 2.0,
            max_ban_duration: Duration::from_secs(24 * 3600),
            ban_memory: Duration::from_secs(24 * 3600),
            max_peers: 10_000,
            initial_bans: Vec::new(),
        }
    }
}

/// A [`ReputationConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reputation config: {0}")]
pub struct InvalidReputationConfig(&'static str);

impl ReputationConfig {
    fn validate(&self) -> Result<(), InvalidReputationConfig> {
        let bad = |m| Err(InvalidReputationConfig(m));
        if !self.ban_threshold.is_finite() || self.ban_threshold >= 0.0 {
            return bad("ban_threshold must be negative and finite");
        }
        if PenaltyReason::ALL.iter().any(|r| {
            let w = self.penalties.weight(*r);
            !w.is_finite() || w < 0.0
        }) {
            return bad("penalty weights must be finite and not negative");
        }
        if self.score_half_life.is_zero() {
            return bad("score_half_life must be greater than zero");
        }
        if !self.ban_escalation.is_finite() || self.ban_escalation < 1.0 {
            return bad("ban_escalation must be finite and at least 1");
        }
        if self.max_ban_duration < self.base_ban_duration {
            return bad("max_ban_duration must not be shorter than base_ban_duration");
        }
        if self.max_peers == 0 {
            return bad("max_peers must be greater than zero");
        }
        Ok(())
    }
}

/// A ban in force: the form bans are listed, exported and imported in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BannedPeer {
    /// The peer.
    pub peer_id: PeerId,
    /// When the ban ends; `None` for a ban that lasts until lifted by hand.
    pub until: Option<SystemTime>,
    /// Why.
    pub reason: BanReason,
    /// Automatic bans the peer has had, this one included if it is one;
    /// the next one lasts longer accordingly.
    pub bans: u32,
}

/// What a node knows about a peer's behaviour.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PeerReputation {
    /// The current score: 0 is a clean record, lower is worse.
    pub score: f64,
    /// The ban in force, if any.
    pub ban: Option<BannedPeer>,
    /// Automatic bans still counted towards escalation.
    pub bans: u32,
}

/// What one misbehaviour report did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Penalty {
    /// The peer's score after it.
    pub score: f64,
    /// The ban it caused, if the score fell to the threshold.
    pub ban: Option<BannedPeer>,
}

#[derive(Debug, Clone)]
struct Ban {
    until: Option<SystemTime>,
    reason: BanReason,
}

#[derive(Debug, Clone)]
struct Record {
    score: f64,
    updated: SystemTime,
    ban: Option<Ban>,
    /// Automatic bans, forgotten `ban_memory` after the last one ended.
    bans: u32,
    last_ban_end: Option<SystemTime>,
}

/// Scores below this are rounded to a clean record.
const NEGLIGIBLE: f64 = 0.01;

impl Record {
    fn new(now: SystemTime) -> Self {
        Record {
            score: 0.0,
            updated: now,
            ban: None,
            bans: 0,
            last_ban_end: None,
        }
    }

    fn score_at(&self, now: SystemTime, half_life: Duration) -> f64 {
        let elapsed = now.duration_since(self.updated).unwrap_or_default();
        let score = self.score * 0.5f64.powf(elapsed.as_secs_f64() / half_life.as_secs_f64());
        if score > -NEGLIGIBLE { 0.0 } else { score }
    }

    fn decay(&mut self, now: SystemTime, half_life: Duration) {
        self.score = self.score_at(now, half_life);
        // Never move `updated` back: a clock jump must not replay decay.
        if now > self.updated {
            self.updated = now;
        }
    }

    fn is_banned(&self, now: SystemTime) -> bool {
        self.ban
            .as_ref()
            .is_some_and(|b| b.until.is_none_or(|until| until > now))
    }

    fn forget_old_bans(&mut self, now: SystemTime, memory: Duration) {
        if self.ban.is_none()
            && let Some(end) = self.last_ban_end
            && end.checked_add(memory).is_some_and(|t| t <= now)
        {
            self.bans = 0;
            self.last_ban_end = None;
        }
    }

    /// Nothing worth remembering: a clean score, no ban, no ban history.
    fn is_forgettable(&self, now: SystemTime, config: &ReputationConfig) -> bool {
        self.ban.is_none()
            && self.score_at(now, config.score_half_life) == 0.0
            && self
                .last_ban_end
                .is_none_or(|end| end.checked_add(config.ban_memory).is_some_and(|t| t <= now))
    }

    fn banned_peer(&self, peer_id: PeerId) -> Option<BannedPeer> {
        self.ban.as_ref().map(|b| BannedPeer {
            peer_id,
            until: b.until,
            reason: b.reason,
            bans: self.bans,
        })
    }
}

/// Per-peer scores and bans. Sans-IO: every call takes the current time,
/// nothing happens between calls. See the [module docs](self).
#[derive(Debug)]
pub struct ReputationManager {
    config: ReputationConfig,
    peers: HashMap<PeerId, Record>,
}

impl ReputationManager {
    /// A manager with `config`'s policy and its `initial_bans` in force.
    pub fn new(
        mut config: ReputationConfig,
        now: SystemTime,
    ) -> Result<Self, InvalidReputationConfig> {
        config.validate()?;
        let initial = std::mem::take(&mut config.initial_bans);
        let mut manager = ReputationManager {
            config,
            peers: HashMap::new(),
        };
        manager.import(initial, now);
        Ok(manager)
    }

    /// The policy in force.
    pub fn config(&self) -> &ReputationConfig {
        &self.config
    }

    /// Records a misbehaviour of `peer`. Returns `None` when it counts for
    /// nothing: automatic bans are off, the peer is already banned, or every
    /// tracked peer is banned and there is no room for another.
    pub fn penalize(
        &mut self,
        peer: PeerId,
        reason: PenaltyReason,
        now: SystemTime,
    ) -> Option<Penalty> {
        if !self.config.enabled {
            return None;
        }
        if !self.peers.contains_key(&peer) && !self.make_room(now) {
            return None;
        }
        let config = &self.config;
        let record = self.peers.entry(peer).or_insert_with(|| Record::new(now));
        if record.is_banned(now) {
            return None;
        }
        record.decay(now, config.score_half_life);
        record.forget_old_bans(now, config.ban_memory);
        record.score -= config.penalties.weight(reason);
        if record.score > config.ban_threshold {
            return Some(Penalty {
                score: record.score,
                ban: None,
            });
        }
        let factor = config.ban_escalation.powi(record.bans.min(64) as i32);
        let duration = Duration::try_from_secs_f64(config.base_ban_duration.as_secs_f64() * factor)
            .unwrap_or(config.max_ban_duration)
            .min(config.max_ban_duration);
        record.bans = record.bans.saturating_add(1);
        // The score rests at the threshold and recovers during the ban, so a
        // peer comes back on probation rather than with a clean record.
        record.score = config.ban_threshold;
        record.ban = Some(Ban {
            until: now.checked_add(duration),
            reason: BanReason::Misbehaviour(reason),
        });
        Some(Penalty {
            score: record.score,
            ban: record.banned_peer(peer),
        })
    }

    /// Bans `peer` by hand for `duration`, or until [`unban`](Self::unban)
    /// with `None`. Replaces any ban in force; does not count towards
    /// escalation.
    pub fn ban(&mut self, peer: PeerId, duration: Option<Duration>, now: SystemTime) -> BannedPeer {
        let record = self.peers.entry(peer).or_insert_with(|| Record::new(now));
        record.ban = Some(Ban {
            until: duration.and_then(|d| now.checked_add(d)),
            reason: BanReason::Manual,
        });
        BannedPeer {
            peer_id: peer,
            until: record.ban.as_ref().and_then(|b| b.until),
            reason: BanReason::Manual,
            bans: record.bans,
        }
    }

    /// Lifts `peer`'s ban and clears its score (the operator forgives it);
    /// its ban history still counts towards escalation. Returns whether a
    /// ban was in force.
    pub fn unban(&mut self, peer: &PeerId, now: SystemTime) -> bool {
        let Some(record) = self.peers.get_mut(peer) else {
            return false;
        };
        let was_banned = record.is_banned(now);
        if record.ban.take().is_some() && record.bans > 0 {
            record.last_ban_end = Some(now);
        }
        record.score = 0.0;
        record.updated = now;
        was_banned
    }

    /// Ends the bans whose time is up and forgets peers with nothing left to
    /// remember. Returns the peers no longer banned.
    pub fn expire(&mut self, now: SystemTime) -> Vec<PeerId> {
        let mut ended = Vec::new();
        for (peer, record) in &mut self.peers {
            if record.ban.is_some() && !record.is_banned(now) {
                let until = record.ban.take().and_then(|b| b.until);
                if record.bans > 0 {
                    record.last_ban_end = until.or(Some(now));
                }
                ended.push(*peer);
            }
        }
        let config = &self.config;
        self.peers.retain(|_, r| !r.is_forgettable(now, config));
        ended.sort();
        ended
    }

    /// When the next timed ban ends, for the caller's timer.
    pub fn next_expiry(&self) -> Option<SystemTime> {
        self.peers
            .values()
            .filter_map(|r| r.ban.as_ref()?.until)
            .min()
    }

    /// Whether `peer` is banned at `now`.
    pub fn is_banned(&self, peer: &PeerId, now: SystemTime) -> bool {
        self.peers.get(peer).is_some_and(|r| r.is_banned(now))
    }

    /// What is known about `peer` at `now`.
    pub fn reputation(&self, peer: &PeerId, now: SystemTime) -> PeerReputation {
        match self.peers.get(peer) {
            Some(r) => PeerReputation {
                score: r.score_at(now, self.config.score_half_life),
                ban: r.is_banned(now).then(|| r.banned_peer(*peer)).flatten(),
                bans: r.bans,
            },
            None => PeerReputation {
                score: 0.0,
                ban: None,
                bans: 0,
            },
        }
    }

    /// The bans in force at `now`, sorted by peer id: the list to store and
    /// [`import`](Self::import) after a restart.
    pub fn bans(&self, now: SystemTime) -> Vec<BannedPeer> {
        let mut bans: Vec<BannedPeer> = self
            .peers
            .iter()
            .filter(|(_, r)| r.is_banned(now))
            .filter_map(|(p, r)| r.banned_peer(*p))
            .collect();
        bans.sort_by_key(|b| b.peer_id);
        bans
    }

    /// Puts stored bans back in force. Entries already expired at `now` are
    /// skipped; where a peer is banned already, the longer ban wins. Returns
    /// the bans now in force for the imported peers.
    pub fn import(
        &mut self,
        bans: impl IntoIterator<Item = BannedPeer>,
        now: SystemTime,
    ) -> Vec<BannedPeer> {
        let mut applied = Vec::new();
        for ban in bans {
            if ban.until.is_some_and(|until| until <= now) {
                continue;
            }
            let record = self
                .peers
                .entry(ban.peer_id)
                .or_insert_with(|| Record::new(now));
            record.bans = record.bans.max(ban.bans);
            let keep_current = record.is_banned(now)
                && record
                    .ban
                    .as_ref()
                    .is_some_and(|current| match (current.until, ban.until) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(a), Some(b)) => a >= b,
                    });
            if !keep_current {
                record.ban = Some(Ban {
                    until: ban.until,
                    reason: ban.reason,
                });
            }
            if let Some(b) = record.banned_peer(ban.peer_id) {
                applied.push(b);
            }
        }
        applied
    }

    /// Makes room for one more peer; false if every tracked peer is banned.
    fn make_room(&mut self, now: SystemTime) -> bool {
        if self.peers.len() < self.config.max_peers {
            return true;
        }
        let config = &self.config;
        self.peers.retain(|_, r| !r.is_forgettable(now, config));
        if self.peers.len() < self.config.max_peers {
            return true;
        }
        let half_life = self.config.score_half_life;
        let best = self
            .peers
            .iter()
            .filter(|(_, r)| !r.is_banned(now))
            .max_by(|(_, a), (_, b)| {
                a.score_at(now, half_life)
                    .total_cmp(&b.score_at(now, half_life))
            })
            .map(|(p, _)| *p);
        match best {
            Some(peer) => {
                self.peers.remove(&peer);
                true
            }
            None => false,
        }
    }
}

/// The penalty for a gossip message that failed validation, if any.
/// Timestamps out of range are not penalised: latency and clock skew make
/// honest peers send them now and then.
pub fn validation_penalty(error: &ValidationError) -> Option<PenaltyReason> {
    match error {
        ValidationError::Order { error, .. } => order_penalty(error),
        _ => Some(PenaltyReason::InvalidMessage),
    }
}

/// The penalty for a signed order message the orderbook refused, if any:
/// only refusals no honest peer causes (forgeries, a cancel by a non-maker).
pub fn orderbook_penalty(error: &OrderbookError) -> Option<PenaltyReason> {
    match error {
        OrderbookError::Invalid(e) => order_penalty(e),
        OrderbookError::NotMaker => Some(PenaltyReason::InvalidOrder),
        OrderbookError::NotAnOrderMessage => Some(PenaltyReason::InvalidMessage),
        _ => None,
    }
}

/// The penalty for an orderbook snapshot, from the reasons its entries were
/// refused: one per snapshot (it is one message), the heaviest that applies.
pub fn sync_penalty(
    rejected: &[OrderbookError],
    weights: &PenaltyWeights,
) -> Option<PenaltyReason> {
    rejected
        .iter()
        .filter_map(orderbook_penalty)
        .max_by(|a, b| weights.weight(*a).total_cmp(&weights.weight(*b)))
}

/// The penalty for an authentication answer that failed, if any: a proof
/// that does not verify is a forgery or a wrong key, not bad luck. A refusal
/// to answer, or a stale challenge, costs nothing.
pub fn auth_penalty(error: &AuthError) -> Option<PenaltyReason> {
    matches!(
        error,
        AuthError::BadMac
            | AuthError::BadSignature
            | AuthError::KeyMismatch(_)
            | AuthError::WrongPeer(..)
            | AuthError::WrongMethod { .. }
    )
    .then_some(PenaltyReason::FailedAuth)
}

fn order_penalty(error: &OrderError) -> Option<PenaltyReason> {
    match error {
        OrderError::Expired { .. } | OrderError::FromTheFuture { .. } => None,
        OrderError::InvalidMaker
        | OrderError::InvalidPublicKey
        | OrderError::MakerMismatch
        | OrderError::BadSignature => Some(PenaltyReason::InvalidSignature),
        _ => Some(PenaltyReason::InvalidOrder),
    }
}

#[cfg(test)]
mod tests;
