//! The signaling hub as a sans-IO state machine: registered peers, routing,
//! and the life of WebSocket circuits up to the moment their two `/relay`
//! sockets are paired. It owns no socket, no clock and no metric: the server
//! feeds it connection events, frames and the time (`handle_*`), and drains
//! what it must send, close and pair ([`Hub::poll_output`]), what happened
//! for the metrics ([`Hub::poll_event`]) and its next deadline
//! ([`Hub::poll_timeout`]). `docs/signaling.md` is the contract it
//! implements.
//!
//! Presence is told on demand (`presence`): pages of the registered peers,
//! and joins and leaves only to the peers that watch them. Routed messages
//! come out as [`Output::Route`], naming their sender, so the server can
//! bound what one sender queues towards one recipient and give a refusal
//! back ([`Hub::handle_refused`]).
//!
//! It depends on the wire crate and an injected random number generator
//! only, so tests run it with a seeded RNG and a fake clock, and the fuzz
//! crate drives it without the relay's IO stack.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, HashMap, VecDeque},
    time::{Duration, Instant},
};

use darkswap_proto::{
    identity::PeerId,
    relay_auth::Role,
    signaling::{
        ClientToServer, ErrorCode, MAX_SESSION_LEN, NONCE_LEN, ServerToClient, close_code,
        encode_b64, verify_registration,
    },
};
use rand::RngCore;

use crate::defaults;
use circuits::{Circuit, CircuitState};

mod candidate;
mod circuits;
pub mod outbox;
mod presence;
mod timers;

/// What a `/signaling` connection may do, from its token (or the anonymous
/// role without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The role the connection acts with.
    pub role: Role,
    /// The peer the token was issued to: only that peer may register here.
    pub subject: Option<PeerId>,
}

/// Identifies one WebSocket, on `/signaling` or `/relay`. The server never
/// gives two sockets the same id.
pub type ConnId = u64;

/// The hub's limits and timeouts. [`HubConfig::default`] takes every value
/// from [`crate::defaults`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubConfig {
    /// Peers registered at once. Default: 10000.
    pub max_peers: usize,
    /// How long a new `/signaling` socket has to register. Default: 10 s.
    pub register_timeout: Duration,
    /// Circuits pending or open at once, all peers together. Default: 256.
    pub max_circuits: usize,
    /// Circuits one peer may have pending or open at once. Default: 8.
    pub max_circuits_per_peer: usize,
    /// How long a circuit may wait to be accepted and attached. Default: 15 s.
    pub accept_timeout: Duration,
    /// How long an open circuit may last. Default: 1 h.
    pub max_circuit_duration: Duration,
    /// Lowest role that may register. Default: `user`.
    pub signaling_role: Role,
    /// Lowest role that may request or accept a circuit. Default: `user`.
    pub circuit_role: Role,
    /// Most peers in one page of `registered` or `peers`. Default: 100.
    pub peer_page_size: usize,
    /// Most peers one connection may watch at once. Default: 256.
    pub max_watched_peers: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_peers: defaults::signaling::MAX_PEERS,
            register_timeout: defaults::signaling::REGISTER_TIMEOUT,
            max_circuits: defaults::ws_circuit::MAX_CIRCUITS,
            max_circuits_per_peer: defaults::ws_circuit::MAX_CIRCUITS_PER_PEER,
            accept_timeout: defaults::ws_circuit::ACCEPT_TIMEOUT,
            max_circuit_duration: defaults::ws_circuit::MAX_CIRCUIT_DURATION,
            signaling_role: defaults::tokens::SIGNALING_ROLE,
            circuit_role: defaults::tokens::CIRCUIT_ROLE,
            peer_page_size: defaults::signaling::PEER_PAGE_SIZE,
            max_watched_peers: defaults::signaling::MAX_WATCHED_PEERS,
        }
    }
}

/// What the server must do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Send this message, the server's own, on this socket.
    Send(ConnId, ServerToClient),
    /// Deliver a message one peer sent to another (an offer, answer or
    /// candidate), stamped with its sender. The server may refuse it when
    /// the recipient has too much waiting; it then calls
    /// [`Hub::handle_refused`].
    Route {
        /// The sender's `/signaling` socket.
        from: ConnId,
        /// The recipient's.
        to: ConnId,
        /// The message's type, as in [`Event::Routed`].
        kind: &'static str,
        /// The message, as the recipient gets it.
        message: ServerToClient,
    },
    /// Close this socket with this code and reason.
    Close(ConnId, u16, &'static str),
    /// Both ends of a circuit attached: forward binary frames between these
    /// two `/relay` sockets.
    Pair {
        /// The circuit.
        circuit_id: String,
        /// The requester's `/relay` socket and peer, then the target's.
        ends: [(ConnId, PeerId); 2],
    },
    /// A circuit ended: close whichever of its `/relay` sockets attached and
    /// are still open.
    EndCircuit {
        /// The circuit.
        circuit_id: String,
        /// Its open `/relay` sockets.
        relay_conns: Vec<ConnId>,
        /// Why it ended, as `circuit_closed` tells both peers.
        reason: &'static str,
    },
}

