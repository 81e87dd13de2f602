//! The public port's listener. Each accepted connection is admitted before
//! it costs anything: first by the per-address limits (open connections,
//! counted in every phase from accept to close, and the connection rate),
//! then by the global rate and the global ceiling on sockets, so one address
//! holds at most its own share of the sockets. An admitted connection then
//! has `signaling.request_head_timeout` to send its request head (and,
//! when the port speaks TLS, to complete its TLS handshake first, both
//! within that one deadline from the accept), which sends it to the token
//! service (plain HTTP) or, after the WebSocket upgrade, to a socket task.
//!
//! A refused connection holds no socket slot. It gets its answer (429 with
//! `Retry-After` over HTTP, close 1013 over WebSocket) within
//! [`timeouts::REFUSAL`], while [`queues::REFUSALS`] others and
//! [`queues::REFUSALS_PER_ADDRESS`] of its address's are being answered;
//! past that it is reset at once. Either way it is counted in
//! `darkswap_relay_rate_limited_total`, with `plane="tcp"` when it was
//! never heard from (over TLS: when its handshake did not complete within
//! that bound either).

use std::{
    collections::HashMap,
    io::ErrorKind,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use darkswap_proto::signaling::close_code;
use futures::future::Either;
use governor::clock::{Clock, DefaultClock};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tokio_util::task::TaskTracker;

use super::{
    Context,
    public_stream::{HandshakeError, PublicStream},
    request::{Answer, Endpoint},
    socket::SignalingSocket,
    upgrade::{
        FirstRequest, Replay, accept_websocket, answer_and_close, answer_at_once, read_head,
    },
    websocket::close,
    ws_circuit::CircuitSocket,
};
use crate::{
    config::max_public_sockets,
    defaults::{queues, timeouts},
    token_service::{self, Deadlines},
};

/// The address a client is counted by: an IPv4 address as it is, an IPv6
/// address by its /64, the block one host (or one customer) usually gets,
/// so a client cannot escape the per-address limits by varying the low bits.
pub(super) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// Connections counted per client address.
#[derive(Debug, Default)]
struct AddressCounts(Mutex<HashMap<IpAddr, usize>>);

impl AddressCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Each critical section is a lookup and an update: a poisoned map
        // is still consistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One connection's place in its address's count, given back on drop.
#[derive(Debug)]
struct AddressTicket {
    counts: Arc<AddressCounts>,
    addr: IpAddr,
}

impl AddressTicket {
    /// Counts one more for `addr` in `map`, the lock of `counts`.
    fn take(counts: &Arc<AddressCounts>, map: &mut HashMap<IpAddr, usize>, addr: IpAddr) -> Self {
        *map.entry(addr).or_insert(0) += 1;
        AddressTicket {
            counts: counts.clone(),
            addr,
        }
    }
}

impl Drop for AddressTicket {
    fn drop(&mut self) {
        let mut map = self.counts.lock();
        if let Some(n) = map.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.addr);
            }
        }
    }
}

/// What an admitted connection holds until it closes.
#[derive(Debug)]
struct Slot {
    _address: AddressTicket,
    _socket: OwnedSemaphorePermit,
    ctx: Arc<Context>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.ctx.metrics.public_connections.dec();
    }
}

/// Which limit refused a connection, and when the client may retry.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    limit: &'static str,
    retry_after: Duration,
}

impl Refusal {
    fn new(limit: &'static str, retry_after: Duration) -> Self {
        Refusal { limit, retry_after }
    }
}

/// The admission of new connections.
#[derive(Debug)]
struct Gate {
    open: Arc<AddressCounts>,
    /// Per address: at most this many open.
    max_per_address: usize,
    sockets: Arc<Semaphore>,
    refusing: Arc<AddressCounts>,
    refusals: Arc<Semaphore>,
}

impl Gate {
    fn new(ctx: &Context) -> Self {
        let max_sockets = max_public_sockets(ctx.signaling.max_peers, ctx.ws_circuit.max_circuits);
        Gate {
            open: Arc::default(),
            // One address must never hold every socket, whatever a library
            // user configured (the binary refuses such a configuration).
            max_per_address: ctx
                .limits
                .max_connections_per_ip
                .min(max_sockets.saturating_sub(1)),
            sockets: Arc::new(Semaphore::new(max_sockets)),
            refusing: Arc::default(),
            refusals: Arc::new(Semaphore::new(queues::REFUSALS)),
        }
    }

