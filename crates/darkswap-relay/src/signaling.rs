//! The WebSocket signaling server: `/signaling` (peer registration with a
//! signed challenge, peer discovery, routing of WebRTC offers, answers and
//! ICE candidates, control of relayed circuits) and `/relay` (one socket per
//! end of a relayed circuit, binary frames forwarded between the two).
//! The protocol is `docs/signaling.md`; its messages are
//! [`darkswap_proto::signaling`].
//!
//! The same port serves plain HTTP for the token service (`/auth/*`,
//! [`crate::public_http`]). A `/signaling` client may show a token (as a
//! `darkswap-token.<jwt>` subprotocol beside `darkswap.v1`, which browsers
//! can send, or as `Authorization: Bearer`); its role decides what it may do.
//! Connections are limited per IP address and globally.
//!
//! One task owns the sans-IO [`hub::Hub`]; every socket has a task that
//! feeds it frames and carries out what it decides. Circuit payload does not
//! pass through the hub: once paired, the two `/relay` socket tasks forward
//! frames to each other directly, under the bandwidth and byte limits.

mod hub;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use darkswap_proto::{
    relay_auth::{Role, WS_PROTOCOL, token_from_ws_protocols},
    signaling::{ErrorCode, ServerToClient, close_code},
};
use futures::{SinkExt, StreamExt};
use governor::{
    DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use libp2p::PeerId;
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        handshake::server::{ErrorResponse, Request, Response},
        http::{HeaderValue, StatusCode, header},
        protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode},
    },
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    auth::{Authority, Claims},
    config::{LimitsSection, RelayConfig, SignalingSection, WsRelaySection},
    metrics::{SecurityMetrics, SignalingMetrics},
    public_http::PublicHttp,
};
use hub::{Access, ConnId, Hub, HubConfig, Output};

/// Bound on the HTTP upgrade of a new connection.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued for one socket; a client that lets more pile up is
/// too slow to be served and is disconnected.
const SOCKET_QUEUE: usize = 256;
/// Frames queued from one circuit end to the other; a full queue slows the
/// sender down rather than growing.
const FRAME_QUEUE: usize = 64;
/// Inputs queued for the hub task.
const HUB_QUEUE: usize = 4096;

/// A running signaling server.
#[derive(Debug)]
pub struct SignalingServer {
    local_addr: SocketAddr,
    tasks: TaskTracker,
}

impl SignalingServer {
    /// Binds `config.signaling.listen` (port 0 allowed), registers its
    /// metrics in `registry`, and serves until `cancel` is cancelled, with
    /// `config`'s signaling, circuit, auth and limits sections. Tokens are
    /// those of `authority`.
    pub async fn bind(
        config: &RelayConfig,
        authority: Arc<Authority>,
        registry: &mut Registry,
        cancel: CancellationToken,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.signaling.listen).await?;
        let metrics = Arc::new(SignalingMetrics::register(registry));
        Self::serve(listener, config, authority, metrics, cancel)
    }

    /// Serves on an already bound listener.
    pub fn serve(
        listener: TcpListener,
        config: &RelayConfig,
        authority: Arc<Authority>,
        metrics: Arc<SignalingMetrics>,
        cancel: CancellationToken,
    ) -> std::io::Result<Self> {
        let (signaling, ws_relay, limits) = (&config.signaling, &config.ws_relay, &config.limits);
        let local_addr = listener.local_addr()?;
        let hub = Hub::new(
            HubConfig {
                max_peers: signaling.max_peers,
                register_timeout: Duration::from_secs(signaling.register_timeout_secs),
                max_circuits: ws_relay.max_circuits,
                max_circuits_per_peer: ws_relay.max_circuits_per_peer,
                accept_timeout: Duration::from_secs(ws_relay.accept_timeout_secs),
                max_circuit_duration: Duration::from_secs(ws_relay.max_circuit_duration_secs),
                signaling_role: config.auth.signaling_role,
                circuit_role: config.auth.circuit_role,
            },
            metrics.clone(),
            authority.metrics().clone(),
            Box::new(rand::rngs::OsRng),
        );
        let (hub_tx, hub_rx) = mpsc::channel(HUB_QUEUE);
        let ctx = Arc::new(Context {
            signaling: signaling.clone(),
            ws_relay: ws_relay.clone(),
            limits: limits.clone(),
            anonymous_role: config.auth.anonymous_role,
            security: authority.metrics().clone(),
            http: Arc::new(PublicHttp::new(authority.clone(), limits)),
            authority,
            ip_conns: std::sync::Mutex::new(HashMap::new()),
            conn_rate_per_ip: RateLimiter::keyed(limits.connection_rate_per_ip.quota()),
            conn_rate_global: RateLimiter::direct(limits.connection_rate_global.quota()),
            messages_global: RateLimiter::direct(Quota::per_second(
                limits.messages_per_second_global,
            )),
            bandwidth_global: byte_limiter(limits.bandwidth_global, ws_relay.max_frame_size),
            metrics,
            hub: hub_tx,
            next_conn: AtomicU64::new(1),
            epoch: Instant::now(),
            cancel: cancel.clone(),
        });
        let tasks = TaskTracker::new();
        tasks.spawn(
            HubTask {
                hub,
                ctx: ctx.clone(),
                conns: HashMap::new(),
                frames: HashMap::new(),
                peer_limiters: HashMap::new(),
            }
            .run(hub_rx),
        );
        tasks.spawn(accept_loop(listener, ctx, tasks.clone()));
        tasks.close();
        tracing::info!(addr = %local_addr, "signaling server listening");
        Ok(SignalingServer { local_addr, tasks })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until every socket has closed after the cancellation token fired.
    pub async fn stopped(self) {
        self.tasks.wait().await;
    }
}

