//! [`WebRtcSignalingClient`]: a native client of the relay's WebSocket
//! signaling server (`docs/signaling.md`). It proves this node's peer id
//! with its libp2p identity key, then sends offers, answers and ICE
//! candidates to other peers and reports what arrives for it.
//!
//! Presence is on demand, as the server tells it: the first page of peers
//! comes with the registration, [`list_peers_page`] pages through the rest,
//! and [`watch`] asks to hear when chosen peers register or leave (the
//! client keeps at most [`MAX_WATCHED`] watched, unwatching the oldest).
//!
//! [`list_peers_page`]: WebRtcSignalingClient::list_peers_page
//! [`watch`]: WebRtcSignalingClient::watch

use std::{collections::VecDeque, fmt, time::Duration};

use darkswap_proto::signaling::{ClientToServer, ServerToClient, sign_registration};
use futures::{SinkExt, StreamExt};
use libp2p_identity::{Keypair, PeerId};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use tokio_util::task::AbortOnDropHandle;

mod inbound;

use inbound::{Answered, Replies, answer, parse_peers, relay_url_of, to_event};

/// Bound on connecting and registering.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Keep-alive interval; the server closes sockets idle for 60 s by default.
const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Events buffered for the reader before the socket task waits.
const EVENT_BUFFER: usize = 256;
/// Messages buffered for the socket before senders wait.
const SEND_BUFFER: usize = 256;
/// Peers this client watches at most; watching one more unwatches the one
/// watched longest ago (the server's default limit is 256).
pub const MAX_WATCHED: usize = 128;

/// Why a signaling operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalingError {
    /// The server could not be reached or the socket failed.
    #[error("signaling connection failed: {0}")]
    Connection(String),
    /// The server refused the registration (`bad_signature`,
    /// `already_registered`, `server_full`) or another request.
    #[error("signaling server refused: {code}: {message}")]
    Refused {
        /// The server's error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The server broke the protocol.
    #[error("signaling protocol error: {0}")]
    Protocol(String),
    /// The operation did not finish in time.
    #[error("signaling timed out: {0}")]
    Timeout(&'static str),
    /// Not connected (never, or no longer).
    #[error("not connected to a signaling server")]
    NotConnected,
}

/// What the signaling server tells this client.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SignalingEvent {
    /// A watched peer registered.
    PeerJoined(PeerId),
    /// A watched peer left.
    PeerLeft(PeerId),
    /// A WebRTC offer.
    Offer {
        /// The sender, as verified by the server.
        from: PeerId,
        /// SDP text.
        sdp: String,
        /// The sender's attempt id.
        session: Option<String>,
    },
    /// A WebRTC answer.
    Answer {
        /// The sender, as verified by the server.
        from: PeerId,
        /// SDP text.
        sdp: String,
        /// The attempt id it answers.
        session: Option<String>,
    },
    /// A trickled ICE candidate (`RTCIceCandidate.toJSON()`, or null at
    /// the end of candidates).
    Candidate {
        /// The sender, as verified by the server.
        from: PeerId,
        /// The candidate object.
        candidate: Value,
        /// The attempt it belongs to.
        session: Option<String>,
    },
    /// `from` asks for a relayed circuit (`docs/signaling.md`, Relayed
    /// circuits); answer with [`accept_circuit`] or [`reject_circuit`].
    ///
    /// [`accept_circuit`]: WebRtcSignalingClient::accept_circuit
    /// [`reject_circuit`]: WebRtcSignalingClient::reject_circuit
    CircuitRequest {
        /// The circuit.
        circuit_id: String,
        /// The requester, as verified by the server.
        from: PeerId,
    },
    /// A circuit was accepted: attach to it on `/relay` with `token`.
    CircuitReady {
        /// The circuit.
        circuit_id: String,
        /// The other end.
        peer: PeerId,
        /// This side's secret for `attach`.
        token: String,
    },
    /// Our circuit request was refused.
    CircuitRejected {
        /// The circuit.
        circuit_id: String,
        /// Why.
        reason: String,
    },
    /// A circuit closed (`closed`, `peer_left`, `accept_timeout`, a limit…).
    CircuitClosed {
        /// The circuit.
        circuit_id: String,
        /// Why.
        reason: String,
    },
    /// The server answered a request with an error.
    Error {
        /// The error code.
        code: String,
        /// Its message.
        message: String,
        /// The type of the message it refused, if the server says.
        in_reply_to: Option<String>,
    },
    /// The socket closed; no more events follow.
    Disconnected,
}

