//! `signaling_hub`: the relay's sans-IO signaling hub
//! ([`darkswap_relay::signaling::hub::Hub`]) driven by a script of
//! connection events, client frames and time steps, decoded from the input.
//!
//! The script speaks as the relay's socket tasks do: it opens `/signaling`
//! sockets (with a role and maybe a token subject) and `/relay` sockets,
//! closes them, sends text frames, reports circuits the data plane ended and
//! moves the clock. So that it reaches past registration, it answers the
//! challenges the hub sends with a few fixed keys, and it replays the
//! circuit ids and attach tokens the hub hands out; raw frames and garbage
//! tokens are in the script too.
//!
//! Beyond "no panic" it asserts, after every step:
//! - every output names a socket that is open (opened and not yet closed),
//!   and one of the right kind (`/relay` for `Pair` and `EndCircuit`);
//! - a peer id is registered on at most one open socket, only after a
//!   challenge on that socket, and the hub agrees on which;
//! - peers and circuits stay within `max_peers`, `max_circuits` and
//!   `max_circuits_per_peer`;
//! - the events add up: circuits opened minus open circuits ended never goes
//!   below zero nor above the circuits the hub holds, and the last peer count
//!   reported is the hub's;
//! - a paired circuit joins two different `/relay` sockets of two different
//!   peers;
//! - after `handle_timeout(now)` no deadline at or before `now` is left;
//! - presence is told only to those who asked: `peer_joined`/`peer_left`
//!   go only to a socket whose `watch` was answered for that peer and not
//!   undone, a page holds at most `peer_page_size` distinct peers and never
//!   the asker, a `presence` names only peers the `watch` named;
//! - a routed message goes between two registered `/signaling` sockets, and
//!   a forwarded candidate is null or an object of the four fields browsers
//!   send, its `candidate` at most `MAX_CANDIDATE_LEN` bytes;
//! - a refusal ([`Hub::handle_refused`], which the script fires for routed
//!   messages) answers only an open socket.

use std::{
    collections::{BTreeMap, HashMap},
    sync::OnceLock,
    time::{Duration, Instant},
};

use darkswap_proto::{
    identity::{Keypair, PeerId},
    relay_auth::Role,
    signaling::{ClientToServer, MAX_CANDIDATE_LEN, ServerToClient, encode_b64, sign_registration},
};
use darkswap_relay::signaling::hub::{Access, ConnId, Event, Hub, HubConfig, Output};
use rand::SeedableRng;
use serde_json::{Value, json};
use std::collections::HashSet;

mod seeds;
pub use seeds::seeds;

/// Identities the script registers as, and sends to.
const KEYS: u8 = 4;

/// The identities, made once: deriving a key and its peer id on every step
/// would cost more than the hub itself.
fn identities() -> &'static [(Keypair, PeerId)] {
    static IDS: OnceLock<Vec<(Keypair, PeerId)>> = OnceLock::new();
    IDS.get_or_init(|| {
        (0..KEYS)
            .map(|i| {
                let key = Keypair::ed25519_from_bytes([0x20 + i; 32])
                    .unwrap_or_else(|e| panic!("ed25519 key: {e}"));
                let peer = key.public().to_peer_id();
                (key, peer)
            })
            .collect()
    })
}

fn key(i: u8) -> &'static Keypair {
    &identities()[usize::from(i % KEYS)].0
}

fn peer(i: u8) -> PeerId {
    identities()[usize::from(i % KEYS)].1
}

/// The hub's limits: small, so the script reaches them.
fn config(roles: u8) -> HubConfig {
    let role = |r: u8| [Role::Guest, Role::User, Role::Admin][usize::from(r % 3)];
    let mut c = HubConfig::default();
    c.max_peers = 3;
    c.max_circuits = 2;
    c.max_circuits_per_peer = 1;
    c.register_timeout = Duration::from_secs(10);
    c.accept_timeout = Duration::from_secs(15);
    c.max_circuit_duration = Duration::from_secs(60);
    c.peer_page_size = 2;
    c.max_watched_peers = 2;
    // Mostly `user`, so most scripts get past the role checks.
    c.signaling_role = if roles & 0x10 == 0 {
        Role::User
    } else {
        role(roles)
    };
    c.circuit_role = if roles & 0x20 == 0 {
        Role::User
    } else {
        role(roles >> 2)
    };
    c
}

