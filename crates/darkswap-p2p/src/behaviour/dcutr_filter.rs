//! DCUtR, with one hole-punch attempt per peer pair.
//!
//! `dcutr::Behaviour` starts an attempt on every relayed connection it
//! accepted: the listener side of a relayed connection sends `Connect` from
//! the handler built in `handle_established_inbound_connection`, the dialer
//! side only answers. In the NAT lab two nodes often held several relayed
//! connections to each other (through one relay or several, both
//! directions), and each of them started a hole punch; on TCP the extra
//! attempts report `HolePunchFailed` even when the link is already direct,
//! and they spend the ports a punch needs.
//!
//! This wrapper gives an inbound relayed connection a dummy handler (no
//! attempt) when [`PunchGate`] says another attempt covers the peer, and
//! otherwise delegates everything to the inner behaviour. Its events stay
//! `dcutr::Event`.
//!
//! # What the inner behaviour does with a connection it built no handler for
//!
//! Read in libp2p-dcutr 0.15 (`src/behaviour.rs`), the version libp2p 0.57
//! uses:
//! - `on_swarm_event` ignores `ConnectionEstablished` altogether;
//! - `ConnectionClosed` only touches `direct_connections`, and only for a
//!   connection that is not relayed; it `expect`s that connection to have
//!   been recorded by `handle_established_*`. Relayed connections are
//!   ignored there, whatever handler they had;
//! - `DialFailure` only concerns dials it started itself for an attempt
//!   (`direct_to_relayed_connections`), which a connection without its
//!   handler never asks for.
//!
//! So forwarding every swarm event, a suppressed connection's included, is
//! harmless, and the wrapper forwards all of them. What must not happen is
//! a *direct* connection kept from the inner behaviour: its close would
//! trip that `expect`. Direct connections are therefore always delegated,
//! and "relayed" is decided exactly as the inner decides it (the local
//! address of an inbound connection, the dialled address of an outbound
//! one, i.e. `ConnectedPoint::is_relayed`); the remote address of an
//! inbound relayed connection is just `/p2p/<peer>` and holds no
//! `/p2p-circuit`.

use std::{
    collections::{HashMap, HashSet},
    task::{Context, Poll},
};

use either::Either;
use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    dcutr,
    multiaddr::Protocol,
    swarm::{
        ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure,
        NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
        behaviour::ConnectionEstablished, dummy,
    },
};

/// Whether an address goes through a relay (`/p2p-circuit`).
fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// What a connection is, as far as hole punching goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// Not through a relay: nothing to punch, and proof the link is direct.
    Direct,
    /// A relayed connection the remote dialled: our side would start the
    /// attempt.
    InboundRelayed,
    /// A relayed connection we dialled: our side only answers an attempt.
    OutboundRelayed,
}

/// What to do with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Give it the inner behaviour's handler.
    Delegate,
    /// Give it no DCUtR handler: no attempt starts on it.
    Skip(Skip),
}

/// Why an inbound relayed connection starts no attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// A direct connection to the peer is open: the punch would only fail.
    DirectConnection,
    /// Another inbound relayed connection to the peer holds an attempt.
    AttemptUnderway,
    /// We also dialled the peer through a relay and our id is the greater:
    /// the peer starts the attempt on its inbound side, we answer on our
    /// outbound one.
    RemoteInitiates,
}

/// The connections of one peer that matter to hole punching.
#[derive(Debug, Default)]
struct PeerLinks {
    direct: HashSet<ConnectionId>,
    /// Inbound relayed connections given the inner handler, hence an attempt.
    inbound_with_attempt: HashSet<ConnectionId>,
    /// Inbound relayed connections given a dummy handler.
    inbound_without_attempt: HashSet<ConnectionId>,
    outbound_relayed: HashSet<ConnectionId>,
}

impl PeerLinks {
    fn remove(&mut self, connection: ConnectionId) {
        self.direct.remove(&connection);
        self.inbound_with_attempt.remove(&connection);
        self.inbound_without_attempt.remove(&connection);
        self.outbound_relayed.remove(&connection);
    }

    fn is_empty(&self) -> bool {
        self.direct.is_empty()
            && self.inbound_with_attempt.is_empty()
            && self.inbound_without_attempt.is_empty()
            && self.outbound_relayed.is_empty()
    }
}

/// Decides which relayed connections start a hole punch: at most one
/// attempt per peer pair, and none over a direct link. Sans-IO: fed the
/// swarm's connection events, asked when a connection is established.
///
/// Memory is bounded by the live connections: a peer's entry goes with
/// its last connection.
#[derive(Debug)]
pub(crate) struct PunchGate {
    local: PeerId,
    peers: HashMap<PeerId, PeerLinks>,
    /// Verdicts on inbound relayed connections between
    /// `handle_established_inbound_connection` and the swarm's
    /// `ConnectionEstablished` (or `ListenFailure`, when a later behaviour
    /// denies the connection). The swarm reports one right after the other,
    /// so this holds at most one entry in practice.
    decided: HashMap<ConnectionId, bool>,
}

impl PunchGate {
    /// A gate for the node `local`.
    pub(crate) fn new(local: PeerId) -> Self {
        Self {
            local,
            peers: HashMap::new(),
            decided: HashMap::new(),
        }
    }