    /// The per-address limits first, then the global ones.
    fn admit(&self, ctx: &Arc<Context>, addr: IpAddr) -> Result<Slot, Refusal> {
        let wait = |n: governor::NotUntil<_>| n.wait_time_from(DefaultClock::default().now());
        let mut open = self.open.lock();
        if open.get(&addr).copied().unwrap_or(0) >= self.max_per_address {
            return Err(Refusal::new(
                "max_connections_per_ip",
                Duration::from_secs(1),
            ));
        }
        if let Err(n) = ctx.conn_rate_per_ip.check_key(&addr) {
            return Err(Refusal::new("connection_rate_per_ip", wait(n)));
        }
        if let Err(n) = ctx.conn_rate_global.check() {
            return Err(Refusal::new("connection_rate_global", wait(n)));
        }
        let Ok(socket) = self.sockets.clone().try_acquire_owned() else {
            return Err(Refusal::new("max_sockets", Duration::from_secs(1)));
        };
        ctx.metrics.public_connections.inc();
        Ok(Slot {
            _address: AddressTicket::take(&self.open, &mut open, addr),
            _socket: socket,
            ctx: ctx.clone(),
        })
    }

    /// A place to answer a refused connection, if one is free.
    fn refusing(&self, addr: IpAddr) -> Option<(AddressTicket, OwnedSemaphorePermit)> {
        let mut refusing = self.refusing.lock();
        if refusing.get(&addr).copied().unwrap_or(0) >= queues::REFUSALS_PER_ADDRESS {
            return None;
        }
        let permit = self.refusals.clone().try_acquire_owned().ok()?;
        Some((
            AddressTicket::take(&self.refusing, &mut refusing, addr),
            permit,
        ))
    }
}

/// Accepts until the server is cancelled.
pub(super) async fn accept_loop(listener: TcpListener, ctx: Arc<Context>, tasks: TaskTracker) {
    let gate = Gate::new(&ctx);
    let mut forget = tokio::time::interval(timeouts::FORGET_IDLE_ADDRESSES);
    loop {
        let accepted = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = forget.tick() => {
                // Addresses whose buckets are full again need no entry.
                ctx.conn_rate_per_ip.retain_recent();
                ctx.token_service.forget_idle();
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            // One connection that died in the backlog: the next is fine.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
                ) =>
            {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
            Err(e) => {
                // Out of file descriptors (or memory), every accept fails at
                // once for as long as the backlog holds a connection: pause
                // rather than spin, as hyper's and axum's servers do.
                tracing::warn!(error = %e, "accept failed; pausing");
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return,
                    _ = tokio::time::sleep(timeouts::ACCEPT_PAUSE) => continue,
                }
            }
        };
        let addr = address_key(remote.ip());
        match gate.admit(&ctx, addr) {
            Ok(slot) => {
                let _ = stream.set_nodelay(true);
                tasks.spawn(serve(stream, remote, addr, ctx.clone(), slot));
            }
            Err(refusal) => match gate.refusing(addr) {
                Some(place) => {
                    tasks.spawn(refuse(stream, remote, ctx.clone(), refusal, place));
                }
                None => {
                    ctx.security.limited("tcp", refusal.limit);
                    tracing::debug!(%remote, limit = refusal.limit, "refused without an answer");
                    // A reset: nothing lingers, on either side.
                    let _ = stream.set_zero_linger();
                }
            },
        }
    }
}

/// An admitted connection, from its TLS handshake (if the port speaks
/// TLS) and its request head to its close. `slot` is given back at the end.
async fn serve(stream: TcpStream, remote: SocketAddr, addr: IpAddr, ctx: Arc<Context>, slot: Slot) {
    // This task's future is most of what an idle socket costs, and it is
    // as large as its largest state plus whatever is live beside it. So the
    // handshake runs in a boxed future of its own, which builds the
    // socket's: neither the handshake's futures nor the parts moved into
    // the socket (stream, request head, WebSocket) share this future with
    // the socket's. 2,232 bytes instead of 2,584 per socket.
    if let Some(socket) = Box::pin(open_socket(stream, remote, addr, ctx)).await {
        socket.await;
    }
    drop(slot);
}

