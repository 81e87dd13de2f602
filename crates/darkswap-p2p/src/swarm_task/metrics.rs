//! What the swarm task records for the node's metrics: every dial and its
//! outcome (`p2p_connection_*`), which peers sent application traffic
//! lately (active against idle connections), and every event libp2p's own
//! metrics know (`libp2p_*`).

use libp2p::{
    PeerId, gossipsub,
    metrics::Recorder,
    request_response,
    swarm::{DialError, SwarmEvent, dial_opts::DialOpts},
};
use web_time::Instant;

use super::SwarmTask;
use crate::{behaviour::BehaviourEvent, metrics::ConnectionStats};

/// A connection is active while its peer sent application traffic within
/// this long.
const ACTIVE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

impl SwarmTask {
    /// Starts a dial and records it (the swarm reports `Dialing` only for
    /// the dials its behaviours start).
    pub(super) fn dial(&mut self, opts: impl Into<DialOpts>) -> Result<(), DialError> {
        let opts = opts.into();
        let id = opts.connection_id();
        self.swarm.dial(opts)?;
        self.p2p_metrics.record_connection_attempt();
        self.dials.insert(id, Instant::now());
        Ok(())
    }

    /// Records a swarm event: dials and their outcomes, and libp2p's own
    /// connection metrics.
    pub(super) fn record_swarm_event(&mut self, event: &SwarmEvent<BehaviourEvent>) {
        self.libp2p_metrics.record(event);
        match event {
            SwarmEvent::Dialing { connection_id, .. } => {
                self.p2p_metrics.record_connection_attempt();
                self.dials.insert(*connection_id, Instant::now());
            }
            SwarmEvent::ConnectionEstablished { connection_id, .. } => {
                if let Some(started) = self.dials.remove(connection_id) {
                    self.p2p_metrics
                        .record_connection_success(started.elapsed());
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, .. }
                if self.dials.remove(connection_id).is_some() =>
            {
                self.p2p_metrics.record_connection_failure();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.activity.remove(peer_id);
            }
            _ => {}
        }
    }

    /// Records a behaviour event: libp2p's protocol metrics, and the peer
    /// of application traffic.
    pub(super) fn record_behaviour_event(&mut self, event: &BehaviourEvent) {
        let m = &self.libp2p_metrics;
        let traffic_from = match event {
            BehaviourEvent::Gossipsub(e) => {
                m.record(e);
                match e {
                    gossipsub::Event::Message {
                        propagation_source, ..
                    } => Some(*propagation_source),
                    _ => None,
                }
            }
            BehaviourEvent::Identify(e) => {
                m.record(e);
                None
            }
            BehaviourEvent::Kad(e) => {
                m.record(e);
                None
            }
            BehaviourEvent::Ping(e) => {
                m.record(e);
                None
            }
            BehaviourEvent::Dcutr(e) => {
                m.record(e);
                None
            }
            BehaviourEvent::RelayServer(e) => {
                m.record(e);
                None
            }
            BehaviourEvent::Sync(request_response::Event::Message { peer, .. })
            | BehaviourEvent::Trade(request_response::Event::Message { peer, .. })
            | BehaviourEvent::Auth(request_response::Event::Message { peer, .. }) => Some(*peer),
            _ => None,
        };
        if let Some(peer) = traffic_from {
            self.activity.insert(peer, Instant::now());
        }
    }

    /// The node's libp2p connections and relays now; sets
    /// `p2p_relay_score` to the scores of the relays the pool knows.
    pub(super) fn refresh_metrics(&self) -> ConnectionStats {
        let counters = self.swarm.network_info().connection_counters().clone();
        let established = counters.num_established() as usize;
        let pending = counters.num_pending() as usize;
        let recent = |peer: &PeerId| {
            self.activity
                .get(peer)
                .is_some_and(|at| at.elapsed() < ACTIVE_WINDOW)
        };
        let active = self
            .connections
            .iter()
            .filter(|(peer, _)| recent(peer))
            .map(|(_, conns)| conns.len())
            .sum::<usize>()
            .min(established);
        let relays = self.relay_status();
        self.p2p_metrics
            .set_relay_scores(relays.iter().map(|r| (r.relay_peer_id, r.score)));
        let reserved = relays.iter().filter(|r| r.reserved).count();
        ConnectionStats::new(
            established + pending,
            active,
            established - active,
            reserved,
        )
    }
}
