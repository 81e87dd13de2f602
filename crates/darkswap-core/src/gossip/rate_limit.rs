//! How many gossip messages one peer may hand us: a per-peer rate limit,
//! checked before a message is decoded or its signatures verified, so a
//! flood costs us a table lookup per message and its sender its reputation.

use std::{collections::HashMap, time::Duration};

use web_time::Instant;

use crate::PeerId;

/// The rate of gossip messages accepted from one peer (the peer that hands
/// them to us, whoever authored them).
///
/// Defaults: 2,000 messages a second, bursts of 20,000. A full book of
/// 100,000 orders re-announced every 3 minutes is about 560 messages a
/// second network-wide, and one peer (a hub, a relay's neighbour) forwards
/// at most all of them; makers publishing in a burst add to that, and a
/// peer joining a mesh is handed a few seconds of history at once. A peer
/// over the limit loses reputation, so the limit must stay well above what
/// an honest forwarder hands on: 2,000 verifications a second cost a
/// flooder's victim under a tenth of a core (`darkswap-bench ingest`).
/// Size it to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GossipRateLimit {
    /// Messages a second, sustained. Default: 2,000.
    pub per_second: u32,
    /// Messages accepted at once from a peer that was quiet. Default:
    /// 20,000.
    pub burst: u32,
}

impl Default for GossipRateLimit {
    fn default() -> Self {
        GossipRateLimit {
            per_second: 2_000,
            burst: 20_000,
        }
    }
}

impl GossipRateLimit {
    /// `per_second` sustained, `burst` at once.
    pub fn new(per_second: u32, burst: u32) -> Self {
        GossipRateLimit { per_second, burst }
    }

    /// Whether both numbers are above zero (a zero would refuse everything).
    pub fn is_valid(&self) -> bool {
        self.per_second > 0 && self.burst > 0
    }
}

/// A peer over its rate pays one `rate_limit` penalty per this long: a busy
/// but honest forwarder that overshoots for a moment loses a little score,
/// a peer that keeps flooding is banned.
pub const PENALTY_INTERVAL: Duration = Duration::from_secs(1);

