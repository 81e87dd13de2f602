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

use std::{
    collections::VecDeque,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use darkswap_proto::signaling::ClientToServer;
use libp2p_identity::{Keypair, PeerId};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::{sync::CancellationToken, task::AbortOnDropHandle};

mod inbound;
mod lifecycle;
mod socket;
mod supervisor;

use inbound::{Replies, relay_url_of};
pub use lifecycle::{ConnectionState, ReconnectPolicy};

use crate::{relay_token::RelayToken, tls::TlsRoots};

/// Bound on connecting and registering, and on waiting for an answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Events buffered for the reader before the socket task waits.
const EVENT_BUFFER: usize = 256;
/// Messages buffered for the socket before senders wait.
const SEND_BUFFER: usize = 256;
/// State changes buffered for each subscriber.
const STATE_BUFFER: usize = 64;
/// How long `disconnect` waits for the socket's close handshake.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
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
    /// The socket closed. With reconnection on, the client connects again
    /// and registers under the same peer id ([`WebRtcSignalingClient::state_changes`]
    /// tells when).
    Disconnected,
}

/// How a client shows itself to a relay that requires a token
/// (`docs/signaling.md`, Tokens).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum RelayAuth {
    /// No token: fine on an open relay; a closed relay refuses the
    /// registration (`Failed`).
    #[default]
    None,
    /// Earn a token from the relay's token service (`/auth/challenge`,
    /// `/auth/token`) before connecting, refresh it after 3/4 of its
    /// lifetime so that a reconnection always has a valid one, and earn a new
    /// one if the relay refuses it as expired.
    Auto,
    /// Start with this token (`darkswap-relay token issue`), then as `Auto`.
    Token(RelayToken),
}

/// Settings of a [`WebRtcSignalingClient`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SignalingOptions {
    /// Reconnection with backoff after a registered socket is lost.
    pub reconnect: ReconnectPolicy,
    /// Relay tokens.
    pub auth: RelayAuth,
    /// Who `wss://` and `https://` relays must be vouched for by: the
    /// system's roots, plus a private CA's if given. Default: the system's.
    pub tls: TlsRoots,
}

impl SignalingOptions {
    /// Sets [`reconnect`](Self::reconnect).
    pub fn with_reconnect(mut self, reconnect: ReconnectPolicy) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Sets [`auth`](Self::auth).
    pub fn with_auth(mut self, auth: RelayAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets [`tls`](Self::tls).
    pub fn with_tls_roots(mut self, roots: TlsRoots) -> Self {
        self.tls = roots;
        self
    }
}

/// A native signaling client. `connect` opens the socket and registers
/// (answers the server's challenge with this node's key, showing a relay
/// token if configured); then offers, answers and candidates can be sent
/// and events read. A lost socket is reconnected with backoff and
/// registered again under the same peer id; [`state`](Self::state) and
/// [`state_changes`](Self::state_changes) tell where it is.
pub struct WebRtcSignalingClient {
    inner: Arc<Inner>,
    events: tokio::sync::Mutex<mpsc::Receiver<SignalingEvent>>,
    supervisor: Mutex<Option<Supervisor>>,
}

struct Supervisor {
    cancel: CancellationToken,
    task: AbortOnDropHandle<()>,
}

/// What the client and its supervisor task share.
struct Inner {
    keypair: Keypair,
    options: SignalingOptions,
    /// The registered socket's queue, while there is one.
    outgoing: Mutex<Option<mpsc::Sender<ClientToServer>>>,
    events: mpsc::Sender<SignalingEvent>,
    peers: watch::Sender<Vec<PeerId>>,
    /// The `/signaling` URL of the last registration.
    url: Mutex<Option<String>>,
    /// Callers waiting for the server's answers, in order.
    replies: Replies,
    /// Peers watched, oldest first.
    watched: Mutex<VecDeque<PeerId>>,
    state: watch::Sender<ConnectionState>,
    changes: broadcast::Sender<ConnectionState>,
    token: watch::Sender<Option<RelayToken>>,
}

impl Inner {
    fn set_state(&self, state: ConnectionState) {
        if self
            .state
            .send_if_modified(|s| std::mem::replace(s, state) != state)
        {
            tracing::debug!(%state, "signaling state");
            let _ = self.changes.send(state);
        }
    }

