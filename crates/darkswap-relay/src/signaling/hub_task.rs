//! The hub task: the one task that owns the sans-IO [`Hub`]. Socket tasks
//! send it their inputs over one bounded queue; it feeds them to the hub,
//! counts what the hub reports in the metrics, and carries out its outputs
//! on the sockets' own bounded queues: a `/signaling` socket's outbox
//! (`hub::outbox`), which refuses a routed message its bounds do not admit
//! (the hub then tells the sender), and a `/relay` socket's control queue.
//! The hub task never blocks on a socket.

use std::{
    collections::HashMap,
    sync::{Arc, Weak},
    time::Instant,
};

use darkswap_proto::{
    identity::PeerId,
    signaling::{ServerToClient, close_code},
};
use governor::DefaultDirectRateLimiter;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{
    Context,
    hub::{Access, ConnId, Hub, Output},
    socket::SendQueue,
    ws_circuit::{CircuitLink, SharedCircuit, byte_limiter},
};

/// What socket tasks tell the hub task.
#[derive(Debug)]
pub(super) enum HubInput {
    Signaling {
        conn: ConnId,
        /// What the socket writes; the hub task pushes to it.
        queue: Arc<SendQueue>,
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
enum Socket {
    Signaling(Arc<SendQueue>),
    Relay(SocketHandle),
}

/// How the hub task reaches one `/relay` socket task.
#[derive(Debug)]
pub(super) struct SocketHandle {
    pub(super) ctl: mpsc::Sender<Ctl>,
    /// Fired when the socket must go without ceremony (its queue is full).
    pub(super) kill: CancellationToken,
}

/// What the hub task tells one socket task.
#[derive(Debug)]
pub(super) enum Ctl {
    Send(String),
    Close(u16, &'static str),
    /// The circuit this `/relay` socket attached to is open.
    Open(CircuitLink),
}

/// See the module docs.
pub(super) struct HubTask {
    hub: Hub,
    ctx: Arc<Context>,
    conns: HashMap<ConnId, Socket>,
    /// The frame queue of every `/relay` socket, for pairing.
    frames: HashMap<ConnId, mpsc::Sender<Message>>,
    peer_limiters: HashMap<PeerId, Weak<DefaultDirectRateLimiter>>,
}

impl HubTask {
    pub(super) fn new(hub: Hub, ctx: Arc<Context>) -> Self {
        HubTask {
            hub,
            ctx,
            conns: HashMap::new(),
            frames: HashMap::new(),
            peer_limiters: HashMap::new(),
        }
    }

    pub(super) async fn run(mut self, mut inputs: mpsc::Receiver<HubInput>) {
        loop {
            loop {
                // Counted before the outputs go out, so a client that sees a
                // reply finds it in the metrics too.
                while let Some(event) = self.hub.poll_event() {
                    self.ctx.metrics.record_hub_event(event, &self.ctx.security);
                }
                // Applying one may give the hub more to do (a refusal).
                let Some(output) = self.hub.poll_output() else {
                    break;
                };
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
                queue,
                access,
            } => {
                self.conns.insert(conn, Socket::Signaling(queue));
                self.hub.handle_signaling_open(conn, access, Instant::now());
            }
            HubInput::Relay {
                conn,
                handle,
                frames,
            } => {
                self.conns.insert(conn, Socket::Relay(handle));
                self.frames.insert(conn, frames);
                self.hub.handle_relay_open(conn);
            }
            HubInput::Text { conn, text } => self.hub.handle_text(conn, &text, Instant::now()),
            HubInput::Closed { conn } => {
                self.conns.remove(&conn);
                self.frames.remove(&conn);
                self.hub.handle_closed(conn);
            }
            HubInput::CircuitEnded { circuit_id, reason } => {
                self.hub.handle_circuit_ended(&circuit_id, reason)
            }
        }
    }

    fn apply(&mut self, output: Output) {
        match output {
            Output::Send(conn, message) => self.send(conn, &message),
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
                    self.ctx.security.limited("ws", "send_queue");
                    self.hub.handle_refused(from, to, kind);
                }
            }
            Output::Close(conn, code, reason) => match self.conns.get(&conn) {
                Some(Socket::Signaling(queue)) => queue.close(code, reason),
                _ => self.ctl(conn, Ctl::Close(code, reason)),
            },
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

    fn send(&mut self, conn: ConnId, message: &ServerToClient) {
        match self.conns.get(&conn) {
            Some(Socket::Signaling(queue)) => {
                let queued = queue.push_control(message.to_json());
                if !queued {
                    self.ctx.security.limited("ws", "slow_reader");
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

    fn pair(&mut self, circuit_id: String, ends: [(ConnId, PeerId); 2]) {
        let circuit = Arc::new(SharedCircuit::new(circuit_id, &self.ctx));
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
        let cfg = &self.ctx.ws_circuit;
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
