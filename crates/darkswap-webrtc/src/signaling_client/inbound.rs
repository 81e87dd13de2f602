//! What the signaling server sends: answers handed to the callers waiting
//! for them, everything else turned into [`SignalingEvent`]s.

use std::{collections::VecDeque, sync::Arc};

use darkswap_proto::signaling::{ClientToServer, ServerToClient};
use libp2p_identity::PeerId;
use tokio::sync::{oneshot, watch};

use super::{PeerPage, Presence, SignalingError, SignalingEvent, lock};

pub(super) type Reply<T> = oneshot::Sender<Result<T, SignalingError>>;

/// Callers of `list_peers` and `watch` waiting for the server's answers;
/// the server answers each kind in order.
#[derive(Default)]
pub(super) struct Waiting {
    pub(super) pages: VecDeque<Reply<PeerPage>>,
    pub(super) presence: VecDeque<Reply<Presence>>,
    /// `circuit_request`s waiting for their `circuit_pending`, by peer.
    pub(super) circuits: VecDeque<(PeerId, Reply<String>)>,
}

pub(super) type Replies = Arc<std::sync::Mutex<Waiting>>;

pub(super) fn parse_peers(peers: &[String]) -> Vec<PeerId> {
    peers.iter().filter_map(|p| p.parse().ok()).collect()
}

/// Whether a server message answered a waiting caller.
pub(super) enum Answered {
    /// Not an answer: report it as an event.
    No,
    /// Handed to its caller.
    Yes,
    /// Nobody waits for it any more: send this to undo it.
    Send(ClientToServer),
}

/// Hands an answer to `list_peers`, `watch` or `circuit_request` (or a
/// refusal of one) to its caller.
pub(super) fn answer(
    message: &ServerToClient,
    peers: &watch::Sender<Vec<PeerId>>,
    replies: &Replies,
) -> Answered {
    match message {
        ServerToClient::CircuitPending { circuit_id, peer } => {
            let waiting = {
                let mut waiting = lock(replies);
                let at = waiting
                    .circuits
                    .iter()
                    .position(|(p, _)| p.to_string() == *peer);
                at.and_then(|i| waiting.circuits.remove(i))
            };
            match waiting.map(|(_, reply)| reply.send(Ok(circuit_id.clone()))) {
                Some(Ok(())) => Answered::Yes,
                // The caller gave up: the circuit is nobody's.
                _ => Answered::Send(ClientToServer::CircuitClose {
                    circuit_id: circuit_id.clone(),
                }),
            }
        }
        ServerToClient::Error {
            code,
            message,
            in_reply_to: Some(kind),
        } if kind == "circuit_request" => {
            if let Some((_, reply)) = lock(replies).circuits.pop_front() {
                let _ = reply.send(Err(SignalingError::Refused {
                    code: code.as_str().to_owned(),
                    message: message.clone(),
                }));
            }
            Answered::Yes
        }
        ServerToClient::Peers { peers: list, next } => {
            let page = PeerPage {
                peers: parse_peers(list),
                next: next.as_deref().and_then(|n| n.parse().ok()),
            };
            peers.send_modify(|known| {
                for p in &page.peers {
                    if !known.contains(p) {
                        known.push(*p);
                    }
                }
            });
            if let Some(reply) = lock(replies).pages.pop_front() {
                let _ = reply.send(Ok(page));
            }
            Answered::Yes
        }
        ServerToClient::Presence { online, offline } => {
            let presence = Presence {
                online: parse_peers(online),
                offline: parse_peers(offline),
            };
            peers.send_modify(|known| {
                known.retain(|p| !presence.offline.contains(p));
                for p in &presence.online {
                    if !known.contains(p) {
                        known.push(*p);
                    }
                }
            });
            if let Some(reply) = lock(replies).presence.pop_front() {
                let _ = reply.send(Ok(presence));
            }
            Answered::Yes
        }
        ServerToClient::Error {
            code,
            message,
            in_reply_to: Some(kind),
        } if kind == "list_peers" || kind == "watch" => {
            let refused = || SignalingError::Refused {
                code: code.as_str().to_owned(),
                message: message.clone(),
            };
            let mut waiting = lock(replies);
            if kind == "list_peers" {
                if let Some(reply) = waiting.pages.pop_front() {
                    let _ = reply.send(Err(refused()));
                }
            } else if let Some(reply) = waiting.presence.pop_front() {
                let _ = reply.send(Err(refused()));
            }
            // Still reported as an event, as every server error is.
            Answered::No
        }
        _ => Answered::No,
    }
}

pub(super) fn to_event(
    message: ServerToClient,
    peers: &watch::Sender<Vec<PeerId>>,
) -> Option<SignalingEvent> {
    let peer = |s: &str| s.parse::<PeerId>().ok();
    Some(match message {
        ServerToClient::PeerJoined { peer_id } => {
            let p = peer(&peer_id)?;
            peers.send_modify(|v| {
                if !v.contains(&p) {
                    v.push(p)
                }
            });
            SignalingEvent::PeerJoined(p)
        }
        ServerToClient::PeerLeft { peer_id } => {
            let p = peer(&peer_id)?;
            peers.send_modify(|v| v.retain(|x| *x != p));
            SignalingEvent::PeerLeft(p)
        }
        ServerToClient::Offer { from, sdp, session } => SignalingEvent::Offer {
            from: peer(&from)?,
            sdp,
            session,
        },
        ServerToClient::Answer { from, sdp, session } => SignalingEvent::Answer {
            from: peer(&from)?,
            sdp,
            session,
        },
        ServerToClient::Candidate {
            from,
            candidate,
            session,
        } => SignalingEvent::Candidate {
            from: peer(&from)?,
            candidate,
            session,
        },
        ServerToClient::CircuitRequest { circuit_id, from } => SignalingEvent::CircuitRequest {
            circuit_id,
            from: peer(&from)?,
        },
        ServerToClient::CircuitReady {
            circuit_id,
            peer: other,
            token,
        } => SignalingEvent::CircuitReady {
            circuit_id,
            peer: peer(&other)?,
            token,
        },
        ServerToClient::CircuitRejected {
            circuit_id, reason, ..
        } => SignalingEvent::CircuitRejected { circuit_id, reason },
        ServerToClient::CircuitClosed { circuit_id, reason } => {
            SignalingEvent::CircuitClosed { circuit_id, reason }
        }
        ServerToClient::Error {
            code,
            message,
            in_reply_to,
        } => SignalingEvent::Error {
            code: code.as_str().to_owned(),
            message,
            in_reply_to,
        },
        _ => return None,
    })
}

/// `ws://host/signaling` → `ws://host/relay` (query and fragment dropped),
/// as `clients/js`'s `defaultRelayUrl`.
pub(super) fn relay_url_of(signaling: &str) -> String {
    let end = signaling.find(['?', '#']).unwrap_or(signaling.len());
    let base = signaling[..end].trim_end_matches('/');
    match base.strip_suffix("/signaling") {
        Some(root) => format!("{root}/relay"),
        None => format!("{base}/relay"),
    }
}

#[cfg(test)]
mod tests {
    use super::relay_url_of;

    #[test]
    fn the_relay_endpoint_sits_beside_signaling() {
        assert_eq!(relay_url_of("ws://h:9001/signaling"), "ws://h:9001/relay");
        assert_eq!(relay_url_of("wss://h/signaling/?x=1#f"), "wss://h/relay");
        assert_eq!(relay_url_of("ws://h:9001"), "ws://h:9001/relay");
        assert_eq!(relay_url_of("ws://h/p/signaling"), "ws://h/p/relay");
    }
}