/// What every task of one server shares.
#[derive(Debug)]
struct Context {
    signaling: SignalingSection,
    ws_relay: WsRelaySection,
    limits: LimitsSection,
    anonymous_role: Role,
    authority: Arc<Authority>,
    security: Arc<SecurityMetrics>,
    http: Arc<PublicHttp>,
    /// Open connections per client address.
    ip_conns: std::sync::Mutex<HashMap<IpAddr, usize>>,
    conn_rate_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    conn_rate_global: DefaultDirectRateLimiter,
    messages_global: DefaultDirectRateLimiter,
    /// Bytes per second over all circuits.
    bandwidth_global: DefaultDirectRateLimiter,
    metrics: Arc<SignalingMetrics>,
    hub: mpsc::Sender<HubInput>,
    next_conn: AtomicU64,
    /// Time base of the circuits' activity stamps.
    epoch: Instant,
    cancel: CancellationToken,
}

impl Context {
    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// What socket tasks tell the hub task.
#[derive(Debug)]
enum HubInput {
    Signaling {
        conn: ConnId,
        handle: SocketHandle,
        access: Access,
    },
    Relay {
        conn: ConnId,
        handle: SocketHandle,
        /// The socket's outgoing queue, which its circuit peer writes to.
        frames: mpsc::Sender<Message>,
    },
    Text {
        conn: ConnId,
        text: String,
    },
    Closed {
        conn: ConnId,
    },
    CircuitEnded {
        circuit_id: String,
        reason: &'static str,
    },
}

/// How the hub task reaches one socket task.
#[derive(Debug)]
struct SocketHandle {
    ctl: mpsc::Sender<Ctl>,
    /// Fired when the socket must go without ceremony (its queue is full).
    kill: CancellationToken,
}

/// What the hub task tells one socket task.
#[derive(Debug)]
enum Ctl {
    Send(String),
    Close(u16, &'static str),
    /// The circuit this `/relay` socket attached to is open.
    Open(CircuitLink),
}

/// One end's view of an open circuit.
#[derive(Debug)]
struct CircuitLink {
    circuit: Arc<CircuitState>,
    /// The other end's outgoing queue.
    peer: mpsc::Sender<Message>,
    /// This end's peer's bandwidth over all its circuits.
    peer_limiter: Arc<DefaultDirectRateLimiter>,
}

/// Shared by both ends of an open circuit.
#[derive(Debug)]
struct CircuitState {
    id: String,
    bytes: AtomicU64,
    /// Milliseconds since the server's epoch of the last frame.
    last_activity: AtomicU64,
    limiter: DefaultDirectRateLimiter,
}

struct HubTask {
    hub: Hub,
    ctx: Arc<Context>,
    conns: HashMap<ConnId, SocketHandle>,
    /// The frame queue of every `/relay` socket, for pairing.
    frames: HashMap<ConnId, mpsc::Sender<Message>>,
    peer_limiters: HashMap<PeerId, Weak<DefaultDirectRateLimiter>>,
}

impl HubTask {
    async fn run(mut self, mut inputs: mpsc::Receiver<HubInput>) {
        loop {
            while let Some(output) = self.hub.poll_output() {
                self.apply(output);
            }
            let deadline = self.hub.poll_timeout();
            tokio::select! {
                biased;
                _ = self.ctx.cancel.cancelled() => break,
                input = inputs.recv() => match input {
                    Some(input) => self.input(input),
                    None => break,
                },
                _ = sleep_until(deadline) => self.hub.handle_timeout(Instant::now()),
            }
        }
    }

