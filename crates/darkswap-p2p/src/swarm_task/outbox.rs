//! The swarm task's end of the event queue. The task never waits on it
//! (stalling the swarm would stall pings and gossip heartbeats for every
//! peer), so when the application reads too slowly something gives:
//! events that report what can be asked again (a book change, a relay
//! rank) are dropped and counted, while events that carry what the
//! application must keep (a fill of an own order, a trade's step, a ban)
//! wait in order for room.

use std::collections::VecDeque;

use tokio::sync::mpsc::{self, OwnedPermit, error::TrySendError};

use crate::NetworkEvent;

/// Most events held for room. Held events are a trade's steps, fills and
/// bans: a handful a second even on a busy node. Past this the application
/// has stopped reading, and they are dropped and counted like the rest.
const MAX_HELD: usize = 16_384;

/// Whether `event` must reach the application even when it reads slowly:
/// the application persists it or acts on it as it happens (a fill of an
/// own order, a trade's step, a ban), so a query made later is no
/// substitute.
fn must_deliver(event: &NetworkEvent) -> bool {
    matches!(
        event,
        NetworkEvent::OrderFilled { .. }
            | NetworkEvent::TradeUpdated { .. }
            | NetworkEvent::PeerBanned { .. }
            | NetworkEvent::PeerUnbanned { .. }
    )
}

/// The sending end of the event queue, with what waits for room.
#[derive(Debug)]
pub(super) struct Outbox {
    tx: mpsc::Sender<NetworkEvent>,
    /// Events dropped since the last [`NetworkEvent::EventsDropped`] sent.
    dropped: u64,
    /// Must-deliver events waiting for room, oldest first. While any wait,
    /// every later event waits behind them or is dropped, so the order of
    /// what is delivered is the order it happened in.
    held: VecDeque<NetworkEvent>,
}

impl Outbox {
    pub(super) fn new(tx: mpsc::Sender<NetworkEvent>) -> Self {
        Outbox {
            tx,
            dropped: 0,
            held: VecDeque::new(),
        }
    }

    /// Hands `event` to the application without waiting. The count of
    /// dropped events goes out first once there is room, then what is
    /// held.
    pub(super) fn emit(&mut self, event: NetworkEvent) {
        self.flush();
        if self.held.is_empty() && self.dropped == 0 {
            match self.tx.try_send(event) {
                Ok(()) | Err(TrySendError::Closed(_)) => return,
                Err(TrySendError::Full(event)) => return self.keep_or_drop(event),
            }
        }
        self.keep_or_drop(event);
    }

