//! The relayed path of a connection: a circuit through the relay's `/relay`
//! endpoint (`docs/signaling.md`, Relayed circuits), end-to-end encrypted
//! ([`frames`]), for when WebRTC cannot connect.
//!
//! The requesting side asks with `circuit_request`, the other side answers
//! `circuit_accept`; both get `circuit_ready` with a token, attach to
//! `/relay` with it and, once the relay says `open`, send their signed key.
//! The connection opens when the peer's key verifies; from then on the relay
//! forwards only sealed frames.

pub(crate) mod frames;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use darkswap_proto::signaling::{ClientToServer, ServerToClient};
use futures::{SinkExt, StreamExt};
use libp2p_identity::PeerId;
use rand::RngCore;
use tokio::{sync::mpsc, time::Instant};
use tokio_tungstenite::tungstenite::Message;

use self::frames::{CircuitFrames, Inbound};
use crate::{
    connection::{Command, ConnInner, ConnectionPath, DataMessage, WebRtcConnection},
    error::WebRtcError,
    manager::Shared,
};

/// Bound on request or accept → open (the relay's accept timeout is 15 s).
pub(crate) const CIRCUIT_TIMEOUT: Duration = Duration::from_secs(20);
/// A sealed ping this often keeps an idle circuit open (the relay closes
/// circuits idle for 60 s by default).
const KEEP_ALIVE: Duration = Duration::from_secs(20);

/// What the manager forwards to one circuit from signaling.
#[derive(Debug)]
pub(crate) enum CircuitSignal {
    /// `circuit_ready`: attach with this token.
    Ready(String),
    /// `circuit_rejected` or `circuit_closed`, with the reason.
    Ended(String),
}