    fn input(&mut self, input: HubInput) {
        match input {
            HubInput::Signaling {
                conn,
                handle,
                access,
            } => {
                self.conns.insert(conn, handle);
                self.hub.open_signaling(conn, access, Instant::now());
            }
            HubInput::Relay {
                conn,
                handle,
                frames,
            } => {
                self.conns.insert(conn, handle);
                self.frames.insert(conn, frames);
                self.hub.open_relay(conn);
            }
            HubInput::Text { conn, text } => self.hub.text(conn, &text, Instant::now()),
            HubInput::Closed { conn } => {
                self.conns.remove(&conn);
                self.frames.remove(&conn);
                self.hub.closed(conn);
            }
            HubInput::CircuitEnded { circuit_id, reason } => {
                self.hub.circuit_ended(&circuit_id, reason)
            }
        }
    }

    fn apply(&mut self, output: Output) {
        match output {
            Output::Send(conn, message) => self.ctl(conn, Ctl::Send(message.to_json())),
            Output::Close(conn, code, reason) => self.ctl(conn, Ctl::Close(code, reason)),
            Output::Pair { circuit_id, ends } => self.pair(circuit_id, ends),
            Output::EndCircuit {
                relay_conns,
                reason,
                ..
            } => {
                for conn in relay_conns {
                    self.ctl(conn, Ctl::Close(close_code::CIRCUIT_CLOSED, reason));
                }
            }
        }
    }

    fn ctl(&mut self, conn: ConnId, ctl: Ctl) {
        let Some(handle) = self.conns.get(&conn) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = handle.ctl.try_send(ctl) {
            tracing::debug!(conn, "socket queue full, disconnecting a slow client");
            handle.kill.cancel();
        }
    }

    fn pair(&mut self, circuit_id: String, ends: [(ConnId, PeerId); 2]) {
        let cfg = &self.ctx.ws_relay;
        let circuit = Arc::new(CircuitState {
            id: circuit_id,
            bytes: AtomicU64::new(0),
            last_activity: AtomicU64::new(self.ctx.millis()),
            limiter: byte_limiter(cfg.bandwidth_per_circuit, cfg.max_frame_size),
        });
        let [(a, peer_a), (b, peer_b)] = ends;
        let (Some(frames_a), Some(frames_b)) =
            (self.frames.get(&a).cloned(), self.frames.get(&b).cloned())
        else {
            // An end closed in the meantime; its Closed input ends the circuit.
            return;
        };
        for (conn, peer, other) in [(a, peer_a, frames_b), (b, peer_b, frames_a)] {
            let peer_limiter = self.peer_limiter(peer);
            self.ctl(
                conn,
                Ctl::Open(CircuitLink {
                    circuit: circuit.clone(),
                    peer: other,
                    peer_limiter,
                }),
            );
        }
    }

    fn peer_limiter(&mut self, peer: PeerId) -> Arc<DefaultDirectRateLimiter> {
        if let Some(l) = self.peer_limiters.get(&peer).and_then(Weak::upgrade) {
            return l;
        }
        self.peer_limiters.retain(|_, w| w.strong_count() > 0);
        let cfg = &self.ctx.ws_relay;
        let limiter = Arc::new(byte_limiter(cfg.bandwidth_per_peer, cfg.max_frame_size));
        self.peer_limiters.insert(peer, Arc::downgrade(&limiter));
        limiter
    }
}

/// A limiter of `bytes_per_sec` whose burst admits at least one largest frame.
fn byte_limiter(bytes_per_sec: u64, max_frame: usize) -> DefaultDirectRateLimiter {
    let clamp =
        |v: u64| NonZeroU32::new(v.clamp(1, u32::MAX as u64) as u32).unwrap_or(NonZeroU32::MIN);
    let rate = clamp(bytes_per_sec);
    let burst = clamp(bytes_per_sec.max(max_frame as u64));
    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// One connection's slot in the per-address count, given back on drop.
struct IpSlot {
    ctx: Arc<Context>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut conns = self.ctx.ip_conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = conns.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                conns.remove(&self.ip);
            }
        }
    }
}

