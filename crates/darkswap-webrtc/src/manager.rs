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
//!
//! When WebRTC does not connect within [`WebRtcConfig::ice_timeout`] (or
//! cannot be tried: no ICE candidate), the offering side falls back to a
//! relayed circuit through the signaling server's `/relay` endpoint,
//! end-to-end encrypted ([`crate::circuit`]), exactly as the browser client
//! does; the other side accepts it in place of its pending WebRTC attempt.
//! [`WebRtcConnection::path`] tells which path a connection took.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use darkswap_proto::relay_auth::IceServer;
use libp2p_identity::PeerId;
use rand::RngCore;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

use crate::{
    circuit::{CIRCUIT_TIMEOUT, CircuitSignal, CircuitTask},
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
    /// The relay's ICE servers and until when (unix seconds) to use them.
    pub(crate) relay_ice: tokio::sync::Mutex<Option<(Vec<IceServer>, u64)>>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) routes: HashMap<PeerId, Route>,
    /// `create_connection` / `wait_for_connection` callers per peer.
    pub(crate) waiters: HashMap<PeerId, Vec<Waiter>>,
    /// Tasks of attempts not yet open, by peer.
    pub(crate) attempts: HashMap<PeerId, PendingAttempt>,
    /// Relayed circuits (pending or open) by id: where their signals go.
    pub(crate) circuits: HashMap<String, mpsc::Sender<CircuitSignal>>,
    /// Signals for circuits not registered yet (a `circuit_ready` that
    /// overtook the requester's registration), oldest first.
    pub(crate) early: VecDeque<(String, CircuitSignal)>,
}

/// Early circuit signals kept at most.
const MAX_EARLY_SIGNALS: usize = 32;

/// A connection attempt in flight. Its task outlives this entry once the
/// channel opens (it then serves the connection); a superseded attempt is
/// aborted.
pub(crate) struct PendingAttempt {
    /// The WebRTC session id, or the circuit id.
    pub(crate) session: String,
    pub(crate) kind: AttemptKind,
    pub(crate) task: tokio::task::AbortHandle,
}

/// Which path an attempt tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptKind {
    Direct,
    /// A circuit this side requested.
    CircuitRequested,
    /// A circuit the peer requested.
    CircuitAccepted,
}

impl State {
    /// Starts tracking an attempt; a previous one for the peer is aborted.
    /// Returns the id of a circuit that attempt held, for the caller to
    /// close on the server.
    fn start_attempt(
        &mut self,
        peer: PeerId,
        session: String,
        kind: AttemptKind,
        task: tokio::task::AbortHandle,
    ) -> Option<String> {
        let old = self.attempts.insert(
            peer,
            PendingAttempt {
                session,
                kind,
                task,
            },
        )?;
        old.task.abort();
        (old.kind != AttemptKind::Direct).then(|| {
            self.circuits.remove(&old.session);
            old.session
        })
    }

    /// Registers a circuit's route, handing it any signal that came early.
    fn add_circuit(&mut self, circuit_id: &str, signals: mpsc::Sender<CircuitSignal>) {
        while let Some(at) = self.early.iter().position(|(id, _)| id == circuit_id) {
            if let Some((_, signal)) = self.early.remove(at) {
                let _ = signals.try_send(signal);
            }
        }
        self.circuits.insert(circuit_id.to_owned(), signals);
    }
}

