//! The sans-IO [`Hub`] behind one lock, driven by the socket tasks
//! themselves: a task that reads a frame locks the hub, feeds it the frame,
//! counts what the hub reports in the metrics and carries out its outputs
//! on the sockets' own bounded queues, all before it reads on. The outputs
//! never block: a `/signaling` socket's outbox (`hub::outbox`) refuses a
//! routed message its bounds do not admit (the hub then tells the sender),
//! and a `/relay` socket's control queue is tried, never awaited. One timer
//! task fires the hub's deadlines.
//!
//! Why not a task that owns the hub: every routed message then took one
//! more task wake-up (socket, hub task, recipient's socket), and on the
//! multi-threaded runtime most of those wake a parked worker. The lock is
//! held for one input and its outputs, a few microseconds, never across an
//! await; a task reading faster than the hub keeps up waits on it, which is
//! the back-pressure the hub task's bounded queue gave.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Instant,
};

use darkswap_proto::{
    identity::PeerId,
    signaling::{ServerToClient, close_code},
};
use governor::DefaultDirectRateLimiter;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{
    Context,
    hub::{Access, ConnId, Hub, Output},
    socket::SendQueue,
    ws_circuit::{CircuitLink, SharedCircuit, byte_limiter},
};

/// The hub stopped: a panic inside it left its state unusable. Every
/// socket then ends.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the signaling hub stopped")]
pub(super) struct HubStopped;

/// How the hub reaches one socket task.
#[derive(Debug)]
enum Socket {
    Signaling(Arc<SendQueue>),
    Relay(SocketHandle),
}

/// How the hub reaches one `/relay` socket task.
#[derive(Debug)]
pub(super) struct SocketHandle {
    pub(super) ctl: mpsc::Sender<Ctl>,
    /// Fired when the socket must go without ceremony (its queue is full).
    pub(super) kill: CancellationToken,
}