/// Whether a new connection is within the connection limits.
enum Admission {
    Admitted(IpSlot),
    /// Refused by this limit; the client may retry after this long.
    Refused(&'static str, Duration),
}

fn admit(ctx: &Arc<Context>, ip: IpAddr) -> Admission {
    let wait = |n: governor::NotUntil<_>| n.wait_time_from(DefaultClock::default().now());
    {
        let mut conns = ctx.ip_conns.lock().unwrap_or_else(|e| e.into_inner());
        let open = conns.entry(ip).or_insert(0);
        if *open >= ctx.limits.max_connections_per_ip {
            return Admission::Refused("max_connections_per_ip", Duration::from_secs(1));
        }
        if let Err(n) = ctx.conn_rate_per_ip.check_key(&ip) {
            return Admission::Refused("connection_rate_per_ip", wait(n));
        }
        if let Err(n) = ctx.conn_rate_global.check() {
            return Admission::Refused("connection_rate_global", wait(n));
        }
        *open += 1;
    }
    Admission::Admitted(IpSlot {
        ctx: ctx.clone(),
        ip,
    })
}

async fn accept_loop(listener: TcpListener, ctx: Arc<Context>, tasks: TaskTracker) {
    // Sockets beyond what the limits can ever use are refused at once.
    let max_sockets = ctx.signaling.max_peers + 2 * ctx.ws_relay.max_circuits + 64;
    let permits = Arc::new(tokio::sync::Semaphore::new(max_sockets));
    let mut forget = tokio::time::interval(Duration::from_secs(60));
    loop {
        let accepted = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = forget.tick() => {
                // Addresses whose buckets are full again need no entry.
                ctx.conn_rate_per_ip.retain_recent();
                ctx.http.forget_idle();
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            ctx.security.limited("ws", "max_sockets");
            tracing::debug!(%remote, "too many sockets, refusing");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let admission = admit(&ctx, remote.ip());
        let ctx = ctx.clone();
        tasks.spawn(async move {
            handle_connection(stream, remote, ctx, admission).await;
            drop(permit);
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Signaling,
    Relay,
    /// Anything else is plain HTTP (`/auth/*`, or a 404).
    Http,
}

/// Reads, without consuming, the request line of a new connection to tell
/// the WebSocket endpoints from plain HTTP. `None` if the client sends no
/// complete line in time.
async fn sniff(stream: &tokio::net::TcpStream) -> Option<Endpoint> {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let mut seen = 0;
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].iter().position(|b| *b == b'\n') {
            let line = std::str::from_utf8(&buf[..end]).ok()?;
            let target = line.split(' ').nth(1).unwrap_or("");
            let path = target.split('?').next().unwrap_or("");
            return Some(match path {
                "/signaling" => Endpoint::Signaling,
                "/relay" => Endpoint::Relay,
                _ => Endpoint::Http,
            });
        }
        if n == buf.len() {
            // A request line this long is no request for the WebSocket endpoints.
            return Some(Endpoint::Http);
        }
        if n == seen {
            // Peeking does not wait for more bytes than it saw; pause briefly
            // rather than spin while the rest of the line is in flight.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen = n;
    }
}

/// What the WebSocket handshake learnt about the client's credentials.
#[derive(Debug, Default)]
struct Credentials {
    token: Option<String>,
}

async fn handle_connection(
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    ctx: Arc<Context>,
    admission: Admission,
) {
    let Some(endpoint) = sniff(&stream).await else {
        return;
    };
    let slot = match admission {
        Admission::Admitted(slot) => slot,
        Admission::Refused(limit, retry_after) => {
            let plane = if endpoint == Endpoint::Http {
                "http"
            } else {
                "ws"
            };
            ctx.security.limited(plane, limit);
            tracing::debug!(%remote, limit, "connection refused by a limit");
            if endpoint == Endpoint::Http {
                crate::public_http::refuse_connection(stream, retry_after).await;
            } else if let Some((mut ws, _)) = upgrade(stream, remote, &ctx).await {
                close(&mut ws, close_code::TRY_AGAIN_LATER, "too many connections").await;
            }
            return;
        }
    };
    if endpoint == Endpoint::Http {
        crate::public_http::serve_connection(
            stream,
            remote.ip(),
            ctx.http.clone(),
            ctx.cancel.clone(),
        )
        .await;
        drop(slot);
        return;
    }
    let Some((ws, credentials)) = upgrade(stream, remote, &ctx).await else {
        return;
    };
    let conn = ctx.next_conn.fetch_add(1, Ordering::Relaxed);
    match endpoint {
        Endpoint::Signaling => SignalingSocket::new(ws, conn, ctx, credentials).run().await,
        Endpoint::Relay => RelaySocket::new(ws, conn, ctx).run().await,
        Endpoint::Http => {}
    }
    drop(slot);
}

/// The WebSocket handshake. A client that offers subprotocols gets
/// `darkswap.v1` selected; the token it may offer beside it is taken, never
/// echoed and never logged.
async fn upgrade(
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    ctx: &Context,
) -> Option<(Ws, Credentials)> {
    let mut credentials = Credentials::default();
    // The callback's signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let route = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        if !matches!(req.uri().path(), "/signaling" | "/relay") {
            let mut not_found = ErrorResponse::new(Some("no such endpoint".to_owned()));
            *not_found.status_mut() = StatusCode::NOT_FOUND;
            return Err(not_found);
        }
        let offered = req
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        if !offered.is_empty() {
            credentials.token = token_from_ws_protocols(&offered).map(str::to_owned);
            if offered.split(',').any(|p| p.trim() == WS_PROTOCOL) {
                resp.headers_mut().insert(
                    header::SEC_WEBSOCKET_PROTOCOL,
                    HeaderValue::from_static(WS_PROTOCOL),
                );
            }
        }
        if credentials.token.is_none() {
            credentials.token = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim().to_owned());
        }
        Ok(resp)
    };
    // The socket-level bound is the larger of the two; each endpoint then
    // enforces its own.
    let max = ctx
        .signaling
        .max_message_size
        .max(ctx.ws_relay.max_frame_size);
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, route, Some(config));
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(ws)) => Some((ws, credentials)),
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "websocket handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%remote, "websocket handshake timed out");
            None
        }
    }
}