impl Shared {
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The settings of one attempt: the configured ones, with the relay's
    /// ICE servers if asked for (fetched again once 3/4 of their credentials'
    /// life is over; without them the attempt goes on with the rest).
    pub(crate) async fn attempt_config(&self) -> WebRtcConfig {
        let mut config = self.config.clone();
        if !config.relay_ice_servers {
            return config;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut cached = self.relay_ice.lock().await;
        if cached.as_ref().is_none_or(|(_, until)| *until <= now) {
            match self.signaling.fetch_ice_servers().await {
                Ok(answer) => {
                    let until = now + answer.expires_at.saturating_sub(now) * 3 / 4;
                    *cached = Some((answer.ice_servers, until));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the relay's ICE servers could not be fetched")
                }
            }
        }
        if let Some((servers, _)) = cached.as_ref() {
            config.ice_servers.extend(servers.iter().cloned());
        }
        config
    }

    /// A connection opened: into the pool, to whoever waits for it, else to
    /// `accept`.
    pub(crate) fn deliver(&self, conn: WebRtcConnection) {
        let peer = conn.peer;
        let waiters = {
            let mut state = self.state();
            state.attempts.remove(&peer);
            let mut waiters = state.waiters.remove(&peer).unwrap_or_default();
            // Callers that gave up (a WebRTC attempt that timed out into a
            // relayed one) take no connection.
            waiters.retain(|w| !w.is_closed());
            waiters
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

    /// A circuit ended: its signals have nowhere to go.
    pub(crate) fn forget_circuit(&self, circuit_id: &str) {
        self.state().circuits.remove(circuit_id);
    }

    /// Hands a signal to the circuit it names, or keeps it briefly for a
    /// circuit about to be registered.
    fn route_circuit(&self, circuit_id: String, signal: CircuitSignal) {
        let mut state = self.state();
        match state.circuits.get(&circuit_id) {
            Some(route) => {
                let _ = route.try_send(signal);
            }
            None => {
                if state.early.len() >= MAX_EARLY_SIGNALS {
                    state.early.pop_front();
                }
                state.early.push_back((circuit_id, signal));
            }
        }
    }

    /// Starts the circuit `circuit_id` with `peer`; returns a circuit a
    /// replaced attempt held.
    fn start_circuit(
        &self,
        shared: &Arc<Shared>,
        peer: PeerId,
        circuit_id: &str,
        requester: bool,
    ) -> Option<String> {
        let (signals_tx, signals_rx) = mpsc::channel(8);
        let mut state = self.state();
        state.add_circuit(circuit_id, signals_tx);
        let task = tokio::spawn(
            CircuitTask {
                shared: shared.clone(),
                peer,
                circuit_id: circuit_id.to_owned(),
                requester,
            }
            .run(signals_rx),
        );
        let kind = if requester {
            AttemptKind::CircuitRequested
        } else {
            AttemptKind::CircuitAccepted
        };
        state.start_attempt(peer, circuit_id.to_owned(), kind, task.abort_handle())
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
            relay_ice: tokio::sync::Mutex::new(None),
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
    /// new one: WebRTC first (this side offers), then, unless
    /// [`WebRtcConfig::relay_fallback`] is off, a relayed circuit if WebRTC
    /// did not connect within [`WebRtcConfig::ice_timeout`] or had no ICE
    /// candidate. [`WebRtcConnection::path`] says which. The connection is
    /// in use by the caller until [`release_connection`](Self::release_connection).
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
        let config = &self.shared.config;
        if !config.has_candidates() {
            // No candidate: WebRTC cannot connect (the browser client falls
            // back at once in this case too).
            if !config.relay_fallback {
                return Err(WebRtcError::NoPath(*peer));
            }
            return self.create_relayed_connection(peer).await;
        }
        let wait = if config.relay_fallback {
            config.ice_timeout
        } else {
            config.connect_timeout + Duration::from_secs(1)
        };
        let direct = self.connect_direct(peer, wait).await;
        match direct {
            Err(e) if config.relay_fallback && falls_back(&e) => {
                tracing::debug!(%peer, error = %e, "WebRTC did not connect: trying a relayed circuit");
                // The peer may have connected meanwhile (its own offer, or a
                // circuit it requested and we accepted).
                if let Some(conn) = self.shared.pool.get(peer) {
                    return Ok(conn);
                }
                self.create_relayed_connection(peer).await
            }
            other => other,
        }
    }

    /// A WebRTC attempt this side offers, waited for at most `wait`; one that
    /// does not open in time is abandoned.
    async fn connect_direct(
        &self,
        peer: &PeerId,
        wait: Duration,
    ) -> Result<WebRtcConnection, WebRtcError> {
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
            if let Some(old) = state.start_attempt(
                *peer,
                session.clone(),
                AttemptKind::Direct,
                task.abort_handle(),
            ) {
                close_circuit_later(&self.shared, old);
            }
        }
        match within(wait, rx).await {
            Some(result) => result,
            None => {
                let mut state = self.shared.state();
                if state
                    .attempts
                    .get(peer)
                    .is_some_and(|a| a.session == session)
                {
                    if let Some(attempt) = state.attempts.remove(peer) {
                        attempt.task.abort();
                    }
                    state.routes.remove(peer);
                }
                Err(WebRtcError::Timeout(*peer))
            }
        }
    }

    /// A relayed circuit to `peer` through the signaling server's `/relay`
    /// endpoint, end-to-end encrypted, without trying WebRTC. The peer must
    /// accept relayed circuits.
    pub async fn create_relayed_connection(
        &self,
        peer: &PeerId,
    ) -> Result<WebRtcConnection, WebRtcError> {
        if let Some(conn) = self.shared.pool.get(peer) {
            return Ok(conn);
        }
        let circuit_id = self.shared.signaling.request_circuit(peer).await?;
        let rx = self.add_waiter(peer);
        if let Some(old) = self
            .shared
            .start_circuit(&self.shared, *peer, &circuit_id, true)
        {
            close_circuit_later(&self.shared, old);
        }
        within(CIRCUIT_TIMEOUT + Duration::from_secs(1), rx)
            .await
            .unwrap_or(Err(WebRtcError::Timeout(*peer)))
    }

    /// A waiter for the next connection with `peer`, whichever side opens it.
    fn add_waiter(
        &self,
        peer: &PeerId,
    ) -> oneshot::Receiver<Result<WebRtcConnection, WebRtcError>> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .state()
            .waiters
            .entry(*peer)
            .or_default()
            .push(tx);
        rx
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
        let rx = self.add_waiter(peer);
        within(self.shared.config.connect_timeout, rx)
            .await
            .unwrap_or(Err(WebRtcError::Timeout(*peer)))
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
                // Our own pending circuit request wins over a late offer;
                // the peer accepts it.
                if state
                    .attempts
                    .get(&from)
                    .is_some_and(|a| a.kind == AttemptKind::CircuitRequested)
                {
                    continue;
                }
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
                if let Some(old) =
                    state.start_attempt(from, session, AttemptKind::Direct, task.abort_handle())
                {
                    close_circuit_later(&shared, old);
                }
            }
            SignalingEvent::Answer { from, sdp, session } => {
                route(&shared, from, session, Signal::Answer(sdp));
            }
            SignalingEvent::Candidate {
                from,
                candidate,
                session,
            } => route(&shared, from, session, Signal::Candidate(candidate)),
            SignalingEvent::CircuitRequest { circuit_id, from } => {
                on_circuit_request(&shared, circuit_id, from).await;
            }
            SignalingEvent::CircuitReady {
                circuit_id, token, ..
            } => shared.route_circuit(circuit_id, CircuitSignal::Ready(token)),
            SignalingEvent::CircuitRejected { circuit_id, reason }
            | SignalingEvent::CircuitClosed { circuit_id, reason } => {
                shared.route_circuit(circuit_id, CircuitSignal::Ended(reason))
            }
            // The client reconnects by itself; attempts in flight finish or
            // time out on their own, and open connections do not need it.
            SignalingEvent::Disconnected => {}
            _ => {}
        }
    }
}

