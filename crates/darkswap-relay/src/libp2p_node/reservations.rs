//! Which connections hold a reservation on the hop: the count behind
//! `darkswap_relay_reservations_active` and `/health`'s `reservations`.
//! Sans-IO: fed the hop's events with their connection ([`super::hop`]).

use std::collections::{HashMap, HashSet};

use libp2p::{PeerId, relay, swarm::ConnectionId};

/// Reservations held now, one per (peer, connection), as libp2p's relay
/// holds them. Counts reservations, not events: a renewal changes nothing,
/// and the close of a connection that held none (libp2p reports
/// `ReservationClosed` for those too) changes nothing.
#[derive(Debug, Default)]
pub(crate) struct Reservations {
    held: HashMap<PeerId, HashSet<ConnectionId>>,
    count: usize,
}

impl Reservations {
    /// Applies one hop event about `connection`; returns whether the count
    /// changed.
    pub(crate) fn handle_event(
        &mut self,
        connection: Option<ConnectionId>,
        event: &relay::Event,
    ) -> bool {
        let Some(connection) = connection else {
            return false;
        };
        match event {
            relay::Event::ReservationReqAccepted { src_peer_id, .. } => {
                // `renewed` is not trusted for the count: the set decides.
                let added = self
                    .held
                    .entry(*src_peer_id)
                    .or_default()
                    .insert(connection);
                self.count += usize::from(added);
                added
            }
            relay::Event::ReservationTimedOut { src_peer_id }
            | relay::Event::ReservationClosed { src_peer_id } => {
                self.remove(*src_peer_id, connection)
            }
            _ => false,
        }
    }

    fn remove(&mut self, peer: PeerId, connection: ConnectionId) -> bool {
        let Some(connections) = self.held.get_mut(&peer) else {
            return false;
        };
        let removed = connections.remove(&connection);
        if connections.is_empty() {
            self.held.remove(&peer);
        }
        self.count -= usize::from(removed);
        removed
    }

    /// Reservations held now, all peers together.
    pub(crate) fn held(&self) -> usize {
        self.count
    }

    /// Reservations `peer` holds now.
    #[cfg(test)]
    pub(crate) fn held_by(&self, peer: &PeerId) -> usize {
        self.held.get(peer).map_or(0, HashSet::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(peer: PeerId, renewed: bool) -> relay::Event {
        relay::Event::ReservationReqAccepted {
            src_peer_id: peer,
            renewed,
        }
    }

    #[test]
    fn reservations_on_several_connections_of_one_peer_each_count() {
        let mut r = Reservations::default();
        let peer = PeerId::random();
        let (c1, c2) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        assert!(r.handle_event(Some(c1), &accepted(peer, false)));
        assert!(r.handle_event(Some(c2), &accepted(peer, false)));
        assert_eq!((r.held(), r.held_by(&peer)), (2, 2));
    }

    #[test]
    fn a_renewal_is_not_a_new_reservation() {
        let mut r = Reservations::default();
        let peer = PeerId::random();
        let c = ConnectionId::new_unchecked(1);
        r.handle_event(Some(c), &accepted(peer, false));
        assert!(!r.handle_event(Some(c), &accepted(peer, true)));
        assert_eq!(r.held(), 1);
    }

    #[test]
    fn closing_a_connection_without_a_reservation_changes_nothing() {
        let mut r = Reservations::default();
        let (holder, other) = (PeerId::random(), PeerId::random());
        let (reserved, unreserved) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        r.handle_event(Some(reserved), &accepted(holder, false));
        // libp2p reports ReservationClosed for every closed connection.
        let closed = |peer| relay::Event::ReservationClosed { src_peer_id: peer };
        assert!(!r.handle_event(Some(unreserved), &closed(other)));
        assert!(!r.handle_event(Some(unreserved), &closed(holder)));
        assert_eq!(r.held(), 1);
        assert!(r.handle_event(Some(reserved), &closed(holder)));
        assert_eq!(r.held(), 0);
        assert!(!r.handle_event(Some(reserved), &closed(holder)));
        assert_eq!(r.held(), 0, "never below zero");
    }

    #[test]
    fn an_expired_reservation_is_gone_and_its_connection_may_reserve_again() {
        let mut r = Reservations::default();
        let peer = PeerId::random();
        let c = ConnectionId::new_unchecked(1);
        r.handle_event(Some(c), &accepted(peer, false));
        let timed_out = relay::Event::ReservationTimedOut { src_peer_id: peer };
        assert!(r.handle_event(Some(c), &timed_out));
        assert_eq!(r.held(), 0);
        // libp2p forgets the connection at expiry: its later close is not
        // reported, and a new reservation on it counts again.
        assert!(r.handle_event(Some(c), &accepted(peer, false)));
        assert_eq!(r.held(), 1);
    }

    #[test]
    fn events_without_a_connection_are_ignored() {
        let mut r = Reservations::default();
        assert!(!r.handle_event(None, &accepted(PeerId::random(), false)));
        assert_eq!(r.held(), 0);
    }
}