/// The script's opcodes, one byte each, followed by their argument bytes.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub enum Op {
    /// `role, subject`: a `/signaling` socket opens (subject 0: no token).
    OpenSignaling = 0,
    /// A `/relay` socket opens.
    OpenRelay,
    /// `conn`: a socket closes.
    Close,
    /// `conn, key`: answers the socket's challenge with a key.
    Register,
    /// `conn, kind, to, spoof`: an offer, answer or candidate.
    Route,
    /// `conn, to`.
    CircuitRequest,
    /// `conn, circuit`.
    CircuitAccept,
    /// `conn, circuit, len, reason bytes`.
    CircuitReject,
    /// `conn, circuit`.
    CircuitClose,
    /// `conn, token`: `attach` with a token the hub handed out (or garbage).
    Attach,
    /// `conn, len, bytes`: a raw text frame.
    RawText,
    /// `seconds`: the clock moves and deadlines fire.
    Advance,
    /// `conn, which`: `list_peers` or `ping`.
    Query,
    /// `circuit, reason`: the data plane ended a circuit.
    CircuitEnded,
    /// `conn, keys`: `watch` the keys in a bit mask (bit 7: one bad id too).
    Watch,
    /// `conn, keys`: `unwatch` the keys in a bit mask.
    Unwatch,
    /// `conn, after, limit`: `list_peers` after a key (0: from the start).
    ListPage,
    /// `index`: the server refuses one of the routed messages it saw.
    Refuse,
    /// `conn, to, repeat, len, bytes`: a candidate whose `candidate` is
    /// these bytes repeated.
    RawCandidate,
}

const OPS: u8 = Op::RawCandidate as u8 + 1;

/// Reads the script; missing bytes read as 0.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn bytes(&mut self, n: u8) -> &[u8] {
        let (head, rest) = self.0.split_at(usize::from(n).min(self.0.len()));
        self.0 = rest;
        head
    }
}

#[derive(Debug)]
enum Socket {
    Signaling {
        nonce: Option<String>,
        peer: Option<PeerId>,
    },
    Relay,
}

struct Harness {
    hub: Hub,
    config: HubConfig,
    start: Instant,
    now: Duration,
    next_conn: ConnId,
    open: BTreeMap<ConnId, Socket>,
    /// Who the outputs say is registered where.
    registered: HashMap<PeerId, ConnId>,
    /// Circuit ids the hub handed out, and attach tokens.
    circuits: Vec<String>,
    tokens: Vec<(String, String)>,
    /// Circuits opened minus open circuits ended, from the events.
    open_circuits: i64,
    peers_reported: usize,
    /// Who watches whom, from the `presence` answers and `unwatch`es.
    watching: HashMap<ConnId, HashSet<PeerId>>,
    /// The peers the last `watch` of each socket named.
    asked: HashMap<ConnId, Vec<PeerId>>,
    /// Routed messages seen: sender, recipient, type.
    routes: Vec<(ConnId, ConnId, &'static str)>,
    reached: Reached,
}

/// How far a script got, for the corpus tests to check that the seeds reach
/// what they are meant to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reached {
    /// `registered` answers.
    pub registrations: usize,
    /// Offers, answers and candidates delivered (`Routed` events).
    pub routed: usize,
    /// Circuits whose two `/relay` sockets were paired.
    pub pairs: usize,
    /// Circuits that ended after they opened.
    pub open_circuits_ended: usize,
    /// `peer_joined` and `peer_left` told to watchers.
    pub presence_told: usize,
    /// `peer_busy` refusals told to senders.
    pub refusals: usize,
}

