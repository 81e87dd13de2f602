//! The life of a WebSocket circuit inside the hub: request, accept or
//! reject, both ends attaching with their one-time tokens, pairing, and its
//! end (by either peer, a limit, a deadline or a socket closing).

use std::{fmt::Write as _, time::Instant};

use darkswap_proto::{
    identity::PeerId,
    signaling::{ClientToServer, ErrorCode, ServerToClient, close_code, encode_b64},
};
use rand::RngCore as _;

use super::{Conn, ConnId, Event, Hub, Output, Timer};

#[derive(Debug)]
pub(super) enum CircuitState {
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
pub(super) struct Circuit {
    /// `[requester, target]`.
    pub(super) peers: [PeerId; 2],
    pub(super) state: CircuitState,
    pub(super) deadline: Instant,
}

impl Circuit {
    pub(super) fn side_of(&self, peer: &PeerId) -> Option<usize> {
        self.peers.iter().position(|p| p == peer)
    }
}

impl Hub {
    pub(super) fn circuit_request(&mut self, conn: ConnId, me: PeerId, to: &str, now: Instant) {
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
            self.events.push_back(Event::CircuitDenied("limit"));
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
        self.push_timer(deadline, Timer::Circuit(circuit_id.clone()));
        self.events.push_back(Event::Routed(kind));
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

    pub(super) fn circuit_accept(&mut self, conn: ConnId, me: PeerId, circuit_id: &str) {
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
        self.events.push_back(Event::Routed("circuit_accept"));
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

    pub(super) fn circuit_reject(
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
                self.events.push_back(Event::CircuitDenied("rejected"));
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

    pub(super) fn on_relay(&mut self, conn: ConnId, message: ClientToServer, now: Instant) {
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
            let deadline = c.deadline;
            self.push_timer(deadline, Timer::Circuit(circuit_id.clone()));
            self.events.push_back(Event::CircuitOpened);
            self.out.push_back(Output::Pair { circuit_id, ends });
        }
    }

    pub(super) fn end_circuit(&mut self, circuit_id: &str, reason: &'static str) {
        let Some(c) = self.circuits.remove(circuit_id) else {
            return;
        };
        let (attached, was_open) = match c.state {
            CircuitState::Pending => (vec![], false),
            CircuitState::Ready { attached, .. } => {
                (attached.into_iter().flatten().collect(), false)
            }
            CircuitState::Open { relay } => (relay.to_vec(), true),
        };
        self.events
            .push_back(Event::CircuitEnded { reason, was_open });
        // A socket whose close ended the circuit is gone already.
        let relay_conns: Vec<ConnId> = attached
            .into_iter()
            .filter(|c| self.conns.contains_key(c))
            .collect();
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

    pub(super) fn unknown_circuit(&mut self, conn: ConnId, kind: &str) {
        let reply = self.error(
            ErrorCode::UnknownCircuit,
            "no such circuit for this peer",
            Some(kind),
        );
        self.send(conn, reply);
    }

    fn random_hex(&mut self, len: usize) -> String {
        let mut bytes = vec![0u8; len];
        self.rng.fill_bytes(&mut bytes);
        bytes
            .iter()
            .fold(String::with_capacity(2 * len), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            })
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
