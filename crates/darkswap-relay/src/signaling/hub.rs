//! The signaling hub as a sans-IO state machine: registered peers, routing,
//! and the life of relayed circuits up to the moment their two `/relay`
//! sockets are paired. It owns no socket and no clock: the server feeds it
//! connection events, frames and the time, and drains what it must send,
//! close and pair (`docs/signaling.md` is the contract it implements).

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use darkswap_proto::relay_auth::Role;
use darkswap_proto::signaling::{
    ClientToServer, ErrorCode, MAX_SESSION_LEN, NONCE_LEN, ServerToClient, close_code, encode_b64,
    verify_registration,
};
use libp2p::PeerId;
use rand::RngCore;

use crate::metrics::{SecurityMetrics, SignalingMetrics};

/// What a `/signaling` connection may do, from its token (or the anonymous
/// role without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Access {
    pub(crate) role: Role,
    /// The peer the token was issued to: only that peer may register here.
    pub(crate) subject: Option<PeerId>,
}

/// Identifies one WebSocket, on `/signaling` or `/relay`.
pub(crate) type ConnId = u64;

/// The hub's limits and timeouts.
#[derive(Debug, Clone)]
pub(crate) struct HubConfig {
    pub(crate) max_peers: usize,
    pub(crate) register_timeout: Duration,
    pub(crate) max_circuits: usize,
    pub(crate) max_circuits_per_peer: usize,
    pub(crate) accept_timeout: Duration,
    pub(crate) max_circuit_duration: Duration,
    /// Lowest role that may register.
    pub(crate) signaling_role: Role,
    /// Lowest role that may request or accept a circuit.
    pub(crate) circuit_role: Role,
}

/// What the server must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    /// Send this message on this socket.
    Send(ConnId, ServerToClient),
    /// Close this socket with this code and reason.
    Close(ConnId, u16, &'static str),
    /// Both ends of a circuit attached: forward binary frames between these
    /// two `/relay` sockets.
    Pair {
        circuit_id: String,
        ends: [(ConnId, PeerId); 2],
    },
    /// A circuit ended: close whichever of its `/relay` sockets attached.
    EndCircuit {
        circuit_id: String,
        relay_conns: Vec<ConnId>,
        reason: &'static str,
    },
}

#[derive(Debug)]
enum Conn {
    Signaling {
        nonce: [u8; NONCE_LEN],
        peer: Option<PeerId>,
        access: Access,
        /// Set once the hub asked for it to close: nothing more is routed there.
        closing: bool,
    },
    Relay {
        circuit: Option<String>,
    },
}

#[derive(Debug)]
enum CircuitState {
    /// Waiting for the target to accept.
    Pending,
    /// Accepted; waiting for both ends to attach.
    Ready {
        tokens: [String; 2],
        attached: [Option<ConnId>; 2],
    },
    /// Both ends attached; frames flow.
    Open { relay: [ConnId; 2] },
}

#[derive(Debug)]
struct Circuit {
    /// `[requester, target]`.
    peers: [PeerId; 2],
    state: CircuitState,
    deadline: Instant,
}

impl Circuit {
    fn side_of(&self, peer: &PeerId) -> Option<usize> {
        self.peers.iter().position(|p| p == peer)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Register(ConnId),
    Circuit(String),
}

/// See the module docs.
pub(crate) struct Hub {
    config: HubConfig,
    metrics: Arc<SignalingMetrics>,
    security: Arc<SecurityMetrics>,
    rng: Box<dyn RngCore + Send>,
    conns: HashMap<ConnId, Conn>,
    peers: HashMap<PeerId, ConnId>,
    circuits: HashMap<String, Circuit>,
    /// Deadlines, checked lazily: an entry whose subject moved on is skipped.
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    out: VecDeque<Output>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("conns", &self.conns.len())
            .field("peers", &self.peers.len())
            .field("circuits", &self.circuits.len())
            .finish_non_exhaustive()
    }
}

impl Hub {
    pub(crate) fn new(
        config: HubConfig,
        metrics: Arc<SignalingMetrics>,
        security: Arc<SecurityMetrics>,
        rng: Box<dyn RngCore + Send>,
    ) -> Self {
        Hub {
            config,
            metrics,
            security,
            rng,
            conns: HashMap::new(),
            peers: HashMap::new(),
            circuits: HashMap::new(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
        }
    }

    /// A `/signaling` socket opened: it gets a challenge and has until the
    /// registration timeout to answer it.
    pub(crate) fn open_signaling(&mut self, conn: ConnId, access: Access, now: Instant) {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut nonce);
        self.conns.insert(
            conn,
            Conn::Signaling {
                nonce,
                peer: None,
                access,
                closing: false,
            },
        );
        self.metrics.connections.inc();
        self.timers.push(Reverse((
            now + self.config.register_timeout,
            Timer::Register(conn),
        )));
        self.send(
            conn,
            ServerToClient::Challenge {
                nonce: encode_b64(&nonce),
            },
        );
    }

    /// A `/relay` socket opened; its first frame must be `attach`.
    pub(crate) fn open_relay(&mut self, conn: ConnId) {
        self.conns.insert(conn, Conn::Relay { circuit: None });
    }