impl Harness {
    fn new(roles: u8, seed: u8) -> Self {
        let config = config(roles);
        let rng = rand::rngs::StdRng::seed_from_u64(u64::from(seed));
        Harness {
            hub: Hub::new(config.clone(), Box::new(rng)),
            config,
            start: Instant::now(),
            now: Duration::ZERO,
            next_conn: 1,
            open: BTreeMap::new(),
            registered: HashMap::new(),
            circuits: Vec::new(),
            tokens: Vec::new(),
            open_circuits: 0,
            peers_reported: 0,
            watching: HashMap::new(),
            asked: HashMap::new(),
            routes: Vec::new(),
            reached: Reached::default(),
        }
    }

    fn at(&self) -> Instant {
        self.start + self.now
    }

    /// An open socket chosen by `index`, or (for a few indexes) one that is
    /// not open, whose frames the hub must ignore.
    fn conn(&self, index: u8) -> ConnId {
        if index >= 0xf0 || self.open.is_empty() {
            return self.next_conn + ConnId::from(index);
        }
        let keys: Vec<&ConnId> = self.open.keys().collect();
        *keys[usize::from(index) % keys.len()]
    }

    fn text(&mut self, conn: ConnId, message: &ClientToServer) {
        self.hub.handle_text(conn, &message.to_json(), self.at());
    }

    fn circuit(&self, index: u8) -> String {
        match self.circuits.len() {
            0 => "00".to_owned(),
            n => self.circuits[usize::from(index) % n].clone(),
        }
    }

