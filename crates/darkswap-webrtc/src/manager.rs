//! [`WebRtcConnectionManager`] makes and
//! accepts [`WebRtcConnection`]s to other peers (browsers running
//! `darkswap-relay-client.js`, or native nodes) through a
//! [`WebRtcSignalingClient`], and keeps them in a [`ConnectionPool`].
//!
//! Each connection is one [str0m](https://docs.rs/str0m) `Rtc` (sans-IO
//! ICE, DTLS and SCTP) driven by its own task over UDP sockets bound to the
//! configured host addresses. One data channel, labelled `darkswap`,
//! carries the messages: text frames and binary frames, as a browser's
//! `RTCDataChannel` sends them.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use libp2p_identity::PeerId;
use rand::RngCore;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

use crate::{
    config::WebRtcConfig,
    connection::WebRtcConnection,
    connection_pool::{ConnectionPool, ConnectionPoolConfig, PoolStats},
    error::WebRtcError,
    peer_task::{answer, offer},
    signaling_client::{SignalingEvent, WebRtcSignalingClient},
};

/// What the manager forwards to one connection task from signaling.
#[derive(Debug)]
pub(crate) enum Signal {
    Answer(String),
    Candidate(Value),
}

/// Where the manager routes signaling for one peer.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) session: String,
    pub(crate) signals: mpsc::Sender<Signal>,
    /// Whether this side offered.
    pub(crate) initiator: bool,
}

pub(crate) type Waiter = oneshot::Sender<Result<WebRtcConnection, WebRtcError>>;

pub(crate) struct Shared {
    pub(crate) signaling: Arc<WebRtcSignalingClient>,
    pub(crate) config: WebRtcConfig,
    pub(crate) pool: Arc<ConnectionPool<WebRtcConnection>>,
    pub(crate) state: Mutex<State>,
    pub(crate) incoming: mpsc::Sender<WebRtcConnection>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) routes: HashMap<PeerId, Route>,
    /// `create_connection` / `wait_for_connection` callers per peer.
    pub(crate) waiters: HashMap<PeerId, Vec<Waiter>>,
    /// Tasks of attempts not yet open, by peer.
    pub(crate) attempts: HashMap<PeerId, PendingAttempt>,
}

/// A connection attempt in flight. Its task outlives this entry once the
/// channel opens (it then serves the connection); a superseded attempt is
/// aborted.
pub(crate) struct PendingAttempt {
    pub(crate) session: String,
    pub(crate) task: tokio::task::AbortHandle,
}

impl State {
    fn start_attempt(&mut self, peer: PeerId, session: String, task: tokio::task::AbortHandle) {
        if let Some(old) = self.attempts.insert(peer, PendingAttempt { session, task }) {
            old.task.abort();
        }
    }
}

impl Shared {
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection opened: into the pool, to whoever waits for it, else to
    /// `accept`.
    pub(crate) fn deliver(&self, conn: WebRtcConnection) {
        let peer = conn.peer;
        let waiters = {
            let mut state = self.state();
            state.attempts.remove(&peer);
            state.waiters.remove(&peer).unwrap_or_default()
        };
        if let Err(e) = self.pool.insert(peer, conn.clone()) {
            tracing::warn!(%peer, error = %e, "WebRTC connection not pooled");
        }
        if waiters.is_empty() {
            // In use by whoever accepts it, until they release it.
            if self.incoming.try_send(conn).is_err() {
                tracing::debug!(%peer, "incoming WebRTC connection refused: nobody accepts");
                self.pool.close(&peer);
            }
            return;
        }
        // The insert counted the first waiter's use; count the others'.
        for (n, w) in waiters.into_iter().enumerate() {
            let conn = if n == 0 {
                Some(conn.clone())
            } else {
                self.pool.get(&peer)
            };
            let _ = w.send(conn.ok_or(WebRtcError::Closed));
        }
    }

