//! Redials market peers lost without a goodbye, so a partition heals by
//! itself.
//!
//! When a relay dies, the peers that reached each other through it drop
//! apart; the relay comes back and every node re-reserves, but nobody dials
//! the peers it lost, and orders made meanwhile never arrive (the book is
//! reconciled only with connected peers). The shell reports each market
//! peer (a peer on the orderbook topic) whose last connection closed; this
//! machine says when to dial it again, with a doubling backoff, at once
//! when the node's own reachability changed (a reservation re-made), and
//! gives up after `give_up_after`. A reconnected peer is reconciled by the
//! usual sync on subscription. Peers that said goodbye (`Disconnect`) or
//! were banned are not redialled.
//!
//! Sans-IO: time is passed in; [`Reconnector::poll_dial`] yields the peers
//! to dial now.

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use web_time::Instant;

use crate::PeerId;

/// How lost peers are redialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectConfig {
    /// The first wait before a redial; doubles with each failure. Default: 1 s.
    pub retry_initial: Duration,
    /// The longest wait between redials. Default: 30 s.
    pub retry_max: Duration,
    /// A peer not reached again within this is forgotten. Default: 10 min.
    pub give_up_after: Duration,
    /// Lost peers remembered at most; beyond, the longest lost is
    /// forgotten. Default: 64.
    pub max_peers: usize,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            give_up_after: Duration::from_secs(600),
            max_peers: 64,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Lost {
    since: Instant,
    next: Instant,
    backoff: Duration,
}

/// See the module docs.
#[derive(Debug)]
pub struct Reconnector {
    config: ReconnectConfig,
    lost: HashMap<PeerId, Lost>,
    dial: VecDeque<PeerId>,
}

impl Reconnector {
    /// A reconnector that has lost nobody.
    pub fn new(mut config: ReconnectConfig) -> Self {
        config.retry_max = config.retry_max.max(config.retry_initial);
        Reconnector {
            config,
            lost: HashMap::new(),
            dial: VecDeque::new(),
        }
    }

    /// The last connection to market peer `peer` closed at `now`: redial it
    /// after the first backoff. A peer lost already keeps its schedule.
    pub fn handle_lost(&mut self, peer: PeerId, now: Instant) {
        if self.lost.contains_key(&peer) {
            return;
        }
        if self.lost.len() >= self.config.max_peers
            && let Some(oldest) = self
                .lost
                .iter()
                .min_by_key(|(p, l)| (l.since, **p))
                .map(|(p, _)| *p)
        {
            self.lost.remove(&oldest);
        }
        self.lost.insert(
            peer,
            Lost {
                since: now,
                next: now + self.config.retry_initial,
                backoff: self.config.retry_initial,
            },
        );
    }

    /// `peer` is connected again (whoever dialled): nothing to do for it.
    pub fn handle_connected(&mut self, peer: &PeerId) {
        self.lost.remove(peer);
    }

    /// `peer` said goodbye or was banned: it is not redialled.
    pub fn forget(&mut self, peer: &PeerId) {
        self.lost.remove(peer);
    }

    /// The node's own reachability changed (a relay reservation re-made, a
    /// new address): a path to lost peers may exist again, so every lost
    /// peer is dialled at once, and its back-off starts over. The other
    /// side may not have re-made its own reservation yet when this dial
    /// goes out (after a relay restart both re-reserve within milliseconds
    /// of each other); with the back-off it had built up while the relay
    /// was down, the next try came up to 8 s later (the NAT lab's order
    /// made during the outage took 10 to 12 s to arrive).
    pub fn handle_network_changed(&mut self, now: Instant) {
        for lost in self.lost.values_mut() {
            lost.next = lost.next.min(now);
            lost.backoff = self.config.retry_initial;
        }
    }

