//! Native WebRTC data channels: [`WebRtcConnectionManager`] makes and
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
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use libp2p::PeerId;
use rand::RngCore;
use serde_json::Value;
use str0m::{
    Candidate, Event, IceConnectionState, Input, Output, Rtc,
    change::{SdpAnswer, SdpOffer, SdpPendingOffer},
    channel::ChannelId,
    net::{Protocol, Receive},
};
use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot},
};

use crate::{
    ConnectionPool, ConnectionPoolConfig, PoolStats, PooledConnection, SignalingError,
    SignalingEvent, WebRtcSignalingClient, task::AbortOnDrop,
};

/// Label of the data channel DarkSwap peers open.
pub const DATA_CHANNEL_LABEL: &str = "darkswap";

/// WebRTC settings of a [`WebRtcConnectionManager`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebRtcConfig {
    /// Local addresses offered as ICE host candidates, one UDP socket each.
    /// Default: 127.0.0.1 and, when the machine has one, the address of its
    /// default route.
    pub candidate_ips: Vec<IpAddr>,
    /// Bound on a connection attempt, offer to open data channel. Default: 15 s.
    pub connect_timeout: Duration,
    /// Largest message sent or accepted. Default: 256 KiB (what Chromium
    /// announces as its SCTP max-message-size).
    pub max_message_size: usize,
    /// How long a connection whose ICE went `Disconnected` may take to
    /// recover before it is closed. Default: 5 s.
    pub disconnect_grace: Duration,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        let mut candidate_ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        if let Some(ip) = default_route_ip() {
            candidate_ips.push(ip);
        }
        WebRtcConfig {
            candidate_ips,
            connect_timeout: Duration::from_secs(15),
            max_message_size: 256 * 1024,
            disconnect_grace: Duration::from_secs(5),
        }
    }
}

impl WebRtcConfig {
    /// Only loopback candidates: for tests and same-host peers.
    pub fn loopback() -> Self {
        WebRtcConfig {
            candidate_ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            ..WebRtcConfig::default()
        }
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`candidate_ips`](Self::candidate_ips).
    pub fn with_candidate_ips(mut self, ips: Vec<IpAddr>) -> Self {
        self.candidate_ips = ips;
        self
    }
}

/// The address the OS would send from to reach the internet. Connecting a
/// UDP socket sends nothing; it only picks a route.
fn default_route_ip() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// One message on a data channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataMessage {
    /// A text frame (the JS client sends JSON this way).
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

impl DataMessage {
    fn len(&self) -> usize {
        match self {
            DataMessage::Text(t) => t.len(),
            DataMessage::Binary(b) => b.len(),
        }
    }
}