/// What the hub tells one socket task.
#[derive(Debug)]
pub(super) enum Ctl {
    Send(String),
    Close(u16, &'static str),
    /// The circuit this `/relay` socket attached to is open.
    Open(CircuitLink),
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct SharedHub {
    state: Mutex<State>,
    /// Tells the timer task the hub's next deadline moved earlier.
    deadline_moved: Notify,
}

/// What the lock guards.
struct State {
    hub: Hub,
    ctx: Weak<Context>,
    conns: HashMap<ConnId, Socket>,
    /// The frame queue of every `/relay` socket, for pairing.
    frames: HashMap<ConnId, mpsc::Sender<Message>>,
    peer_limiters: HashMap<PeerId, Weak<DefaultDirectRateLimiter>>,
    /// The deadline the timer task sleeps until (`None`: none).
    timer_at: Option<Instant>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("hub", &self.hub)
            .field("conns", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl SharedHub {
    /// `ctx` is the server's context, which holds this hub: it is held
    /// weakly so the two do not keep each other alive.
    pub(super) fn new(hub: Hub, ctx: Weak<Context>) -> Self {
        SharedHub {
            state: Mutex::new(State {
                hub,
                ctx,
                conns: HashMap::new(),
                frames: HashMap::new(),
                peer_limiters: HashMap::new(),
                timer_at: None,
            }),
            deadline_moved: Notify::new(),
        }
    }

    /// A `/signaling` socket opened; the hub writes to it through `queue`.
    pub(super) fn open_signaling(
        &self,
        conn: ConnId,
        queue: Arc<SendQueue>,
        access: Access,
    ) -> Result<(), HubStopped> {
        self.with(|s| {
            s.conns.insert(conn, Socket::Signaling(queue));
            s.hub.handle_signaling_open(conn, access, Instant::now());
        })
    }

    /// A `/relay` socket opened; `frames` is its outgoing queue, which its
    /// circuit peer writes to.
    pub(super) fn open_relay(
        &self,
        conn: ConnId,
        handle: SocketHandle,
        frames: mpsc::Sender<Message>,
    ) -> Result<(), HubStopped> {
        self.with(|s| {
            s.conns.insert(conn, Socket::Relay(handle));
            s.frames.insert(conn, frames);
            s.hub.handle_relay_open(conn);
        })
    }

    /// A text frame arrived on `conn`.
    pub(super) fn text(&self, conn: ConnId, text: &str) -> Result<(), HubStopped> {
        self.with(|s| s.hub.handle_text(conn, text, Instant::now()))
    }

    /// `conn` closed.
    pub(super) fn closed(&self, conn: ConnId) -> Result<(), HubStopped> {
        self.with(|s| {
            s.conns.remove(&conn);
            s.frames.remove(&conn);
            s.hub.handle_closed(conn);
        })
    }

    /// The data plane ended a circuit.
    pub(super) fn circuit_ended(
        &self,
        circuit_id: &str,
        reason: &'static str,
    ) -> Result<(), HubStopped> {
        self.with(|s| s.hub.handle_circuit_ended(circuit_id, reason))
    }

    /// Fires the hub's deadlines as they come, until `cancel` fires or the
    /// hub stops.
    pub(super) async fn run_timers(&self, cancel: CancellationToken) {
        loop {
            let Ok(deadline) = self.lock().map(|mut s| {
                s.timer_at = s.hub.poll_timeout();
                s.timer_at
            }) else {
                return;
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                // A permit left by an input between the lock and here
                // completes this at once.
                _ = self.deadline_moved.notified() => {}
                _ = sleep_until(deadline) => {
                    if self.with(|s| s.hub.handle_timeout(Instant::now())).is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, HubStopped> {
        self.state.lock().map_err(|_| HubStopped)
    }

    /// Feeds one input (`f`) to the hub, then carries out all it gives.
    fn with(&self, f: impl FnOnce(&mut State)) -> Result<(), HubStopped> {
        let mut state = self.lock()?;
        f(&mut state);
        state.drain();
        let next = state.hub.poll_timeout();
        let earlier = match (next, state.timer_at) {
            (Some(next), Some(at)) => next < at,
            (Some(_), None) => true,
            (None, _) => false,
        };
        drop(state);
        if earlier {
            self.deadline_moved.notify_one();
        }
        Ok(())
    }
}

impl State {
    fn drain(&mut self) {
        let Some(ctx) = self.ctx.upgrade() else {
            return;
        };
        loop {
            // Counted before the outputs go out, so a client that sees a
            // reply finds it in the metrics too.
            while let Some(event) = self.hub.poll_event() {
                ctx.metrics.record_hub_event(event, &ctx.security);
            }
            // Applying one may give the hub more to do (a refusal).
            let Some(output) = self.hub.poll_output() else {
                break;
            };
            self.apply(&ctx, output);
        }
    }

    fn apply(&mut self, ctx: &Context, output: Output) {
        match output {
            Output::Send(conn, message) => self.send(ctx, conn, &message),
            Output::Route {
                from,
                to,
                kind,
                message,
            } => {
                let Some(Socket::Signaling(queue)) = self.conns.get(&to) else {
                    return;
                };
                if queue.push_routed(from, message.to_json()).is_err() {
                    ctx.security.limited("ws", "send_queue");
                    self.hub.handle_refused(from, to, kind);
                }
            }
            Output::Close(conn, code, reason) => match self.conns.get(&conn) {
                Some(Socket::Signaling(queue)) => queue.close(code, reason),
                _ => self.ctl(conn, Ctl::Close(code, reason)),
            },
            Output::Pair { circuit_id, ends } => self.pair(ctx, circuit_id, ends),
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

    fn send(&mut self, ctx: &Context, conn: ConnId, message: &ServerToClient) {
        match self.conns.get(&conn) {
            Some(Socket::Signaling(queue)) => {
                let queued = queue.push_control(message.to_json());
                if !queued {
                    ctx.security.limited("ws", "slow_reader");
                    tracing::debug!(conn, "replies pile up unread, disconnecting a slow client");
                }
            }
            Some(Socket::Relay(_)) => self.ctl(conn, Ctl::Send(message.to_json())),
            None => {}
        }
    }

    fn ctl(&mut self, conn: ConnId, ctl: Ctl) {
        let Some(Socket::Relay(handle)) = self.conns.get(&conn) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = handle.ctl.try_send(ctl) {
            tracing::debug!(conn, "socket queue full, disconnecting a slow client");
            handle.kill.cancel();
        }
    }

    fn pair(&mut self, ctx: &Context, circuit_id: String, ends: [(ConnId, PeerId); 2]) {
        let circuit = Arc::new(SharedCircuit::new(circuit_id, ctx));
        let [(a, peer_a), (b, peer_b)] = ends;
        let (Some(frames_a), Some(frames_b)) =
            (self.frames.get(&a).cloned(), self.frames.get(&b).cloned())
        else {
            // An end closed in the meantime; its Closed input ends the circuit.
            return;
        };
        for (conn, peer, other) in [(a, peer_a, frames_b), (b, peer_b, frames_a)] {
            let peer_limiter = self.peer_limiter(ctx, peer);
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

    fn peer_limiter(&mut self, ctx: &Context, peer: PeerId) -> Arc<DefaultDirectRateLimiter> {
        if let Some(l) = self.peer_limiters.get(&peer).and_then(Weak::upgrade) {
            return l;
        }
        self.peer_limiters.retain(|_, w| w.strong_count() > 0);
        let cfg = &ctx.ws_circuit;
        let limiter = Arc::new(byte_limiter(cfg.bandwidth_per_peer, cfg.max_frame_size));
        self.peer_limiters.insert(peer, Arc::downgrade(&limiter));
        limiter
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
