//! STUN and TURN on a UDP port of the relay's own, with `turn` (webrtc-rs)
//! as the protocol stack. What it lacks, the relay adds around it:
//!
//! - **credentials**: time-limited, coturn's REST scheme
//!   ([`TurnCredentials`]), minted by the token service for a peer with a
//!   token (`POST /auth/ice-servers`), checked here without state;
//! - **limits**: the server's socket is wrapped (`Gate`) so that Allocate
//!   requests over `max_allocations_per_peer` are answered 486 and over
//!   `max_allocations` 508 before the server sees them (`ledger`), and
//!   every refusal the server sends is counted by reason;
//! - **bandwidth**: each relayed socket is wrapped (`Throttled`) so that
//!   datagrams above `bandwidth_per_allocation` are dropped.
//!
//! STUN binding requests are answered to anyone, as STUN servers do.

pub(crate) mod ledger;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use stun::{
    attributes::ATTR_USERNAME,
    error_code::{
        CODE_ALLOC_QUOTA_REACHED, CODE_INSUFFICIENT_CAPACITY, ErrorCode, ErrorCodeAttribute,
    },
    fingerprint::FINGERPRINT,
    message::{
        CLASS_ERROR_RESPONSE, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter, METHOD_ALLOCATE,
        Message, MessageType, Setter, is_message,
    },
    textattrs::TextAttribute,
};
use tokio::{net::UdpSocket, sync::mpsc};
use turn::{
    allocation::AllocationInfo,
    auth::{AuthHandler, generate_auth_key},
    relay::{RelayAddressGenerator, relay_range::RelayAddressGeneratorRanges},
    server::{
        Server,
        config::{ConnConfig, ServerConfig},
    },
};
use webrtc_util::{Conn, vnet::net::Net};

use self::ledger::{Admission, Ledger};
use crate::{
    config::TurnConfig,
    metrics::TurnMetrics,
    turn_credentials::{TurnCredentials, peer_of},
};

/// Why the STUN/TURN port could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve STUN/TURN on {addr}: {reason}")]
pub struct TurnStartError {
    addr: SocketAddr,
    reason: String,
}

/// The running STUN/TURN server.
pub struct TurnServer {
    server: Server,
    local_addr: SocketAddr,
    _closes: tokio_util::task::AbortOnDropHandle<()>,
}