/// One circuit with `peer`, from `circuit_ready` to its close.
pub(crate) struct CircuitTask {
    pub(crate) shared: Arc<Shared>,
    pub(crate) peer: PeerId,
    pub(crate) circuit_id: String,
    pub(crate) requester: bool,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl CircuitTask {
    pub(crate) async fn run(self, mut signals: mpsc::Receiver<CircuitSignal>) {
        let deadline = Instant::now() + CIRCUIT_TIMEOUT;
        let alive = Arc::new(AtomicBool::new(false));
        let (outcome, closed_by_server) = match self.open(&mut signals, deadline).await {
            Ok((ws, frames)) => {
                alive.store(true, Ordering::Relaxed);
                let (commands_tx, commands) = mpsc::channel(64);
                let (incoming_tx, incoming_rx) = mpsc::channel(1024);
                self.shared.deliver(WebRtcConnection {
                    peer: self.peer,
                    inner: Arc::new(ConnInner {
                        commands: commands_tx,
                        incoming: tokio::sync::Mutex::new(incoming_rx),
                        alive: alive.clone(),
                        initiator: self.requester,
                        path: ConnectionPath::Relayed,
                        local_candidate: None,
                        max_message_size: self
                            .shared
                            .config
                            .max_message_size
                            .min(frames::MAX_RELAYED_MESSAGE),
                    }),
                });
                let end = self
                    .carry(ws, frames, commands, incoming_tx, &mut signals, &alive)
                    .await;
                (Ok(()), matches!(end, End::ByServer))
            }
            Err((e, by_server)) => (Err(e), by_server),
        };
        alive.store(false, Ordering::Relaxed);
        self.shared.forget_circuit(&self.circuit_id);
        if !closed_by_server {
            // Best effort: the relay also closes it when our socket goes.
            let _ = self.shared.signaling.close_circuit(&self.circuit_id).await;
        }
        match outcome {
            Ok(()) => {
                tracing::debug!(peer = %self.peer, circuit = %self.circuit_id, "relayed connection closed")
            }
            Err(e) => {
                tracing::debug!(peer = %self.peer, circuit = %self.circuit_id, error = %e, "relayed circuit failed");
                self.shared.fail(self.peer, &self.circuit_id, e);
            }
        }
    }

    /// Waits for `circuit_ready`, attaches and completes the handshake.
    /// Errors say whether the server closed the circuit already.
    async fn open(
        &self,
        signals: &mut mpsc::Receiver<CircuitSignal>,
        deadline: Instant,
    ) -> Result<(Ws, CircuitFrames), (WebRtcError, bool)> {
        let timeout = || (WebRtcError::Timeout(self.peer), false);
        let token = match tokio::time::timeout_at(deadline, signals.recv()).await {
            Err(_) => return Err(timeout()),
            Ok(Some(CircuitSignal::Ready(token))) => token,
            Ok(Some(CircuitSignal::Ended(reason))) => {
                return Err((WebRtcError::CircuitRefused(reason), true));
            }
            Ok(None) => return Err((WebRtcError::Closed, false)),
        };
        let url = self.shared.signaling.relay_url().ok_or((
            WebRtcError::Signaling(crate::SignalingError::NotConnected),
            false,
        ))?;
        let local = |e: String| (WebRtcError::Local(format!("relay circuit: {e}")), false);
        let roots = self.shared.signaling.tls_roots();
        let (mut ws, _) = tokio::time::timeout_at(deadline, roots.connect_websocket(url.as_str()))
            .await
            .map_err(|_| timeout())?
            .map_err(|e| local(e.to_string()))?;
        let attach = ClientToServer::Attach {
            circuit_id: self.circuit_id.clone(),
            token,
        };
        ws.send(Message::text(attach.to_json()))
            .await
            .map_err(|e| local(e.to_string()))?;
        let mut frames = CircuitFrames::new(self.shared.signaling.keypair().clone(), self.peer)
            .map_err(|e| (e, false))?;
        let mut sent_handshake = false;
        loop {
            let frame = tokio::select! {
                frame = tokio::time::timeout_at(deadline, ws.next()) => frame.map_err(|_| timeout())?,
                signal = signals.recv() => match signal {
                    Some(CircuitSignal::Ended(reason)) => return Err((WebRtcError::CircuitRefused(reason), true)),
                    Some(CircuitSignal::Ready(_)) => continue,
                    None => return Err((WebRtcError::Closed, false)),
                },
            };
            let binary = match frame {
                Some(Ok(Message::Text(text))) => {
                    match serde_json::from_str::<ServerToClient>(text.as_str()) {
                        // Both ends attached: binary frames flow from now.
                        Ok(ServerToClient::Open { .. }) => None,
                        Ok(ServerToClient::Error { code, message, .. }) => {
                            tracing::debug!(peer = %self.peer, code = code.as_str(), %message, "relay refused");
                            continue;
                        }
                        _ => continue,
                    }
                }
                Some(Ok(Message::Binary(data))) => Some(data),
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    return Err((
                        WebRtcError::CircuitRefused(format!("relay closed: {reason}")),
                        true,
                    ));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(local(e.to_string())),
                None => return Err(local("relay socket closed".into())),
            };
            // `open`, or a frame racing ahead of it: our key goes first.
            if !sent_handshake {
                let handshake = frames.handshake().map_err(|e| (e, false))?;
                ws.send(Message::binary(handshake))
                    .await
                    .map_err(|e| local(e.to_string()))?;
                sent_handshake = true;
            }
            if let Some(data) = binary {
                match frames.on_frame(&data) {
                    Ok(Inbound::Opened) => return Ok((ws, frames)),
                    Ok(_) => {}
                    Err(e) => return Err((e, false)),
                }
            }
        }
    }

    /// Carries the open connection until either side closes it.
    async fn carry(
        &self,
        mut ws: Ws,
        mut frames: CircuitFrames,
        mut commands: mpsc::Receiver<Command>,
        incoming: mpsc::Sender<DataMessage>,
        signals: &mut mpsc::Receiver<CircuitSignal>,
        alive: &AtomicBool,
    ) -> End {
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.tick().await;
        let end = loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Send(message, reply)) => {
                        let sent = match frames.seal(&message) {
                            Ok(frame) => ws.send(Message::binary(frame)).await
                                .map_err(|e| WebRtcError::Local(e.to_string())),
                            Err(e) => Err(e),
                        };
                        let broken = matches!(sent, Err(WebRtcError::Local(_)));
                        let _ = reply.send(sent);
                        if broken {
                            break End::Failed;
                        }
                    }
                    Some(Command::Close) | None => break End::ByUs,
                },
                frame = ws.next() => match frame {
                    Some(Ok(Message::Binary(data))) => match frames.on_frame(&data) {
                        Ok(Inbound::Message(message)) => {
                            if incoming.send(message).await.is_err() {
                                break End::ByUs;
                            }
                        }
                        Ok(Inbound::Reply(pong)) => {
                            if ws.send(Message::binary(pong)).await.is_err() {
                                break End::Failed;
                            }
                        }
                        Ok(Inbound::Opened | Inbound::Nothing) => {}
                        Err(e) => {
                            tracing::warn!(peer = %self.peer, error = %e, "relayed circuit broke end-to-end encryption: closing");
                            break End::Failed;
                        }
                    },
                    Some(Ok(Message::Close(_))) | None => break End::ByServer,
                    Some(Err(_)) => break End::Failed,
                    Some(Ok(_)) => {}
                },
                signal = signals.recv() => match signal {
                    Some(CircuitSignal::Ended(_)) => break End::ByServer,
                    Some(CircuitSignal::Ready(_)) => {}
                    None => break End::ByUs,
                },
                _ = keep_alive.tick() => {
                    let mut nonce = [0u8; 8];
                    rand::thread_rng().fill_bytes(&mut nonce);
                    let Ok(ping) = frames.ping(nonce) else { break End::Failed };
                    if ws.send(Message::binary(ping)).await.is_err() {
                        break End::Failed;
                    }
                }
            }
        };
        // Dead before the reader learns it (the incoming queue closes on return).
        alive.store(false, Ordering::Relaxed);
        let _ = ws.close(None).await;
        end
    }
}

/// How an open circuit ended.
enum End {
    /// This side closed it, or let go of every handle.
    ByUs,
    /// The relay closed it (the peer closed, or a limit).
    ByServer,
    /// The socket or the peer's frames failed.
    Failed,
}
