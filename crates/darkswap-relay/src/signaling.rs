//! The WebSocket signaling server: `/signaling` (peer registration with a
//! signed challenge, peer discovery, routing of WebRTC offers, answers and
//! ICE candidates, control of WebSocket circuits) and `/relay` (one socket
//! per end of a WebSocket circuit, binary frames forwarded between the two).
//! The protocol is `docs/signaling.md`; its messages are
//! [`darkswap_proto::signaling`].
//!
//! The same port serves plain HTTP for the token service (`/auth/*`,
//! `token_service`). With a certificate ([`PublicPortOptions::with_tls`])
//! the port speaks TLS only: `wss://` and `https://`, the same endpoints. A `/signaling` client may show a token (as a
//! `darkswap-token.<jwt>` subprotocol beside `darkswap.v1`, which browsers
//! can send, or as `Authorization: Bearer`); its role decides what it may do.
//! Connections are limited per IP address and globally.
//!
//! The sans-IO [`hub::Hub`] decides; the IO pieces around it, one file each:
//! - `listener`: accepts connections and admits them under the per-address
//!   limits, then the global ones, before they cost anything; answers the
//!   refused ones within a bound;
//! - `public_stream`: a connection, plain or TLS, and its TLS handshake
//!   under the deadline of its first request head;
//! - `request`: the first request head, sans IO: its end, its endpoint, a
//!   valid WebSocket upgrade or the 400/426 it gets instead;
//! - `upgrade`: reads that head under its deadline and runs the WebSocket
//!   handshake (taking the client's token);
//! - `shared_hub`: the hub behind one lock, which each socket task feeds
//!   its input and whose outputs it carries out on the other sockets'
//!   queues, counting its events in the metrics; a timer task fires its
//!   deadlines;
//! - `socket`: the task of one `/signaling` socket;
//! - `ws_circuit`: the tasks of `/relay` sockets, paired into circuits that
//!   forward frames to each other directly (circuit payload does not pass
//!   through the hub), under the bandwidth and byte limits;
//! - `websocket`: what both kinds of socket share (bounded sends, the close
//!   handshake).
//!
//! Only [`hub`] is built without the `server` feature.

pub mod hub;

#[cfg(feature = "server")]
mod listener;
#[cfg(feature = "server")]
mod public_stream;
#[cfg(feature = "server")]
mod request;
#[cfg(feature = "server")]
mod shared_hub;
#[cfg(feature = "server")]
mod socket;
#[cfg(feature = "server")]
mod upgrade;
#[cfg(feature = "server")]
mod websocket;
#[cfg(feature = "server")]
mod ws_circuit;

#[cfg(feature = "server")]
use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, atomic::AtomicU64},
    time::Instant,
};

#[cfg(feature = "server")]
use darkswap_proto::relay_auth::Role;
#[cfg(feature = "server")]
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
#[cfg(feature = "server")]
use prometheus_client::registry::Registry;
#[cfg(feature = "server")]
use tokio::net::TcpListener;
#[cfg(feature = "server")]
use tokio_util::{sync::CancellationToken, task::TaskTracker};

#[cfg(feature = "server")]
use self::{
    hub::{Hub, HubConfig},
    listener::accept_loop,
    public_stream::PublicTls,
    shared_hub::SharedHub,
    ws_circuit::byte_limiter,
};
#[cfg(feature = "server")]
use crate::{
    config::{LimitsConfig, RelayConfig, SignalingConfig, WsCircuitConfig},
    metrics::{SecurityMetrics, SignalingMetrics, TlsMetrics},
    stun_turn::IceService,
    tls::{TlsCertificate, TlsError},
    token_authority::TokenAuthority,
    token_service::TokenService,
};

#[cfg(feature = "server")]
/// A running signaling server.
#[derive(Debug)]
pub struct SignalingServer {
    local_addr: SocketAddr,
    tasks: TaskTracker,
}

#[cfg(feature = "server")]
impl SignalingServer {
    /// Binds `config.signaling.listen` (port 0 allowed), registers its
    /// metrics in `registry`, and serves until `cancel` is cancelled, with
    /// `config`'s signaling, circuit, auth and limits sections. Tokens are
    /// those of `authority`.
    pub async fn bind(
        config: &RelayConfig,
        authority: Arc<TokenAuthority>,
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
        authority: Arc<TokenAuthority>,
        metrics: Arc<SignalingMetrics>,
        cancel: CancellationToken,
    ) -> std::io::Result<Self> {
        let options = PublicPortOptions::default();
        Self::serve_with(listener, config, authority, metrics, options, cancel)
    }

