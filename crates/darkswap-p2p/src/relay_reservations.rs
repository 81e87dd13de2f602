//! Keeps circuit relay v2 reservations alive.
//!
//! libp2p's relay client renews a reservation while its connection to the
//! relay lives, but when that connection drops (the relay restarts, the
//! network blips) the circuit listener closes and nothing re-makes it. This
//! state machine does: every configured relay is either being listened on or
//! waiting for a retry with exponential backoff. Sans-IO: the swarm task feeds
//! it events and the current time, and performs the listens it asks for.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use libp2p::{Multiaddr, PeerId, core::transport::ListenerId};

use crate::auth::AuthorizationLevel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No listener; try again at this instant.
    Waiting { retry_at: Instant },
    /// Authenticating the relay before asking for a reservation.
    Authenticating,
    /// A `/p2p-circuit` listener exists; no reservation confirmed yet.
    Listening { listener: ListenerId },
    /// The relay accepted the reservation.
    Reserved { listener: ListenerId },
}

#[derive(Debug)]
struct Entry {
    circuit_addr: Multiaddr,
    state: State,
    backoff: Duration,
    auth: RelayAuthStatus,
}

/// Where a relay stands with `require_relay_auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayAuthStatus {
    /// The node does not require relays to authenticate.
    NotRequired,
    /// Not authenticated yet, or authenticating now.
    Pending,
    /// Authenticated at this level; reservations may be made.
    Authenticated(AuthorizationLevel),
    /// The last attempt failed for this reason; no reservation is asked
    /// for, and the attempt is retried with backoff.
    Refused(String),
}

/// Reservation state of one relay, for status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayStatus {
    /// The relay.
    pub relay_peer_id: PeerId,
    /// The circuit address listened on through it.
    pub circuit_addr: Multiaddr,
    /// Whether a reservation is currently held.
    pub reserved: bool,
    /// Whether the relay authenticated (with `require_relay_auth`).
    pub auth: RelayAuthStatus,
}

#[derive(Debug)]
pub(crate) struct RelayReservations {
    relays: HashMap<PeerId, Entry>,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl RelayReservations {
    pub(crate) fn new(initial_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            relays: HashMap::new(),
            initial_backoff,
            max_backoff: max_backoff.max(initial_backoff),
        }
    }

    /// Adds a relay to keep a reservation on; the first attempt is due now.
    /// With `auth_required`, each attempt authenticates the relay first.
    pub(crate) fn add(
        &mut self,
        relay: PeerId,
        circuit_addr: Multiaddr,
        now: Instant,
        auth_required: bool,
    ) {
        self.relays.entry(relay).or_insert(Entry {
            circuit_addr,
            state: State::Waiting { retry_at: now },
            backoff: self.initial_backoff,
            auth: if auth_required {
                RelayAuthStatus::Pending
            } else {
                RelayAuthStatus::NotRequired
            },
        });
    }

    /// The relay is being authenticated: not due again until
    /// [`Self::auth_succeeded`] or [`Self::auth_failed`].
    pub(crate) fn authenticating(&mut self, relay: &PeerId) {
        if let Some(e) = self.relays.get_mut(relay) {
            e.state = State::Authenticating;
        }
    }

    /// The relay authenticated; returns its circuit address to listen on.
    pub(crate) fn auth_succeeded(
        &mut self,
        relay: &PeerId,
        level: AuthorizationLevel,
    ) -> Option<Multiaddr> {
        let e = self.relays.get_mut(relay)?;
        e.auth = RelayAuthStatus::Authenticated(level);
        Some(e.circuit_addr.clone())
    }

    /// The relay failed to authenticate: no reservation; retry with backoff.
    pub(crate) fn auth_failed(&mut self, relay: &PeerId, reason: String, now: Instant) {
        if let Some(e) = self.relays.get_mut(relay) {
            e.auth = RelayAuthStatus::Refused(reason);
            Self::schedule_retry(e, now, self.max_backoff);
        }
    }

