//! Handle commands, by concern, into swarm actions and service calls.

use libp2p::{
    Multiaddr, gossipsub,
    multiaddr::Protocol,
    swarm::{DialError, dial_opts::DialOpts},
};

use crate::{
    command::{AuthCommand, Command, OrderbookCommand, ReputationCommand, SwarmCommand},
    error::Error,
    network::{ConnectionInfo, PeerInfo},
    swarm_task::{PendingAuth, SwarmTask, now},
};

impl SwarmTask {
    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::Swarm(c) => self.on_swarm_command(c),
            Command::Orderbook(c) => self.on_orderbook_command(c),
            Command::Auth(c) => self.on_auth_command(c),
            Command::Reputation(c) => self.on_reputation_command(c),
            Command::Trade(c) => self.on_trade_command(c),
            Command::Relay(c) => self.on_relay_command(c),
            Command::Shutdown { .. } => unreachable!("the run loop handles shutdown"),
        }
    }

    fn on_swarm_command(&mut self, command: SwarmCommand) {
        match command {
            SwarmCommand::Listen { addr, reply } => {
                match ensure_tcp_port_free(&addr).and_then(|()| {
                    self.swarm
                        .listen_on(addr.clone())
                        .map_err(|e| e.to_string())
                }) {
                    Ok(id) => {
                        self.pending_listens.insert(id, reply);
                    }
                    Err(reason) => {
                        let _ = reply.send(Err(Error::Listen { addr, reason }));
                    }
                }
            }
            SwarmCommand::Dial { addr, reply } => {
                if !self.relay_enabled && addr.iter().any(|p| p == Protocol::P2pCircuit) {
                    let _ = reply.send(Err(Error::Disabled("relay")));
                    return;
                }
                let opts = DialOpts::from(addr.clone());
                let id = opts.connection_id();
                match self.dial(opts) {
                    Ok(()) => {
                        self.pending_dials.insert(id, (addr.to_string(), reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(dial_error(addr.to_string(), &e)));
                    }
                }
            }
            SwarmCommand::Subscribe { topic } => self.subscribe(&topic),
            SwarmCommand::Unsubscribe { topic } => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .unsubscribe(&gossipsub::IdentTopic::new(topic));
            }
            SwarmCommand::Publish { topic, data, reply } => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(gossipsub::IdentTopic::new(topic), data)
                    .map(|_| ())
                    .map_err(|e| Error::Gossipsub(e.to_string()));
                let _ = reply.send(result);
            }
            SwarmCommand::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            SwarmCommand::Peers { reply } => {
                let mut peers: Vec<PeerInfo> = self
                    .connections
                    .iter()
                    .filter_map(|(peer, conns)| {
                        let shown = conns.iter().find(|c| !c.relayed).or(conns.first())?;
                        Some(PeerInfo {
                            peer_id: *peer,
                            address: shown.remote.clone(),
                            relayed: conns.iter().all(|c| c.relayed),
                            rtt: self.rtts.get(peer).copied(),
                            connections: conns
                                .iter()
                                .map(|c| ConnectionInfo {
                                    address: c.remote.clone(),
                                    relayed: c.relayed,
                                })
                                .collect(),
                        })
                    })
                    .collect();
                peers.sort_by_key(|p| p.peer_id);
                let _ = reply.send(peers);
            }
            SwarmCommand::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            SwarmCommand::Bandwidth { reply } => {
                let _ = reply.send(crate::bandwidth::totals(self.metrics.registry()));
            }
            SwarmCommand::ConnectionStats { reply } => {
                let _ = reply.send(self.refresh_metrics());
            }
            SwarmCommand::AddExternalAddress { addr, reply } => {
                self.swarm.add_external_address(addr);
                let _ = reply.send(());
            }
            SwarmCommand::FindPeer { peer, reply } => {
                match self.swarm.behaviour_mut().kad.as_mut() {
                    Some(kad) => {
                        let query = kad.get_closest_peers(peer);
                        self.pending_finds.insert(query, (peer, reply));
                    }
                    None => {
                        let _ = reply.send(Err(Error::Disabled("kademlia")));
                    }
                }
            }
        }
    }

    fn on_orderbook_command(&mut self, command: OrderbookCommand) {
        let now = now();
        match command {
            OrderbookCommand::Create { order, reply } => {
                let _ = reply.send(self.own_orders.create(&mut self.book, &order, now));
            }
            OrderbookCommand::Cancel { id, reply } => {
                let _ = reply.send(self.own_orders.cancel(&mut self.book, id, now));
            }
            OrderbookCommand::Update { id, changes, reply } => {
                let _ = reply.send(self.own_orders.update(&mut self.book, id, changes, now));
            }
            OrderbookCommand::Restore { orders, reply } => {
                let results = orders
                    .into_iter()
                    .map(|o| self.own_orders.restore(&mut self.book, o, now))
                    .collect();
                let _ = reply.send(results);
            }
            OrderbookCommand::Book { base, quote, reply } => {
                let _ = reply.send(self.book.book(base, quote));
            }
            OrderbookCommand::OwnOrders { reply } => {
                let _ = reply.send(self.own_orders.orders(&self.book));
            }
            OrderbookCommand::Export { reply } => {
                let _ = reply.send(self.book.snapshot(None, usize::MAX));
            }
            OrderbookCommand::Import { book, reply } => {
                let _ = reply.send(self.sync.import(&mut self.book, &book, now.unix_secs()));
            }
        }
    }

    fn on_auth_command(&mut self, command: AuthCommand) {
        let now = now().wall;
        match command {
            AuthCommand::GenerateRelayChallenge { relay, reply } => {
                let _ = reply.send(self.auth.generate_challenge(relay, now));
            }
            AuthCommand::VerifyRelayChallengeResponse {
                relay,
                response,
                reply,
            } => {
                let result = self
                    .auth
                    .verify_response(relay, &response, now)
                    .and_then(|token| self.relays.check_level(token.level).map(|_| token));
                let _ = reply.send(result);
            }
            AuthCommand::AuthenticateRelay {
                relay,
                token,
                reply,
            } => {
                let result = self
                    .auth
                    .authenticate(relay, &token, now)
                    .and_then(|level| self.relays.check_level(level));
                let _ = reply.send(result);
            }
            AuthCommand::AuthenticatePeer { peer, reply } => {
                match self.auth.authenticate_trusted(peer, now) {
                    Ok(Some(token)) => {
                        let _ = reply.send(Ok(token));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(None) => match self.auth.generate_challenge(peer, now) {
                        Ok(challenge) => {
                            let id = self.swarm.behaviour_mut().auth.send_request(
                                &peer,
                                darkswap_core::auth::AuthRequest::Challenge(challenge),
                            );
                            self.pending_auth.insert(id, PendingAuth::Peer(reply));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    },
                }
            }
            AuthCommand::PeerLevel { peer, reply } => {
                let _ = reply.send(self.auth.authorization_level(&peer, now));
            }
        }
    }

    fn on_reputation_command(&mut self, command: ReputationCommand) {
        let now = now().wall;
        match command {
            ReputationCommand::Report {
                peer,
                reason,
                reply,
            } => {
                let _ = reply.send(self.penalize(peer, reason));
            }
            ReputationCommand::Ban {
                peer,
                duration,
                reply,
            } => {
                let ban = self.reputation.ban(peer, duration, now);
                self.enforce_ban(&ban);
                let _ = reply.send(ban);
            }
            ReputationCommand::Unban { peer, reply } => {
                let was_banned = self.reputation.unban(&peer, now);
                // Also when the ban ran out but its timer has not fired yet.
                self.lift_ban(peer);
                let _ = reply.send(was_banned);
            }
            ReputationCommand::Banned { reply } => {
                let _ = reply.send(self.reputation.bans(now));
            }
            ReputationCommand::Peer { peer, reply } => {
                let _ = reply.send(self.reputation.reputation(&peer, now));
            }
            ReputationCommand::Import { bans, reply } => {
                let applied = self.reputation.import(bans, now);
                for ban in &applied {
                    self.swarm.behaviour_mut().blocked.block_peer(ban.peer_id);
                }
                let _ = reply.send(applied.len());
            }
        }
    }
}

/// libp2p-tcp listens with SO_REUSEPORT, so a second process can silently
/// share a port already in use. Binding a plain socket first (no
/// SO_REUSEPORT) fails if anything listens there, which turns that into the
/// error users expect.
fn ensure_tcp_port_free(addr: &Multiaddr) -> Result<(), String> {
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            Protocol::P2pCircuit => return Ok(()),
            _ => {}
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) if port != 0 => std::net::TcpListener::bind((ip, port))
            .map(drop)
            .map_err(|e| format!("{ip}:{port}: {e}")),
        _ => Ok(()),
    }
}

pub(super) fn dial_error(target: String, error: &DialError) -> Error {
    let reason = match error {
        // libp2p's text is just "Dial error"; the cause says which rule
        // refused it (e.g. "peer ... is in the block list").
        DialError::Denied { cause } => match std::error::Error::source(cause) {
            Some(rule) => format!("denied: {rule}"),
            None => format!("denied: {cause}"),
        },
        other => other.to_string(),
    };
    Error::Dial { target, reason }
}