/// A native signaling client. `connect` opens the socket and registers
/// (answers the server's challenge with this node's key); then offers,
/// answers and candidates can be sent and events read.
pub struct WebRtcSignalingClient {
    keypair: Keypair,
    state: Mutex<Option<Connected>>,
    events: Mutex<Option<mpsc::Receiver<SignalingEvent>>>,
    peers: watch::Sender<Vec<PeerId>>,
    /// The `/signaling` URL of the last successful connection.
    url: std::sync::Mutex<Option<String>>,
    /// Callers waiting for the server's answers, in order.
    replies: Replies,
    /// Peers watched, oldest first.
    watched: std::sync::Mutex<VecDeque<PeerId>>,
}

/// One page of the registered peers ([`WebRtcSignalingClient::list_peers_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerPage {
    /// The page.
    pub peers: Vec<PeerId>,
    /// Where the next page starts; `None` when this one is the last.
    pub next: Option<PeerId>,
}

/// Which of the watched peers are registered now ([`WebRtcSignalingClient::watch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Presence {
    /// Registered now.
    pub online: Vec<PeerId>,
    /// Not registered now.
    pub offline: Vec<PeerId>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Connected {
    outgoing: mpsc::Sender<ClientToServer>,
    _task: AbortOnDropHandle<()>,
}

impl fmt::Debug for WebRtcSignalingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebRtcSignalingClient")
            .field("peer_id", &self.local_peer_id())
            .finish_non_exhaustive()
    }
}

impl WebRtcSignalingClient {
    /// A client that will register as `keypair`'s peer id.
    pub fn new(keypair: Keypair) -> Self {
        WebRtcSignalingClient {
            keypair,
            state: Mutex::new(None),
            events: Mutex::new(None),
            peers: watch::Sender::new(Vec::new()),
            url: std::sync::Mutex::new(None),
            replies: Replies::default(),
            watched: std::sync::Mutex::new(VecDeque::new()),
        }
    }

    /// This client's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// The identity key this client registers with (it also signs the
    /// end-to-end key of relayed circuits).
    pub(crate) fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// The `/relay` endpoint (relayed circuits) of the server this client
    /// last connected to: its `/signaling` URL with the last path segment
    /// replaced, as the browser client derives it.
    pub fn relay_url(&self) -> Option<String> {
        lock(&self.url).as_deref().map(relay_url_of)
    }

