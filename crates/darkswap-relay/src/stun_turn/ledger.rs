//! Who holds TURN allocations, sans IO: the limits `turn` (webrtc-rs) does
//! not have. The server's socket is watched: an Allocate request names its
//! peer (in the username), a success response to that client address
//! counts it, the server's close notice uncounts it.

use std::{collections::HashMap, net::SocketAddr};

/// Allocate requests remembered at most while their answer is due.
const MAX_PENDING: usize = 4096;

/// Whether an Allocate request may reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Admit,
    /// The peer holds `max_allocations_per_peer` (answer 486).
    PeerLimit,
    /// The relay holds `max_allocations` (answer 508).
    AllocationLimit,
}

/// Allocations by client address and by peer.
#[derive(Debug)]
pub(crate) struct Ledger {
    max_total: usize,
    max_per_peer: usize,
    /// Client address → peer of its last Allocate request not yet answered.
    pending: HashMap<SocketAddr, String>,
    /// Client address → peer of its allocation.
    active: HashMap<SocketAddr, String>,
    per_peer: HashMap<String, usize>,
}

impl Ledger {
    pub(crate) fn new(max_total: usize, max_per_peer: usize) -> Self {
        Ledger {
            max_total,
            max_per_peer,
            pending: HashMap::new(),
            active: HashMap::new(),
            per_peer: HashMap::new(),
        }
    }

    /// An authenticated Allocate request from `client` for `peer`.
    pub(crate) fn request(&mut self, client: SocketAddr, peer: &str) -> Admission {
        if self.active.contains_key(&client) {
            // A retransmission, or a second allocation on one 5-tuple: the
            // server answers it (437 or the same success).
            return Admission::Admit;
        }
        if self.per_peer.get(peer).copied().unwrap_or(0) >= self.max_per_peer {
            return Admission::PeerLimit;
        }
        if self.active.len() >= self.max_total {
            return Admission::AllocationLimit;
        }
        if self.pending.len() >= MAX_PENDING {
            // Answers that never came (the client went): start over.
            self.pending.clear();
        }
        self.pending.insert(client, peer.to_owned());
        Admission::Admit
    }

    /// The server granted `client` an allocation; `true` if it is new.
    pub(crate) fn allocated(&mut self, client: SocketAddr) -> bool {
        let Some(peer) = self.pending.remove(&client) else {
            return false;
        };
        if self.active.contains_key(&client) {
            return false;
        }
        *self.per_peer.entry(peer.clone()).or_default() += 1;
        self.active.insert(client, peer);
        true
    }

    /// The server refused `client`'s request.
    pub(crate) fn refused(&mut self, client: SocketAddr) {
        self.pending.remove(&client);
    }

    /// The allocation of `client` ended.
    pub(crate) fn closed(&mut self, client: SocketAddr) {
        if let Some(peer) = self.active.remove(&client)
            && let Some(n) = self.per_peer.get_mut(&peer)
        {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
    }

    /// Allocations held now.
    pub(crate) fn active(&self) -> usize {
        self.active.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn allocations_are_counted_per_peer_and_in_all() {
        let mut l = Ledger::new(3, 2);
        for port in [1, 2] {
            assert_eq!(l.request(addr(port), "alice"), Admission::Admit);
            assert!(l.allocated(addr(port)));
        }
        assert_eq!(l.request(addr(3), "alice"), Admission::PeerLimit);
        // A retransmission of a granted request is the server's to answer.
        assert_eq!(l.request(addr(1), "alice"), Admission::Admit);
        assert!(!l.allocated(addr(1)));
        assert_eq!(l.request(addr(4), "bob"), Admission::Admit);
        assert!(l.allocated(addr(4)));
        assert_eq!(l.request(addr(5), "carol"), Admission::AllocationLimit);
        assert_eq!(l.active(), 3);
        l.closed(addr(1));
        assert_eq!(l.request(addr(3), "alice"), Admission::Admit);
        assert!(l.allocated(addr(3)));
        // A refused request leaves nothing behind.
        l.closed(addr(4));
        assert_eq!(l.request(addr(6), "dave"), Admission::Admit);
        l.refused(addr(6));
        assert!(!l.allocated(addr(6)));
        assert_eq!(l.active(), 2);
    }
}