    /// An attempt failed: its waiters learn why, unless a newer attempt for
    /// the same peer took over.
    pub(crate) fn fail(&self, peer: PeerId, session: &str, error: WebRtcError) {
        let waiters = {
            let mut state = self.state();
            if state
                .routes
                .get(&peer)
                .is_some_and(|r| r.session == session)
            {
                state.routes.remove(&peer);
            }
            if state
                .attempts
                .get(&peer)
                .is_some_and(|a| a.session == session)
            {
                state.attempts.remove(&peer);
                state.waiters.remove(&peer).unwrap_or_default()
            } else {
                Vec::new()
            }
        };
        for w in waiters {
            let _ = w.send(Err(error.clone()));
        }
    }
}

/// Makes and accepts WebRTC data-channel connections through a signaling
/// server, and pools them.
pub struct WebRtcConnectionManager {
    pub(crate) shared: Arc<Shared>,
    pub(crate) incoming: tokio::sync::Mutex<mpsc::Receiver<WebRtcConnection>>,
    pub(crate) _task: AbortOnDropHandle<()>,
}

impl fmt::Debug for WebRtcConnectionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebRtcConnectionManager")
            .field("peer_id", &self.shared.signaling.local_peer_id())
            .field("pool", &self.shared.pool.stats())
            .finish_non_exhaustive()
    }
}

impl WebRtcConnectionManager {
    /// A manager over a connected signaling client, with a default pool.
    pub fn new(signaling: Arc<WebRtcSignalingClient>, config: WebRtcConfig) -> Self {
        let pool = Arc::new(ConnectionPool::new(ConnectionPoolConfig::default()));
        Self::with_connection_pool(signaling, pool, config)
    }

    /// A manager that keeps its connections in `pool`.
    pub fn with_connection_pool(
        signaling: Arc<WebRtcSignalingClient>,
        pool: Arc<ConnectionPool<WebRtcConnection>>,
        config: WebRtcConfig,
    ) -> Self {
        let (incoming_tx, incoming_rx) = mpsc::channel(64);
        let shared = Arc::new(Shared {
            signaling,
            config,
            pool,
            state: Mutex::new(State::default()),
            incoming: incoming_tx,
        });
        let task = AbortOnDropHandle::new(tokio::spawn(run_manager(shared.clone())));
        WebRtcConnectionManager {
            shared,
            incoming: tokio::sync::Mutex::new(incoming_rx),
            _task: task,
        }
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.shared.signaling.local_peer_id()
    }

