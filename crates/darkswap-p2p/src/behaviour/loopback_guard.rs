//! No loopback address offered for a dial of a peer on another host.
//!
//! Identify remembers every peer's listen addresses, Kademlia keeps what
//! queries report, and they and other behaviours offer them for any later
//! dial of that peer, `127.0.0.1` included. For a peer on another host that address is this
//! host: in the NAT lab a daemon redialling its relay, or a market peer,
//! dialled itself there (the relay listens on the same port), and every
//! such attempt cost a handshake and a failed dial. This wrapper offers
//! loopback addresses only while this node has a connection over loopback
//! (to that peer, or to any: nodes that meet over loopback, as on a
//! developer's machine or in tests, find each other through one another
//! before they are connected); everything else is delegated.
//! It wraps the node's whole behaviour, so no behaviour can slip one in.
//! Addresses a caller names in its dial are its own choice and pass, and
//! a dial that names a loopback address says the peer is on this host, so
//! the peer's other loopback addresses are offered with it: a relay back
//! on another TCP port is then still reached on its QUIC address.

use std::{
    ops::{Deref, DerefMut},
    task::{Context, Poll},
};

use darkswap_core::relay_pool::is_loopback;
use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    swarm::{
        ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
        THandlerInEvent, THandlerOutEvent, ToSwarm, behaviour::ConnectionEstablished,
    },
};

/// See the module docs.
pub(crate) struct LoopbackGuard<B> {
    inner: B,
    /// Open connections over loopback.
    on_loopback: usize,
}

impl<B> LoopbackGuard<B> {
    pub(crate) fn new(inner: B) -> Self {
        LoopbackGuard {
            inner,
            on_loopback: 0,
        }
    }

    /// Whether `addr` may be offered for a dial: not a loopback address,
    /// or this node is connected to someone over loopback, or the dial
    /// itself names a loopback address (`named`).
    fn offered(&self, addr: &Multiaddr, named: &[Multiaddr]) -> bool {
        !is_loopback(addr) || self.on_loopback > 0 || named.iter().any(is_loopback)
    }

    fn track(&mut self, event: &FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished { endpoint, .. })
                if is_loopback(endpoint.get_remote_address()) =>
            {
                self.on_loopback += 1;
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { endpoint, .. })
                if is_loopback(endpoint.get_remote_address()) =>
            {
                self.on_loopback = self.on_loopback.saturating_sub(1);
            }
            _ => {}
        }
    }
}

impl<B> Deref for LoopbackGuard<B> {
    type Target = B;

    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B> DerefMut for LoopbackGuard<B> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for LoopbackGuard<B> {
    type ConnectionHandler = B::ConnectionHandler;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let mut offered = self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )?;
        let before = offered.len();
        offered.retain(|a| self.offered(a, addresses));
        if offered.len() < before {
            tracing::debug!(
                peer = ?maybe_peer,
                dropped = before - offered.len(),
                "loopback addresses of a peer on another host not offered"
            );
        }
        Ok(offered)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.track(&event);
        self.inner.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use libp2p::{
        core::{ConnectedPoint, transport::PortUse},
        swarm::dummy,
    };

    use super::*;

    fn dialer(remote: &str) -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: remote.parse().unwrap(),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        }
    }

    #[test]
    fn loopback_is_offered_only_while_something_is_reached_over_loopback() {
        let mut guard = LoopbackGuard::new(dummy::Behaviour);
        let (remote, local) = (PeerId::random(), PeerId::random());
        let lo: Multiaddr = "/ip4/127.0.0.1/udp/4001/quic-v1".parse().unwrap();
        let lan: Multiaddr = "/ip4/7.7.7.1/udp/4001/quic-v1".parse().unwrap();
        let over_lan = dialer("/ip4/7.7.7.1/tcp/4001");
        let over_lo = dialer("/ip4/127.0.0.1/tcp/4001");
        let established = |peer, id, endpoint| {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id: peer,
                connection_id: ConnectionId::new_unchecked(id),
                endpoint,
                failed_addresses: &[],
                other_established: 0,
            })
        };
        guard.on_swarm_event(established(remote, 1, &over_lan));
        assert!(!guard.offered(&lo, &[]), "only remote peers: no loopback");
        assert!(guard.offered(&lan, &[]));
        assert!(
            guard.offered(&lo, &["/ip4/127.0.0.1/tcp/4001".parse().unwrap()]),
            "a dial naming a loopback address: the peer is on this host"
        );
        assert!(!guard.offered(&lo, std::slice::from_ref(&lan)));
        guard.on_swarm_event(established(local, 2, &over_lo));
        assert!(guard.offered(&lo, &[]), "a peer on this host");
        // Once the loopback connection is gone, so is the exception.
        guard.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: local,
            connection_id: ConnectionId::new_unchecked(2),
            endpoint: &over_lo,
            cause: None,
            remaining_established: 0,
        }));
        assert!(!guard.offered(&lo, &[]));
    }
}