type Ws = WebSocketStream<tokio::net::TcpStream>;

/// What ended a socket's loop.
enum Exit {
    /// The peer closed or the connection failed: nothing more to send.
    Gone,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

/// How long a closing socket waits for the client's half of the close
/// handshake. Dropping the TCP connection before the client has read our
/// close frame can turn it into a reset that loses the frame.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);

async fn close(ws: &mut Ws, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    };
    let _ =
        tokio::time::timeout(Duration::from_secs(1), ws.send(Message::Close(Some(frame)))).await;
    drain(ws).await;
}

/// Reads (and discards) until the client completes the close handshake or
/// [`CLOSE_DRAIN`] passes.
async fn drain<S>(stream: &mut S)
where
    S: futures::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_DRAIN, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

/// Why reading a frame failed, as a close code (None: the connection is gone).
fn read_error(e: &tungstenite::Error) -> Option<(u16, &'static str)> {
    match e {
        tungstenite::Error::Capacity(_) => Some((close_code::TOO_BIG, "message too big")),
        tungstenite::Error::Protocol(_) => Some((1002, "protocol error")),
        _ => None,
    }
}

/// Sends on a `/signaling` socket, bounded: a client that stops reading
/// is gone, not a reason to stall.
async fn send_bounded(ws: &mut Ws, message: Message) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(5), ws.send(message)).await,
        Ok(Ok(()))
    )
}

fn error_frame(code: ErrorCode, message: &str) -> Message {
    Message::text(ServerToClient::error(code, message, None).to_json())
}

struct SignalingSocket {
    ws: Ws,
    conn: ConnId,
    ctx: Arc<Context>,
    credentials: Credentials,
}

impl SignalingSocket {
    fn new(ws: Ws, conn: ConnId, ctx: Arc<Context>, credentials: Credentials) -> Self {
        SignalingSocket {
            ws,
            conn,
            ctx,
            credentials,
        }
    }

    /// The socket's access from its token, or why the token is refused.
    fn access(&self) -> Result<(Access, Option<Claims>), String> {
        match &self.credentials.token {
            None => Ok((
                Access {
                    role: self.ctx.anonymous_role,
                    subject: None,
                },
                None,
            )),
            Some(token) => match self.ctx.authority.validate(token) {
                Ok(claims) => Ok((
                    Access {
                        role: claims.role,
                        subject: claims.peer(),
                    },
                    Some(claims),
                )),
                Err(e) => Err(e.to_string()),
            },
        }
    }