    /// Whether events wait for room (then [`Outbox::room`] is worth
    /// awaiting).
    pub(super) fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Resolves when the queue has room for one event; `None` when the
    /// application is gone.
    /// (Pending for ever while nothing is held.)
    pub(super) fn room(
        &self,
    ) -> impl std::future::Future<Output = Option<OwnedPermit<NetworkEvent>>> + 'static {
        let tx = self.is_holding().then(|| self.tx.clone());
        async move {
            match tx {
                Some(tx) => tx.reserve_owned().await.ok(),
                None => std::future::pending().await,
            }
        }
    }

    /// Sends the oldest waiting event into the room `permit` holds (or,
    /// with no permit, forgets every waiting event: nobody reads them),
    /// then as many more as fit.
    pub(super) fn send_held(&mut self, permit: Option<OwnedPermit<NetworkEvent>>) {
        let Some(permit) = permit else {
            self.held.clear();
            self.dropped = 0;
            return;
        };
        if self.dropped > 0 {
            permit.send(NetworkEvent::EventsDropped {
                count: self.dropped,
            });
            self.dropped = 0;
        } else if let Some(event) = self.held.pop_front() {
            permit.send(event);
        }
        self.flush();
    }

    /// Sends the dropped count and then held events while there is room.
    fn flush(&mut self) {
        if self.dropped > 0 {
            let count = self.dropped;
            match self.tx.try_send(NetworkEvent::EventsDropped { count }) {
                Ok(()) => self.dropped = 0,
                Err(TrySendError::Full(_)) => return,
                Err(TrySendError::Closed(_)) => {
                    self.dropped = 0;
                    self.held.clear();
                    return;
                }
            }
        }
        while let Some(event) = self.held.pop_front() {
            match self.tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.held.push_front(event);
                    return;
                }
                Err(TrySendError::Closed(_)) => {
                    self.held.clear();
                    return;
                }
            }
        }
    }

    fn keep_or_drop(&mut self, event: NetworkEvent) {
        if must_deliver(&event) && self.held.len() < MAX_HELD {
            self.held.push_back(event);
            return;
        }
        self.dropped += 1;
        if self.dropped == 1 || self.dropped.is_power_of_two() {
            tracing::warn!(
                dropped = self.dropped,
                held = self.held.len(),
                "event queue full; dropping events"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use libp2p::PeerId;

    use super::*;

    fn lossy() -> NetworkEvent {
        NetworkEvent::RoutingUpdated {
            peer_id: PeerId::random(),
        }
    }

    fn ban(peer_id: PeerId) -> NetworkEvent {
        NetworkEvent::PeerUnbanned { peer_id }
    }

    fn drain(rx: &mut mpsc::Receiver<NetworkEvent>) -> Vec<NetworkEvent> {
        let mut out = Vec::new();
        while let Ok(event) = rx.try_recv() {
            out.push(event);
        }
        out
    }

    #[test]
    fn with_room_every_event_goes_out_in_order() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut outbox = Outbox::new(tx);
        let peer = PeerId::random();
        let events = [lossy(), ban(peer), lossy()];
        for event in events.clone() {
            outbox.emit(event);
        }
        assert_eq!(drain(&mut rx), events);
        assert!(!outbox.is_holding());
    }

    #[test]
    fn a_full_queue_drops_what_can_be_asked_again_and_holds_the_rest_in_order() {
        let (tx, mut rx) = mpsc::channel(2);
        let mut outbox = Outbox::new(tx);
        let (p1, p2) = (PeerId::random(), PeerId::random());
        let first = [lossy(), lossy()];
        for event in first.clone() {
            outbox.emit(event);
        }
        // Full: these wait or go.
        outbox.emit(lossy());
        outbox.emit(ban(p1));
        outbox.emit(lossy());
        outbox.emit(ban(p2));
        assert!(outbox.is_holding());
        assert_eq!(drain(&mut rx), first);

        // Room again: the count first, then the held events, in order.
        outbox.emit(lossy());
        assert_eq!(
            drain(&mut rx),
            [NetworkEvent::EventsDropped { count: 2 }, ban(p1)]
        );
        // The lossy event emitted while two waited was dropped too.
        assert!(outbox.is_holding());
        outbox.flush();
        assert_eq!(
            drain(&mut rx),
            [NetworkEvent::EventsDropped { count: 1 }, ban(p2)]
        );
        assert!(!outbox.is_holding());
        let last = lossy();
        outbox.emit(last.clone());
        assert_eq!(drain(&mut rx), [last]);
    }

    #[tokio::test]
    async fn held_events_go_out_as_the_reader_makes_room() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut outbox = Outbox::new(tx);
        let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
        for peer in &peers {
            outbox.emit(ban(*peer));
        }
        let mut got = Vec::new();
        while outbox.is_holding() {
            let room = outbox.room();
            got.push(rx.recv().await.unwrap());
            let permit = room.await;
            outbox.send_held(permit);
        }
        got.extend(drain(&mut rx));
        assert_eq!(got, peers.iter().map(|p| ban(*p)).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn held_events_are_forgotten_when_nobody_reads() {
        let (tx, rx) = mpsc::channel(1);
        let mut outbox = Outbox::new(tx);
        outbox.emit(ban(PeerId::random()));
        outbox.emit(ban(PeerId::random()));
        assert!(outbox.is_holding());
        drop(rx);
        let permit = outbox.room().await;
        assert!(permit.is_none());
        outbox.send_held(permit);
        assert!(!outbox.is_holding());
    }
}
