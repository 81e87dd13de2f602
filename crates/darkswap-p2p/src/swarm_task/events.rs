//! Swarm events into service inputs and node events.

use darkswap_core::{
    GossipDropReason, NatStatus, NetworkEvent,
    auth::{AuthRequest, AuthResponse},
    gossip::{Acceptance, GossipMessage, RateDecision},
    orderbook::VerifiedItems,
    relay_pool::relay_of_circuit,
    reputation::{PenaltyReason, auth_penalty},
    sync::{SyncFailure, SyncRequest, SyncResponse},
};
use libp2p::{
    Multiaddr, PeerId, autonat, core::ConnectedPoint, dcutr, gossipsub, identify, kad, relay,
    request_response, swarm::SwarmEvent,
};
use web_time::Instant;

use crate::{
    behaviour::{BehaviourEvent, KAD_PROTOCOL},
    error::Error,
    swarm_task::{OpenConnection, PendingAuth, SwarmTask, commands::dial_error, now},
};

/// The relay a connection runs through, if it is a relayed one.
fn relay_of(endpoint: &ConnectedPoint) -> Option<PeerId> {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => relay_of_circuit(address),
        ConnectedPoint::Listener { local_addr, .. } => relay_of_circuit(local_addr),
    }
}

/// What to report of a hole-punch attempt, given whether a direct
/// connection to the peer stands and whether a success was reported for
/// it already: `None` when the attempt changes nothing the application
/// sees.
fn punch_report(
    result: Result<(), String>,
    direct: bool,
    reported: bool,
) -> Option<Result<(), String>> {
    match result {
        Ok(()) if reported => None,
        Err(_) if direct => None,
        other => Some(other),
    }
}

/// Our codec says `InvalidData` for an oversized, undecodable or
/// wrong-typed frame; closed streams and timeouts are not the peer's fault
/// for sure.
fn sync_failure(error: &std::io::Error) -> SyncFailure {
    if error.kind() == std::io::ErrorKind::InvalidData {
        SyncFailure::InvalidData
    } else {
        SyncFailure::Io
    }
}