    async fn run(mut self) {
        let (access, claims) = match self.access() {
            Ok(a) => a,
            Err(reason) => {
                self.ctx.metrics.error(ErrorCode::Unauthorized);
                let _ =
                    send_bounded(&mut self.ws, error_frame(ErrorCode::Unauthorized, &reason)).await;
                close(&mut self.ws, close_code::UNAUTHORIZED, "invalid token").await;
                return;
            }
        };
        let (ctl_tx, mut ctl) = mpsc::channel(SOCKET_QUEUE);
        let kill = CancellationToken::new();
        let handle = SocketHandle {
            ctl: ctl_tx,
            kill: kill.clone(),
        };
        let conn = self.conn;
        if self
            .ctx
            .hub
            .send(HubInput::Signaling {
                conn,
                handle,
                access,
            })
            .await
            .is_err()
        {
            return;
        }
        match self.serve(&mut ctl, &kill, claims).await {
            Exit::Close(code, reason) => close(&mut self.ws, code, reason).await,
            // Completes the handshake if the client closed first (its reply
            // is queued in tungstenite); fails fast if the socket is dead.
            Exit::Gone => {
                let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
            }
        }
        let _ = self.ctx.hub.send(HubInput::Closed { conn }).await;
    }

    async fn serve(
        &mut self,
        ctl: &mut mpsc::Receiver<Ctl>,
        kill: &CancellationToken,
        claims: Option<Claims>,
    ) -> Exit {
        let cfg = &self.ctx.signaling;
        // The token is checked when the socket opens; the socket then lives
        // until it closes or an admin revokes the token (or all of the
        // peer's), not until the token expires: a client renews its token
        // for its next connection without dropping this one.
        let mut revocations = self.ctx.authority.revocations_changed();
        let limiter = RateLimiter::direct(
            Quota::per_second(cfg.messages_per_second).allow_burst(cfg.message_burst),
        );
        let idle = Duration::from_secs(cfg.idle_timeout_secs);
        let mut last_activity = Instant::now();
        let mut pings = tokio::time::interval(idle / 3);
        pings.tick().await;
        let mut violations = 0u32;
        loop {
            tokio::select! {
                biased;
                _ = self.ctx.cancel.cancelled() => return Exit::Close(close_code::GOING_AWAY, "server shutting down"),
                _ = kill.cancelled() => return Exit::Close(close_code::POLICY, "too slow"),
                Ok(()) = revocations.changed(), if claims.is_some() => {
                    if let Some(claims) = &claims
                        && self.ctx.authority.revoked_by_admin(claims)
                    {
                        return Exit::Close(close_code::UNAUTHORIZED, "token revoked");
                    }
                }
                ctl = ctl.recv() => match ctl {
                    Some(Ctl::Send(text)) => {
                        if !send_bounded(&mut self.ws, Message::text(text)).await {
                            return Exit::Gone;
                        }
                    }
                    Some(Ctl::Close(code, reason)) => return Exit::Close(code, reason),
                    Some(Ctl::Open(_)) => {}
                    // The hub stopped: the server is shutting down.
                    None => return Exit::Close(close_code::GOING_AWAY, "server shutting down"),
                },
                _ = pings.tick() => {
                    if last_activity.elapsed() >= idle {
                        return Exit::Close(close_code::IDLE_TIMEOUT, "idle timeout");
                    }
                    if !send_bounded(&mut self.ws, Message::Ping(Bytes::new())).await {
                        return Exit::Gone;
                    }
                }
                frame = self.ws.next() => {
                    let frame = match frame {
                        None => return Exit::Gone,
                        Some(Err(e)) => return read_error(&e).map_or(Exit::Gone, |(c, r)| Exit::Close(c, r)),
                        Some(Ok(f)) => f,
                    };
                    last_activity = Instant::now();
                    let text = match frame {
                        Message::Text(t) => t,
                        Message::Binary(_) => {
                            return Exit::Close(close_code::UNSUPPORTED_DATA, "binary frames are not signaling");
                        }
                        Message::Close(_) => return Exit::Gone,
                        _ => continue,
                    };
                    if text.len() > cfg.max_message_size {
                        return Exit::Close(close_code::TOO_BIG, "message too big");
                    }
                    if limiter.check().is_err() {
                        violations += 1;
                        self.ctx.metrics.error(ErrorCode::RateLimited);
                        if violations > cfg.max_rate_violations {
                            return Exit::Close(close_code::POLICY, "rate limit exceeded");
                        }
                        let reply = error_frame(ErrorCode::RateLimited, "too many messages; this one was dropped");
                        if !send_bounded(&mut self.ws, reply).await {
                            return Exit::Gone;
                        }
                        continue;
                    }
                    violations = 0;
                    if self.ctx.messages_global.check().is_err() {
                        // The whole server is over its ceiling: not this
                        // client's fault, so no violation is counted.
                        self.ctx.security.limited("ws", "messages_global");
                        self.ctx.metrics.error(ErrorCode::RateLimited);
                        let reply = error_frame(ErrorCode::RateLimited, "server busy; this message was dropped");
                        if !send_bounded(&mut self.ws, reply).await {
                            return Exit::Gone;
                        }
                        continue;
                    }
                    let input = HubInput::Text { conn: self.conn, text: text.as_str().to_owned() };
                    if self.ctx.hub.send(input).await.is_err() {
                        return Exit::Gone;
                    }
                }
            }
        }
    }
}