    /// When [`Reconnector::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lost.values().map(|l| l.next).min()
    }

    /// Queues the redials that are due and forgets peers lost too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        let give_up = self.config.give_up_after;
        self.lost.retain(|peer, l| {
            let keep = now.saturating_duration_since(l.since) < give_up;
            if !keep {
                tracing::debug!(%peer, "lost peer not reached again; giving up");
            }
            keep
        });
        let mut due: Vec<PeerId> = self
            .lost
            .iter()
            .filter(|(_, l)| l.next <= now)
            .map(|(p, _)| *p)
            .collect();
        due.sort();
        for peer in due {
            if let Some(l) = self.lost.get_mut(&peer) {
                l.next = now + l.backoff;
                l.backoff = (l.backoff * 2).min(self.config.retry_max);
            }
            self.dial.push_back(peer);
        }
    }

    /// The next peer to dial now.
    pub fn poll_dial(&mut self) -> Option<PeerId> {
        self.dial.pop_front()
    }

    /// Whether `peer` is being redialled.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.lost.contains_key(peer)
    }

    /// Peers being redialled.
    pub fn len(&self) -> usize {
        self.lost.len()
    }

    /// Whether nobody is being redialled.
    pub fn is_empty(&self) -> bool {
        self.lost.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dials(r: &mut Reconnector) -> Vec<PeerId> {
        std::iter::from_fn(|| r.poll_dial()).collect()
    }

    #[test]
    fn a_lost_peer_is_redialled_with_a_doubling_backoff_until_it_is_back() {
        let t0 = Instant::now();
        let mut r = Reconnector::new(ReconnectConfig {
            retry_max: Duration::from_secs(4),
            ..Default::default()
        });
        let peer = PeerId::random();
        r.handle_lost(peer, t0);
        let mut at = Vec::new();
        let mut now = t0;
        for _ in 0..5 {
            let next = r.poll_timeout().unwrap();
            r.handle_timeout(next - Duration::from_millis(1));
            assert!(dials(&mut r).is_empty(), "not before it is due");
            r.handle_timeout(next);
            assert_eq!(dials(&mut r), [peer]);
            at.push((next - now).as_secs());
            now = next;
        }
        assert_eq!(at, [1, 1, 2, 4, 4]);
        r.handle_connected(&peer);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn a_change_of_reachability_redials_everyone_at_once() {
        let t0 = Instant::now();
        let mut r = Reconnector::new(ReconnectConfig::default());
        let (a, b) = (PeerId::random(), PeerId::random());
        r.handle_lost(a, t0);
        r.handle_lost(b, t0);
        let now = t0 + Duration::from_millis(100);
        r.handle_network_changed(now);
        assert_eq!(r.poll_timeout(), Some(now));
        r.handle_timeout(now);
        let mut dialled = dials(&mut r);
        dialled.sort();
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(dialled, both);
        // Then again after the first back-off, not the one built up before.
        assert_eq!(r.poll_timeout(), Some(now + Duration::from_secs(1)));
    }

    #[test]
    fn a_change_of_reachability_starts_the_back_off_over() {
        let t0 = Instant::now();
        let mut r = Reconnector::new(ReconnectConfig::default());
        let peer = PeerId::random();
        r.handle_lost(peer, t0);
        let mut now = t0;
        for _ in 0..4 {
            now = r.poll_timeout().unwrap();
            r.handle_timeout(now);
            dials(&mut r);
        }
        assert!(r.poll_timeout().unwrap() - now >= Duration::from_secs(8));
        r.handle_network_changed(now);
        r.handle_timeout(now);
        assert_eq!(dials(&mut r), [peer]);
        assert_eq!(r.poll_timeout(), Some(now + Duration::from_secs(1)));
    }

    #[test]
    fn goodbyes_bans_and_old_losses_are_not_redialled() {
        let t0 = Instant::now();
        let mut r = Reconnector::new(ReconnectConfig {
            max_peers: 2,
            ..Default::default()
        });
        let (left, old, newer, newest) = (
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
            PeerId::random(),
        );
        r.handle_lost(left, t0);
        r.forget(&left);
        r.handle_lost(old, t0);
        r.handle_lost(newer, t0 + Duration::from_secs(1));
        r.handle_lost(newest, t0 + Duration::from_secs(2));
        assert_eq!(r.len(), 2, "the longest lost made room");
        r.handle_timeout(t0 + Duration::from_secs(700));
        assert!(r.is_empty(), "given up after ten minutes");
        assert!(dials(&mut r).is_empty());
    }
}