    /// Relays whose next attempt is due: listen on each returned address and
    /// report the outcome with [`Self::listening`] or [`Self::listen_failed`].
    pub(crate) fn due(&self, now: Instant) -> Vec<(PeerId, Multiaddr)> {
        self.relays
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Waiting { retry_at } if retry_at <= now))
            .map(|(p, e)| (*p, e.circuit_addr.clone()))
            .collect()
    }

    pub(crate) fn listening(&mut self, relay: &PeerId, listener: ListenerId) {
        if let Some(e) = self.relays.get_mut(relay) {
            e.state = State::Listening { listener };
        }
    }

    pub(crate) fn listen_failed(&mut self, relay: &PeerId, now: Instant) {
        if let Some(e) = self.relays.get_mut(relay) {
            Self::schedule_retry(e, now, self.max_backoff);
        }
    }

    /// The relay accepted a reservation. Returns true if this is a new
    /// reservation rather than a renewal of the one already held.
    pub(crate) fn reserved(&mut self, relay: &PeerId) -> bool {
        let Some(e) = self.relays.get_mut(relay) else {
            return false;
        };
        match e.state {
            State::Listening { listener } => {
                e.state = State::Reserved { listener };
                e.backoff = self.initial_backoff;
                true
            }
            State::Reserved { .. } | State::Waiting { .. } | State::Authenticating => false,
        }
    }

    /// A listener closed. If it was a relay's circuit listener, the
    /// reservation is gone: schedule a retry and return the relay.
    pub(crate) fn listener_closed(
        &mut self,
        listener: ListenerId,
        now: Instant,
    ) -> Option<(PeerId, bool)> {
        let (peer, entry) = self.relays.iter_mut().find(|(_, e)| {
            matches!(e.state, State::Listening { listener: l } | State::Reserved { listener: l } if l == listener)
        })?;
        let was_reserved = matches!(entry.state, State::Reserved { .. });
        Self::schedule_retry(entry, now, self.max_backoff);
        Some((*peer, was_reserved))
    }

    fn schedule_retry(e: &mut Entry, now: Instant, max: Duration) {
        e.state = State::Waiting {
            retry_at: now + e.backoff,
        };
        e.backoff = (e.backoff * 2).min(max);
    }

    /// When the next retry is due, if any relay is waiting.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.relays
            .values()
            .filter_map(|e| match e.state {
                State::Waiting { retry_at } => Some(retry_at),
                _ => None,
            })
            .min()
    }

    pub(crate) fn is_relay(&self, peer: &PeerId) -> bool {
        self.relays.contains_key(peer)
    }

    pub(crate) fn status(&self) -> Vec<RelayStatus> {
        let mut out: Vec<_> = self
            .relays
            .iter()
            .map(|(p, e)| RelayStatus {
                relay_peer_id: *p,
                circuit_addr: e.circuit_addr.clone(),
                reserved: matches!(e.state, State::Reserved { .. }),
                auth: e.auth.clone(),
            })
            .collect();
        out.sort_by_key(|s| s.relay_peer_id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (RelayReservations, PeerId, Multiaddr, Instant) {
        let r = RelayReservations::new(Duration::from_secs(1), Duration::from_secs(8));
        let peer = PeerId::random();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/1/p2p/{peer}/p2p-circuit")
            .parse()
            .unwrap();
        (r, peer, addr, Instant::now())
    }

    #[test]
    fn first_attempt_is_immediate_then_reserved() {
        let (mut r, peer, addr, t0) = setup();
        r.add(peer, addr.clone(), t0, false);
        assert_eq!(r.due(t0), vec![(peer, addr)]);
        let l = ListenerId::next();
        r.listening(&peer, l);
        assert!(r.due(t0).is_empty());
        assert_eq!(r.next_deadline(), None);
        assert!(r.reserved(&peer), "first acceptance is new");
        assert!(!r.reserved(&peer), "second is a renewal");
        assert!(r.status()[0].reserved);
    }

    #[test]
    fn lost_reservations_are_retried_with_capped_backoff() {
        let (mut r, peer, addr, t0) = setup();
        r.add(peer, addr, t0, false);
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..6 {
            let l = ListenerId::next();
            r.listening(&peer, l);
            assert_eq!(r.listener_closed(l, now), Some((peer, false)));
            let next = r.next_deadline().unwrap();
            delays.push((next - now).as_secs());
            assert!(r.due(next - Duration::from_millis(1)).is_empty());
            assert_eq!(r.due(next).len(), 1);
            now = next;
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 8, 8]);

        // A success resets the backoff.
        let l = ListenerId::next();
        r.listening(&peer, l);
        assert!(r.reserved(&peer));
        assert_eq!(r.listener_closed(l, now), Some((peer, true)));
        assert_eq!(r.next_deadline().unwrap() - now, Duration::from_secs(1));
        assert!(!r.status()[0].reserved);
    }

    #[test]
    fn a_relay_that_fails_auth_is_not_listened_on_and_is_retried() {
        let (mut r, peer, addr, t0) = setup();
        r.add(peer, addr.clone(), t0, true);
        assert_eq!(r.status()[0].auth, RelayAuthStatus::Pending);
        assert_eq!(r.due(t0).len(), 1);
        r.authenticating(&peer);
        assert!(r.due(t0).is_empty(), "not due while authenticating");
        assert!(!r.reserved(&peer), "no reservation while authenticating");
        r.auth_failed(&peer, "bad signature".into(), t0);
        let status = &r.status()[0];
        assert_eq!(
            status.auth,
            RelayAuthStatus::Refused("bad signature".into())
        );
        assert!(!status.reserved);
        assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(1)));

        let later = t0 + Duration::from_secs(1);
        assert_eq!(r.due(later).len(), 1);
        r.authenticating(&peer);
        assert_eq!(
            r.auth_succeeded(&peer, AuthorizationLevel::Relay),
            Some(addr)
        );
        r.listening(&peer, ListenerId::next());
        assert!(r.reserved(&peer));
        let status = &r.status()[0];
        assert_eq!(
            status.auth,
            RelayAuthStatus::Authenticated(AuthorizationLevel::Relay)
        );
        assert!(status.reserved);
    }

    #[test]
    fn unrelated_listeners_are_ignored() {
        let (mut r, peer, addr, t0) = setup();
        r.add(peer, addr, t0, false);
        r.listening(&peer, ListenerId::next());
        assert_eq!(r.listener_closed(ListenerId::next(), t0), None);
        assert!(!r.reserved(&PeerId::random()));
        r.listen_failed(&peer, t0);
        assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(1)));
    }
}