    /// Whether a connection being established gets the inner handler.
    ///
    /// Only an inbound relayed connection is ever skipped: the outbound
    /// side only answers, and skipping it would leave the other side's
    /// attempt without a partner; a direct connection must reach the inner
    /// behaviour, which tracks it.
    pub(crate) fn decide(&mut self, peer: PeerId, connection: ConnectionId, link: Link) -> Verdict {
        if link != Link::InboundRelayed {
            return Verdict::Delegate;
        }
        let verdict = match self.peers.get(&peer) {
            Some(links) if !links.direct.is_empty() => Verdict::Skip(Skip::DirectConnection),
            Some(links) if !links.inbound_with_attempt.is_empty() => {
                Verdict::Skip(Skip::AttemptUnderway)
            }
            // Both sides see an inbound and an outbound relayed connection;
            // the lower id starts the attempt, so exactly one side does.
            Some(links) if !links.outbound_relayed.is_empty() && self.local > peer => {
                Verdict::Skip(Skip::RemoteInitiates)
            }
            _ => Verdict::Delegate,
        };
        self.decided
            .insert(connection, verdict == Verdict::Delegate);
        verdict
    }

    /// The swarm established `connection` to `peer`.
    pub(crate) fn on_established(&mut self, peer: PeerId, connection: ConnectionId, link: Link) {
        let links = self.peers.entry(peer).or_default();
        match link {
            Link::Direct => {
                links.direct.insert(connection);
            }
            Link::OutboundRelayed => {
                links.outbound_relayed.insert(connection);
            }
            Link::InboundRelayed => {
                // Always decided first: the swarm asks for the handler
                // before it reports the connection.
                if self.decided.remove(&connection).unwrap_or(false) {
                    links.inbound_with_attempt.insert(connection);
                } else {
                    links.inbound_without_attempt.insert(connection);
                }
            }
        }
    }

    /// A connection was denied after [`PunchGate::decide`]: it never
    /// becomes established.
    pub(crate) fn on_denied(&mut self, connection: ConnectionId) {
        self.decided.remove(&connection);
    }

    /// The swarm closed `connection` to `peer`.
    pub(crate) fn on_closed(&mut self, peer: PeerId, connection: ConnectionId) {
        self.decided.remove(&connection);
        if let Some(links) = self.peers.get_mut(&peer) {
            links.remove(connection);
            if links.is_empty() {
                self.peers.remove(&peer);
            }
        }
    }

    /// How many peers have state here (for tests of the memory bound).
    #[cfg(test)]
    fn tracked_peers(&self) -> usize {
        self.peers.len()
    }
}

/// See the module docs.
pub(crate) struct Dcutr {
    inner: dcutr::Behaviour,
    gate: PunchGate,
}

impl Dcutr {
    /// DCUtR for the node `local_peer_id`.
    pub(crate) fn new(local_peer_id: PeerId) -> Self {
        Self {
            inner: dcutr::Behaviour::new(local_peer_id),
            gate: PunchGate::new(local_peer_id),
        }
    }
}

impl NetworkBehaviour for Dcutr {
    type ConnectionHandler = Either<THandler<dcutr::Behaviour>, dummy::ConnectionHandler>;
    type ToSwarm = dcutr::Event;

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
        // The local address, as the inner behaviour and
        // `ConnectedPoint::is_relayed` decide it (see the module docs).
        let link = if is_relayed(local_addr) {
            Link::InboundRelayed
        } else {
            Link::Direct
        };
        match self.gate.decide(peer, connection_id, link) {
            Verdict::Delegate => self
                .inner
                .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
                .map(Either::Left),
            Verdict::Skip(reason) => {
                tracing::debug!(
                    %peer,
                    ?connection_id,
                    ?reason,
                    "relayed connection starts no hole punch"
                );
                Ok(Either::Right(dummy::ConnectionHandler))
            }
        }
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
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
        // Never skipped (the gate only skips inbound relayed connections):
        // this side only answers the other side's attempt.
        self.inner
            .handle_established_outbound_connection(
                connection_id,
                peer,
                addr,
                role_override,
                port_use,
            )
            .map(Either::Left)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            }) => {
                let link = match (endpoint.is_relayed(), endpoint.is_dialer()) {
                    (false, _) => Link::Direct,
                    (true, true) => Link::OutboundRelayed,
                    (true, false) => Link::InboundRelayed,
                };
                self.gate.on_established(peer_id, connection_id, link);
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                ..
            }) => self.gate.on_closed(peer_id, connection_id),
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.gate.on_denied(connection_id)
            }
            _ => {}
        }
        // Every event, a skipped connection's included: harmless to the
        // inner behaviour (see the module docs).
        self.inner.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Either::Left(event) => {
                self.inner
                    .on_connection_handler_event(peer_id, connection_id, event)
            }
            // The dummy handler emits nothing: its event type is empty.
            Either::Right(never) => match never {},
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        // The inner behaviour only notifies the handlers it built: a retried
        // `Connect` goes to the relayed connection whose handler asked for
        // the failed dial, never to a skipped one.
        self.inner.poll(cx).map(|event| event.map_in(Either::Left))
    }
}

#[cfg(test)]
mod tests;