    /// The socket is gone: whoever waits for an answer on it learns it now.
    fn replies_lost(&self) {
        let mut waiting = lock(&self.replies);
        waiting.pages.clear();
        waiting.presence.clear();
        waiting.circuits.clear();
    }
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl fmt::Debug for WebRtcSignalingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebRtcSignalingClient")
            .field("peer_id", &self.local_peer_id())
            .finish_non_exhaustive()
    }
}

impl WebRtcSignalingClient {
    /// A client that will register as `keypair`'s peer id, reconnecting
    /// with the default backoff, without a relay token.
    pub fn new(keypair: Keypair) -> Self {
        Self::with_options(keypair, SignalingOptions::default())
    }

    /// A client with these reconnection and token settings.
    pub fn with_options(keypair: Keypair, options: SignalingOptions) -> Self {
        let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
        let token = match &options.auth {
            RelayAuth::Token(t) => Some(t.clone()),
            _ => None,
        };
        WebRtcSignalingClient {
            inner: Arc::new(Inner {
                keypair,
                options,
                outgoing: Mutex::new(None),
                events: events_tx,
                peers: watch::Sender::new(Vec::new()),
                url: Mutex::new(None),
                replies: Replies::default(),
                watched: Mutex::new(VecDeque::new()),
                state: watch::Sender::new(ConnectionState::New),
                changes: broadcast::channel(STATE_BUFFER).0,
                token: watch::Sender::new(token),
            }),
            events: tokio::sync::Mutex::new(events_rx),
            supervisor: Mutex::new(None),
        }
    }

    /// The connection's state now.
    pub fn state(&self) -> ConnectionState {
        *self.inner.state.borrow()
    }

    /// Every state change from now on, in order (`Connecting`, `Connected`,
    /// `Disconnected`, `Connecting`, `Connected`, ..., `Closed`). A
    /// subscriber that falls more than 64 changes behind skips the oldest.
    pub fn state_changes(&self) -> broadcast::Receiver<ConnectionState> {
        self.inner.changes.subscribe()
    }

    /// Waits until the client is registered (`Connected`), at most
    /// `timeout`; fails at once if it stopped (`Failed`, `Closed`, or
    /// `Disconnected` without reconnection).
    pub async fn wait_until_connected(&self, timeout: Duration) -> Result<(), SignalingError> {
        let mut state = self.inner.state.subscribe();
        let reached = state.wait_for(|s| {
            matches!(
                s,
                ConnectionState::Connected | ConnectionState::Failed | ConnectionState::Closed
            ) || (*s == ConnectionState::Disconnected && !self.inner.options.reconnect.enabled)
        });
        match tokio::time::timeout(timeout, reached).await {
            Ok(Ok(s)) if *s == ConnectionState::Connected => Ok(()),
            Ok(_) => Err(SignalingError::NotConnected),
            Err(_) => Err(SignalingError::Timeout("connected")),
        }
    }

    /// The relay token in use, if the client has one.
    pub fn token(&self) -> Option<RelayToken> {
        self.inner.token.borrow().clone()
    }

    /// The relay's own STUN and TURN servers, with TURN credentials minted
    /// for this peer (`POST /auth/ice-servers`; a token is earned first if
    /// the client has none). Put them in [`WebRtcConfig::ice_servers`](crate::WebRtcConfig::ice_servers),
    /// or let the manager fetch them ([`WebRtcConfig::relay_ice_servers`](crate::WebRtcConfig::relay_ice_servers)).
    pub async fn fetch_ice_servers(
        &self,
    ) -> Result<darkswap_proto::relay_auth::IceServersResponse, SignalingError> {
        use crate::relay_token::{TokenClient, http_base_of};
        let url = lock(&self.inner.url)
            .clone()
            .ok_or(SignalingError::NotConnected)?;
        let client = TokenClient::new(http_base_of(&url)?, &self.inner.options.tls)?;
        let kept = self
            .token()
            .filter(|t| !t.refresh_in(std::time::SystemTime::now()).is_zero());
        let token = match kept {
            Some(token) => token,
            None => {
                let token = client.earn(&self.inner.keypair).await?;
                self.inner.token.send_replace(Some(token.clone()));
                token
            }
        };
        client.ice_servers(&token).await
    }

    /// The relay token as it changes (earned, refreshed, dropped).
    pub fn token_changes(&self) -> watch::Receiver<Option<RelayToken>> {
        self.inner.token.subscribe()
    }

