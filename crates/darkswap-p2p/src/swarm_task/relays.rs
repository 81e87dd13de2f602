//! The relay pool and the relay keeper in the swarm task. The pool decides
//! which relays to hold reservations on; the keeper makes each reservation
//! (authenticating the relay first when that is required) and says how it
//! fares, which the pool learns from. Discovery comes from identify (a peer
//! that speaks the hop protocol), mDNS and the DHT; ranking from ping round
//! trips and reservation outcomes; the number of relays from AutoNAT.

use std::collections::HashSet;

use darkswap_core::{
    NatStatus, NetworkEvent,
    protocols::RELAY_PROVIDER_KEY,
    relay_discovery::RelaySource,
    relay_keeper::{RelayKeeperOutput, RelayStatus},
    relay_pool::{RelayPoolEvent, RelayPoolOutput},
};
use libp2p::{
    Multiaddr, PeerId, identify, kad,
    multiaddr::Protocol,
    swarm::dial_opts::{DialOpts, PeerCondition},
};
use web_time::Instant;

use crate::{command::RelayCommand, swarm_task::SwarmTask};

/// Peers remembered as found by mDNS or the DHT until identify says whether
/// they are relays; beyond this many the hints start over.
const MAX_RELAY_HINTS: usize = 1024;

/// The DHT key relays provide.
pub(super) fn relay_provider_key() -> kad::RecordKey {
    kad::RecordKey::new(&RELAY_PROVIDER_KEY)
}

pub(super) use darkswap_core::relay_pool::is_loopback;

/// The addresses worth dialling a relay at, from what it listens on: no
/// circuit addresses (a relay is reached directly), and no loopback
/// addresses unless we reach it over loopback already (a remote relay's
/// `127.0.0.1` is this host).
pub(super) fn relay_addrs(listen_addrs: Vec<Multiaddr>, on_loopback: bool) -> Vec<Multiaddr> {
    listen_addrs
        .into_iter()
        .filter(|a| !a.iter().any(|p| p == Protocol::P2pCircuit))
        .filter(|a| on_loopback || !is_loopback(a))
        .map(|mut a| {
            if matches!(a.iter().last(), Some(Protocol::P2p(_))) {
                a.pop();
            }
            a
        })
        .collect()
}