    fn step(&mut self, op: u8, s: &mut Script<'_>) {
        match op % OPS {
            0 => {
                let (role, subject) = (s.byte(), s.byte());
                let access = Access {
                    role: [Role::Guest, Role::User, Role::Admin][usize::from(role % 3)],
                    subject: (subject != 0).then(|| peer(subject - 1)),
                };
                let conn = self.new_conn(Socket::Signaling {
                    nonce: None,
                    peer: None,
                });
                self.hub.handle_signaling_open(conn, access, self.at());
            }
            1 => {
                let conn = self.new_conn(Socket::Relay);
                self.hub.handle_relay_open(conn);
            }
            2 => {
                let conn = self.conn(s.byte());
                if self.open.remove(&conn).is_some() {
                    self.registered.retain(|_, c| *c != conn);
                    self.watching.remove(&conn);
                    self.routes.retain(|(f, t, _)| *f != conn && *t != conn);
                    self.hub.handle_closed(conn);
                }
            }
            3 => {
                let (conn, k) = (self.conn(s.byte()), s.byte());
                let nonce = match self.open.get(&conn) {
                    Some(Socket::Signaling { nonce: Some(n), .. }) => n.clone(),
                    // No challenge seen: answer an all-zero one.
                    _ => encode_b64(&[0; 32]),
                };
                if let Ok(register) = sign_registration(key(k), &nonce) {
                    self.text(conn, &register);
                }
            }
            4 => {
                let (conn, kind, to, spoof) = (self.conn(s.byte()), s.byte(), s.byte(), s.byte());
                let to = peer(to).to_string();
                let from = (spoof != 0).then(|| peer(spoof - 1).to_string());
                let session = (kind & 0x80 != 0).then(|| "s".repeat(usize::from(kind & 0x7f)));
                let message = match kind % 3 {
                    0 => ClientToServer::Offer {
                        to,
                        sdp: "v=0".into(),
                        session,
                        from,
                    },
                    1 => ClientToServer::Answer {
                        to,
                        sdp: "v=0".into(),
                        session,
                        from,
                    },
                    _ => ClientToServer::Candidate {
                        to,
                        candidate: json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}),
                        session,
                        from,
                    },
                };
                self.text(conn, &message);
            }
            5 => {
                let (conn, to) = (self.conn(s.byte()), s.byte());
                let to = peer(to).to_string();
                self.text(conn, &ClientToServer::CircuitRequest { to });
            }
            6 => {
                let (conn, circuit_id) = (self.conn(s.byte()), self.circuit(s.byte()));
                self.text(conn, &ClientToServer::CircuitAccept { circuit_id });
            }
            7 => {
                let (conn, circuit_id) = (self.conn(s.byte()), self.circuit(s.byte()));
                let len = s.byte();
                let reason = Some(String::from_utf8_lossy(s.bytes(len)).into_owned());
                self.text(conn, &ClientToServer::CircuitReject { circuit_id, reason });
            }
            8 => {
                let (conn, circuit_id) = (self.conn(s.byte()), self.circuit(s.byte()));
                self.text(conn, &ClientToServer::CircuitClose { circuit_id });
            }
            9 => {
                let (conn, which) = (self.conn(s.byte()), s.byte());
                let (circuit_id, token) = match self.tokens.len() {
                    n if n > 0 && which < 0x80 => self.tokens[usize::from(which) % n].clone(),
                    _ => (self.circuit(which), "AAAAAAAAAAAAAAAAAAAAAA==".to_owned()),
                };
                self.text(conn, &ClientToServer::Attach { circuit_id, token });
            }
            10 => {
                let (conn, len) = (self.conn(s.byte()), s.byte());
                let text = String::from_utf8_lossy(s.bytes(len)).into_owned();
                self.hub.handle_text(conn, &text, self.at());
            }
            11 => {
                self.now += Duration::from_secs(u64::from(s.byte()));
                let now = self.at();
                self.hub.handle_timeout(now);
                assert!(
                    self.hub.poll_timeout().is_none_or(|next| next > now),
                    "a deadline at or before now survived handle_timeout"
                );
            }
            12 => {
                let (conn, which) = (self.conn(s.byte()), s.byte());
                let message = match which % 2 {
                    0 => ClientToServer::ListPeers {
                        after: None,
                        limit: None,
                    },
                    _ => ClientToServer::Ping {
                        id: Some(json!(which)),
                    },
                };
                self.text(conn, &message);
            }
            13 => {
                let circuit_id = self.circuit(s.byte());
                let reason = ["byte_limit", "idle_timeout", "closed"][usize::from(s.byte() % 3)];
                self.hub.handle_circuit_ended(&circuit_id, reason);
            }
            14 | 15 => {
                let (conn, mask) = (self.conn(s.byte()), s.byte());
                let mut peers: Vec<String> = (0..KEYS)
                    .filter(|k| mask & (1 << k) != 0)
                    .map(|k| peer(k).to_string())
                    .collect();
                if mask & 0x80 != 0 {
                    peers.push("not a peer".into());
                }
                if op % OPS == 14 {
                    self.asked
                        .insert(conn, peers.iter().filter_map(|p| p.parse().ok()).collect());
                    self.text(conn, &ClientToServer::Watch { peers });
                } else {
                    // An unwatch naming more than a socket may watch is refused.
                    if mask & 0x80 == 0
                        && peers.len() <= self.config.max_watched_peers
                        && let Some(w) = self.watching.get_mut(&conn)
                    {
                        w.retain(|p| !peers.contains(&p.to_string()));
                    }
                    self.text(conn, &ClientToServer::Unwatch { peers });
                }
            }
            16 => {
                let (conn, after, limit) = (self.conn(s.byte()), s.byte(), s.byte());
                let after = (after != 0).then(|| peer(after - 1).to_string());
                let limit = (limit != 0).then_some(u32::from(limit));
                self.text(conn, &ClientToServer::ListPeers { after, limit });
            }
            17 => {
                let index = usize::from(s.byte());
                if !self.routes.is_empty() {
                    let (from, to, kind) = self.routes[index % self.routes.len()];
                    self.hub.handle_refused(from, to, kind);
                }
            }
            _ => {
                let (conn, to, repeat, len) = (self.conn(s.byte()), s.byte(), s.byte(), s.byte());
                let text = String::from_utf8_lossy(s.bytes(len)).repeat(usize::from(repeat));
                let candidate = json!({"candidate": text, "sdpMid": to.to_string()});
                self.text(
                    conn,
                    &ClientToServer::Candidate {
                        to: peer(to).to_string(),
                        candidate,
                        session: None,
                        from: None,
                    },
                );
            }
        }
        self.drain();
    }

    fn new_conn(&mut self, socket: Socket) -> ConnId {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.open.insert(conn, socket);
        conn
    }

    fn assert_open(&self, conn: ConnId, relay: bool, what: &Output) {
        match self.open.get(&conn) {
            None => panic!("{what:?} names socket {conn}, which is not open"),
            Some(Socket::Relay) if !relay => {}
            Some(Socket::Signaling { .. }) if relay => {
                panic!("{what:?} names /signaling socket {conn} as a /relay one")
            }
            Some(_) => {}
        }
    }

    /// Takes every output and event, checking each, then the hub's counts.
    fn drain(&mut self) {
        while let Some(event) = self.hub.poll_event() {
            match event {
                Event::CircuitOpened => self.open_circuits += 1,
                Event::Routed(kind) if ["offer", "answer", "candidate"].contains(&kind) => {
                    self.reached.routed += 1;
                }
                Event::CircuitEnded { was_open: true, .. } => {
                    self.reached.open_circuits_ended += 1;
                    self.open_circuits -= 1;
                    assert!(self.open_circuits >= 0, "more circuits ended than opened");
                }
                Event::PeersChanged(n) => self.peers_reported = n,
                _ => {}
            }
        }
        while let Some(output) = self.hub.poll_output() {
            match &output {
                Output::Send(conn, message) => {
                    self.assert_open(*conn, false, &output);
                    self.learn(*conn, message);
                }
                Output::Close(conn, ..) => self.assert_open(*conn, false, &output),
                Output::Route {
                    from,
                    to,
                    kind,
                    message,
                } => {
                    for c in [from, to] {
                        let Some(Socket::Signaling { peer: Some(_), .. }) = self.open.get(c) else {
                            panic!("{output:?} between sockets that are not both registered");
                        };
                    }
                    if let ServerToClient::Candidate { candidate, .. } = message {
                        assert_candidate(candidate);
                    }
                    self.routes.push((*from, *to, *kind));
                    if self.routes.len() > 16 {
                        self.routes.remove(0);
                    }
                }
                Output::Pair { ends, .. } => {
                    let [(a, peer_a), (b, peer_b)] = *ends;
                    self.assert_open(a, true, &output);
                    self.assert_open(b, true, &output);
                    assert!(
                        a != b && peer_a != peer_b,
                        "{output:?} pairs one end with itself"
                    );
                    self.reached.pairs += 1;
                }
                Output::EndCircuit { relay_conns, .. } => {
                    for conn in relay_conns {
                        self.assert_open(*conn, true, &output);
                    }
                }
                _ => {}
            }
        }
        let hub = &self.hub;
        assert_eq!(self.peers_reported, hub.peer_count(), "peer count reported");
        assert!(hub.peer_count() <= self.config.max_peers, "max_peers");
        assert!(
            hub.circuit_count() <= self.config.max_circuits,
            "max_circuits"
        );
        assert!(
            self.open_circuits <= hub.circuit_count() as i64,
            "more circuits open than the hub holds"
        );
        for (peer, conn) in &self.registered {
            assert_eq!(
                hub.registered_conn(peer),
                Some(*conn),
                "{peer} registration"
            );
        }
        for k in 0..KEYS {
            let peer = peer(k);
            assert!(
                hub.circuits_of(&peer) <= self.config.max_circuits_per_peer,
                "max_circuits_per_peer"
            );
        }
    }

    /// What a client learns from a message: its challenge, its registration,
    /// circuit ids and attach tokens.
    fn learn(&mut self, conn: ConnId, message: &ServerToClient) {
        let me = match self.open.get(&conn) {
            Some(Socket::Signaling { peer, .. }) => *peer,
            _ => None,
        };
        match message {
            ServerToClient::PeerJoined { peer_id } | ServerToClient::PeerLeft { peer_id } => {
                let p: PeerId = peer_id.parse().unwrap_or_else(|e| panic!("{peer_id}: {e}"));
                assert!(
                    self.watching.get(&conn).is_some_and(|w| w.contains(&p)),
                    "{message:?} told to socket {conn}, which does not watch it"
                );
                self.reached.presence_told += 1;
            }
            ServerToClient::Presence { online, offline } => {
                let asked = self.asked.remove(&conn).unwrap_or_default();
                let watched = self.watching.entry(conn).or_default();
                for text in online.iter().chain(offline) {
                    let p: PeerId = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
                    assert!(asked.contains(&p), "presence of {p}, which was not asked");
                    watched.insert(p);
                }
            }
            ServerToClient::Peers { peers, .. } | ServerToClient::Registered { peers, .. } => {
                let distinct: HashSet<&String> = peers.iter().collect();
                assert!(
                    peers.len() <= self.config.peer_page_size && distinct.len() == peers.len(),
                    "a page of {peers:?}"
                );
                if let Some(me) = me {
                    assert!(!peers.contains(&me.to_string()), "a page lists its asker");
                }
            }
            ServerToClient::Error { code, .. }
                if *code == darkswap_proto::signaling::ErrorCode::PeerBusy =>
            {
                self.reached.refusals += 1;
            }
            _ => {}
        }
        match message {
            ServerToClient::Challenge { nonce } => {
                if let Some(Socket::Signaling { nonce: n, .. }) = self.open.get_mut(&conn) {
                    *n = Some(nonce.clone());
                }
            }
            ServerToClient::Registered { peer_id, .. } => {
                let peer: PeerId = peer_id
                    .parse()
                    .unwrap_or_else(|e| panic!("registered a bad peer id {peer_id}: {e}"));
                let Some(Socket::Signaling { nonce, peer: p }) = self.open.get_mut(&conn) else {
                    panic!("registered on socket {conn}, not a /signaling one")
                };
                assert!(nonce.is_some(), "registered before any challenge");
                assert!(p.is_none(), "socket {conn} registered twice");
                *p = Some(peer);
                self.reached.registrations += 1;
                if let Some(other) = self.registered.insert(peer, conn) {
                    panic!("{peer} registered on {conn} while it holds {other}");
                }
            }
            ServerToClient::CircuitPending { circuit_id, .. }
            | ServerToClient::CircuitRequest { circuit_id, .. }
                if !self.circuits.contains(circuit_id) =>
            {
                self.circuits.push(circuit_id.clone());
            }
            ServerToClient::CircuitReady {
                circuit_id, token, ..
            } => self.tokens.push((circuit_id.clone(), token.clone())),
            _ => {}
        }
    }
}

/// What browsers send as a candidate, and no more.
fn assert_candidate(candidate: &Value) {
    match candidate {
        Value::Null => {}
        Value::Object(o) => {
            for (k, v) in o {
                assert!(
                    ["candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"]
                        .contains(&k.as_str()),
                    "forwarded candidate field {k}"
                );
                if k == "candidate" {
                    assert!(v.as_str().is_some_and(|c| c.len() <= MAX_CANDIDATE_LEN));
                }
            }
            assert!(o.contains_key("candidate"), "a candidate without candidate");
        }
        other => panic!("forwarded candidate {other}"),
    }
}

/// Runs one script.
pub fn check(data: &[u8]) {
    run(data);
}

/// Runs one script; tells how far it got.
pub fn run(data: &[u8]) -> Reached {
    let mut script = Script(data);
    let (roles, seed) = (script.byte(), script.byte());
    let mut harness = Harness::new(roles, seed);
    // Bounded, so one input cannot take the fuzzer's whole time budget.
    for _ in 0..512 {
        if script.0.is_empty() {
            break;
        }
        let op = script.byte();
        harness.step(op, &mut script);
    }
    harness.reached
}