    /// This client's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.inner.keypair.public().to_peer_id()
    }

    /// The roots `wss://` relays are checked against (relayed circuits
    /// open their sockets with them too).
    pub(crate) fn tls_roots(&self) -> &TlsRoots {
        &self.inner.options.tls
    }

    /// The identity key this client registers with (it also signs the
    /// end-to-end key of relayed circuits).
    pub(crate) fn keypair(&self) -> &Keypair {
        &self.inner.keypair
    }

    /// The `/relay` endpoint (relayed circuits) of the server this client
    /// last connected to: its `/signaling` URL with the last path segment
    /// replaced, as the browser client derives it.
    pub fn relay_url(&self) -> Option<String> {
        lock(&self.inner.url).as_deref().map(relay_url_of)
    }

    /// Connects to `url` (`ws://host:9001/signaling`, or `wss://` checked
    /// against [`SignalingOptions::tls`]) and registers. Returns
    /// the first page of the peers registered at that moment. From then on
    /// the client reconnects by itself when the socket is lost (see
    /// [`SignalingOptions::reconnect`]). Connecting again replaces the
    /// previous connection (and forgets what was watched).
    pub async fn connect(&self, url: &str) -> Result<Vec<PeerId>, SignalingError> {
        self.stop().await;
        lock(&self.inner.watched).clear();
        let (first_tx, first_rx) = oneshot::channel();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(supervisor::supervise(
            self.inner.clone(),
            url.to_owned(),
            first_tx,
            cancel.clone(),
        ));
        *lock(&self.supervisor) = Some(Supervisor {
            cancel,
            task: AbortOnDropHandle::new(task),
        });
        match tokio::time::timeout(CONNECT_TIMEOUT, first_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SignalingError::NotConnected),
            Err(_) => {
                self.stop().await;
                self.inner.set_state(ConnectionState::Failed);
                Err(SignalingError::Timeout("connect and register"))
            }
        }
    }

    /// Ends the supervisor, closing its socket cleanly (bounded).
    async fn stop(&self) {
        let supervisor = lock(&self.supervisor).take();
        if let Some(Supervisor { cancel, task }) = supervisor {
            cancel.cancel();
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, task).await;
        }
    }

    /// The other registered peers this client knows of: the last page it
    /// was given, and the watched peers, kept current by their
    /// `peer_joined` and `peer_left`.
    pub fn peers(&self) -> Vec<PeerId> {
        self.inner.peers.borrow().clone()
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
        lock(&self.inner.replies).pages.push_back(tx);
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
            let mut watched = lock(&self.inner.watched);
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
        lock(&self.inner.replies).presence.push_back(tx);
        let ids = peers.iter().map(PeerId::to_string).collect();
        self.send(ClientToServer::Watch { peers: ids }).await?;
        let answer = wait_reply(rx, "watch").await;
        if answer.is_err() {
            // Refused as a whole: none of them is watched.
            lock(&self.inner.watched).retain(|w| !peers.contains(w));
        }
        answer
    }

    /// Stops watching `peers`.
    pub async fn unwatch(&self, peers: &[PeerId]) -> Result<(), SignalingError> {
        lock(&self.inner.watched).retain(|w| !peers.contains(w));
        let peers = peers.iter().map(PeerId::to_string).collect();
        self.send(ClientToServer::Unwatch { peers }).await
    }

    /// Asks the server for a relayed circuit to `peer`; returns its id once
    /// the server forwarded the request (`circuit_pending`). The peer's
    /// answer comes as [`SignalingEvent::CircuitReady`] or
    /// [`SignalingEvent::CircuitRejected`].
    pub async fn request_circuit(&self, peer: &PeerId) -> Result<String, SignalingError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.replies).circuits.push_back((*peer, tx));
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
        let outgoing = lock(&self.inner.outgoing)
            .clone()
            .ok_or(SignalingError::NotConnected)?;
        outgoing
            .send(message)
            .await
            .map_err(|_| SignalingError::NotConnected)
    }

    /// The next event; meant for one reader. `Disconnected` reports each
    /// lost socket; events go on after a reconnection.
    pub async fn next_event(&self) -> Option<SignalingEvent> {
        self.events.lock().await.recv().await
    }

    /// Closes the connection for good (state `Closed`); no reconnection.
    pub async fn disconnect(&self) {
        self.stop().await;
        lock(&self.inner.outgoing).take();
        self.inner.set_state(ConnectionState::Closed);
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

/// Which SDP message to send.
#[derive(Debug, Clone, Copy)]
enum Sdp {
    Offer,
    Answer,
}