/// Another peer asks for a relayed circuit: accept it in place of any
/// pending attempt with that peer, unless relayed circuits are refused or
/// both sides asked at once and ours wins (the smaller peer id yields, as in
/// the browser client).
async fn on_circuit_request(shared: &Arc<Shared>, circuit_id: String, from: PeerId) {
    let signaling = &shared.signaling;
    if !shared.config.accept_relayed {
        let _ = signaling.reject_circuit(&circuit_id, "not accepted").await;
        return;
    }
    let ours_wins = shared.state().attempts.get(&from).is_some_and(|a| {
        a.kind == AttemptKind::CircuitRequested && signaling.local_peer_id() > from
    });
    if ours_wins {
        let _ = signaling.reject_circuit(&circuit_id, "glare").await;
        return;
    }
    if let Some(old) = shared.start_circuit(shared, from, &circuit_id, false) {
        close_circuit_later(shared, old);
    }
    // A WebRTC answer of ours that was still trying is over.
    shared.state().routes.remove(&from);
    if let Err(e) = signaling.accept_circuit(&circuit_id).await {
        shared.fail(from, &circuit_id, e.into());
    }
}

/// Closes a circuit a replaced attempt held, without waiting.
/// What a waiter got within `wait`; `None` if nothing came.
async fn within(
    wait: Duration,
    rx: oneshot::Receiver<Result<WebRtcConnection, WebRtcError>>,
) -> Option<Result<WebRtcConnection, WebRtcError>> {
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(result)) => Some(result),
        Ok(Err(_)) => Some(Err(WebRtcError::Closed)),
        Err(_) => None,
    }
}

fn close_circuit_later(shared: &Arc<Shared>, circuit_id: String) {
    let signaling = shared.signaling.clone();
    tokio::spawn(async move {
        let _ = signaling.close_circuit(&circuit_id).await;
    });
}

/// Whether a failed WebRTC attempt is worth a relayed circuit.
fn falls_back(error: &WebRtcError) -> bool {
    !matches!(
        error,
        WebRtcError::UnknownPeer(_) | WebRtcError::TooLarge { .. } | WebRtcError::Pool(_)
    )
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