struct RelaySocket {
    ws: Ws,
    conn: ConnId,
    ctx: Arc<Context>,
}

/// Writes everything queued for a `/relay` socket. It runs apart from the
/// reading side so that an end blocked on forwarding to its peer (both
/// queues full) still drains what its peer sends it: no cycle can stall.
async fn write_loop(
    mut sink: futures::stream::SplitSink<Ws, Message>,
    mut out: mpsc::Receiver<Message>,
) {
    while let Some(message) = out.recv().await {
        if let Message::Close(None) = message {
            // The client closed first: flush tungstenite's queued reply.
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
            break;
        }
        let last = matches!(message, Message::Close(_));
        let sent = tokio::time::timeout(Duration::from_secs(5), sink.send(message)).await;
        if last || !matches!(sent, Ok(Ok(()))) {
            break;
        }
    }
}

impl RelaySocket {
    fn new(ws: Ws, conn: ConnId, ctx: Arc<Context>) -> Self {
        RelaySocket { ws, conn, ctx }
    }

    async fn run(self) {
        let RelaySocket { ws, conn, ctx } = self;
        let (sink, mut stream) = ws.split();
        let (out, out_rx) = mpsc::channel(FRAME_QUEUE);
        let writer = tokio::spawn(write_loop(sink, out_rx));
        let (ctl_tx, mut ctl) = mpsc::channel(SOCKET_QUEUE);
        let kill = CancellationToken::new();
        let handle = SocketHandle {
            ctl: ctl_tx,
            kill: kill.clone(),
        };
        let opened = HubInput::Relay {
            conn,
            handle,
            frames: out.clone(),
        };
        if ctx.hub.send(opened).await.is_ok() {
            let mut end = RelayEnd {
                conn,
                ctx: ctx.clone(),
                out: out.clone(),
                link: None,
                ended: false,
            };
            let exit = end.serve(&mut stream, &mut ctl, &kill).await;
            let frame = match exit {
                Exit::Close(code, reason) => Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.to_owned().into(),
                }),
                Exit::Gone => None,
            };
            // The writer may be stuck on a peer that does not read: bounded.
            let _ =
                tokio::time::timeout(Duration::from_secs(1), out.send(Message::Close(frame))).await;
            let _ = ctx.hub.send(HubInput::Closed { conn }).await;
        }
        drop(out);
        let _ = tokio::time::timeout(Duration::from_secs(6), writer).await;
    }
}

/// The reading side of a `/relay` socket.
struct RelayEnd {
    conn: ConnId,
    ctx: Arc<Context>,
    /// This socket's outgoing queue.
    out: mpsc::Sender<Message>,
    link: Option<CircuitLink>,
    /// This end asked the hub to end the circuit; frames are no longer forwarded.
    ended: bool,
}

impl RelayEnd {
    async fn send(&self, message: Message) -> bool {
        self.out.send(message).await.is_ok()
    }