/// What happened, for the server to count (the hub keeps no metrics).
/// Labels are those of the relay's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A `/signaling` socket was handed to the hub.
    SignalingOpened,
    /// The number of registered peers changed to this.
    PeersChanged(usize),
    /// A message of this type was routed to its target ([`Output::Route`]).
    Routed(&'static str),
    /// An error with this code was sent to a client.
    ErrorSent(ErrorCode),
    /// A role was too low for this action (`signaling`, `circuit`).
    AccessDenied(&'static str),
    /// A circuit request was refused (`limit`, `rejected`).
    CircuitDenied(&'static str),
    /// Both ends of a circuit attached.
    CircuitOpened,
    /// A circuit ended for this reason; `was_open` if both ends had attached.
    CircuitEnded {
        /// As in `circuit_closed`.
        reason: &'static str,
        /// Whether it had been opened ([`Event::CircuitOpened`]).
        was_open: bool,
    },
}

#[derive(Debug)]
enum Conn {
    Signaling {
        nonce: [u8; NONCE_LEN],
        peer: Option<PeerId>,
        role: Role,
        /// The token's subject ([`Access::subject`]), boxed: few sockets
        /// have one, and inline its 80 bytes would be in every slot of
        /// `conns`, the bulk of an idle socket's share of the hub.
        subject: Option<Box<PeerId>>,
        /// Set once the hub asked for it to close: nothing more is routed there.
        closing: bool,
        /// The peers it watches (at most `max_watched_peers`).
        watching: Vec<PeerId>,
    },
    Relay {
        circuit: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Register(ConnId),
    Circuit(String),
}

/// See the module docs.
pub struct Hub {
    config: HubConfig,
    rng: Box<dyn RngCore + Send>,
    conns: HashMap<ConnId, Conn>,
    /// Ordered, so pages of it are cheap and stable.
    peers: BTreeMap<PeerId, ConnId>,
    /// Who watches each peer (registered or not).
    watchers: HashMap<PeerId, Vec<ConnId>>,
    circuits: HashMap<String, Circuit>,
    /// Deadlines, checked lazily: an entry whose subject moved on is skipped.
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    out: VecDeque<Output>,
    events: VecDeque<Event>,
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
    /// A hub with no connection, drawing nonces, circuit ids and attach
    /// tokens from `rng` (the OS's in the server, a seeded one in tests).
    pub fn new(config: HubConfig, rng: Box<dyn RngCore + Send>) -> Self {
        Hub {
            config,
            rng,
            conns: HashMap::new(),
            peers: BTreeMap::new(),
            watchers: HashMap::new(),
            circuits: HashMap::new(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Peers registered now.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The connection `peer` is registered on, if it is.
    pub fn registered_conn(&self, peer: &PeerId) -> Option<ConnId> {
        self.peers.get(peer).copied()
    }

    /// Circuits pending, ready or open now.
    pub fn circuit_count(&self) -> usize {
        self.circuits.len()
    }

    /// Circuits `peer` is one end of.
    pub fn circuits_of(&self, peer: &PeerId) -> usize {
        self.circuits
            .values()
            .filter(|c| c.side_of(peer).is_some())
            .count()
    }

    /// A `/signaling` socket opened (`conn` is new): it gets a challenge
    /// and has until the registration timeout to answer it.
    pub fn handle_signaling_open(&mut self, conn: ConnId, access: Access, now: Instant) {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut nonce);
        self.conns.insert(
            conn,
            Conn::Signaling {
                nonce,
                peer: None,
                role: access.role,
                subject: access.subject.map(Box::new),
                closing: false,
                watching: Vec::new(),
            },
        );
        self.events.push_back(Event::SignalingOpened);
        self.push_timer(now + self.config.register_timeout, Timer::Register(conn));
        self.send(
            conn,
            ServerToClient::Challenge {
                nonce: encode_b64(&nonce),
            },
        );
    }

    /// A `/relay` socket opened (`conn` is new); its first frame must be
    /// `attach`.
    pub fn handle_relay_open(&mut self, conn: ConnId) {
        self.conns.insert(conn, Conn::Relay { circuit: None });
    }

    /// A text frame arrived on `conn`. Frames on a socket the hub does not
    /// know (never opened, or closed) are ignored.
    pub fn handle_text(&mut self, conn: ConnId, text: &str, now: Instant) {
        match self.conns.get(&conn) {
            None => return,
            Some(Conn::Relay { circuit: Some(_) }) => {
                // After attach only binary frames belong on a relay socket.
                self.close(conn, close_code::UNSUPPORTED_DATA, "text after attach");
                return;
            }
            Some(_) => {}
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
    pub fn handle_closed(&mut self, conn: ConnId) {
        match self.conns.remove(&conn) {
            Some(Conn::Signaling { peer, watching, .. }) => {
                self.stop_watching(conn, &watching);
                let Some(peer) = peer else { return };
                self.peers.remove(&peer);
                self.events.push_back(Event::PeersChanged(self.peers.len()));
                self.announce(peer, conn, false);
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

    /// The server refused to queue a message `from` sent `to` (an
    /// [`Output::Route`]): the recipient has too much waiting to be read.
    /// The sender is told with `peer_busy`; the message is dropped.
    pub fn handle_refused(&mut self, from: ConnId, to: ConnId, kind: &'static str) {
        if !matches!(
            self.conns.get(&from),
            Some(Conn::Signaling { closing: false, .. })
        ) {
            return;
        }
        let recipient = self
            .peer_of(to)
            .map_or_else(|| "the recipient".to_owned(), |p| p.to_string());
        let reply = self.error(
            ErrorCode::PeerBusy,
            format!("{recipient} has too much waiting to be read; this {kind} was dropped"),
            Some(kind),
        );
        self.send(from, reply);
    }

    /// The data plane ended a circuit (byte limit, idle timeout).
    pub fn handle_circuit_ended(&mut self, circuit_id: &str, reason: &'static str) {
        self.end_circuit(circuit_id, reason);
    }

    /// Fires every deadline up to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
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

    /// The next deadline, if any: call [`Hub::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The next thing that happened, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
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
            (ClientToServer::ListPeers { after, limit }, Some(me)) => {
                self.list_peers(conn, me, after, limit)
            }
            (ClientToServer::Watch { peers }, Some(_)) => self.watch(conn, peers),
            (ClientToServer::Unwatch { peers }, Some(_)) => self.unwatch(conn, peers),
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
            ) => match candidate::check(candidate) {
                Ok(candidate) => {
                    let msg = |from| ServerToClient::Candidate {
                        from,
                        candidate,
                        session,
                    };
                    self.route(conn, me, kind, &to, from.as_deref(), msg);
                }
                Err(message) => {
                    let reply = self.error(ErrorCode::InvalidMessage, message, Some(kind));
                    self.send(conn, reply);
                }
            },
            (
                ClientToServer::CircuitRequest { .. } | ClientToServer::CircuitAccept { .. },
                Some(_),
            ) if self.role_of(conn) < self.config.circuit_role => {
                self.events.push_back(Event::AccessDenied("circuit"));
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
            role,
            subject,
            ..
        }) = self.conns.get(&conn)
        else {
            return;
        };
        let (role, subject) = (*role, subject.as_deref().copied());
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
        if role < self.config.signaling_role {
            self.events.push_back(Event::AccessDenied("signaling"));
            let message = format!(
                "registering needs the {} role; this connection has {} (get a token at /auth/token)",
                self.config.signaling_role, role
            );
            let reply = self.error(ErrorCode::Unauthorized, message, Some("register"));
            self.send(conn, reply);
            self.close(conn, close_code::UNAUTHORIZED, "role may not register");
            return;
        }
        let refused = match verify_registration(peer_id, public_key, signature, nonce) {
            Err(e) => Err((ErrorCode::BadSignature, e.to_string())),
            Ok(p) if subject.is_some_and(|s| s != p) => Err((
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
        self.events.push_back(Event::PeersChanged(self.peers.len()));
        let (peers, next) = self.page(&me, None, self.config.peer_page_size.max(1));
        self.send(
            conn,
            ServerToClient::Registered {
                peer_id: me.to_string(),
                peers,
                next,
            },
        );
        self.announce(me, conn, true);
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
        // Encoded once: base58 is a visible part of routing's cost.
        let me = me.to_string();
        if claimed_from.is_some_and(|f| f != me) {
            let reply = self.error(
                ErrorCode::SpoofedSender,
                "from must be absent or your own peer id",
                Some(kind),
            );
            self.send(conn, reply);
            return;
        }
        let message = build(me);
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
        self.events.push_back(Event::Routed(kind));
        self.out.push_back(Output::Route {
            from: conn,
            to: target,
            kind,
            message,
        });
    }

    fn role_of(&self, conn: ConnId) -> Role {
        match self.conns.get(&conn) {
            Some(Conn::Signaling { role, .. }) => *role,
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

    fn error(
        &mut self,
        code: ErrorCode,
        message: impl Into<String>,
        in_reply_to: Option<&str>,
    ) -> ServerToClient {
        self.events.push_back(Event::ErrorSent(code));
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
}

#[cfg(test)]
mod tests;