    /// Connects to `url` (`ws://host:9001/signaling`) and registers. Returns
    /// the first page of the peers registered at that moment. Connecting
    /// again replaces the previous connection (and forgets what was watched).
    pub async fn connect(&self, url: &str) -> Result<Vec<PeerId>, SignalingError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect_inner(url))
            .await
            .map_err(|_| SignalingError::Timeout("connect and register"))?
    }

    async fn connect_inner(&self, url: &str) -> Result<Vec<PeerId>, SignalingError> {
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| SignalingError::Connection(e.to_string()))?;
        let nonce = match next_message(&mut ws).await? {
            ServerToClient::Challenge { nonce } => nonce,
            other => {
                return Err(SignalingError::Protocol(format!(
                    "expected a challenge, got {other:?}"
                )));
            }
        };
        let register = sign_registration(&self.keypair, &nonce)
            .map_err(|e| SignalingError::Protocol(e.to_string()))?;
        ws.send(Message::text(register.to_json()))
            .await
            .map_err(|e| SignalingError::Connection(e.to_string()))?;
        let peers = match next_message(&mut ws).await? {
            ServerToClient::Registered { peers, .. } => parse_peers(&peers),
            ServerToClient::Error { code, message, .. } => {
                return Err(SignalingError::Refused {
                    code: code.as_str().to_owned(),
                    message,
                });
            }
            other => {
                return Err(SignalingError::Protocol(format!(
                    "expected registered, got {other:?}"
                )));
            }
        };
        self.peers.send_replace(peers.clone());
        let (out_tx, out_rx) = mpsc::channel(SEND_BUFFER);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_BUFFER);
        let task = AbortOnDropHandle::new(tokio::spawn(run_socket(
            ws,
            out_rx,
            ev_tx,
            self.peers.clone(),
            self.replies.clone(),
        )));
        lock(&self.watched).clear();
        *lock(&self.url) = Some(url.to_owned());
        *self.state.lock().await = Some(Connected {
            outgoing: out_tx,
            _task: task,
        });
        *self.events.lock().await = Some(ev_rx);
        Ok(peers)
    }

    /// The other registered peers this client knows of: the last page it
    /// was given, and the watched peers, kept current by their
    /// `peer_joined` and `peer_left`.
    pub fn peers(&self) -> Vec<PeerId> {
        self.peers.borrow().clone()
    }

    /// Asks the server for the first page of the registered peers now.
    pub async fn list_peers(&self) -> Result<Vec<PeerId>, SignalingError> {
        Ok(self.list_peers_page(None, None).await?.peers)
    }

    /// Asks the server for one page of the registered peers: the first, or
    /// the one after `after` (the previous page's `next`), of at most
    /// `limit` peers (the server caps it at its page size).
    pub async fn list_peers_page(
        &self,
        after: Option<PeerId>,
        limit: Option<u32>,
    ) -> Result<PeerPage, SignalingError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.replies).pages.push_back(tx);
        let after = after.map(|p| p.to_string());
        self.send(ClientToServer::ListPeers { after, limit })
            .await?;
        wait_reply(rx, "list_peers").await
    }

    /// Asks to be told (`PeerJoined`, `PeerLeft`) when `peers` register or
    /// leave, and which of them are registered now. Watching more than
    /// [`MAX_WATCHED`] peers unwatches those watched longest ago.
    pub async fn watch(&self, peers: &[PeerId]) -> Result<Presence, SignalingError> {
        let evicted: Vec<String> = {
            let mut watched = lock(&self.watched);
            for p in peers {
                watched.retain(|w| w != p);
                watched.push_back(*p);
            }
            let excess = watched.len().saturating_sub(MAX_WATCHED);
            watched.drain(..excess).map(|p| p.to_string()).collect()
        };
        if !evicted.is_empty() {
            self.send(ClientToServer::Unwatch { peers: evicted })
                .await?;
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.replies).presence.push_back(tx);
        let ids = peers.iter().map(PeerId::to_string).collect();
        self.send(ClientToServer::Watch { peers: ids }).await?;
        let answer = wait_reply(rx, "watch").await;
        if answer.is_err() {
            // Refused as a whole: none of them is watched.
            lock(&self.watched).retain(|w| !peers.contains(w));
        }
        answer
    }

    /// Stops watching `peers`.
    pub async fn unwatch(&self, peers: &[PeerId]) -> Result<(), SignalingError> {
        lock(&self.watched).retain(|w| !peers.contains(w));
        let peers = peers.iter().map(PeerId::to_string).collect();
        self.send(ClientToServer::Unwatch { peers }).await
    }

    /// Asks the server for a relayed circuit to `peer`; returns its id once
    /// the server forwarded the request (`circuit_pending`). The peer's
    /// answer comes as [`SignalingEvent::CircuitReady`] or
    /// [`SignalingEvent::CircuitRejected`].
    pub async fn request_circuit(&self, peer: &PeerId) -> Result<String, SignalingError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.replies).circuits.push_back((*peer, tx));
        self.send(ClientToServer::CircuitRequest {
            to: peer.to_string(),
        })
        .await?;
        wait_reply(rx, "circuit_request").await
    }

    /// Accepts the circuit another peer requested.
    pub async fn accept_circuit(&self, circuit_id: &str) -> Result<(), SignalingError> {
        self.send(ClientToServer::CircuitAccept {
            circuit_id: circuit_id.to_owned(),
        })
        .await
    }

    /// Refuses the circuit another peer requested.
    pub async fn reject_circuit(
        &self,
        circuit_id: &str,
        reason: &str,
    ) -> Result<(), SignalingError> {
        self.send(ClientToServer::CircuitReject {
            circuit_id: circuit_id.to_owned(),
            reason: Some(reason.to_owned()),
        })
        .await
    }

    /// Closes a circuit (pending or open) on the server.
    pub async fn close_circuit(&self, circuit_id: &str) -> Result<(), SignalingError> {
        self.send(ClientToServer::CircuitClose {
            circuit_id: circuit_id.to_owned(),
        })
        .await
    }

    /// Sends an SDP offer to `peer`.
    pub async fn send_offer(
        &self,
        peer: &PeerId,
        sdp: &str,
        session: Option<&str>,
    ) -> Result<(), SignalingError> {
        self.send_sdp(Sdp::Offer, peer, sdp, session).await
    }

    /// Sends an SDP answer to `peer`.
    pub async fn send_answer(
        &self,
        peer: &PeerId,
        sdp: &str,
        session: Option<&str>,
    ) -> Result<(), SignalingError> {
        self.send_sdp(Sdp::Answer, peer, sdp, session).await
    }

    async fn send_sdp(
        &self,
        kind: Sdp,
        peer: &PeerId,
        sdp: &str,
        session: Option<&str>,
    ) -> Result<(), SignalingError> {
        // The server stamps `from` itself.
        let (to, sdp, session, from) = (
            peer.to_string(),
            sdp.to_owned(),
            session.map(str::to_owned),
            None,
        );
        self.send(match kind {
            Sdp::Offer => ClientToServer::Offer {
                to,
                sdp,
                session,
                from,
            },
            Sdp::Answer => ClientToServer::Answer {
                to,
                sdp,
                session,
                from,
            },
        })
        .await
    }

    /// Sends an ICE candidate (`{"candidate": "candidate:...", "sdpMid": ...}`,
    /// or null for the end of candidates) to `peer`.
    pub async fn send_ice_candidate(
        &self,
        peer: &PeerId,
        candidate: Value,
        session: Option<&str>,
    ) -> Result<(), SignalingError> {
        self.send(ClientToServer::Candidate {
            to: peer.to_string(),
            candidate,
            session: session.map(str::to_owned),
            from: None,
        })
        .await
    }

    async fn send(&self, message: ClientToServer) -> Result<(), SignalingError> {
        let outgoing = self
            .state
            .lock()
            .await
            .as_ref()
            .map(|c| c.outgoing.clone())
            .ok_or(SignalingError::NotConnected)?;
        outgoing
            .send(message)
            .await
            .map_err(|_| SignalingError::NotConnected)
    }

    /// The next event; `None` once the connection is gone and every event
    /// was read. Meant for one reader.
    pub async fn next_event(&self) -> Option<SignalingEvent> {
        let mut events = self.events.lock().await;
        events.as_mut()?.recv().await
    }

    /// Closes the connection.
    pub async fn disconnect(&self) {
        self.state.lock().await.take();
    }
}