    /// [`serve`](Self::serve), with what `options` adds: the relay's
    /// STUN/TURN servers on `POST /auth/ice-servers`, TLS.
    pub fn serve_with(
        listener: TcpListener,
        config: &RelayConfig,
        authority: Arc<TokenAuthority>,
        metrics: Arc<SignalingMetrics>,
        options: PublicPortOptions,
        cancel: CancellationToken,
    ) -> std::io::Result<Self> {
        let PublicPortOptions { ice, tls } = options;
        let (signaling, ws_circuit, limits) =
            (&config.signaling, &config.ws_circuit, &config.limits);
        let local_addr = listener.local_addr()?;
        let hub = Hub::new(
            HubConfig {
                max_peers: signaling.max_peers,
                register_timeout: signaling.register_timeout,
                max_circuits: ws_circuit.max_circuits,
                max_circuits_per_peer: ws_circuit.max_circuits_per_peer,
                accept_timeout: ws_circuit.accept_timeout,
                max_circuit_duration: ws_circuit.max_circuit_duration,
                signaling_role: config.tokens.signaling_role,
                circuit_role: config.tokens.circuit_role,
                peer_page_size: signaling.peer_page_size,
                max_watched_peers: signaling.max_watched_peers,
            },
            Box::new(rand::rngs::OsRng),
        );
        let ctx = Arc::new_cyclic(|ctx| Context {
            signaling: signaling.clone(),
            ws_circuit: ws_circuit.clone(),
            limits: limits.clone(),
            anonymous_role: config.tokens.anonymous_role,
            security: authority.metrics().clone(),
            token_service: Arc::new(TokenService::new(authority.clone(), limits, ice)),
            authority,
            conn_rate_per_ip: RateLimiter::keyed(limits.connection_rate_per_ip.quota()),
            conn_rate_global: RateLimiter::direct(limits.connection_rate_global.quota()),
            messages_global: RateLimiter::direct(Quota::per_second(
                limits.messages_per_second_global,
            )),
            bandwidth_global: byte_limiter(limits.bandwidth_global, ws_circuit.max_frame_size),
            metrics,
            hub: SharedHub::new(hub, ctx.clone()),
            next_conn: AtomicU64::new(1),
            epoch: Instant::now(),
            tls,
            cancel: cancel.clone(),
        });
        let tasks = TaskTracker::new();
        let timers = ctx.clone();
        tasks.spawn(async move { timers.hub.run_timers(timers.cancel.clone()).await });
        let tls = ctx.tls.is_some();
        tasks.spawn(accept_loop(listener, ctx, tasks.clone()));
        tasks.close();
        tracing::info!(addr = %local_addr, tls, "signaling server listening");
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

#[cfg(feature = "server")]
/// What every task of one server shares.
#[derive(Debug)]
struct Context {
    signaling: SignalingConfig,
    ws_circuit: WsCircuitConfig,
    limits: LimitsConfig,
    anonymous_role: Role,
    authority: Arc<TokenAuthority>,
    security: Arc<SecurityMetrics>,
    token_service: Arc<TokenService>,
    conn_rate_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    conn_rate_global: DefaultDirectRateLimiter,
    messages_global: DefaultDirectRateLimiter,
    /// Bytes per second over all circuits.
    bandwidth_global: DefaultDirectRateLimiter,
    metrics: Arc<SignalingMetrics>,
    hub: SharedHub,
    next_conn: AtomicU64,
    /// Time base of the circuits' activity stamps.
    epoch: Instant,
    /// The port speaks TLS only, with this.
    tls: Option<PublicTls>,
    cancel: CancellationToken,
}

#[cfg(feature = "server")]
/// What the public port serves beyond signaling, circuits and tokens.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PublicPortOptions {
    ice: Option<Arc<IceService>>,
    tls: Option<PublicTls>,
}

#[cfg(feature = "server")]
impl PublicPortOptions {
    /// `POST /auth/ice-servers` hands out the relay's STUN/TURN servers.
    pub fn with_ice(mut self, ice: Arc<IceService>) -> Self {
        self.ice = Some(ice);
        self
    }

    /// The port speaks TLS only (`wss://`, `https://`), with `certificate`
    /// (resolved at each handshake, so its reloads apply at once);
    /// handshakes that do not complete are counted in `metrics`.
    pub fn with_tls(
        mut self,
        certificate: &Arc<TlsCertificate>,
        metrics: Arc<TlsMetrics>,
    ) -> Result<Self, TlsError> {
        self.tls = Some(PublicTls {
            config: certificate.server_config()?,
            metrics,
        });
        Ok(self)
    }
}

#[cfg(feature = "server")]
impl Context {
    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}
