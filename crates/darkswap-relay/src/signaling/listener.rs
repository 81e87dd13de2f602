//! The public port's listener: accepts TCP connections, admits each under
//! the connection limits (open connections per IP address, new connections
//! per IP address and globally, and a ceiling on sockets), and hands it to
//! the token service (plain HTTP) or to a socket task after the WebSocket
//! upgrade. A refused connection still gets an answer: 429 with
//! `Retry-After` over HTTP, close code 1013 over WebSocket.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use darkswap_proto::signaling::close_code;
use governor::clock::{Clock, DefaultClock};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use super::{
    Context,
    socket::SignalingSocket,
    upgrade::{Endpoint, sniff, upgrade},
    websocket::close,
    ws_circuit::CircuitSocket,
};
use crate::defaults::{queues, timeouts};

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

/// Accepts until the server is cancelled.
pub(super) async fn accept_loop(listener: TcpListener, ctx: Arc<Context>, tasks: TaskTracker) {
    // Sockets beyond what the limits can ever use are refused at once.
    let max_sockets =
        ctx.signaling.max_peers + 2 * ctx.ws_circuit.max_circuits + queues::SPARE_SOCKETS;
    let permits = Arc::new(tokio::sync::Semaphore::new(max_sockets));
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

async fn handle_connection(
    stream: TcpStream,
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
                crate::token_service::refuse_connection(stream, retry_after).await;
            } else if let Some((mut ws, _)) = upgrade(stream, remote, &ctx).await {
                close(&mut ws, close_code::TRY_AGAIN_LATER, "too many connections").await;
            }
            return;
        }
    };
    if endpoint == Endpoint::Http {
        crate::token_service::serve_connection(
            stream,
            remote.ip(),
            ctx.token_service.clone(),
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
        Endpoint::Relay => CircuitSocket::new(ws, conn, ctx).run().await,
        Endpoint::Http => {}
    }
    drop(slot);
}