async fn wait_reply<T>(
    rx: oneshot::Receiver<Result<T, SignalingError>>,
    what: &'static str,
) -> Result<T, SignalingError> {
    tokio::time::timeout(CONNECT_TIMEOUT, rx)
        .await
        .map_err(|_| SignalingError::Timeout(what))?
        .map_err(|_| SignalingError::NotConnected)?
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_message(ws: &mut Ws) -> Result<ServerToClient, SignalingError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str())
                    .map_err(|e| SignalingError::Protocol(format!("{e}: {t}")));
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(SignalingError::Connection(format!("closed: {frame:?}")));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(SignalingError::Connection(e.to_string())),
            None => return Err(SignalingError::Connection("closed".to_owned())),
        }
    }
}

async fn run_socket(
    mut ws: Ws,
    mut outgoing: mpsc::Receiver<ClientToServer>,
    events: mpsc::Sender<SignalingEvent>,
    peers: watch::Sender<Vec<PeerId>>,
    replies: Replies,
) {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    loop {
        tokio::select! {
            message = outgoing.recv() => {
                let Some(message) = message else { break };
                if ws.send(Message::text(message.to_json())).await.is_err() {
                    break;
                }
            }
            _ = ping.tick() => {
                if ws.send(Message::text(ClientToServer::Ping { id: None }.to_json())).await.is_err() {
                    break;
                }
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(message) = serde_json::from_str::<ServerToClient>(text.as_str()) else {
                    tracing::debug!(frame = %text.as_str(), "unknown signaling message ignored");
                    continue;
                };
                match answer(&message, &peers, &replies) {
                    Answered::No => {}
                    Answered::Yes => continue,
                    Answered::Send(reply) => {
                        if ws.send(Message::text(reply.to_json())).await.is_err() {
                            break;
                        }
                        continue;
                    }
                }
                let Some(event) = to_event(message, &peers) else { continue };
                if events.send(event).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = ws.close(None).await;
    let _ = events.send(SignalingEvent::Disconnected).await;
}

/// Which SDP message to send.
#[derive(Debug, Clone, Copy)]
enum Sdp {
    Offer,
    Answer,
}