    /// A text frame arrived on `conn`.
    pub(crate) fn text(&mut self, conn: ConnId, text: &str, now: Instant) {
        if let Some(Conn::Relay { circuit: Some(_) }) = self.conns.get(&conn) {
            // After attach only binary frames belong on a relay socket.
            self.close(conn, close_code::UNSUPPORTED_DATA, "text after attach");
            return;
        }
        let message = match ClientToServer::parse(text) {
            Ok(m) => m,
            Err(e) => {
                let reply = self.error(e.code, e.message, e.in_reply_to.as_deref());
                self.send(conn, reply);
                return;
            }
        };
        match self.conns.get(&conn) {
            Some(Conn::Signaling { closing: false, .. }) => self.on_signaling(conn, message, now),
            Some(Conn::Relay { circuit: None }) => self.on_relay(conn, message, now),
            Some(Conn::Signaling { closing: true, .. }) | Some(Conn::Relay { .. }) | None => {}
        }
    }

    /// `conn` closed (either side closed it, or it failed).
    pub(crate) fn closed(&mut self, conn: ConnId) {
        match self.conns.remove(&conn) {
            Some(Conn::Signaling {
                peer: Some(peer), ..
            }) => {
                self.peers.remove(&peer);
                self.metrics.peers.set(self.peers.len() as i64);
                let left = ServerToClient::PeerLeft {
                    peer_id: peer.to_string(),
                };
                self.broadcast(&left);
                let gone: Vec<String> = self
                    .circuits
                    .iter()
                    .filter(|(_, c)| c.side_of(&peer).is_some())
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in gone {
                    self.end_circuit(&id, "peer_left");
                }
            }
            Some(Conn::Relay {
                circuit: Some(id), ..
            }) => self.end_circuit(&id, "closed"),
            _ => {}
        }
    }

    /// The data plane ended a circuit (byte limit, idle timeout).
    pub(crate) fn circuit_ended(&mut self, circuit_id: &str, reason: &'static str) {
        self.end_circuit(circuit_id, reason);
    }

