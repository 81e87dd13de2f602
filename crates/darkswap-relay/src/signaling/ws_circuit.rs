//! WebSocket circuits: the `/relay` sockets. A socket's first frame is
//! `attach` (checked by the hub); once both ends of a circuit attached, the
//! hub pairs them and each end forwards its binary frames straight into
//! the other's writer queue, under the per-circuit, per-peer and global
//! byte-rate limiters and the circuit's byte limit. Each socket's writer
//! runs apart from its reader, so two ends blocked on each other still
//! drain.

use std::{
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use darkswap_proto::signaling::{ErrorCode, ServerToClient, close_code};
use futures::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};
use tokio_util::sync::CancellationToken;

use super::{
    Context,
    hub::ConnId,
    shared_hub::{Ctl, SocketHandle},
    websocket::{Exit, Ws, error_frame, read_error},
};
use crate::defaults::{queues, timeouts};

/// One end's view of an open circuit.
#[derive(Debug)]
pub(super) struct CircuitLink {
    pub(super) circuit: Arc<SharedCircuit>,
    /// The other end's outgoing queue.
    pub(super) peer: mpsc::Sender<Message>,
    /// This end's peer's bandwidth over all its circuits.
    pub(super) peer_limiter: Arc<DefaultDirectRateLimiter>,
}

/// Shared by both ends of an open circuit.
#[derive(Debug)]
pub(super) struct SharedCircuit {
    id: String,
    bytes: AtomicU64,
    /// Milliseconds since the server's epoch of the last frame.
    last_activity: AtomicU64,
    limiter: DefaultDirectRateLimiter,
}

impl SharedCircuit {
    /// A circuit opening now, under the server's per-circuit bandwidth.
    pub(super) fn new(id: String, ctx: &Context) -> Self {
        let cfg = &ctx.ws_circuit;
        SharedCircuit {
            id,
            bytes: AtomicU64::new(0),
            last_activity: AtomicU64::new(ctx.millis()),
            limiter: byte_limiter(cfg.bandwidth_per_circuit, cfg.max_frame_size),
        }
    }
}

/// A limiter of `bytes_per_sec` whose burst admits at least one largest frame.
pub(super) fn byte_limiter(bytes_per_sec: u64, max_frame: usize) -> DefaultDirectRateLimiter {
    let clamp =
        |v: u64| NonZeroU32::new(v.clamp(1, u32::MAX as u64) as u32).unwrap_or(NonZeroU32::MIN);
    let rate = clamp(bytes_per_sec);
    let burst = clamp(bytes_per_sec.max(max_frame as u64));
    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}

/// A `/relay` socket from its upgrade to its close.
pub(super) struct CircuitSocket {
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
            let _ = tokio::time::timeout(timeouts::CLOSE_SEND, sink.close()).await;
            break;
        }
        let last = matches!(message, Message::Close(_));
        let sent = tokio::time::timeout(timeouts::SEND, sink.send(message)).await;
        if last || !matches!(sent, Ok(Ok(()))) {
            break;
        }
    }
}

impl CircuitSocket {
    pub(super) fn new(ws: Ws, conn: ConnId, ctx: Arc<Context>) -> Self {
        CircuitSocket { ws, conn, ctx }
    }

    pub(super) async fn run(self) {
        let CircuitSocket { ws, conn, ctx } = self;
        let (sink, mut stream) = ws.split();
        let (out, out_rx) = mpsc::channel(queues::CIRCUIT_FRAMES);
        let writer = tokio::spawn(write_loop(sink, out_rx));
        let (ctl_tx, mut ctl) = mpsc::channel(queues::SOCKET);
        let kill = CancellationToken::new();
        let handle = SocketHandle {
            ctl: ctl_tx,
            kill: kill.clone(),
        };
        if ctx.hub.open_relay(conn, handle, out.clone()).is_ok() {
            let mut end = CircuitEnd {
                conn,
                ctx: ctx.clone(),
                out: out.clone(),
                link: None,
                ended: false,
            };
            let exit = end.serve(&mut stream, &mut ctl, &kill).await;
            let frame = match exit {
                Exit::Close(code, reason) => {
                    ctx.metrics.ws_closed(code);
                    Some(CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.to_owned().into(),
                    })
                }
                Exit::Gone => None,
            };
            // The writer may be stuck on a peer that does not read: bounded.
            let _ =
                tokio::time::timeout(timeouts::CLOSE_SEND, out.send(Message::Close(frame))).await;
            let _ = ctx.hub.closed(conn);
        }
        drop(out);
        // The writer's own bounds: one message, then the close.
        let _ = tokio::time::timeout(timeouts::SEND + timeouts::CLOSE_SEND, writer).await;
    }
}

/// The reading side of a `/relay` socket.
struct CircuitEnd {
    conn: ConnId,
    ctx: Arc<Context>,
    /// This socket's outgoing queue.
    out: mpsc::Sender<Message>,
    link: Option<CircuitLink>,
    /// This end asked the hub to end the circuit; frames are no longer forwarded.
    ended: bool,
}

impl CircuitEnd {
    async fn send(&self, message: Message) -> bool {
        self.out.send(message).await.is_ok()
    }

    async fn serve(
        &mut self,
        stream: &mut futures::stream::SplitStream<Ws>,
        ctl: &mut mpsc::Receiver<Ctl>,
        kill: &CancellationToken,
    ) -> Exit {
        let cfg = self.ctx.ws_circuit.clone();
        let attach_by = Instant::now() + cfg.accept_timeout;
        loop {
            let idle_at = self.deadline(attach_by);
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
                    // Read the stamp again: frames the other end forwarded
                    // while this end slept are activity too. On a one-way
                    // circuit the receiving end reads no frame of its own,
                    // so its loop does not go round to see them.
                    if self.deadline(attach_by) <= Instant::now() {
                        match &self.link {
                            Some(l) => {
                                let id = l.circuit.id.clone();
                                self.end(&id, "idle_timeout");
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
                            if self.ctx.hub.text(self.conn, text.as_str()).is_err() {
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
                                self.end(&id, reason);
                            }
                        }
                        Message::Close(_) => return Exit::Gone,
                        _ => {}
                    }
                }
            }
        }
    }

    /// When this end gives up: `attach_by` until the circuit opens, then the
    /// circuit's idle timeout after the last frame either end forwarded.
    fn deadline(&self, attach_by: Instant) -> Instant {
        match &self.link {
            Some(l) => {
                let last = l.circuit.last_activity.load(Ordering::Relaxed);
                self.ctx.epoch + Duration::from_millis(last) + self.ctx.ws_circuit.idle_timeout
            }
            None => attach_by,
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

    fn end(&mut self, circuit_id: &str, reason: &'static str) {
        self.ended = true;
        let _ = self.ctx.hub.circuit_ended(circuit_id, reason);
    }
}
