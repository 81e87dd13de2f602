//! Partitions heal: market peers lost without a goodbye are redialled (see
//! `darkswap_core::reconnect`), at the addresses their identify gave, and
//! reconciled by the usual sync once they are back on the topic.

use libp2p::{
    Multiaddr, PeerId,
    swarm::dial_opts::{DialOpts, PeerCondition},
};
use web_time::Instant;

use crate::swarm_task::{SwarmTask, relays::is_loopback};

/// Addresses remembered per peer.
const MAX_ADDRS: usize = 8;

impl SwarmTask {
    /// Identify told `peer`'s listen addresses: where to redial it if it is
    /// lost (a remote peer's loopback addresses are left out).
    pub(super) fn remember_addrs(&mut self, peer: PeerId, listen_addrs: &[Multiaddr]) {
        let on_loopback = self.reached_over_loopback(&peer);
        let addrs: Vec<Multiaddr> = listen_addrs
            .iter()
            .filter(|a| on_loopback || !is_loopback(a))
            .take(MAX_ADDRS)
            .cloned()
            .collect();
        self.peer_addrs.insert(peer, addrs);
    }

    /// The last connection to `peer` closed: a market peer with somewhere
    /// to redial it is redialled. Relays too (they are on the topic): the
    /// redial finds a relay back sooner than the pool's cool-down would,
    /// and the connection ends that cool-down
    /// (`RelayConnectionPool::handle_connected`).
    pub(super) fn peer_gone(&mut self, peer: PeerId) {
        let market = self.market_peers.remove(&peer);
        let reachable = self.peer_addrs.get(&peer).is_some_and(|a| !a.is_empty());
        if market && reachable {
            tracing::debug!(%peer, "market peer lost; will redial");
            self.reconnect.handle_lost(peer, Instant::now());
        } else {
            self.peer_addrs.remove(&peer);
        }
    }

    /// `peer` left on purpose (its `Disconnect`) or was banned: not
    /// redialled.
    pub(super) fn peer_left(&mut self, peer: &PeerId) {
        self.market_peers.remove(peer);
        self.reconnect.forget(peer);
    }

    /// Dials the lost peers that are due.
    pub(super) fn redial(&mut self) {
        while let Some(peer) = self.reconnect.poll_dial() {
            let addrs = self.peer_addrs.get(&peer).cloned().unwrap_or_default();
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .extend_addresses_through_behaviour()
                // Not `DisconnectedAndNotDialing`: an earlier attempt may
                // hang for the whole 10 s dial timeout on an address a NAT
                // drops, and must not hold back this one, due because a
                // path (a relay reservation) came back. The back-off
                // bounds how many run at once.
                .condition(PeerCondition::Disconnected)
                .build();
            if let Err(error) = self.dial(opts) {
                tracing::debug!(%peer, %error, "redial not started");
            }
        }
    }

    /// Drops remembered addresses of peers neither connected nor redialled.
    pub(super) fn prune_peer_addrs(&mut self) {
        let connections = &self.connections;
        let reconnect = &self.reconnect;
        self.peer_addrs
            .retain(|p, _| connections.contains_key(p) || reconnect.contains(p));
    }
}