/// What to do with one gossip message, by its sender's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Within the rate: judge the message as usual.
    Allow,
    /// Over the rate: drop it unjudged (gossipsub `Ignore`: it may be valid,
    /// so it is neither forwarded nor scored as invalid).
    Refuse {
        /// Penalise the sender with [`PenaltyReason::RateLimit`] (at most
        /// once per [`PENALTY_INTERVAL`]).
        ///
        /// [`PenaltyReason::RateLimit`]: crate::reputation::PenaltyReason::RateLimit
        penalize: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Sender {
    /// When the sender's budget is whole again if it sends nothing more
    /// (GCRA's theoretical arrival time).
    full_at: Instant,
    last_penalty: Option<Instant>,
}

/// Per-peer message rates (the generic cell rate algorithm: one instant per
/// peer). Peers whose budget is whole again are forgotten by
/// [`handle_timeout`](Self::handle_timeout), so the table holds only peers
/// that sent recently.
#[derive(Debug, Clone)]
pub struct GossipRateLimiter {
    /// Time one message costs.
    interval: Duration,
    /// How far ahead of now a sender's budget may be spent.
    tolerance: Duration,
    senders: HashMap<PeerId, Sender>,
}

impl GossipRateLimiter {
    /// A limiter for `limit`; a zero in it is taken as one.
    pub fn new(limit: GossipRateLimit) -> Self {
        let interval = Duration::from_secs(1) / limit.per_second.max(1);
        GossipRateLimiter {
            interval,
            tolerance: interval * (limit.burst.max(1) - 1),
            senders: HashMap::new(),
        }
    }

    /// Counts one message handed to us by `peer` at `now`.
    pub fn handle_message(&mut self, peer: PeerId, now: Instant) -> RateDecision {
        let sender = self.senders.entry(peer).or_insert(Sender {
            full_at: now,
            last_penalty: None,
        });
        let full_at = sender.full_at.max(now);
        if full_at.saturating_duration_since(now) <= self.tolerance {
            sender.full_at = full_at + self.interval;
            return RateDecision::Allow;
        }
        let penalize = sender
            .last_penalty
            .is_none_or(|at| now.saturating_duration_since(at) >= PENALTY_INTERVAL);
        if penalize {
            sender.last_penalty = Some(now);
        }
        RateDecision::Refuse { penalize }
    }

    /// Forgets senders whose budget is whole again at `now` and who were
    /// not penalised within the last [`PENALTY_INTERVAL`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.senders.retain(|_, s| {
            s.full_at > now
                || s.last_penalty
                    .is_some_and(|at| now.saturating_duration_since(at) < PENALTY_INTERVAL)
        });
    }

    /// Senders tracked now.
    pub fn tracked(&self) -> usize {
        self.senders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: u32, burst: u32) -> GossipRateLimiter {
        GossipRateLimiter::new(GossipRateLimit::new(per_second, burst))
    }

    fn allowed(l: &mut GossipRateLimiter, peer: PeerId, now: Instant, n: usize) -> usize {
        (0..n)
            .filter(|_| l.handle_message(peer, now) == RateDecision::Allow)
            .count()
    }

    #[test]
    fn a_burst_is_taken_at_once_and_the_next_message_is_refused() {
        let mut l = limiter(10, 20);
        let (peer, t0) = (PeerId::random(), Instant::now());
        assert_eq!(allowed(&mut l, peer, t0, 20), 20);
        assert_eq!(
            l.handle_message(peer, t0),
            RateDecision::Refuse { penalize: true }
        );
    }

    #[test]
    fn the_budget_refills_at_the_rate() {
        let mut l = limiter(10, 5);
        let (peer, t0) = (PeerId::random(), Instant::now());
        assert_eq!(allowed(&mut l, peer, t0, 10), 5);
        // 10 a second: one message every 100 ms.
        assert_eq!(
            allowed(&mut l, peer, t0 + Duration::from_millis(300), 10),
            3
        );
        // A second of silence refills the whole burst.
        assert_eq!(allowed(&mut l, peer, t0 + Duration::from_secs(2), 10), 5);
    }

    #[test]
    fn a_sustained_flood_is_penalised_once_per_interval() {
        let mut l = limiter(5, 5);
        let (peer, t0) = (PeerId::random(), Instant::now());
        let mut penalties = 0;
        // 1000 messages a second for 3 s.
        for ms in 0..3000 {
            if let RateDecision::Refuse { penalize: true } =
                l.handle_message(peer, t0 + Duration::from_millis(ms))
            {
                penalties += 1;
            }
        }
        assert_eq!(penalties, 3);
    }

    #[test]
    fn one_peer_over_its_rate_does_not_touch_anothers() {
        let mut l = limiter(1, 3);
        let (flooder, honest, t0) = (PeerId::random(), PeerId::random(), Instant::now());
        assert_eq!(allowed(&mut l, flooder, t0, 100), 3);
        assert_eq!(allowed(&mut l, honest, t0, 3), 3);
    }

    #[test]
    fn quiet_peers_are_forgotten_and_flooders_kept_until_whole() {
        let mut l = limiter(10, 10);
        let (quiet, flooder, t0) = (PeerId::random(), PeerId::random(), Instant::now());
        allowed(&mut l, quiet, t0, 1);
        allowed(&mut l, flooder, t0, 50);
        l.handle_timeout(t0 + Duration::from_millis(500));
        assert_eq!(l.tracked(), 1, "the flooder's budget is spent for 1 s");
        l.handle_timeout(t0 + Duration::from_secs(2));
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn a_zero_limit_is_taken_as_one() {
        let mut l = limiter(0, 0);
        let (peer, t0) = (PeerId::random(), Instant::now());
        assert_eq!(allowed(&mut l, peer, t0, 5), 1);
        assert!(!GossipRateLimit::new(0, 1).is_valid());
        assert!(GossipRateLimit::default().is_valid());
    }
}
