//! [`WebRtcSignalingClient`]: a native client of the relay's WebSocket
//! signaling server (`docs/signaling.md`). It proves this node's peer id
//! with its libp2p identity key, then sends offers, answers and ICE
//! candidates to other peers and reports what arrives for it.

use std::{collections::VecDeque, fmt, sync::Arc, time::Duration};

use darkswap_proto::signaling::{ClientToServer, ServerToClient, sign_registration};
use futures::{SinkExt, StreamExt};
use libp2p_identity::{Keypair, PeerId};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use tokio_util::task::AbortOnDropHandle;

/// Bound on connecting and registering.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Keep-alive interval; the server closes sockets idle for 60 s by default.
const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Events buffered for the reader before the socket task waits.
const EVENT_BUFFER: usize = 256;
/// Messages buffered for the socket before senders wait.
const SEND_BUFFER: usize = 256;

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
    /// Another peer registered.
    PeerJoined(PeerId),
    /// Another peer left.
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
    /// The server answered a request with an error.
    Error {
        /// The error code.
        code: String,
        /// Its message.
        message: String,
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
    /// Callers of `list_peers` waiting for the server's answer, in order.
    peer_queries: PeerQueries,
}

type PeerQueries = Arc<std::sync::Mutex<VecDeque<oneshot::Sender<Vec<PeerId>>>>>;

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
            peer_queries: PeerQueries::default(),
        }
    }

    /// This client's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// Connects to `url` (`ws://host:9001/signaling`) and registers. Returns
    /// the peers registered at that moment. Connecting again replaces the
    /// previous connection.
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
            self.peer_queries.clone(),
        )));
        *self.state.lock().await = Some(Connected {
            outgoing: out_tx,
            _task: task,
        });
        *self.events.lock().await = Some(ev_rx);
        Ok(peers)
    }

    /// The other registered peers, as last reported by the server.
    pub fn peers(&self) -> Vec<PeerId> {
        self.peers.borrow().clone()
    }

    /// Asks the server for the registered peers now (`list_peers`).
    pub async fn list_peers(&self) -> Result<Vec<PeerId>, SignalingError> {
        let (tx, rx) = oneshot::channel();
        self.peer_queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(tx);
        self.send(ClientToServer::ListPeers).await?;
        tokio::time::timeout(CONNECT_TIMEOUT, rx)
            .await
            .map_err(|_| SignalingError::Timeout("list_peers"))?
            .map_err(|_| SignalingError::NotConnected)
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

fn parse_peers(peers: &[String]) -> Vec<PeerId> {
    peers.iter().filter_map(|p| p.parse().ok()).collect()
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
    queries: PeerQueries,
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
                if let ServerToClient::Peers { peers: list } = &message {
                    let list = parse_peers(list);
                    peers.send_replace(list.clone());
                    if let Some(q) = queries.lock().unwrap_or_else(|e| e.into_inner()).pop_front() {
                        let _ = q.send(list);
                    }
                    continue;
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

fn to_event(message: ServerToClient, peers: &watch::Sender<Vec<PeerId>>) -> Option<SignalingEvent> {
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
        ServerToClient::Error { code, message, .. } => SignalingEvent::Error {
            code: code.as_str().to_owned(),
            message,
        },
        _ => return None,
    })
}

/// Which SDP message to send.
#[derive(Debug, Clone, Copy)]
enum Sdp {
    Offer,
    Answer,
}