    async fn serve(
        &mut self,
        stream: &mut futures::stream::SplitStream<Ws>,
        ctl: &mut mpsc::Receiver<Ctl>,
        kill: &CancellationToken,
    ) -> Exit {
        let cfg = self.ctx.ws_relay.clone();
        let idle = Duration::from_secs(cfg.idle_timeout_secs);
        let attach_by = Instant::now() + Duration::from_secs(cfg.accept_timeout_secs);
        loop {
            let idle_at = match &self.link {
                Some(l) => {
                    let last = l.circuit.last_activity.load(Ordering::Relaxed);
                    self.ctx.epoch + Duration::from_millis(last) + idle
                }
                None => attach_by,
            };
            tokio::select! {
                biased;
                _ = self.ctx.cancel.cancelled() => return Exit::Close(close_code::CIRCUIT_CLOSED, "shutdown"),
                _ = kill.cancelled() => return Exit::Close(close_code::POLICY, "too slow"),
                ctl = ctl.recv() => match ctl {
                    Some(Ctl::Send(text)) => {
                        if !self.send(Message::text(text)).await {
                            return Exit::Gone;
                        }
                    }
                    Some(Ctl::Close(code, reason)) => return Exit::Close(code, reason),
                    Some(Ctl::Open(l)) => {
                        let open = ServerToClient::Open { circuit_id: l.circuit.id.clone() };
                        self.link = Some(l);
                        if !self.send(Message::text(open.to_json())).await {
                            return Exit::Gone;
                        }
                    }
                    None => return Exit::Close(close_code::CIRCUIT_CLOSED, "shutdown"),
                },
                _ = tokio::time::sleep_until(idle_at.into()), if !self.ended => {
                    if idle_at <= Instant::now() {
                        match &self.link {
                            Some(l) => {
                                let id = l.circuit.id.clone();
                                self.end(&id, "idle_timeout").await;
                            }
                            None => return Exit::Close(close_code::CIRCUIT_CLOSED, "accept_timeout"),
                        }
                    }
                }
                frame = stream.next() => {
                    let frame = match frame {
                        None => return Exit::Gone,
                        Some(Err(e)) => return read_error(&e).map_or(Exit::Gone, |(c, r)| Exit::Close(c, r)),
                        Some(Ok(f)) => f,
                    };
                    match frame {
                        Message::Text(text) => {
                            if text.len() > self.ctx.signaling.max_message_size {
                                return Exit::Close(close_code::TOO_BIG, "message too big");
                            }
                            let input = HubInput::Text { conn: self.conn, text: text.as_str().to_owned() };
                            if self.ctx.hub.send(input).await.is_err() {
                                return Exit::Gone;
                            }
                        }
                        Message::Binary(data) => {
                            if data.len() > cfg.max_frame_size {
                                return Exit::Close(close_code::TOO_BIG, "frame too big");
                            }
                            if self.link.is_none() {
                                self.ctx.metrics.error(ErrorCode::CircuitNotOpen);
                                let reply = error_frame(ErrorCode::CircuitNotOpen, "wait for open before sending");
                                if !self.send(reply).await {
                                    return Exit::Gone;
                                }
                                continue;
                            }
                            if self.ended {
                                continue;
                            }
                            if let Some(reason) = self.forward(data, cfg.max_circuit_bytes).await {
                                let id = self.link.as_ref().map(|l| l.circuit.id.clone()).unwrap_or_default();
                                self.end(&id, reason).await;
                            }
                        }
                        Message::Close(_) => return Exit::Gone,
                        _ => {}
                    }
                }
            }
        }
    }

    /// Sends one frame to the other end within the limits; returns why the
    /// circuit must end, if it must.
    async fn forward(&self, data: Bytes, max_bytes: u64) -> Option<&'static str> {
        let link = self.link.as_ref()?;
        let n = data.len() as u64;
        let total = link.circuit.bytes.fetch_add(n, Ordering::Relaxed) + n;
        if total > max_bytes {
            return Some("byte_limit");
        }
        if let Some(cells) = NonZeroU32::new(n.min(u32::MAX as u64) as u32) {
            // Both limiters admit a whole largest frame (see byte_limiter),
            // so waiting cannot fail for lack of capacity.
            let _ = link.circuit.limiter.until_n_ready(cells).await;
            let _ = link.peer_limiter.until_n_ready(cells).await;
            let _ = self.ctx.bandwidth_global.until_n_ready(cells).await;
        }
        link.circuit
            .last_activity
            .store(self.ctx.millis(), Ordering::Relaxed);
        if link.peer.send(Message::Binary(data)).await.is_err() {
            return Some("closed");
        }
        self.ctx.metrics.bytes_forwarded.inc_by(n);
        None
    }

    async fn end(&mut self, circuit_id: &str, reason: &'static str) {
        self.ended = true;
        let _ = self
            .ctx
            .hub
            .send(HubInput::CircuitEnded {
                circuit_id: circuit_id.to_owned(),
                reason,
            })
            .await;
    }
}