impl std::fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl TurnServer {
    /// Binds `config.listen` and serves STUN and TURN, checking credentials
    /// with `credentials`.
    pub async fn start(
        config: &TurnConfig,
        credentials: TurnCredentials,
        metrics: Arc<TurnMetrics>,
    ) -> Result<Self, TurnStartError> {
        let fail = |reason: String| TurnStartError {
            addr: config.listen,
            reason,
        };
        let socket = UdpSocket::bind(config.listen)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let local_addr = socket.local_addr().map_err(|e| fail(e.to_string()))?;
        let ledger = Arc::new(Mutex::new(Ledger::new(
            config.max_allocations,
            config.max_allocations_per_peer,
        )));
        let gate = Gate {
            socket: Arc::new(socket),
            ledger: ledger.clone(),
            metrics: metrics.clone(),
        };
        let bind_ip = config.listen.ip();
        let relay_ip = config.relay_ip.unwrap_or_else(|| advertised_ip(bind_ip));
        let ports = RelayAddressGeneratorRanges {
            relay_address: relay_ip,
            min_port: config.relay_port_min,
            max_port: config.relay_port_max,
            max_retries: 0,
            address: bind_ip.to_string(),
            net: Arc::new(Net::new(None)),
        };
        let (closed_tx, mut closed_rx) = mpsc::channel::<AllocationInfo>(256);
        let server = Server::new(ServerConfig {
            conn_configs: vec![ConnConfig {
                conn: Arc::new(gate),
                relay_addr_generator: Box::new(ThrottledPorts {
                    ports,
                    bandwidth: config.bandwidth_per_allocation,
                    metrics: metrics.clone(),
                }),
            }],
            realm: config.realm.clone(),
            auth_handler: Arc::new(CredentialCheck { credentials }),
            channel_bind_timeout: std::time::Duration::ZERO,
            alloc_close_notify: Some(closed_tx),
        })
        .await
        .map_err(|e| fail(e.to_string()))?;
        let closes = tokio::spawn(async move {
            while let Some(info) = closed_rx.recv().await {
                let active = {
                    let mut ledger = lock(&ledger);
                    ledger.closed(info.five_tuple.src_addr);
                    ledger.active()
                };
                metrics.set_active(active);
            }
        });
        tracing::info!(addr = %local_addr, %relay_ip, "STUN/TURN server listening");
        Ok(TurnServer {
            server,
            local_addr,
            _closes: tokio_util::task::AbortOnDropHandle::new(closes),
        })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Closes every allocation and the port.
    pub async fn close(self) {
        if let Err(e) = self.server.close().await {
            tracing::debug!(error = %e, "STUN/TURN server close");
        }
    }
}

/// The IP relayed candidates carry when none is configured: the bound one,
/// else the one the default route leaves from (connecting a UDP socket
/// sends nothing), else loopback.
fn advertised_ip(bind: IpAddr) -> IpAddr {
    if !bind.is_unspecified() {
        return bind;
    }
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks time-limited usernames and gives the server the key of the
/// matching password.
struct CredentialCheck {
    credentials: TurnCredentials,
}

impl AuthHandler for CredentialCheck {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        _src: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        // The server answers any error with 400; the gate counts it.
        let password = self
            .credentials
            .check(username, unix_now())
            .map_err(|e| turn::Error::Other(e.to_string()))?;
        Ok(generate_auth_key(username, realm, &password))
    }
}

/// The server's socket, with the allocation limits in front of it and the
/// refusals counted behind it.
struct Gate {
    socket: Arc<UdpSocket>,
    ledger: Arc<Mutex<Ledger>>,
    metrics: Arc<TurnMetrics>,
}

impl Gate {
    /// An Allocate request over a limit: the answer to send instead of
    /// passing it on.
    fn refuse(&self, datagram: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
        if !is_message(datagram) {
            return None;
        }
        let mut message = Message::new();
        message.unmarshal_binary(datagram).ok()?;
        if message.typ != MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST) {
            return None;
        }
        // Unauthenticated requests get their 401 from the server.
        let username = TextAttribute::get_from_as(&message, ATTR_USERNAME).ok()?;
        let peer = peer_of(&username.text)?;
        let (code, reason, why) = match lock(&self.ledger).request(from, peer) {
            Admission::Admit => return None,
            Admission::PeerLimit => (
                CODE_ALLOC_QUOTA_REACHED,
                "peer_limit",
                "Allocation Quota Reached",
            ),
            Admission::AllocationLimit => (
                CODE_INSUFFICIENT_CAPACITY,
                "allocation_limit",
                "Insufficient Capacity",
            ),
        };
        self.metrics.refused(reason);
        error_response(&message, code, why)
    }

    /// Watches the server's answers to Allocate requests.
    fn observe(&self, datagram: &[u8], to: SocketAddr) {
        if !is_message(datagram) {
            return;
        }
        let mut message = Message::new();
        if message.unmarshal_binary(datagram).is_err() || message.typ.method != METHOD_ALLOCATE {
            return;
        }
        if message.typ.class == CLASS_SUCCESS_RESPONSE {
            let mut ledger = lock(&self.ledger);
            if ledger.allocated(to) {
                self.metrics.allocated(ledger.active());
            }
        } else if message.typ.class == CLASS_ERROR_RESPONSE {
            let mut code = ErrorCodeAttribute::default();
            if code.get_from(&message).is_err() || code.code == stun::error_code::CODE_UNAUTHORIZED
            {
                // 401 is the challenge every client gets first.
                return;
            }
            lock(&self.ledger).refused(to);
            self.metrics.refused(match code.code.0 {
                400 | 441 => "unauthorized",
                437 => "allocation_mismatch",
                486 => "peer_limit",
                508 => "allocation_limit",
                _ => "other",
            });
        }
    }
}

/// An Allocate error response to `request` with `code`.
fn error_response(request: &Message, code: ErrorCode, reason: &str) -> Option<Vec<u8>> {
    let mut response = Message::new();
    let setters: Vec<Box<dyn Setter>> = vec![
        Box::new(Message {
            transaction_id: request.transaction_id,
            ..Default::default()
        }),
        Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_ERROR_RESPONSE)),
        Box::new(ErrorCodeAttribute {
            code,
            reason: reason.as_bytes().to_vec(),
        }),
        Box::new(FINGERPRINT),
    ];
    response.build(&setters).ok()?;
    Some(response.raw)
}