impl SwarmTask {
    /// Does what the relay pool asks.
    pub(super) fn perform_pool_output(&mut self, output: RelayPoolOutput) {
        match output {
            RelayPoolOutput::Reserve { relay, addrs } => self.reserve_on(relay, addrs),
            RelayPoolOutput::Release { relay } => {
                tracing::debug!(%relay, "releasing relay reservation");
                if let Some(listener) = self.relays.remove(&relay) {
                    self.swarm.remove_listener(listener);
                }
            }
            RelayPoolOutput::QueryDht => {
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    let query = kad.get_providers(relay_provider_key());
                    self.relay_queries.insert(query);
                }
            }
            RelayPoolOutput::Event(event) => {
                let event = match event {
                    RelayPoolEvent::Discovered { peer_id, source } => {
                        NetworkEvent::RelayDiscovered {
                            relay_peer_id: peer_id,
                            source,
                        }
                    }
                    RelayPoolEvent::Forgotten { peer_id } => {
                        if let Some(listener) = self.relays.forget(&peer_id) {
                            self.swarm.remove_listener(listener);
                        }
                        NetworkEvent::RelayForgotten {
                            relay_peer_id: peer_id,
                        }
                    }
                    RelayPoolEvent::RankChanged {
                        peer_id,
                        previous,
                        rank,
                        score,
                    } => NetworkEvent::RelayRankChanged {
                        relay_peer_id: peer_id,
                        previous,
                        rank,
                        score,
                    },
                    RelayPoolEvent::Replaced { old, new } => {
                        NetworkEvent::RelayReplaced { old, new }
                    }
                    // The keeper reports reservations made and lost.
                    RelayPoolEvent::Reserved { .. } | RelayPoolEvent::Lost { .. } => return,
                };
                self.emit(event);
            }
        }
    }

    /// Hands a reservation to the keeper: at the address this node reaches
    /// the relay on now if it has one (known to work), else the best known.
    fn reserve_on(&mut self, relay: PeerId, addrs: Vec<Multiaddr>) {
        let connected = self
            .connections
            .get(&relay)
            .and_then(|conns| conns.iter().find(|c| c.dialed && !c.relayed))
            .map(|c| c.remote.clone());
        let Some(base) = connected.or_else(|| addrs.into_iter().next()) else {
            tracing::debug!(%relay, "no address to reserve on relay");
            let now = Instant::now();
            if let Some(pool) = self.pool.as_mut() {
                pool.handle_failed(relay, now);
            }
            return;
        };
        let mut base = base;
        if matches!(base.iter().last(), Some(Protocol::P2p(_))) {
            base.pop();
        }
        let addr = base.with(Protocol::P2p(relay));
        match self.relays.add(&addr, Instant::now()) {
            Ok(_) => self.relays.handle_timeout(&mut self.auth, super::now()),
            Err(e) => tracing::warn!(error = %e, "relay address refused"),
        }
    }

    /// Does what the keeper asks; its events also tell the pool how the
    /// reservations fare.
    pub(super) fn perform_relay_output(&mut self, output: RelayKeeperOutput) {
        match output {
            RelayKeeperOutput::Listen {
                relay,
                circuit_addr,
            } => match self.swarm.listen_on(circuit_addr) {
                Ok(listener) => self.relays.handle_listening(&relay, listener),
                Err(e) => {
                    tracing::warn!(%relay, error = %e, "cannot listen through relay");
                    self.relays
                        .handle_listen_failed(&relay, e.to_string(), Instant::now());
                }
            },
            RelayKeeperOutput::SendChallenge {
                relay,
                addresses,
                challenge,
            } => {
                let id = self.swarm.behaviour_mut().auth.send_request_with_addresses(
                    &relay,
                    darkswap_core::auth::AuthRequest::Challenge(challenge),
                    addresses,
                );
                self.pending_auth
                    .insert(id, super::PendingAuth::Relay(relay));
            }
            RelayKeeperOutput::Event(event) => {
                self.tell_pool(&event);
                self.emit(event);
            }
        }
    }

    fn tell_pool(&mut self, event: &NetworkEvent) {
        let now = Instant::now();
        if matches!(event, NetworkEvent::RelayReserved { .. }) {
            // Reachable again: peers lost meanwhile may be reached now.
            self.reconnect.handle_network_changed(now);
        }
        let Some(pool) = self.pool.as_mut() else {
            return;
        };
        match event {
            NetworkEvent::RelayReserved { relay_peer_id, .. } => {
                pool.handle_reserved(*relay_peer_id, now)
            }
            NetworkEvent::RelayReservationLost { relay_peer_id }
            | NetworkEvent::RelayReservationFailed { relay_peer_id, .. } => {
                pool.handle_failed(*relay_peer_id, now)
            }
            NetworkEvent::RelayAuthenticated { relay_peer_id, .. } => {
                pool.handle_auth(relay_peer_id, true, now)
            }
            NetworkEvent::RelayAuthFailed { relay_peer_id, .. } => {
                pool.handle_auth(relay_peer_id, false, now)
            }
            _ => {}
        }
    }

    /// A ping round trip: ranks the peer if it is a relay.
    pub(super) fn relay_rtt(&mut self, peer: &PeerId, rtt: std::time::Duration) {
        if let Some(pool) = self.pool.as_mut() {
            pool.handle_rtt(peer, rtt, Instant::now());
        }
    }

    /// AutoNAT's verdict: a reachable node needs fewer relays.
    pub(super) fn relay_nat_status(&mut self, status: &NatStatus) {
        if let Some(pool) = self.pool.as_mut() {
            pool.handle_nat_status(status, Instant::now());
        }
    }

    /// A peer found by mDNS or the DHT: a relay if identify says so once
    /// connected, and then counted as found that way.
    pub(super) fn relay_hint(&mut self, peer: PeerId, source: RelaySource) {
        if self.pool.is_none() {
            return;
        }
        if self.relay_hints.len() >= MAX_RELAY_HINTS {
            self.relay_hints.clear();
        }
        self.relay_hints.entry(peer).or_insert(source);
    }

    /// Identify from `peer`: if it speaks the hop protocol it is a relay,
    /// found through mDNS or the DHT if one of them named it first.
    pub(super) fn relay_identified(&mut self, peer: PeerId, info: &identify::Info) {
        // Not a relay (yet: a relay advertises hop once its address is
        // confirmed, and identify pushes the change): the hint stays.
        if !info.protocols.contains(&libp2p::relay::HOP_PROTOCOL_NAME) {
            return;
        }
        let addrs = relay_addrs(info.listen_addrs.clone(), self.reached_over_loopback(&peer));
        self.known_relays.insert(peer);
        let source = self
            .relay_hints
            .remove(&peer)
            .unwrap_or(RelaySource::Identify);
        if let Some(pool) = self.pool.as_mut() {
            pool.handle_discovered(peer, addrs, source, Instant::now());
        }
    }

    /// Whether `peer` is reached over loopback, directly or through a relay
    /// on this host (so its loopback addresses may be its own, not ours).
    pub(super) fn reached_over_loopback(&self, peer: &PeerId) -> bool {
        self.connections
            .get(peer)
            .is_some_and(|conns| conns.iter().any(|c| is_loopback(&c.remote)))
    }

    /// A step of a DHT look-up for relays: each provider is a relay. One
    /// already identified is known at once; another is dialled (while the
    /// query still holds its addresses) and identify confirms it.
    pub(super) fn relay_providers(&mut self, providers: HashSet<PeerId>) {
        let local = *self.swarm.local_peer_id();
        for peer in providers.into_iter().filter(|p| *p != local) {
            if self.known_relays.contains(&peer) {
                let listen = self.peer_addrs.get(&peer).cloned().unwrap_or_default();
                let addrs = relay_addrs(listen, self.reached_over_loopback(&peer));
                if let Some(pool) = self.pool.as_mut() {
                    pool.handle_discovered(peer, addrs, RelaySource::Dht, Instant::now());
                }
                continue;
            }
            self.relay_hint(peer, RelaySource::Dht);
            let opts = DialOpts::peer_id(peer)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(error) = self.dial(opts) {
                tracing::debug!(%peer, %error, "cannot dial a relay found in the DHT");
            }
        }
    }

    /// Announces this node as a relay in the DHT (with `relay.hop`).
    pub(super) fn provide_relay(&mut self) {
        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
            && let Err(error) = kad.start_providing(relay_provider_key())
        {
            tracing::warn!(%error, "cannot announce this relay in the DHT");
        }
    }

    /// Every relay known, with its reservation and rank.
    pub(super) fn relay_status(&self) -> Vec<RelayStatus> {
        let kept = self.relays.status();
        match self.pool.as_ref() {
            Some(pool) => pool.status(kept, self.relays.unasked_auth(), Instant::now()),
            None => kept,
        }
    }

    /// The addresses of `peer` in Kademlia's routing table.
    fn kad_addresses(&mut self, peer: &PeerId) -> Vec<Multiaddr> {
        let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() else {
            return Vec::new();
        };
        for bucket in kad.kbuckets() {
            for entry in bucket.iter() {
                if entry.node.key.preimage() == peer {
                    return entry.node.value.iter().cloned().collect();
                }
            }
        }
        Vec::new()
    }

    pub(super) fn on_relay_command(&mut self, command: RelayCommand) {
        let now = Instant::now();
        match command {
            RelayCommand::Status { reply } => {
                let _ = reply.send(self.relay_status());
            }
            RelayCommand::Stats { reply } => {
                let stats = self
                    .pool
                    .as_ref()
                    .map(|p| p.get_connection_stats(now))
                    .unwrap_or_default();
                let _ = reply.send(stats);
            }
            RelayCommand::ConnectToBest { reply } => {
                let _ = reply.send(
                    self.pool
                        .as_mut()
                        .and_then(|p| p.connect_to_best_relay(now)),
                );
            }
            RelayCommand::Check { reply } => {
                if let Some(pool) = self.pool.as_mut() {
                    pool.check_connections(now);
                }
                let _ = reply.send(());
            }
            RelayCommand::CircuitsOf { peer, found, reply } => {
                let mut addrs = self.kad_addresses(&peer);
                addrs.extend(found);
                addrs.dedup();
                let ranked = match self.pool.as_ref() {
                    Some(pool) => pool.rank_circuit_addrs(&addrs),
                    None => addrs
                        .into_iter()
                        .filter(|a| a.iter().any(|p| p == Protocol::P2pCircuit))
                        .collect(),
                };
                let _ = reply.send(ranked);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_addresses_drop_circuits_and_remote_loopback() {
        let addrs: Vec<Multiaddr> = [
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/10.0.0.1/tcp/4001",
            "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
            "/ip6/::1/udp/4001/quic-v1",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        assert_eq!(
            relay_addrs(addrs.clone(), false),
            vec!["/ip4/10.0.0.1/tcp/4001".parse::<Multiaddr>().unwrap()]
        );
        assert_eq!(relay_addrs(addrs, true).len(), 3);
    }
}