    /// A connection to `peer`: a pooled one if there is a live one, else a
    /// new one (this side offers). It is in use by the caller until
    /// [`release_connection`](Self::release_connection).
    pub async fn create_connection(&self, peer: &PeerId) -> Result<WebRtcConnection, WebRtcError> {
        if let Some(conn) = self.shared.pool.get(peer) {
            return Ok(conn);
        }
        // Watching the peer asks whether it is registered now and keeps us
        // told of it (the server announces a peer only to its watchers).
        if !self
            .shared
            .signaling
            .watch(&[*peer])
            .await?
            .online
            .contains(peer)
        {
            return Err(WebRtcError::UnknownPeer(*peer));
        }
        let (tx, rx) = oneshot::channel();
        let session = random_session();
        let (signals_tx, signals_rx) = mpsc::channel(64);
        {
            let mut state = self.shared.state();
            state.waiters.entry(*peer).or_default().push(tx);
            state.routes.insert(
                *peer,
                Route {
                    session: session.clone(),
                    signals: signals_tx,
                    initiator: true,
                },
            );
            let task = tokio::spawn(offer(
                self.shared.clone(),
                *peer,
                session.clone(),
                signals_rx,
            ));
            state.start_attempt(*peer, session, task.abort_handle());
        }
        let timeout = self.shared.config.connect_timeout + Duration::from_secs(1);
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(WebRtcError::Closed),
            Err(_) => Err(WebRtcError::Timeout(*peer)),
        }
    }

    /// Waits until a connection with `peer` is open, whichever side makes
    /// it, and returns it (in use by the caller).
    pub async fn wait_for_connection(
        &self,
        peer: &PeerId,
    ) -> Result<WebRtcConnection, WebRtcError> {
        if let Some(conn) = self.shared.pool.get(peer) {
            return Ok(conn);
        }
        let (tx, rx) = oneshot::channel();
        self.shared
            .state()
            .waiters
            .entry(*peer)
            .or_default()
            .push(tx);
        match tokio::time::timeout(self.shared.config.connect_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(WebRtcError::Closed),
            Err(_) => Err(WebRtcError::Timeout(*peer)),
        }
    }

    /// The next connection another peer opened to this one, or `None` when
    /// the manager is gone. It is pooled and in use by the caller until
    /// [`release_connection`](Self::release_connection).
    pub async fn accept(&self) -> Option<WebRtcConnection> {
        self.incoming.lock().await.recv().await
    }

    /// A live pooled connection to `peer`, now in use by the caller.
    pub fn get_connection(&self, peer: &PeerId) -> Option<WebRtcConnection> {
        self.shared.pool.get(peer)
    }

    /// Gives a connection back to the pool for reuse.
    pub fn release_connection(&self, peer: &PeerId) {
        self.shared.pool.release(peer)
    }

    /// Closes the connection to `peer` and removes it from the pool.
    pub fn close_connection(&self, peer: &PeerId) -> bool {
        self.shared.pool.close(peer)
    }

    /// What the pool holds.
    pub fn get_connection_stats(&self) -> PoolStats {
        self.shared.pool.stats()
    }

    /// Closes idle, expired and dead pooled connections; returns how many.
    pub fn prune_connections(&self) -> usize {
        self.shared.pool.prune()
    }
}

impl Drop for WebRtcConnectionManager {
    fn drop(&mut self) {
        for (_, attempt) in self.shared.state().attempts.drain() {
            attempt.task.abort();
        }
        self.shared.pool.close_all();
    }
}

pub(crate) fn random_session() -> String {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads signaling events and routes them to connection attempts.
pub(crate) async fn run_manager(shared: Arc<Shared>) {
    let local = shared.signaling.local_peer_id();
    while let Some(event) = shared.signaling.next_event().await {
        match event {
            SignalingEvent::Offer { from, sdp, session } => {
                let session = session.unwrap_or_default();
                let mut state = shared.state();
                if let Some(route) = state.routes.get(&from) {
                    // Both sides offered at once: the smaller peer id yields.
                    if route.initiator && route.session != session && local > from {
                        tracing::debug!(peer = %from, "offer glare: keeping ours");
                        continue;
                    }
                }
                let (signals_tx, signals_rx) = mpsc::channel(64);
                state.routes.insert(
                    from,
                    Route {
                        session: session.clone(),
                        signals: signals_tx,
                        initiator: false,
                    },
                );
                let task = tokio::spawn(answer(
                    shared.clone(),
                    from,
                    session.clone(),
                    sdp,
                    signals_rx,
                ));
                state.start_attempt(from, session, task.abort_handle());
            }
            SignalingEvent::Answer { from, sdp, session } => {
                route(&shared, from, session, Signal::Answer(sdp));
            }
            SignalingEvent::Candidate {
                from,
                candidate,
                session,
            } => route(&shared, from, session, Signal::Candidate(candidate)),
            SignalingEvent::Disconnected => break,
            _ => {}
        }
    }
}

pub(crate) fn route(shared: &Shared, from: PeerId, session: Option<String>, signal: Signal) {
    let state = shared.state();
    match state.routes.get(&from) {
        Some(r) if Some(&r.session) == session.as_ref() || session.is_none() => {
            if r.signals.try_send(signal).is_err() {
                tracing::debug!(peer = %from, "signal for a busy or finished attempt dropped");
            }
        }
        _ => tracing::debug!(peer = %from, "signal for an unknown attempt dropped"),
    }
}
