//! Identify, minus the observed addresses nobody can dial.
//!
//! A peer that accepted our connection through a relay sees it come from
//! no address at all: the relayed connection's remote address on its side
//! is just `/p2p/<us>`. It reports that as what it observed, and identify
//! hands it to us as an external address candidate. DCUtR then offers it as a hole-punch
//! address, which can only fail, and AutoNAT may probe it. This wrapper
//! drops candidates with no transport (no IP or DNS part) before any other
//! behaviour sees them; everything else passes through untouched.

use std::task::{Context, Poll};

use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    identify,
    multiaddr::Protocol,
    swarm::{
        ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm,
    },
};

/// Whether an observed address names a place to dial: an IP or DNS part
/// first.
pub(crate) fn is_dialable_candidate(addr: &Multiaddr) -> bool {
    matches!(
        addr.iter().next(),
        Some(
            Protocol::Ip4(_)
                | Protocol::Ip6(_)
                | Protocol::Dns(_)
                | Protocol::Dns4(_)
                | Protocol::Dns6(_)
        )
    ) && !addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// See the module docs.
pub(crate) struct Identify(pub(crate) identify::Behaviour);

impl NetworkBehaviour for Identify {
    type ConnectionHandler = <identify::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = identify::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.0
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.0
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.0.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.0.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.0.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.0
            .on_connection_handler_event(peer_id, connection_id, event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        loop {
            match self.0.poll(cx) {
                Poll::Ready(ToSwarm::NewExternalAddrCandidate(addr))
                    if !is_dialable_candidate(&addr) =>
                {
                    tracing::debug!(%addr, "observed address dropped: nothing to dial");
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_candidates_with_a_transport_are_kept() {
        let me = PeerId::random();
        let dialable: Multiaddr = "/ip4/198.51.100.7/tcp/4001".parse().unwrap();
        assert!(is_dialable_candidate(&dialable));
        assert!(is_dialable_candidate(
            &"/dns4/relay.example/tcp/443/wss".parse().unwrap()
        ));
        assert!(!is_dialable_candidate(
            &Multiaddr::empty().with(Protocol::P2p(me))
        ));
        assert!(!is_dialable_candidate(
            &dialable.clone().with(Protocol::P2pCircuit)
        ));
        assert!(!is_dialable_candidate(&Multiaddr::empty()));
    }
}