/// Why a WebRTC operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebRtcError {
    /// Signaling failed.
    #[error(transparent)]
    Signaling(#[from] SignalingError),
    /// The connection did not open in time.
    #[error("WebRTC connection to {0} did not open in time")]
    Timeout(PeerId),
    /// The remote sent an SDP this peer cannot use.
    #[error("bad SDP from {peer}: {reason}")]
    Sdp {
        /// The remote.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// Local sockets or the WebRTC stack failed.
    #[error("WebRTC failure: {0}")]
    Local(String),
    /// The connection is closed.
    #[error("WebRTC connection closed")]
    Closed,
    /// The peer is not registered on the signaling server.
    #[error("{0} is not on the signaling server")]
    UnknownPeer(PeerId),
    /// A message over the size limit.
    #[error("message of {size} bytes is over the {max} byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The pool is full of connections in use.
    #[error(transparent)]
    Pool(#[from] crate::PoolError),
}

/// An open data channel to one peer. Cheap to clone; the connection closes
/// when [`close`](Self::close) is called or the last clone is dropped.
#[derive(Clone)]
pub struct WebRtcConnection {
    peer: PeerId,
    inner: Arc<ConnInner>,
}

struct ConnInner {
    commands: mpsc::Sender<Command>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<DataMessage>>,
    alive: Arc<AtomicBool>,
    initiator: bool,
    max_message_size: usize,
}

#[derive(Debug)]
enum Command {
    Send(DataMessage, oneshot::Sender<Result<(), WebRtcError>>),
    Close,
}

impl fmt::Debug for WebRtcConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebRtcConnection")
            .field("peer", &self.peer)
            .field("initiator", &self.inner.initiator)
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl WebRtcConnection {
    /// The peer at the other end.
    pub fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// Whether this side made the offer.
    pub fn is_initiator(&self) -> bool {
        self.inner.initiator
    }

    /// Whether the data channel is still open.
    pub fn is_alive(&self) -> bool {
        self.inner.alive.load(Ordering::Relaxed)
    }

    /// Sends a binary message; waits while the channel's send buffer is full.
    pub async fn send(&self, data: Vec<u8>) -> Result<(), WebRtcError> {
        self.send_message(DataMessage::Binary(data)).await
    }

    /// Sends a text message (what a browser peer reads as a string).
    pub async fn send_text(&self, text: &str) -> Result<(), WebRtcError> {
        self.send_message(DataMessage::Text(text.to_owned())).await
    }

    /// Sends one message.
    pub async fn send_message(&self, message: DataMessage) -> Result<(), WebRtcError> {
        if message.len() > self.inner.max_message_size {
            return Err(WebRtcError::TooLarge {
                size: message.len(),
                max: self.inner.max_message_size,
            });
        }
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Send(message, tx))
            .await
            .map_err(|_| WebRtcError::Closed)?;
        rx.await.map_err(|_| WebRtcError::Closed)?
    }

    /// The next message; [`WebRtcError::Closed`] once the channel closed
    /// and everything received was read.
    pub async fn receive(&self) -> Result<DataMessage, WebRtcError> {
        self.inner
            .incoming
            .lock()
            .await
            .recv()
            .await
            .ok_or(WebRtcError::Closed)
    }

    /// Closes the connection (both ends see the channel close).
    pub fn close(&self) {
        let _ = self.inner.commands.try_send(Command::Close);
    }
}

impl PooledConnection for WebRtcConnection {
    fn is_alive(&self) -> bool {
        WebRtcConnection::is_alive(self)
    }

    fn close(&self) {
        WebRtcConnection::close(self)
    }
}

/// What the manager forwards to one connection task from signaling.
#[derive(Debug)]
enum Signal {
    Answer(String),
    Candidate(Value),
}

/// Where the manager routes signaling for one peer.
#[derive(Debug)]
struct Route {
    session: String,
    signals: mpsc::Sender<Signal>,
    /// Whether this side offered.
    initiator: bool,
}

type Waiter = oneshot::Sender<Result<WebRtcConnection, WebRtcError>>;

struct Shared {
    signaling: Arc<WebRtcSignalingClient>,
    config: WebRtcConfig,
    pool: Arc<ConnectionPool<WebRtcConnection>>,
    state: Mutex<State>,
    incoming: mpsc::Sender<WebRtcConnection>,
}

#[derive(Default)]
struct State {
    routes: HashMap<PeerId, Route>,
    /// `create_connection` / `wait_for_connection` callers per peer.
    waiters: HashMap<PeerId, Vec<Waiter>>,
    /// Tasks of attempts not yet open, by peer.
    attempts: HashMap<PeerId, PendingAttempt>,
}

/// A connection attempt in flight. Its task outlives this entry once the
/// channel opens (it then serves the connection); a superseded attempt is
/// aborted.
struct PendingAttempt {
    session: String,
    task: tokio::task::AbortHandle,
}

impl State {
    fn start_attempt(&mut self, peer: PeerId, session: String, task: tokio::task::AbortHandle) {
        if let Some(old) = self.attempts.insert(peer, PendingAttempt { session, task }) {
            old.task.abort();
        }
    }
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection opened: into the pool, to whoever waits for it, else to
    /// `accept`.
    fn deliver(&self, conn: WebRtcConnection) {
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
    fn fail(&self, peer: PeerId, session: &str, error: WebRtcError) {
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
    shared: Arc<Shared>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<WebRtcConnection>>,
    _task: AbortOnDrop,
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
        let task = AbortOnDrop::spawn(run_manager(shared.clone()));
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
        // The local list may lag a peer that just joined: ask the server.
        if !self.shared.signaling.peers().contains(peer)
            && !self.shared.signaling.list_peers().await?.contains(peer)
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

fn random_session() -> String {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads signaling events and routes them to connection attempts.
async fn run_manager(shared: Arc<Shared>) {
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

fn route(shared: &Shared, from: PeerId, session: Option<String>, signal: Signal) {
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

/// Binds one UDP socket per candidate address and makes an `Rtc` with them
/// as host candidates.
async fn new_rtc(config: &WebRtcConfig) -> Result<(Rtc, Vec<Arc<UdpSocket>>), WebRtcError> {
    let mut rtc = Rtc::builder()
        .set_sctp_max_buffered_amount(config.max_message_size.max(1 << 20))
        .build(Instant::now());
    let mut sockets = Vec::new();
    for ip in &config.candidate_ips {
        let socket = UdpSocket::bind(SocketAddr::new(*ip, 0))
            .await
            .map_err(|e| WebRtcError::Local(format!("bind {ip}: {e}")))?;
        let addr = socket
            .local_addr()
            .map_err(|e| WebRtcError::Local(e.to_string()))?;
        let candidate =
            Candidate::host(addr, "udp").map_err(|e| WebRtcError::Local(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        sockets.push(Arc::new(socket));
    }
    if sockets.is_empty() {
        return Err(WebRtcError::Local("no candidate address configured".into()));
    }
    Ok((rtc, sockets))
}

/// This side offers: a data channel, the offer, then the answer.
async fn offer(
    shared: Arc<Shared>,
    peer: PeerId,
    session: String,
    mut signals: mpsc::Receiver<Signal>,
) {
    let result = async {
        let (mut rtc, sockets) = new_rtc(&shared.config).await?;
        let mut api = rtc.sdp_api();
        api.add_channel(DATA_CHANNEL_LABEL.to_owned());
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| WebRtcError::Local("nothing to negotiate".into()))?;
        shared
            .signaling
            .send_offer(&peer, &offer.to_sdp_string(), Some(&session))
            .await?;
        Ok::<_, WebRtcError>((rtc, sockets, Some(pending)))
    }
    .await;
    match result {
        Ok((rtc, sockets, pending)) => {
            PeerTask::new(shared, peer, session, rtc, sockets, pending, true)
                .run(&mut signals)
                .await
        }
        Err(e) => shared.fail(peer, &session, e),
    }
}

/// The other side offered: answer it.
async fn answer(
    shared: Arc<Shared>,
    peer: PeerId,
    session: String,
    sdp: String,
    mut signals: mpsc::Receiver<Signal>,
) {
    let result = async {
        let offer = SdpOffer::from_sdp_string(&sdp).map_err(|e| WebRtcError::Sdp {
            peer,
            reason: e.to_string(),
        })?;
        let (mut rtc, sockets) = new_rtc(&shared.config).await?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::Sdp {
                peer,
                reason: e.to_string(),
            })?;
        shared
            .signaling
            .send_answer(&peer, &answer.to_sdp_string(), Some(&session))
            .await?;
        Ok::<_, WebRtcError>((rtc, sockets))
    }
    .await;
    match result {
        Ok((rtc, sockets)) => {
            PeerTask::new(shared, peer, session, rtc, sockets, None, false)
                .run(&mut signals)
                .await
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "cannot answer offer");
            shared.fail(peer, &session, e)
        }
    }
}

/// One connection: the `Rtc`, its sockets, and the application's handle.
struct PeerTask {
    shared: Arc<Shared>,
    peer: PeerId,
    session: String,
    rtc: Rtc,
    sockets: Vec<Arc<UdpSocket>>,
    pending_offer: Option<SdpPendingOffer>,
    initiator: bool,
    channel: Option<ChannelId>,
    alive: Arc<AtomicBool>,
}

impl PeerTask {
    fn new(
        shared: Arc<Shared>,
        peer: PeerId,
        session: String,
        rtc: Rtc,
        sockets: Vec<Arc<UdpSocket>>,
        pending_offer: Option<SdpPendingOffer>,
        initiator: bool,
    ) -> Self {
        PeerTask {
            shared,
            peer,
            session,
            rtc,
            sockets,
            pending_offer,
            initiator,
            channel: None,
            alive: Arc::new(AtomicBool::new(false)),
        }
    }

    async fn run(mut self, signals: &mut mpsc::Receiver<Signal>) {
        // Datagrams from every socket funnel into one queue.
        let (udp_tx, mut udp) = mpsc::channel::<(Vec<u8>, SocketAddr, SocketAddr)>(256);
        let _readers: Vec<AbortOnDrop> = self
            .sockets
            .iter()
            .map(|s| AbortOnDrop::spawn(read_socket(s.clone(), udp_tx.clone())))
            .collect();
        drop(udp_tx);
        let deadline = Instant::now() + self.shared.config.connect_timeout;
        // Until the channel opens, this task belongs to the attempt; then it
        // lives on in the connection handle it hands out.
        let (commands_tx, mut commands) = mpsc::channel(64);
        let (incoming_tx, incoming_rx) = mpsc::channel(1024);
        let mut handle_parts = Some((commands_tx, incoming_rx));
        let mut disconnected_since: Option<Instant> = None;
        let mut blocked: Option<(DataMessage, oneshot::Sender<Result<(), WebRtcError>>)> = None;
        let mut signals_done = false;
        let outcome: Result<(), WebRtcError> = loop {
            let timeout = match self.drain(&incoming_tx, &mut disconnected_since).await {
                Ok(Some(t)) => t,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            if self.channel.is_some()
                && let Some((commands_tx, incoming_rx)) = handle_parts.take()
            {
                self.alive.store(true, Ordering::Relaxed);
                self.open(commands_tx, incoming_rx);
            }
            if self.channel.is_none() && Instant::now() >= deadline {
                break Err(WebRtcError::Timeout(self.peer));
            }
            if let Some(since) = disconnected_since
                && since.elapsed() >= self.shared.config.disconnect_grace
            {
                break Ok(());
            }
            let wake = timeout
                .min(Instant::now() + Duration::from_millis(500))
                .min(if self.channel.is_none() {
                    deadline
                } else {
                    timeout
                });
            tokio::select! {
                datagram = udp.recv() => {
                    let Some((data, source, destination)) = datagram else {
                        break Err(WebRtcError::Local("sockets closed".into()));
                    };
                    if let Ok(receive) = Receive::new(Protocol::Udp, source, destination, &data)
                        && let Err(e) = self.rtc.handle_input(Input::Receive(Instant::now(), receive))
                    {
                        break Err(WebRtcError::Local(e.to_string()));
                    }
                }
                signal = signals.recv(), if !signals_done => match signal {
                    Some(Signal::Answer(sdp)) => {
                        if let Err(e) = self.on_answer(&sdp) {
                            break Err(e);
                        }
                    }
                    Some(Signal::Candidate(c)) => self.on_candidate(&c),
                    None => {
                        // The manager dropped the route: a newer attempt
                        // replaced this one. An open connection carries on.
                        signals_done = true;
                        if self.channel.is_none() {
                            break Err(WebRtcError::Closed);
                        }
                    }
                },
                command = commands.recv(), if blocked.is_none() && self.channel.is_some() => match command {
                    Some(Command::Send(message, reply)) => {
                        if let Some(back) = self.write(message, reply) {
                            blocked = Some(back);
                        }
                    }
                    Some(Command::Close) | None => {
                        let _ = self.rtc.close();
                        let _ = self.drain(&incoming_tx, &mut disconnected_since).await;
                        break Ok(());
                    }
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        break Err(WebRtcError::Local(e.to_string()));
                    }
                    if let Some((message, reply)) = blocked.take() {
                        blocked = self.write(message, reply);
                    }
                }
            }
            if let Some((message, reply)) = blocked.take() {
                blocked = self.write(message, reply);
            }
        };
        self.alive.store(false, Ordering::Relaxed);
        if let Some((_, reply)) = blocked {
            let _ = reply.send(Err(WebRtcError::Closed));
        }
        if handle_parts.is_some() {
            // Never opened.
            let e = outcome.err().unwrap_or(WebRtcError::Closed);
            tracing::debug!(peer = %self.peer, error = %e, "WebRTC attempt failed");
            self.shared.fail(self.peer, &self.session, e);
        } else {
            tracing::debug!(peer = %self.peer, "WebRTC connection closed");
            let mut state = self.shared.state();
            if state
                .routes
                .get(&self.peer)
                .is_some_and(|r| r.session == self.session)
            {
                state.routes.remove(&self.peer);
            }
        }
    }

    /// Hands the application its connection. This task then runs until the
    /// connection closes or every handle is dropped (its command queue closes).
    fn open(&mut self, commands: mpsc::Sender<Command>, incoming: mpsc::Receiver<DataMessage>) {
        let conn = WebRtcConnection {
            peer: self.peer,
            inner: Arc::new(ConnInner {
                commands,
                incoming: tokio::sync::Mutex::new(incoming),
                alive: self.alive.clone(),
                initiator: self.initiator,
                max_message_size: self.shared.config.max_message_size,
            }),
        };
        self.shared.deliver(conn);
    }

    /// Runs `poll_output` until it asks to wait; returns until when, or
    /// `None` when the connection is over.
    async fn drain(
        &mut self,
        incoming: &mpsc::Sender<DataMessage>,
        disconnected_since: &mut Option<Instant>,
    ) -> Result<Option<Instant>, WebRtcError> {
        loop {
            if !self.rtc.is_alive() {
                return Ok(None);
            }
            let output = self
                .rtc
                .poll_output()
                .map_err(|e| WebRtcError::Local(e.to_string()))?;
            match output {
                Output::Timeout(t) => return Ok(Some(t)),
                Output::Transmit(t) => {
                    if let Some(socket) = self
                        .sockets
                        .iter()
                        .find(|s| s.local_addr().ok() == Some(t.source))
                    {
                        let _ = socket.send_to(&t.contents, t.destination).await;
                    }
                }
                Output::Event(event) => match event {
                    Event::ChannelOpen(id, label) => {
                        tracing::debug!(peer = %self.peer, %label, "data channel open");
                        self.channel = Some(id);
                    }
                    Event::ChannelData(d) if Some(d.id) == self.channel => {
                        let message = if d.binary {
                            DataMessage::Binary(d.data)
                        } else {
                            DataMessage::Text(String::from_utf8_lossy(&d.data).into_owned())
                        };
                        if incoming.send(message).await.is_err() {
                            // Nobody reads: the application let go of the connection.
                            return Ok(None);
                        }
                    }
                    Event::ChannelClose(id) if Some(id) == self.channel => return Ok(None),
                    Event::Closed => return Ok(None),
                    Event::IceConnectionStateChange(state) => {
                        tracing::debug!(peer = %self.peer, ?state, "ICE state");
                        *disconnected_since = match state {
                            IceConnectionState::Disconnected => Some(Instant::now()),
                            _ => None,
                        };
                    }
                    _ => {}
                },
            }
        }
    }

    fn on_answer(&mut self, sdp: &str) -> Result<(), WebRtcError> {
        let Some(pending) = self.pending_offer.take() else {
            return Ok(());
        };
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| WebRtcError::Sdp {
            peer: self.peer,
            reason: e.to_string(),
        })?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| WebRtcError::Sdp {
                peer: self.peer,
                reason: e.to_string(),
            })
    }

    fn on_candidate(&mut self, candidate: &Value) {
        // Browsers send RTCIceCandidate.toJSON(); null or "" ends the list,
        // and mDNS (`.local`) candidates cannot be used: the remote's checks
        // reach our host candidates and it is learnt as peer-reflexive.
        let Some(text) = candidate.get("candidate").and_then(Value::as_str) else {
            return;
        };
        if text.is_empty() {
            return;
        }
        match Candidate::from_sdp_string(text) {
            Ok(c) => self.rtc.add_remote_candidate(c),
            Err(e) => {
                tracing::debug!(peer = %self.peer, candidate = %text, error = %e, "remote candidate skipped")
            }
        }
    }

    /// Writes a message, or gives it back if the send buffer is full.
    fn write(
        &mut self,
        message: DataMessage,
        reply: oneshot::Sender<Result<(), WebRtcError>>,
    ) -> Option<(DataMessage, oneshot::Sender<Result<(), WebRtcError>>)> {
        let Some(mut channel) = self.channel.and_then(|id| self.rtc.channel(id)) else {
            let _ = reply.send(Err(WebRtcError::Closed));
            return None;
        };
        let written = match &message {
            DataMessage::Text(t) => channel.write(false, t.as_bytes()),
            DataMessage::Binary(b) => channel.write(true, b),
        };
        match written {
            Ok(true) => {
                let _ = reply.send(Ok(()));
                None
            }
            Ok(false) => Some((message, reply)),
            Err(e) => {
                let _ = reply.send(Err(WebRtcError::Local(e.to_string())));
                None
            }
        }
    }
}

async fn read_socket(socket: Arc<UdpSocket>, out: mpsc::Sender<(Vec<u8>, SocketAddr, SocketAddr)>) {
    let Ok(local) = socket.local_addr() else {
        return;
    };
    let mut buf = vec![0u8; 2048];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, source)) => {
                if out.send((buf[..n].to_vec(), source, local)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive failed");
                return;
            }
        }
    }
}
