//! libp2p's circuit relay v2 hop, wrapped so that every event it reports
//! names the connection it is about.
//!
//! A reservation lives on one connection (a peer holds one per connection),
//! but `relay::Event` names only the peer: with two connections from one
//! peer, "`ReservationClosed`" cannot tell whether the closed one held a
//! reservation, and libp2p emits it for every closed connection, reserved or
//! not. Counting those events drove the reservations gauge below zero. This
//! wrapper forwards everything to `relay::Behaviour` unchanged and drains
//! what the relay queues right after each input, so each event is tagged
//! with the connection whose input caused it. [`Reservations`] then counts
//! reservations, not events.
//!
//! [`Reservations`]: super::reservations::Reservations

use std::{
    collections::VecDeque,
    task::{Context, Poll, Waker},
};

use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    relay,
    swarm::{
        ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm,
    },
};

/// A hop event and the connection it is about (`None` for events no
/// connection caused, such as the relay's advertisement status).
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) connection: Option<ConnectionId>,
    pub(crate) event: relay::Event,
}

/// `relay::Behaviour` whose events carry their connection.
pub(crate) struct Behaviour {
    inner: relay::Behaviour,
    queued: VecDeque<ToSwarm<Event, THandlerInEvent<relay::Behaviour>>>,
    waker: Option<Waker>,
}

impl Behaviour {
    pub(crate) fn new(inner: relay::Behaviour) -> Self {
        Behaviour {
            inner,
            queued: VecDeque::new(),
            waker: None,
        }
    }

    /// Takes everything the relay queued in answer to the input from
    /// `connection` that was just handed to it.
    ///
    /// `relay::Behaviour::poll` only pops its queue (it has no timers of its
    /// own), so polling it here, right after the input, attributes each
    /// action to the input that caused it whatever the swarm's scheduling.
    /// The swarm's waker is lent to it, so a wake-up it stores is not lost.
    fn drain(&mut self, connection: Option<ConnectionId>) {
        let waker = self.waker.clone().unwrap_or_else(|| Waker::noop().clone());
        let mut cx = Context::from_waker(&waker);
        let before = self.queued.len();
        while let Poll::Ready(action) = self.inner.poll(&mut cx) {
            self.queued
                .push_back(action.map_out(|event| Event { connection, event }));
        }
        if self.queued.len() > before
            && let Some(waker) = &self.waker
        {
            waker.wake_by_ref();
        }
    }
}

/// The connection a swarm event is about, if any.
fn connection_of(event: &FromSwarm) -> Option<ConnectionId> {
    match event {
        FromSwarm::ConnectionEstablished(e) => Some(e.connection_id),
        FromSwarm::ConnectionClosed(e) => Some(e.connection_id),
        FromSwarm::AddressChange(e) => Some(e.connection_id),
        FromSwarm::DialFailure(e) => Some(e.connection_id),
        FromSwarm::ListenFailure(e) => Some(e.connection_id),
        _ => None,
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = THandler<relay::Behaviour>;
    type ToSwarm = Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let result =
            self.inner
                .handle_pending_inbound_connection(connection_id, local_addr, remote_addr);
        self.drain(Some(connection_id));
        result
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let result = self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        );
        self.drain(Some(connection_id));
        result
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let result = self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        );
        self.drain(Some(connection_id));
        result
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let result = self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        );
        self.drain(Some(connection_id));
        result
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        let connection = connection_of(&event);
        self.inner.on_swarm_event(event);
        self.drain(connection);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
        self.drain(Some(connection_id));
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.waker = Some(cx.waker().clone());
        }
        if let Some(action) = self.queued.pop_front() {
            return Poll::Ready(action);
        }
        // Anything queued outside an input above (none today) has no
        // connection to name.
        self.inner.poll(cx).map(|action| {
            action.map_out(|event| Event {
                connection: None,
                event,
            })
        })
    }
}