#[async_trait]
impl Conn for Gate {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        Ok(self.socket.connect(addr).await?)
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.socket.recv(buf).await?)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.socket.recv_from(buf).await?;
            match self.refuse(&buf[..n], from) {
                None => return Ok((n, from)),
                Some(answer) => {
                    let _ = self.socket.send_to(&answer, from).await;
                }
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        Ok(self.socket.send(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        self.observe(buf, target);
        Ok(self.socket.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// Relayed addresses from the configured port range, each socket throttled.
struct ThrottledPorts {
    ports: RelayAddressGeneratorRanges,
    bandwidth: u64,
    metrics: Arc<TurnMetrics>,
}

#[async_trait]
impl RelayAddressGenerator for ThrottledPorts {
    fn validate(&self) -> Result<(), turn::Error> {
        self.ports.validate()
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let (conn, addr) = self.ports.allocate_conn(use_ipv4, requested_port).await?;
        let per_second = NonZeroU32::new(u32::try_from(self.bandwidth).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        let throttled = Throttled {
            inner: conn,
            limiter: RateLimiter::direct(Quota::per_second(per_second)),
            metrics: self.metrics.clone(),
        };
        Ok((Arc::new(throttled), addr))
    }
}

/// One relayed socket: datagrams over the allocation's bandwidth are
/// dropped (UDP may lose them anyway; the endpoints' congestion control
/// slows down).
struct Throttled {
    inner: Arc<dyn Conn + Send + Sync>,
    limiter: DefaultDirectRateLimiter,
    metrics: Arc<TurnMetrics>,
}

impl Throttled {
    fn admit(&self, len: usize) -> bool {
        let cells =
            NonZeroU32::new(u32::try_from(len).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        let ok = matches!(self.limiter.check_n(cells), Ok(Ok(())));
        if ok {
            self.metrics.relayed(len);
        } else {
            self.metrics.dropped(len);
        }
        ok
    }
}

#[async_trait]
impl Conn for Throttled {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        self.inner.connect(addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        loop {
            let n = self.inner.recv(buf).await?;
            if self.admit(n) {
                return Ok(n);
            }
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.inner.recv_from(buf).await?;
            if self.admit(n) {
                return Ok((n, from));
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        if !self.admit(buf.len()) {
            return Ok(buf.len());
        }
        self.inner.send(buf).await
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if !self.admit(buf.len()) {
            return Ok(buf.len());
        }
        self.inner.send_to(buf, target).await
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.inner.close().await
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// What the token service needs to hand out ICE servers.
#[derive(Debug)]
pub struct IceService {
    credentials: TurnCredentials,
    ttl: std::time::Duration,
    port: u16,
    public_host: Option<String>,
    /// Lowest role given credentials.
    pub(crate) role: darkswap_proto::relay_auth::Role,
    metrics: Arc<TurnMetrics>,
}

impl IceService {
    /// ICE servers on `port` with credentials under `credentials`.
    pub fn new(
        config: &TurnConfig,
        port: u16,
        credentials: TurnCredentials,
        metrics: Arc<TurnMetrics>,
    ) -> Self {
        IceService {
            credentials,
            ttl: config.credential_ttl,
            port,
            public_host: config.public_host.clone(),
            role: config.role,
            metrics,
        }
    }

    /// The relay's STUN and TURN servers for `peer`, who reached the token
    /// service on `host` (the request's `Host`, used unless a public host is
    /// configured).
    pub(crate) fn ice_servers(
        &self,
        peer: &str,
        host: &str,
    ) -> crate::turn_credentials::IceServersResponse {
        use crate::turn_credentials::{IceServer, IceServersResponse};
        let host = self.public_host.as_deref().unwrap_or(host);
        let expires_at = unix_now() + self.ttl.as_secs();
        let (username, credential) = self.credentials.mint(peer, expires_at);
        self.metrics.credentials_issued();
        IceServersResponse {
            ice_servers: vec![
                IceServer {
                    urls: vec![format!("stun:{host}:{}", self.port)],
                    username: None,
                    credential: None,
                },
                IceServer {
                    urls: vec![format!("turn:{host}:{}?transport=udp", self.port)],
                    username: Some(username),
                    credential: Some(credential),
                },
            ],
            expires_at,
        }
    }
}
