use darkswap_proto::identity::Keypair;
use darkswap_proto::signaling::{decode_b64, sign_registration};
use rand::SeedableRng;
use serde_json::json;

use super::*;

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
        peer_page_size: 2,
        max_watched_peers: 2,
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
        Fixture {
            hub: Hub::new(config(), Box::new(rand::rngs::StdRng::seed_from_u64(7))),
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
        self.hub.handle_signaling_open(conn, access, self.at(T0));
        let out = self.drain();
        let Some(ServerToClient::Challenge { nonce }) =
            Self::sent_to(&out, conn).into_iter().next()
        else {
            panic!("no challenge: {out:?}")
        };
        (conn, nonce)
    }

    fn send(&mut self, conn: ConnId, message: &ClientToServer) -> Vec<Output> {
        self.hub.handle_text(conn, &message.to_json(), self.at(T0));
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

fn list_peers() -> ClientToServer {
    ClientToServer::ListPeers {
        after: None,
        limit: None,
    }
}

/// Messages routed to `conn` (offers, answers, candidates), all from `from`
/// if given.
fn routed_to(out: &[Output], conn: ConnId) -> Vec<ServerToClient> {
    out.iter()
        .filter_map(|o| match o {
            Output::Route { to, message, .. } if *to == conn => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn error_code(messages: &[ServerToClient]) -> Option<ErrorCode> {
    messages.iter().find_map(|m| match m {
        ServerToClient::Error { code, .. } => Some(*code),
        _ => None,
    })
}

#[test]
fn registration_lists_peers_and_announces_nobody_unasked() {
    let mut f = Fixture::new();
    let (a, ka) = f.peer();
    let key = Keypair::generate_ed25519();
    let (b, nonce) = f.open();
    let out = f.send(b, &sign_registration(&key, &nonce).unwrap());
    assert_eq!(
        Fixture::sent_to(&out, b),
        vec![ServerToClient::Registered {
            peer_id: id(&key),
            peers: vec![id(&ka)],
            next: None,
        }]
    );
    assert!(Fixture::sent_to(&out, a).is_empty(), "a watches nobody");
    f.hub.handle_closed(b);
    assert!(Fixture::sent_to(&f.drain(), a).is_empty());
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
    let candidate =
        json!({"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host", "sdpMid": "0"});
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
        routed_to(&out, b),
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
    assert!(routed_to(&out, b).is_empty() && Fixture::sent_to(&out, b).is_empty());
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
    let out = f.send(c, &list_peers());
    assert_eq!(
        error_code(&Fixture::sent_to(&out, c)),
        Some(ErrorCode::NotRegistered)
    );
    let out = f.send(c, &ClientToServer::Ping { id: Some(json!(3)) });
    assert_eq!(
        Fixture::sent_to(&out, c),
        vec![ServerToClient::Pong { id: Some(json!(3)) }]
    );
    f.hub.handle_text(c, "{not json", f.at(T0));
    assert_eq!(
        error_code(&Fixture::sent_to(&f.drain(), c)),
        Some(ErrorCode::InvalidJson)
    );
    f.hub.handle_text(c, r#"{"type":"warp"}"#, f.at(T0));
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
    f.hub.handle_relay_open(ra);
    f.hub.handle_relay_open(rb);
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
    f.hub.handle_closed(b);
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
    f.hub.handle_closed(ra);
    f.hub.handle_closed(rb);
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
    // the hub (then its task, now its lock), and with it all of signaling, down.
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
    let out = f.send(a, &list_peers());
    assert_eq!(
        Fixture::sent_to(&out, a),
        vec![ServerToClient::Peers {
            peers: vec![id(&kb)],
            next: None,
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
    f.hub.handle_relay_open(r);
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
    f.hub.handle_text(ra, "hello, not even JSON", f.at(T0));
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

#[test]
fn deadlines_of_ended_circuits_and_registered_sockets_do_not_pile_up_under_churn() {
    let mut f = Fixture::new();
    let (a, ka) = f.peer();
    let (b, kb) = f.peer();
    for _ in 0..2_000 {
        // Each open circuit leaves a 1 h duration deadline behind when it
        // closes at once; each socket that registers, a register deadline.
        let (circuit_id, ra, rb) = open_circuit(&mut f, (a, &ka), (b, &kb));
        f.send(a, &ClientToServer::CircuitClose { circuit_id });
        f.hub.handle_closed(ra);
        f.hub.handle_closed(rb);
        let (c, _) = f.peer();
        f.hub.handle_closed(c);
        f.drain();
    }
    assert_eq!(f.hub.circuit_count(), 0);
    // 6,000 deadlines were pushed; at most twice the live subjects (at
    // most five at a push: two peers, a circuit, its two relay sockets)
    // plus the slack remain.
    assert!(
        f.hub.timer_count() <= 2 * 5 + 64 + 1,
        "{} deadlines for 2 sockets and no circuit",
        f.hub.timer_count()
    );
    // Live deadlines survive a compaction: a fresh circuit still times out.
    let out = f.send(a, &ClientToServer::CircuitRequest { to: id(&kb) });
    assert!(!out.is_empty());
    f.hub.handle_timeout(f.at(Duration::from_secs(16)));
    assert!(f.drain().iter().any(|o| matches!(
        o,
        Output::EndCircuit {
            reason: "accept_timeout",
            ..
        }
    )));
}

mod presence;
mod routing;