    /// Fires every deadline up to `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, timer))) = self.timers.pop() else {
                break;
            };
            match timer {
                Timer::Register(conn) => {
                    if let Some(Conn::Signaling {
                        peer: None,
                        closing: false,
                        ..
                    }) = self.conns.get(&conn)
                    {
                        self.close(conn, close_code::REGISTER_TIMEOUT, "registration timeout");
                    }
                }
                Timer::Circuit(id) => {
                    let Some(c) = self.circuits.get(&id) else {
                        continue;
                    };
                    if c.deadline != at {
                        continue;
                    }
                    let reason = match c.state {
                        CircuitState::Open { .. } => "duration_limit",
                        _ => "accept_timeout",
                    };
                    self.end_circuit(&id, reason);
                }
            }
        }
    }

    /// The next deadline, if any.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// The next thing to do, if any.
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn on_signaling(&mut self, conn: ConnId, message: ClientToServer, now: Instant) {
        let kind = message.kind();
        let me = match (&message, self.peer_of(conn)) {
            (ClientToServer::Register { .. }, _) => None,
            (ClientToServer::Ping { id }, _) => {
                self.send(conn, ServerToClient::Pong { id: id.clone() });
                return;
            }
            (_, Some(me)) => Some(me),
            (_, None) => {
                let reply = self.error(
                    ErrorCode::NotRegistered,
                    "register first: answer the challenge",
                    Some(kind),
                );
                self.send(conn, reply);
                return;
            }
        };
        match (message, me) {
            (
                ClientToServer::Register {
                    peer_id,
                    public_key,
                    signature,
                },
                _,
            ) => self.register(conn, &peer_id, &public_key, &signature),
            (ClientToServer::ListPeers, Some(me)) => {
                let peers = self.peer_list(&me);
                self.send(conn, ServerToClient::Peers { peers });
            }
            (
                ClientToServer::Offer {
                    to,
                    sdp,
                    session,
                    from,
                },
                Some(me),
            ) => {
                let msg = |from| ServerToClient::Offer { from, sdp, session };
                self.route(conn, me, kind, &to, from.as_deref(), msg);
            }
            (
                ClientToServer::Answer {
                    to,
                    sdp,
                    session,
                    from,
                },
                Some(me),
            ) => {
                let msg = |from| ServerToClient::Answer { from, sdp, session };
                self.route(conn, me, kind, &to, from.as_deref(), msg);
            }
            (
                ClientToServer::Candidate {
                    to,
                    candidate,
                    session,
                    from,
                },
                Some(me),
            ) => {
                let msg = |from| ServerToClient::Candidate {
                    from,
                    candidate,
                    session,
                };
                self.route(conn, me, kind, &to, from.as_deref(), msg);
            }
            (
                ClientToServer::CircuitRequest { .. } | ClientToServer::CircuitAccept { .. },
                Some(_),
            ) if self.role_of(conn) < self.config.circuit_role => {
                self.security.denied("circuit");
                let message = format!(
                    "relayed circuits need the {} role; this connection has {}",
                    self.config.circuit_role,
                    self.role_of(conn)
                );
                let reply = self.error(ErrorCode::Forbidden, message, Some(kind));
                self.send(conn, reply);
            }
            (ClientToServer::CircuitRequest { to }, Some(me)) => {
                self.circuit_request(conn, me, &to, now)
            }
            (ClientToServer::CircuitAccept { circuit_id }, Some(me)) => {
                self.circuit_accept(conn, me, &circuit_id)
            }
            (ClientToServer::CircuitReject { circuit_id, reason }, Some(me)) => {
                self.circuit_reject(conn, me, &circuit_id, reason)
            }
            (ClientToServer::CircuitClose { circuit_id }, Some(me)) => {
                match self.circuits.get(&circuit_id) {
                    Some(c) if c.side_of(&me).is_some() => self.end_circuit(&circuit_id, "closed"),
                    _ => self.unknown_circuit(conn, kind),
                }
            }
            (_, _) => {
                let reply = self.error(
                    ErrorCode::InvalidMessage,
                    format!("{kind} is not valid on /signaling"),
                    Some(kind),
                );
                self.send(conn, reply);
            }
        }
    }

    fn register(&mut self, conn: ConnId, peer_id: &str, public_key: &str, signature: &str) {
        let Some(Conn::Signaling {
            nonce,
            peer,
            access,
            ..
        }) = self.conns.get(&conn)
        else {
            return;
        };
        let access = *access;
        if peer.is_some() {
            // Registering twice on one socket is a client bug, not an attack.
            let reply = self.error(
                ErrorCode::AlreadyRegistered,
                "this connection is registered already",
                Some("register"),
            );
            self.send(conn, reply);
            return;
        }
        if access.role < self.config.signaling_role {
            self.security.denied("signaling");
            let message = format!(
                "registering needs the {} role; this connection has {} (get a token at /auth/token)",
                self.config.signaling_role, access.role
            );
            let reply = self.error(ErrorCode::Unauthorized, message, Some("register"));
            self.send(conn, reply);
            self.close(conn, close_code::UNAUTHORIZED, "role may not register");
            return;
        }
        let refused = match verify_registration(peer_id, public_key, signature, nonce) {
            Err(e) => Err((ErrorCode::BadSignature, e.to_string())),
            Ok(p) if access.subject.is_some_and(|s| s != p) => Err((
                ErrorCode::Unauthorized,
                "the token was issued to another peer".to_owned(),
            )),
            Ok(p) if self.peers.contains_key(&p) => Err((
                ErrorCode::AlreadyRegistered,
                format!("{p} is registered on another connection"),
            )),
            Ok(_) if self.peers.len() >= self.config.max_peers => Err((
                ErrorCode::ServerFull,
                format!(
                    "the server holds its maximum of {} peers",
                    self.config.max_peers
                ),
            )),
            Ok(p) => Ok(p),
        };
        let me = match refused {
            Ok(me) => me,
            Err((code, message)) => {
                let reply = self.error(code, message, Some("register"));
                self.send(conn, reply);
                let close = if code == ErrorCode::Unauthorized {
                    close_code::UNAUTHORIZED
                } else {
                    close_code::REGISTER_REFUSED
                };
                self.close(conn, close, code.as_str());
                return;
            }
        };
        if let Some(Conn::Signaling { peer, .. }) = self.conns.get_mut(&conn) {
            *peer = Some(me);
        }
        self.peers.insert(me, conn);
        self.metrics.peers.set(self.peers.len() as i64);
        let peers = self.peer_list(&me);
        self.send(
            conn,
            ServerToClient::Registered {
                peer_id: me.to_string(),
                peers,
            },
        );
        let joined = ServerToClient::PeerJoined {
            peer_id: me.to_string(),
        };
        let others: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(p, _)| **p != me)
            .map(|(_, c)| *c)
            .collect();
        for c in others {
            self.send(c, joined.clone());
        }
    }

    /// Forwards an offer, answer or candidate to `to`, stamped with the
    /// sender's verified id.
    fn route(
        &mut self,
        conn: ConnId,
        me: PeerId,
        kind: &'static str,
        to: &str,
        claimed_from: Option<&str>,
        build: impl FnOnce(String) -> ServerToClient,
    ) {
        if claimed_from.is_some_and(|f| f != me.to_string()) {
            let reply = self.error(
                ErrorCode::SpoofedSender,
                "from must be absent or your own peer id",
                Some(kind),
            );
            self.send(conn, reply);
            return;
        }
        let message = build(me.to_string());
        let session_too_long = match &message {
            ServerToClient::Offer { session, .. }
            | ServerToClient::Answer { session, .. }
            | ServerToClient::Candidate { session, .. } => {
                session.as_ref().is_some_and(|s| s.len() > MAX_SESSION_LEN)
            }
            _ => false,
        };
        if session_too_long {
            let reply = self.error(
                ErrorCode::InvalidMessage,
                format!("session: at most {MAX_SESSION_LEN} characters"),
                Some(kind),
            );
            self.send(conn, reply);
            return;
        }
        let Some(target) = self.registered(to) else {
            let reply = self.error(
                ErrorCode::UnknownPeer,
                format!("{to} is not registered"),
                Some(kind),
            );
            self.send(conn, reply);
            return;
        };
        self.metrics.message(kind);
        self.send(target, message);
    }

    fn circuit_request(&mut self, conn: ConnId, me: PeerId, to: &str, now: Instant) {
        let kind = "circuit_request";
        let target = match self.registered_peer(to) {
            Some((peer, _)) if peer == me => {
                let reply = self.error(
                    ErrorCode::InvalidMessage,
                    "to: a circuit needs another peer",
                    Some(kind),
                );
                self.send(conn, reply);
                return;
            }
            Some((peer, target_conn)) => (peer, target_conn),
            None => {
                let reply = self.error(
                    ErrorCode::UnknownPeer,
                    format!("{to} is not registered"),
                    Some(kind),
                );
                self.send(conn, reply);
                return;
            }
        };
        let per_peer = |p: &PeerId| {
            self.circuits
                .values()
                .filter(|c| c.side_of(p).is_some())
                .count()
        };
        let limit = if self.circuits.len() >= self.config.max_circuits {
            Some(format!(
                "the server has its maximum of {} circuits",
                self.config.max_circuits
            ))
        } else if per_peer(&me) >= self.config.max_circuits_per_peer
            || per_peer(&target.0) >= self.config.max_circuits_per_peer
        {
            Some(format!(
                "a peer may have at most {} circuits",
                self.config.max_circuits_per_peer
            ))
        } else {
            None
        };
        if let Some(message) = limit {
            self.metrics.circuit_denied("limit");
            let reply = self.error(ErrorCode::CircuitLimit, message, Some(kind));
            self.send(conn, reply);
            return;
        }
        let circuit_id = self.random_hex(8);
        let deadline = now + self.config.accept_timeout;
        self.circuits.insert(
            circuit_id.clone(),
            Circuit {
                peers: [me, target.0],
                state: CircuitState::Pending,
                deadline,
            },
        );
        self.timers
            .push(Reverse((deadline, Timer::Circuit(circuit_id.clone()))));
        self.metrics.message(kind);
        self.send(
            conn,
            ServerToClient::CircuitPending {
                circuit_id: circuit_id.clone(),
                peer: target.0.to_string(),
            },
        );
        self.send(
            target.1,
            ServerToClient::CircuitRequest {
                circuit_id,
                from: me.to_string(),
            },
        );
    }

    fn circuit_accept(&mut self, conn: ConnId, me: PeerId, circuit_id: &str) {
        let tokens = [self.random_token(), self.random_token()];
        let Some(c) = self.circuits.get_mut(circuit_id) else {
            return self.unknown_circuit(conn, "circuit_accept");
        };
        if c.peers[1] != me || !matches!(c.state, CircuitState::Pending) {
            return self.unknown_circuit(conn, "circuit_accept");
        }
        c.state = CircuitState::Ready {
            tokens: tokens.clone(),
            attached: [None, None],
        };
        let peers = c.peers;
        self.metrics.message("circuit_accept");
        for side in 0..2 {
            if let Some(target) = self.peers.get(&peers[side]).copied() {
                self.send(
                    target,
                    ServerToClient::CircuitReady {
                        circuit_id: circuit_id.to_owned(),
                        peer: peers[1 - side].to_string(),
                        token: tokens[side].clone(),
                    },
                );
            }
        }
    }

    fn circuit_reject(
        &mut self,
        conn: ConnId,
        me: PeerId,
        circuit_id: &str,
        reason: Option<String>,
    ) {
        match self.circuits.get(circuit_id) {
            Some(c) if c.peers[1] == me && matches!(c.state, CircuitState::Pending) => {
                let requester = c.peers[0];
                self.circuits.remove(circuit_id);
                self.metrics.circuit_denied("rejected");
                if let Some(target) = self.peers.get(&requester).copied() {
                    let mut reason = reason.unwrap_or_else(|| "rejected".to_owned());
                    truncate_on_char_boundary(&mut reason, 256);
                    self.send(
                        target,
                        ServerToClient::CircuitRejected {
                            circuit_id: circuit_id.to_owned(),
                            peer: me.to_string(),
                            reason,
                        },
                    );
                }
            }
            _ => self.unknown_circuit(conn, "circuit_reject"),
        }
    }

    fn on_relay(&mut self, conn: ConnId, message: ClientToServer, now: Instant) {
        let ClientToServer::Attach { circuit_id, token } = message else {
            let reply = self.error(
                ErrorCode::InvalidMessage,
                "the first frame on /relay must be attach",
                Some(message.kind()),
            );
            self.send(conn, reply);
            return;
        };
        let attached_side = match self.circuits.get_mut(&circuit_id) {
            Some(Circuit {
                state: CircuitState::Ready { tokens, attached },
                ..
            }) => (0..2)
                .find(|&s| attached[s].is_none() && constant_time_eq(&tokens[s], &token))
                .inspect(|&s| attached[s] = Some(conn)),
            _ => None,
        };
        let Some(_) = attached_side else {
            let reply = self.error(
                ErrorCode::UnknownCircuit,
                "no circuit waits for this id and token",
                Some("attach"),
            );
            self.send(conn, reply);
            self.close(conn, close_code::CIRCUIT_CLOSED, "unknown_circuit");
            return;
        };
        if let Some(Conn::Relay { circuit }) = self.conns.get_mut(&conn) {
            *circuit = Some(circuit_id.clone());
        }
        self.send(
            conn,
            ServerToClient::Attached {
                circuit_id: circuit_id.clone(),
            },
        );
        let Some(c) = self.circuits.get_mut(&circuit_id) else {
            return;
        };
        if let CircuitState::Ready {
            attached: [Some(a), Some(b)],
            ..
        } = c.state
        {
            c.state = CircuitState::Open { relay: [a, b] };
            c.deadline = now + self.config.max_circuit_duration;
            let ends = [(a, c.peers[0]), (b, c.peers[1])];
            self.timers
                .push(Reverse((c.deadline, Timer::Circuit(circuit_id.clone()))));
            self.metrics.circuits_total.inc();
            self.metrics.circuits_active.inc();
            self.out.push_back(Output::Pair { circuit_id, ends });
        }
    }

    fn end_circuit(&mut self, circuit_id: &str, reason: &'static str) {
        let Some(c) = self.circuits.remove(circuit_id) else {
            return;
        };
        let relay_conns = match c.state {
            CircuitState::Pending => vec![],
            CircuitState::Ready { attached, .. } => attached.into_iter().flatten().collect(),
            CircuitState::Open { relay } => {
                self.metrics.circuits_active.dec();
                relay.to_vec()
            }
        };
        self.metrics.circuit_closed(reason);
        for conn in &relay_conns {
            // A closed relay socket must not end the circuit a second time.
            if let Some(Conn::Relay { circuit }) = self.conns.get_mut(conn) {
                *circuit = None;
            }
        }
        for peer in c.peers {
            if let Some(target) = self.peers.get(&peer).copied() {
                self.send(
                    target,
                    ServerToClient::CircuitClosed {
                        circuit_id: circuit_id.to_owned(),
                        reason: reason.to_owned(),
                    },
                );
            }
        }
        self.out.push_back(Output::EndCircuit {
            circuit_id: circuit_id.to_owned(),
            relay_conns,
            reason,
        });
    }

    fn unknown_circuit(&mut self, conn: ConnId, kind: &str) {
        let reply = self.error(
            ErrorCode::UnknownCircuit,
            "no such circuit for this peer",
            Some(kind),
        );
        self.send(conn, reply);
    }

    fn role_of(&self, conn: ConnId) -> Role {
        match self.conns.get(&conn) {
            Some(Conn::Signaling { access, .. }) => access.role,
            _ => Role::Guest,
        }
    }

    fn peer_of(&self, conn: ConnId) -> Option<PeerId> {
        match self.conns.get(&conn) {
            Some(Conn::Signaling { peer, .. }) => *peer,
            _ => None,
        }
    }

    fn registered_peer(&self, text: &str) -> Option<(PeerId, ConnId)> {
        let peer: PeerId = text.parse().ok()?;
        self.peers.get(&peer).map(|c| (peer, *c))
    }

    fn registered(&self, text: &str) -> Option<ConnId> {
        self.registered_peer(text).map(|(_, c)| c)
    }

    fn peer_list(&self, except: &PeerId) -> Vec<String> {
        let mut peers: Vec<String> = self
            .peers
            .keys()
            .filter(|p| *p != except)
            .map(|p| p.to_string())
            .collect();
        peers.sort();
        peers
    }

    fn broadcast(&mut self, message: &ServerToClient) {
        let conns: Vec<ConnId> = self.peers.values().copied().collect();
        for c in conns {
            self.send(c, message.clone());
        }
    }

    fn error(
        &self,
        code: ErrorCode,
        message: impl Into<String>,
        in_reply_to: Option<&str>,
    ) -> ServerToClient {
        self.metrics.error(code);
        ServerToClient::error(code, message, in_reply_to)
    }

    fn send(&mut self, conn: ConnId, message: ServerToClient) {
        self.out.push_back(Output::Send(conn, message));
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: &'static str) {
        if let Some(Conn::Signaling { closing, .. }) = self.conns.get_mut(&conn) {
            *closing = true;
        }
        self.out.push_back(Output::Close(conn, code, reason));
    }

    fn random_hex(&mut self, len: usize) -> String {
        let mut bytes = vec![0u8; len];
        self.rng.fill_bytes(&mut bytes);
        hex::encode(bytes)
    }

    fn random_token(&mut self) -> String {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        encode_b64(&bytes)
    }
}