/// The connection up to its WebSocket: the TLS handshake (if the port
/// speaks TLS) and the request head by their deadline, then the upgrade;
/// the future that serves the socket, or `None` if the connection is done
/// (an HTTP one is served here to its end).
async fn open_socket(
    stream: TcpStream,
    remote: SocketAddr,
    addr: IpAddr,
    ctx: Arc<Context>,
) -> Option<impl Future<Output = ()>> {
    let deadline = Instant::now() + ctx.signaling.request_head_timeout;
    let (stream, request) = tokio::select! {
        opened = open(stream, remote, deadline, &ctx) => opened?,
        // Shutdown does not wait for heads that may never come.
        _ = ctx.cancel.cancelled() => return None,
    };
    let endpoint = request.head.endpoint();
    if endpoint == Endpoint::Http {
        let deadlines = Deadlines {
            head: ctx.signaling.request_head_timeout,
            body: ctx.signaling.request_body_timeout,
        };
        let stream = Replay::new(stream, request);
        let http = ctx.token_service.clone();
        token_service::serve_connection(stream, addr, http, deadlines, ctx.cancel.clone()).await;
        return None;
    }
    let (ws, credentials) = accept_websocket(stream, request, endpoint, &ctx).await?;
    let conn = ctx.next_conn.fetch_add(1, Ordering::Relaxed);
    // Whether a token came, never the token.
    let token = credentials.token.is_some();
    tracing::debug!(%remote, conn, ?endpoint, token, "websocket open");
    match endpoint {
        Endpoint::Signaling => Some(Either::Left(
            SignalingSocket::new(ws, conn, ctx, credentials).run(),
        )),
        Endpoint::Relay => Some(Either::Right(CircuitSocket::new(ws, conn, ctx).run())),
        Endpoint::Http => None,
    }
}

/// The TLS handshake, if the port speaks TLS, and the first request head,
/// both by `deadline`. A client that misses it gets its 408 if it can still
/// read one (or, speaking plain HTTP to the TLS port, a 400 saying so).
async fn open(
    stream: TcpStream,
    remote: SocketAddr,
    deadline: Instant,
    ctx: &Context,
) -> Option<(PublicStream, FirstRequest)> {
    let mut stream = match &ctx.tls {
        None => PublicStream::Plain(stream),
        Some(tls) => match tls.accept(stream, deadline).await {
            Ok(stream) => stream,
            Err(HandshakeError::Plaintext(stream)) => {
                tracing::debug!(%remote, "plain text on the TLS port");
                answer_and_close(PublicStream::Plain(stream), &Answer::tls_required()).await;
                return None;
            }
            Err(e) => {
                tracing::debug!(%remote, error = %e, "no TLS connection");
                return None;
            }
        },
    };
    match read_head(&mut stream, deadline).await {
        Ok(request) => Some((stream, request)),
        Err(e) => {
            tracing::debug!(%remote, error = %e, "no request");
            if let Some(answer) = e.answer() {
                answer_at_once(stream, &answer);
            }
            None
        }
    }
}

/// A refused connection: its answer, all within [`timeouts::REFUSAL`].
async fn refuse(
    stream: TcpStream,
    remote: SocketAddr,
    ctx: Arc<Context>,
    refusal: Refusal,
    _place: (AddressTicket, OwnedSemaphorePermit),
) {
    tracing::debug!(%remote, limit = refusal.limit, "connection refused by a limit");
    let mut counted = false;
    let answered = tokio::time::timeout(timeouts::REFUSAL, async {
        // The same bound as the whole refusal, which ends it first.
        let deadline = Instant::now() + timeouts::REFUSAL;
        let mut stream = match &ctx.tls {
            None => PublicStream::Plain(stream),
            Some(tls) => tls.accept(stream, deadline).await.ok()?,
        };
        let request = read_head(&mut stream, deadline).await.ok()?;
        let endpoint = request.head.endpoint();
        let plane = if endpoint == Endpoint::Http {
            "http"
        } else {
            "ws"
        };
        ctx.security.limited(plane, refusal.limit);
        counted = true;
        if endpoint == Endpoint::Http {
            let secs = refusal.retry_after.as_secs_f64().ceil() as u64;
            answer_and_close(stream, &Answer::too_many(secs)).await;
        } else if let Some((mut ws, _)) = accept_websocket(stream, request, endpoint, &ctx).await {
            let reason = "too many connections";
            close(&mut ws, &ctx.metrics, close_code::TRY_AGAIN_LATER, reason).await;
        }
        Some(())
    })
    .await;
    if !counted {
        ctx.security.limited("tcp", refusal.limit);
    }
    if !matches!(answered, Ok(Some(()))) {
        tracing::debug!(%remote, "a refused connection was not answered in time");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(other));
        assert_eq!(address_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(address_key(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), v4);
    }
}