impl SwarmTask {
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.record_swarm_event(&event);
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                tracing::info!(%address, "listening");
                if let Some(reply) = self.pending_listens.remove(&listener_id) {
                    let _ = reply.send(Ok(address.clone()));
                }
                self.emit(NetworkEvent::NewListenAddr { address });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.emit(NetworkEvent::ExpiredListenAddr { address });
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some(reply) = self.pending_listens.remove(&listener_id) {
                    let reason = match &reason {
                        Ok(()) => "listener closed".to_owned(),
                        Err(e) => e.to_string(),
                    };
                    let _ = reply.send(Err(Error::Listen {
                        addr: Multiaddr::empty(),
                        reason,
                    }));
                }
                tracing::debug!(?listener_id, ?reason, "listener closed");
                self.relays.handle_listener_closed(
                    listener_id,
                    reason.err().map(|e| e.to_string()),
                    Instant::now(),
                );
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                tracing::debug!(?listener_id, %error, "listener error");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                if num_established.get() == 1 {
                    self.reconnect.handle_connected(&peer_id);
                    self.relays.handle_connected(&peer_id, Instant::now());
                    if let Some(pool) = self.pool.as_mut() {
                        pool.handle_connected(&peer_id, Instant::now());
                    }
                    self.emit(NetworkEvent::PeerConnected(peer_id));
                }
                // Also on a second connection (a direct one after a hole
                // punch): a step in flight on the relayed one may hang
                // until its timeout while the circuit closes.
                self.on_trade_peer_connected(peer_id);
                let remote = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => address.clone(),
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
                };
                let relay = relay_of(&endpoint);
                self.connections
                    .entry(peer_id)
                    .or_default()
                    .push(OpenConnection {
                        id: connection_id,
                        remote,
                        relayed: relay.is_some(),
                        dialed: endpoint.is_dialer(),
                    });
                if let Some(relay) = relay {
                    self.emit(NetworkEvent::ConnectedThroughRelay {
                        relay_peer_id: relay,
                        dst_peer_id: peer_id,
                    });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
                if let Some(conns) = self.connections.get_mut(&peer_id) {
                    conns.retain(|c| c.id != connection_id);
                    if conns.iter().all(|c| c.relayed) {
                        // The direct link is gone: a new punch is news.
                        self.punched.remove(&peer_id);
                    }
                }
                if num_established == 0 {
                    self.connections.remove(&peer_id);
                    self.rtts.remove(&peer_id);
                    self.known_relays.remove(&peer_id);
                    self.peer_gone(peer_id);
                    self.sync.handle_disconnected(&peer_id);
                    self.emit(NetworkEvent::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                if let Some((target, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(dial_error(target, &error)));
                } else {
                    tracing::debug!(?peer_id, %error, "outgoing connection failed");
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        self.record_behaviour_event(&event);
        match event {
            BehaviourEvent::Gossipsub(event) => self.on_gossipsub(event),
            BehaviourEvent::Ping(libp2p::ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => {
                self.rtts.insert(peer, rtt);
                self.relay_rtt(&peer, rtt);
            }
            BehaviourEvent::Sync(event) => self.on_sync(event),
            BehaviourEvent::Trade(event) => self.on_trade(event),
            BehaviourEvent::Auth(event) => self.on_auth(event),
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            }) => self
                .relays
                .handle_reservation_accepted(relay_peer_id, renewal),
            BehaviourEvent::RelayClient(event) => tracing::debug!(?event, "relay client"),
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => self.on_hole_punch(
                remote_peer_id,
                result.map(|_| ()).map_err(|e| e.to_string()),
            ),
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if self.relay_discovery {
                    self.relay_identified(peer_id, &info);
                }
                self.remember_addrs(peer_id, &info.listen_addrs);
                // A remote peer's loopback addresses are this host: never
                // dialled (a relay listening on 0.0.0.0 lists 127.0.0.1,
                // and a daemon elsewhere once spent 31 s dialling itself).
                let on_loopback = self.reached_over_loopback(&peer_id);
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    if info.protocols.contains(&KAD_PROTOCOL) {
                        for addr in info.listen_addrs {
                            if on_loopback || !super::relays::is_loopback(&addr) {
                                kad.add_address(&peer_id, addr);
                            }
                        }
                    } else {
                        // A peer added before it was identified (a bootstrap
                        // peer, one found by mDNS) that turns out not to
                        // serve the DHT: Kademlia would keep it in its table
                        // (only marked disconnected) and hand it out as a
                        // closest peer, so others would dial a peer that
                        // cannot answer their queries.
                        kad.remove_peer(&peer_id);
                    }
                }
            }
            #[cfg(not(target_arch = "wasm32"))]
            BehaviourEvent::Mdns(libp2p::mdns::Event::Discovered(found)) => {
                use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
                for (peer, addr) in found {
                    if self.relay_discovery {
                        self.relay_hint(peer, darkswap_core::relay_discovery::RelaySource::Mdns);
                    }
                    if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                        kad.add_address(&peer, addr.clone());
                    }
                    let opts = DialOpts::peer_id(peer)
                        .addresses(vec![addr])
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    let _ = self.dial(opts);
                }
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            }) => {
                self.on_kad_query(id, result, step.last);
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. }) => {
                if !self.dht_seeded {
                    // The look-up and the announcement made at start had
                    // nobody to ask: make them now.
                    self.dht_seeded = true;
                    if let Some(pool) = self.pool.as_mut() {
                        pool.handle_dht_ready(Instant::now());
                    }
                    if self.hop {
                        self.provide_relay();
                    }
                }
                self.emit(NetworkEvent::RoutingUpdated { peer_id: peer });
            }
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { new, .. }) => {
                let status = match new {
                    autonat::NatStatus::Public(addr) => NatStatus::Public(addr),
                    autonat::NatStatus::Private => NatStatus::Private,
                    autonat::NatStatus::Unknown => NatStatus::Unknown,
                };
                self.relay_nat_status(&status);
                self.emit(NetworkEvent::NatStatusChanged { status });
            }
            _ => {}
        }
    }

    /// A DCUtR attempt's outcome, told as what happened to the link: with
    /// several relayed connections to one peer (both dialled at once, or a
    /// DHT walk and a user dial) each makes an attempt, and one may fail
    /// while another made the link direct. A failure is reported only when
    /// no direct connection stands, a success once per direct link.
    fn on_hole_punch(&mut self, peer: PeerId, result: Result<(), String>) {
        let direct = self
            .connections
            .get(&peer)
            .is_some_and(|conns| conns.iter().any(|c| !c.relayed));
        match punch_report(result, direct, self.punched.contains(&peer)) {
            Some(Ok(())) => {
                self.punched.insert(peer);
                self.emit(NetworkEvent::HolePunchSucceeded { peer_id: peer });
            }
            Some(Err(error)) => self.emit(NetworkEvent::HolePunchFailed {
                peer_id: peer,
                error,
            }),
            None => {
                tracing::debug!(%peer, direct, "hole punch outcome not reported: the link is direct already")
            }
        }
    }

    fn on_gossipsub(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let now = now();
                // The rate first: a flood costs a lookup, not a decode and
                // a signature check per message.
                if let RateDecision::Refuse { penalize } = self
                    .gossip_rate
                    .handle_message(propagation_source, now.instant)
                {
                    tracing::debug!(peer = %propagation_source, topic = %message.topic, "gossip over the peer's rate");
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            gossipsub::MessageAcceptance::Ignore,
                        );
                    if penalize {
                        self.penalize(propagation_source, PenaltyReason::RateLimit);
                    }
                    return;
                }
                let verdict = self.gossip.handle_message(
                    &mut self.book,
                    GossipMessage {
                        topic: message.topic.as_str(),
                        data: &message.data,
                        author: message.source,
                        forwarder: propagation_source,
                    },
                    now.unix_secs(),
                );
                let acceptance = match verdict.acceptance {
                    Acceptance::Accept => gossipsub::MessageAcceptance::Accept,
                    Acceptance::Reject => gossipsub::MessageAcceptance::Reject,
                    Acceptance::Ignore => gossipsub::MessageAcceptance::Ignore,
                };
                if acceptance != gossipsub::MessageAcceptance::Accept {
                    tracing::debug!(peer = %propagation_source, topic = %message.topic, ?acceptance, "gossip message refused");
                }
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                for event in verdict.events {
                    self.emit(event);
                }
                if let Some(reason) = verdict.penalty {
                    self.penalize(propagation_source, reason);
                }
                // A node that leaves waits for its peers to close: that is
                // how it knows its `Disconnect` was heard (already
                // forwarded above, on the other connections).
                if let Some(leaving) = verdict.departed {
                    self.peer_left(&leaving);
                    if self.swarm.is_connected(&leaving) {
                        let _ = self.swarm.disconnect_peer_id(leaving);
                    }
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic, .. } => {
                let topic = topic.into_string();
                if topic == darkswap_core::protocols::ORDERBOOK_TOPIC {
                    self.market_peers.insert(peer_id);
                }
                self.sync.handle_subscribed(&self.book, peer_id, &topic);
                self.publish_unsent(&topic);
                self.emit(NetworkEvent::PeerSubscribed { peer_id, topic });
            }
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                let messages = (failed_messages.priority + failed_messages.non_priority) as u64;
                tracing::debug!(peer = %peer_id, messages, "gossip dropped towards a slow peer");
                self.emit(NetworkEvent::GossipDropped {
                    peer: Some(peer_id),
                    messages,
                    reason: GossipDropReason::SlowPeer,
                });
            }
            _ => {}
        }
    }

    fn on_sync(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    // No answer to a request that breaks the protocol: the
                    // stream is dropped (the sync penalised the peer).
                    if let Some(answer) = self.sync.handle_request(&self.book, peer, request) {
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .sync
                            .send_response(channel, answer);
                    }
                }
                request_response::Message::Response {
                    response: SyncResponse::Items(items),
                    ..
                } => {
                    // Verification is the bulk of a join: off this task.
                    let verifying = crate::runtime::blocking(move || VerifiedItems::verify(items));
                    self.verifying
                        .push(Box::pin(async move { (peer, verifying.await) }));
                }
                request_response::Message::Response { response, .. } => {
                    self.sync.handle_response(
                        &mut self.book,
                        peer,
                        response,
                        &self.reputation.config().penalties,
                        now().unix_secs(),
                    );
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "orderbook sync failed");
                let failure = match &error {
                    request_response::OutboundFailure::Io(e) => sync_failure(e),
                    _ => SyncFailure::Io,
                };
                self.sync.handle_outbound_failure(peer, failure);
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "orderbook sync request failed");
                let failure = match &error {
                    request_response::InboundFailure::Io(e) => sync_failure(e),
                    _ => SyncFailure::Io,
                };
                self.sync.handle_inbound_failure(peer, failure);
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// A sync answer's items came back verified from the blocking pool.
    pub(super) fn on_verified(
        &mut self,
        peer: PeerId,
        verified: Result<VerifiedItems, crate::runtime::TaskFailed>,
    ) {
        match verified {
            Ok(items) => self.sync.handle_verified(
                &mut self.book,
                peer,
                items,
                &self.reputation.config().penalties,
                now().unix_secs(),
            ),
            // Only a bug panics in verification: end the reconciliation as
            // if the answer never came (anti-entropy tries again later).
            Err(error) => {
                tracing::error!(%peer, %error, "verifying a sync answer failed");
                self.sync.handle_outbound_failure(peer, SyncFailure::Io);
            }
        }
    }

    fn on_auth(&mut self, event: request_response::Event<AuthRequest, AuthResponse>) {
        let now = now();
        let (request_id, result) = match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let response = self.auth.answer(&request, peer, now.wall);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .auth
                    .send_response(channel, response);
                return;
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let result = self.auth.check_answer(peer, response, now.wall);
                if let Some(reason) = result.as_ref().err().and_then(auth_penalty) {
                    self.penalize(peer, reason);
                }
                (request_id, result)
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => (request_id, Err(crate::auth::outbound_failure(&error))),
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound auth request failed");
                return;
            }
            request_response::Event::ResponseSent { .. } => return,
        };
        match self.pending_auth.remove(&request_id) {
            Some(PendingAuth::Relay(relay)) => {
                self.relays.handle_auth_result(relay, result, now.instant)
            }
            Some(PendingAuth::Peer(reply)) => {
                let _ = reply.send(result);
            }
            None => {}
        }
    }

    fn on_kad_query(&mut self, id: kad::QueryId, result: kad::QueryResult, last: bool) {
        if let kad::QueryResult::GetProviders(result) = result {
            let ours = if last {
                self.relay_queries.remove(&id)
            } else {
                self.relay_queries.contains(&id)
            };
            if ours && let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = result {
                self.relay_providers(providers);
            }
            return;
        }
        let kad::QueryResult::GetClosestPeers(result) = result else {
            return;
        };
        let Some((target, _)) = self.pending_finds.get(&id) else {
            return;
        };
        let target = *target;
        let peers = match result {
            Ok(ok) => ok.peers,
            Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
        };
        let found = peers
            .into_iter()
            .find(|p| p.peer_id == target && !p.addrs.is_empty());
        if found.is_none() && !last {
            return;
        }
        let Some((_, reply)) = self.pending_finds.remove(&id) else {
            return;
        };
        match found {
            Some(info) => {
                let _ = reply.send(Ok(info.addrs));
                if let Some(mut q) = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .as_mut()
                    .and_then(|k| k.query_mut(&id))
                {
                    q.finish();
                }
            }
            None => {
                let _ = reply.send(Err(Error::PeerNotFound(target)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::punch_report;

    #[test]
    fn a_hole_punch_is_reported_as_what_happened_to_the_link() {
        let failed = || Err("no route".to_owned());
        // Relayed only: a failure is a failure, a success is news once.
        assert_eq!(punch_report(failed(), false, false), Some(failed()));
        assert_eq!(punch_report(Ok(()), true, false), Some(Ok(())));
        // Another attempt made it direct: this one failing changes nothing,
        // and a second success is not news.
        assert_eq!(punch_report(failed(), true, true), None);
        assert_eq!(punch_report(failed(), true, false), None);
        assert_eq!(punch_report(Ok(()), true, true), None);
    }
}