/// Cuts `text` to at most `max` bytes without splitting a character
/// (`String::truncate` panics inside one, and `text` comes from a client).
fn truncate_on_char_boundary(text: &mut String, max: usize) {
    if text.len() > max {
        let cut = (0..=max)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
    }
}

/// Compares two tokens in time independent of where they differ.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkswap_proto::signaling::{decode_b64, sign_registration};
    use libp2p::identity::Keypair;
    use prometheus_client::registry::Registry;
    use rand::SeedableRng;
    use serde_json::json;

    const T0: Duration = Duration::from_secs(0);

    fn config() -> HubConfig {
        HubConfig {
            max_peers: 3,
            register_timeout: Duration::from_secs(10),
            max_circuits: 2,
            max_circuits_per_peer: 1,
            accept_timeout: Duration::from_secs(15),
            max_circuit_duration: Duration::from_secs(3600),
            signaling_role: Role::User,
            circuit_role: Role::User,
        }
    }

    const USER: Access = Access {
        role: Role::User,
        subject: None,
    };

    struct Fixture {
        hub: Hub,
        start: Instant,
        next_conn: ConnId,
    }

    impl Fixture {
        fn new() -> Self {
            let metrics = Arc::new(SignalingMetrics::register(&mut Registry::default()));
            let security = Arc::new(SecurityMetrics::register(&mut Registry::default()));
            Fixture {
                hub: Hub::new(
                    config(),
                    metrics,
                    security,
                    Box::new(rand::rngs::StdRng::seed_from_u64(7)),
                ),
                start: Instant::now(),
                next_conn: 1,
            }
        }

        fn at(&self, d: Duration) -> Instant {
            self.start + d
        }

        fn drain(&mut self) -> Vec<Output> {
            std::iter::from_fn(|| self.hub.poll_output()).collect()
        }

        /// Messages sent to `conn` since the last drain (other outputs dropped).
        fn sent_to(out: &[Output], conn: ConnId) -> Vec<ServerToClient> {
            out.iter()
                .filter_map(|o| match o {
                    Output::Send(c, m) if *c == conn => Some(m.clone()),
                    _ => None,
                })
                .collect()
        }

        fn open(&mut self) -> (ConnId, String) {
            self.open_as(USER)
        }

        fn open_as(&mut self, access: Access) -> (ConnId, String) {
            let conn = self.next_conn;
            self.next_conn += 1;
            self.hub.open_signaling(conn, access, self.at(T0));
            let out = self.drain();
            let Some(ServerToClient::Challenge { nonce }) =
                Self::sent_to(&out, conn).into_iter().next()
            else {
                panic!("no challenge: {out:?}")
            };
            (conn, nonce)
        }

        fn send(&mut self, conn: ConnId, message: &ClientToServer) -> Vec<Output> {
            self.hub.text(conn, &message.to_json(), self.at(T0));
            self.drain()
        }

        /// A registered peer: its socket and key.
        fn peer(&mut self) -> (ConnId, Keypair) {
            let key = Keypair::generate_ed25519();
            let (conn, nonce) = self.open();
            let out = self.send(conn, &sign_registration(&key, &nonce).unwrap());
            assert!(
                matches!(
                    Self::sent_to(&out, conn)[0],
                    ServerToClient::Registered { .. }
                ),
                "{out:?}"
            );
            (conn, key)
        }
    }

    fn id(key: &Keypair) -> String {
        key.public().to_peer_id().to_string()
    }

    #[test]
    fn roles_and_token_subjects_decide_who_registers_and_opens_circuits() {
        let mut f = Fixture::new();
        // A guest may not register; the socket closes with 4004.
        let key = Keypair::generate_ed25519();
        let (guest, nonce) = f.open_as(Access {
            role: Role::Guest,
            subject: None,
        });
        let out = f.send(guest, &sign_registration(&key, &nonce).unwrap());
        assert_eq!(
            error_code(&Fixture::sent_to(&out, guest)),
            Some(ErrorCode::Unauthorized)
        );
        assert!(out.contains(&Output::Close(
            guest,
            close_code::UNAUTHORIZED,
            "role may not register"
        )));

        // A token issued to someone else does not register this key.
        let (stolen, nonce) = f.open_as(Access {
            role: Role::User,
            subject: Some(PeerId::random()),
        });
        let out = f.send(stolen, &sign_registration(&key, &nonce).unwrap());
        assert_eq!(
            error_code(&Fixture::sent_to(&out, stolen)),
            Some(ErrorCode::Unauthorized)
        );
        assert!(out.contains(&Output::Close(
            stolen,
            close_code::UNAUTHORIZED,
            "unauthorized"
        )));

        // The token's own peer registers.
        let (own, nonce) = f.open_as(Access {
            role: Role::User,
            subject: Some(key.public().to_peer_id()),
        });
        let out = f.send(own, &sign_registration(&key, &nonce).unwrap());
        assert!(matches!(
            Fixture::sent_to(&out, own)[0],
            ServerToClient::Registered { .. }
        ));

        // Circuits need circuit_role: raise it above user.
        f.hub.config.circuit_role = Role::Admin;
        let (other_conn, other_key) = f.peer();
        let out = f.send(own, &ClientToServer::CircuitRequest { to: id(&other_key) });
        assert_eq!(
            error_code(&Fixture::sent_to(&out, own)),
            Some(ErrorCode::Forbidden)
        );
        assert!(
            Fixture::sent_to(&out, other_conn).is_empty(),
            "nothing reaches the target"
        );
    }

    fn error_code(messages: &[ServerToClient]) -> Option<ErrorCode> {
        messages.iter().find_map(|m| match m {
            ServerToClient::Error { code, .. } => Some(*code),
            _ => None,
        })
    }

    #[test]
    fn registration_announces_and_lists_peers() {
        let mut f = Fixture::new();
        let (a, ka) = f.peer();
        let key = Keypair::generate_ed25519();
        let (b, nonce) = f.open();
        let out = f.send(b, &sign_registration(&key, &nonce).unwrap());
        assert_eq!(
            Fixture::sent_to(&out, b),
            vec![ServerToClient::Registered {
                peer_id: id(&key),
                peers: vec![id(&ka)]
            }]
        );
        assert_eq!(
            Fixture::sent_to(&out, a),
            vec![ServerToClient::PeerJoined { peer_id: id(&key) }]
        );
        f.hub.closed(b);
        let out = f.drain();
        assert_eq!(
            Fixture::sent_to(&out, a),
            vec![ServerToClient::PeerLeft { peer_id: id(&key) }]
        );
    }

    #[test]
    fn a_stolen_id_a_replayed_answer_and_a_taken_id_are_refused() {
        let mut f = Fixture::new();
        let (_, victim) = f.peer();
        // A thief signs with its own key but claims the victim's id.
        let thief = Keypair::generate_ed25519();
        let (c, nonce) = f.open();
        let ClientToServer::Register {
            public_key,
            signature,
            ..
        } = sign_registration(&thief, &nonce).unwrap()
        else {
            unreachable!()
        };
        let out = f.send(
            c,
            &ClientToServer::Register {
                peer_id: id(&victim),
                public_key,
                signature,
            },
        );
        assert_eq!(
            error_code(&Fixture::sent_to(&out, c)),
            Some(ErrorCode::BadSignature)
        );
        assert!(out.contains(&Output::Close(
            c,
            close_code::REGISTER_REFUSED,
            "bad_signature"
        )));

        // The victim's answer to one challenge does not answer another.
        let (c1, nonce1) = f.open();
        let (c2, _) = f.open();
        let other = Keypair::generate_ed25519();
        let answer = sign_registration(&other, &nonce1).unwrap();
        let out = f.send(c2, &answer);
        assert_eq!(
            error_code(&Fixture::sent_to(&out, c2)),
            Some(ErrorCode::BadSignature)
        );
        // The same key on a second socket while the first holds the id.
        let out = f.send(c1, &answer);
        assert!(matches!(
            Fixture::sent_to(&out, c1)[0],
            ServerToClient::Registered { .. }
        ));
        let (c3, nonce3) = f.open();
        let out = f.send(c3, &sign_registration(&other, &nonce3).unwrap());
        assert_eq!(
            error_code(&Fixture::sent_to(&out, c3)),
            Some(ErrorCode::AlreadyRegistered)
        );
    }

    #[test]
    fn the_server_full_and_registration_timeout() {
        let mut f = Fixture::new();
        for _ in 0..3 {
            f.peer();
        }
        let (c, nonce) = f.open();
        let out = f.send(
            c,
            &sign_registration(&Keypair::generate_ed25519(), &nonce).unwrap(),
        );
        assert_eq!(
            error_code(&Fixture::sent_to(&out, c)),
            Some(ErrorCode::ServerFull)
        );

        let (slow, _) = f.open();
        f.hub.handle_timeout(f.at(Duration::from_secs(9)));
        assert!(f.drain().is_empty());
        f.hub.handle_timeout(f.at(Duration::from_secs(11)));
        let out = f.drain();
        assert!(out.contains(&Output::Close(
            slow,
            close_code::REGISTER_TIMEOUT,
            "registration timeout"
        )));
    }

    #[test]
    fn routing_stamps_the_sender_and_refuses_spoofing_and_unknown_peers() {
        let mut f = Fixture::new();
        let (a, ka) = f.peer();
        let (b, kb) = f.peer();
        let candidate = json!({"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host", "sdpMid": "0"});
        let out = f.send(
            a,
            &ClientToServer::Candidate {
                to: id(&kb),
                candidate: candidate.clone(),
                session: Some("s1".into()),
                from: None,
            },
        );
        assert_eq!(
            Fixture::sent_to(&out, b),
            vec![ServerToClient::Candidate {
                from: id(&ka),
                candidate,
                session: Some("s1".into())
            }]
        );
        // Claiming to be b: dropped, b hears nothing.
        let out = f.send(
            a,
            &ClientToServer::Offer {
                to: id(&kb),
                sdp: "v=0".into(),
                session: None,
                from: Some(id(&kb)),
            },
        );
        assert_eq!(
            error_code(&Fixture::sent_to(&out, a)),
            Some(ErrorCode::SpoofedSender)
        );
        assert!(Fixture::sent_to(&out, b).is_empty());
        let nobody = Keypair::generate_ed25519();
        let out = f.send(
            a,
            &ClientToServer::Answer {
                to: id(&nobody),
                sdp: "v=0".into(),
                session: None,
                from: None,
            },
        );
        assert_eq!(
            error_code(&Fixture::sent_to(&out, a)),
            Some(ErrorCode::UnknownPeer)
        );
        // Before registering, only ping works.
        let (c, _) = f.open();
        let out = f.send(c, &ClientToServer::ListPeers);
        assert_eq!(
            error_code(&Fixture::sent_to(&out, c)),
            Some(ErrorCode::NotRegistered)
        );
        let out = f.send(c, &ClientToServer::Ping { id: Some(json!(3)) });
        assert_eq!(
            Fixture::sent_to(&out, c),
            vec![ServerToClient::Pong { id: Some(json!(3)) }]
        );
        f.hub.text(c, "{not json", f.at(T0));
        assert_eq!(
            error_code(&Fixture::sent_to(&f.drain(), c)),
            Some(ErrorCode::InvalidJson)
        );
        f.hub.text(c, r#"{"type":"warp"}"#, f.at(T0));
        assert_eq!(
            error_code(&Fixture::sent_to(&f.drain(), c)),
            Some(ErrorCode::UnknownType)
        );
    }

    /// Requests, accepts and attaches a circuit from `a` to `b`; returns its
    /// id and the two relay sockets.
    fn open_circuit(
        f: &mut Fixture,
        (a, ka): (ConnId, &Keypair),
        (b, kb): (ConnId, &Keypair),
    ) -> (String, ConnId, ConnId) {
        let out = f.send(a, &ClientToServer::CircuitRequest { to: id(kb) });
        let Some(ServerToClient::CircuitRequest { circuit_id, from }) =
            Fixture::sent_to(&out, b).into_iter().next()
        else {
            panic!("{out:?}")
        };
        assert_eq!(from, id(ka));
        let out = f.send(
            b,
            &ClientToServer::CircuitAccept {
                circuit_id: circuit_id.clone(),
            },
        );
        let token = |conn| match Fixture::sent_to(&out, conn).into_iter().next() {
            Some(ServerToClient::CircuitReady { token, .. }) => token,
            other => panic!("{other:?}"),
        };
        let (ta, tb) = (token(a), token(b));
        assert_ne!(ta, tb);
        assert_eq!(decode_b64(&ta).unwrap().len(), 16);
        let (ra, rb) = (f.next_conn, f.next_conn + 1);
        f.next_conn += 2;
        f.hub.open_relay(ra);
        f.hub.open_relay(rb);
        let out = f.send(
            ra,
            &ClientToServer::Attach {
                circuit_id: circuit_id.clone(),
                token: ta,
            },
        );
        assert_eq!(
            out,
            vec![Output::Send(
                ra,
                ServerToClient::Attached {
                    circuit_id: circuit_id.clone()
                }
            )]
        );
        let out = f.send(
            rb,
            &ClientToServer::Attach {
                circuit_id: circuit_id.clone(),
                token: tb,
            },
        );
        assert!(out.contains(&Output::Pair {
            circuit_id: circuit_id.clone(),
            ends: [
                (ra, ka.public().to_peer_id()),
                (rb, kb.public().to_peer_id())
            ],
        }));
        (circuit_id, ra, rb)
    }

    #[test]
    fn a_circuit_opens_and_closes_when_a_peer_leaves() {
        let mut f = Fixture::new();
        let (a, ka) = f.peer();
        let (b, kb) = f.peer();
        let (circuit_id, ra, rb) = open_circuit(&mut f, (a, &ka), (b, &kb));
        f.hub.closed(b);
        let out = f.drain();
        assert!(
            Fixture::sent_to(&out, a).contains(&ServerToClient::CircuitClosed {
                circuit_id: circuit_id.clone(),
                reason: "peer_left".into()
            })
        );
        assert!(out.contains(&Output::EndCircuit {
            circuit_id,
            relay_conns: vec![ra, rb],
            reason: "peer_left"
        }));
        // The relay sockets closing afterwards end nothing twice.
        f.hub.closed(ra);
        f.hub.closed(rb);
        assert!(f.drain().is_empty());
    }

    #[test]
    fn per_peer_circuit_limits_hold_until_a_circuit_closes() {
        let mut f = Fixture::new();
        let (a, ka) = f.peer();
        let (b, kb) = f.peer();
        let (c, kc) = f.peer();
        let (circuit_id, _, _) = open_circuit(&mut f, (a, &ka), (b, &kb));
        // a and b each have their one circuit.
        for (from, to) in [(a, &kc), (c, &kb)] {
            let out = f.send(from, &ClientToServer::CircuitRequest { to: id(to) });
            assert_eq!(
                error_code(&Fixture::sent_to(&out, from)),
                Some(ErrorCode::CircuitLimit)
            );
        }
        f.send(b, &ClientToServer::CircuitClose { circuit_id });
        let out = f.send(c, &ClientToServer::CircuitRequest { to: id(&ka) });
        assert!(matches!(
            Fixture::sent_to(&out, c)[0],
            ServerToClient::CircuitPending { .. }
        ));
    }

    #[test]
    fn a_long_rejection_reason_is_cut_between_characters() {
        let mut f = Fixture::new();
        let (a, ka) = f.peer();
        let (b, kb) = f.peer();
        let out = f.send(a, &ClientToServer::CircuitRequest { to: id(&kb) });
        let Some(ServerToClient::CircuitPending { circuit_id, .. }) =
            Fixture::sent_to(&out, a).into_iter().next()
        else {
            panic!("no circuit_pending: {out:?}")
        };
        // Byte 256 falls inside "é": a plain truncate(256) panicked and took
        // the hub task, and with it all of signaling, down.
        let reason = format!("{}é and more", "x".repeat(255));
        let out = f.send(
            b,
            &ClientToServer::CircuitReject {
                circuit_id: circuit_id.clone(),
                reason: Some(reason),
            },
        );
        assert_eq!(
            Fixture::sent_to(&out, a),
            vec![ServerToClient::CircuitRejected {
                circuit_id,
                peer: id(&kb),
                reason: "x".repeat(255),
            }]
        );
        // Both peers are still served.
        let out = f.send(a, &ClientToServer::ListPeers);
        assert_eq!(
            Fixture::sent_to(&out, a),
            vec![ServerToClient::Peers {
                peers: vec![id(&kb)]
            }]
        );
        let out = f.send(b, &ClientToServer::CircuitRequest { to: id(&ka) });
        assert!(
            matches!(
                Fixture::sent_to(&out, b)[..],
                [ServerToClient::CircuitPending { .. }]
            ),
            "{out:?}"
        );
    }

    #[test]
    fn rejection_accept_timeout_and_forged_attach() {
        let mut f = Fixture::new();
        let (a, _) = f.peer();
        let (b, kb) = f.peer();
        let out = f.send(a, &ClientToServer::CircuitRequest { to: id(&kb) });
        let Some(ServerToClient::CircuitPending { circuit_id, .. }) =
            Fixture::sent_to(&out, a).into_iter().next()
        else {
            panic!()
        };
        // a cannot accept its own request.
        let out = f.send(
            a,
            &ClientToServer::CircuitAccept {
                circuit_id: circuit_id.clone(),
            },
        );
        assert_eq!(
            error_code(&Fixture::sent_to(&out, a)),
            Some(ErrorCode::UnknownCircuit)
        );
        let out = f.send(
            b,
            &ClientToServer::CircuitReject {
                circuit_id: circuit_id.clone(),
                reason: Some("busy".into()),
            },
        );
        assert_eq!(
            Fixture::sent_to(&out, a),
            vec![ServerToClient::CircuitRejected {
                circuit_id,
                peer: id(&kb),
                reason: "busy".into()
            }]
        );

        // Unanswered: the requester hears accept_timeout.
        let out = f.send(a, &ClientToServer::CircuitRequest { to: id(&kb) });
        let Some(ServerToClient::CircuitPending { circuit_id, .. }) =
            Fixture::sent_to(&out, a).into_iter().next()
        else {
            panic!()
        };
        f.hub.handle_timeout(f.at(Duration::from_secs(16)));
        let out = f.drain();
        assert!(
            Fixture::sent_to(&out, a).contains(&ServerToClient::CircuitClosed {
                circuit_id,
                reason: "accept_timeout".into()
            })
        );

        // Attach with a made-up token.
        let r = 99;
        f.hub.open_relay(r);
        let out = f.send(
            r,
            &ClientToServer::Attach {
                circuit_id: "00".into(),
                token: "AAAA".into(),
            },
        );
        assert_eq!(
            error_code(&Fixture::sent_to(&out, r)),
            Some(ErrorCode::UnknownCircuit)
        );
        assert!(out.contains(&Output::Close(
            r,
            close_code::CIRCUIT_CLOSED,
            "unknown_circuit"
        )));
    }

    #[test]
    fn text_after_attach_closes_and_duration_limit_ends_the_circuit() {
        let mut f = Fixture::new();
        let (a, ka) = f.peer();
        let (b, kb) = f.peer();
        let (circuit_id, ra, rb) = open_circuit(&mut f, (a, &ka), (b, &kb));
        f.hub.text(ra, "hello, not even JSON", f.at(T0));
        assert_eq!(
            f.drain(),
            vec![Output::Close(
                ra,
                close_code::UNSUPPORTED_DATA,
                "text after attach"
            )]
        );
        f.hub.handle_timeout(f.at(Duration::from_secs(3601)));
        let out = f.drain();
        assert!(out.contains(&Output::EndCircuit {
            circuit_id,
            relay_conns: vec![ra, rb],
            reason: "duration_limit"
        }));
    }
}
