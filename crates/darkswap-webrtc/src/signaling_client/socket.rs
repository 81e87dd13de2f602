//! One `/signaling` socket: opened (with a token, if any), registered by
//! answering the server's challenge, then carried until it closes.

use std::time::Duration;

use darkswap_proto::signaling::{ClientToServer, ServerToClient, sign_registration};
use futures::{SinkExt, StreamExt};
use libp2p_identity::{Keypair, PeerId};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{
    Message,
    client::IntoClientRequest,
    http::{HeaderValue, header::AUTHORIZATION},
};
use tokio_util::sync::CancellationToken;

use super::{
    SignalingError, SignalingEvent,
    inbound::{Answered, Replies, answer, parse_peers, to_event},
    lifecycle::Loss,
};
use crate::{relay_token::RelayToken, tls::TlsRoots};

/// Keep-alive interval; the server closes sockets idle for 60 s by default.
const PING_INTERVAL: Duration = Duration::from_secs(20);

pub(super) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Why a socket could not be opened and registered: the error for the
/// caller, and the loss for the lifecycle.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) error: SignalingError,
    pub(super) loss: Loss,
}

impl Failure {
    fn transport(error: SignalingError) -> Self {
        Failure {
            error,
            loss: Loss::Closed { code: None },
        }
    }
}

/// Opens `url` (`wss://` checked against `roots`), showing `token` as
/// `Authorization: Bearer`, and registers as `keypair`'s peer id. Returns
/// the socket and the first page of peers.
pub(super) async fn open(
    url: &str,
    keypair: &Keypair,
    token: Option<&RelayToken>,
    roots: &TlsRoots,
) -> Result<(Ws, Vec<PeerId>), Failure> {
    let connection =
        |e: &dyn std::fmt::Display| Failure::transport(SignalingError::Connection(e.to_string()));
    let mut request = url.into_client_request().map_err(|e| connection(&e))?;
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {}", token.token))
            .map_err(|e| connection(&e))?;
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let (mut ws, _) = roots
        .connect_websocket(request)
        .await
        .map_err(|e| connection(&e))?;
    let nonce = match next_message(&mut ws).await? {
        ServerToClient::Challenge { nonce } => nonce,
        // A refused token is answered before the challenge.
        ServerToClient::Error { code, message, .. } => return Err(refused(code.as_str(), message)),
        other => {
            return Err(Failure::transport(SignalingError::Protocol(format!(
                "expected a challenge, got {other:?}"
            ))));
        }
    };
    let register = sign_registration(keypair, &nonce)
        .map_err(|e| Failure::transport(SignalingError::Protocol(e.to_string())))?;
    ws.send(Message::text(register.to_json()))
        .await
        .map_err(|e| connection(&e))?;
    match next_message(&mut ws).await? {
        ServerToClient::Registered { peers, .. } => Ok((ws, parse_peers(&peers))),
        ServerToClient::Error { code, message, .. } => Err(refused(code.as_str(), message)),
        other => Err(Failure::transport(SignalingError::Protocol(format!(
            "expected registered, got {other:?}"
        )))),
    }
}

fn refused(code: &str, message: String) -> Failure {
    // `token expired` is cured by a new token; every other refusal is not.
    let renewable = code == "unauthorized" && message.contains("expired");
    Failure {
        loss: Loss::Refused {
            code: code.to_owned(),
            renewable,
        },
        error: SignalingError::Refused {
            code: code.to_owned(),
            message,
        },
    }
}

async fn next_message(ws: &mut Ws) -> Result<ServerToClient, Failure> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str()).map_err(|e| {
                    Failure::transport(SignalingError::Protocol(format!("{e}: {t}")))
                });
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                return Err(Failure {
                    error: SignalingError::Connection(format!("closed: {frame:?}")),
                    loss: Loss::Closed { code },
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                return Err(Failure::transport(SignalingError::Connection(
                    e.to_string(),
                )));
            }
            None => {
                return Err(Failure::transport(SignalingError::Connection(
                    "closed".to_owned(),
                )));
            }
        }
    }
}

/// How a registered socket ended.
#[derive(Debug)]
pub(super) struct SocketEnd {
    /// The server's close code, if it sent one.
    pub(super) code: Option<u16>,
    /// Closed on purpose by this side.
    pub(super) cancelled: bool,
}

/// What a registered socket reports to and reads from its client.
pub(super) struct Carry {
    pub(super) outgoing: mpsc::Receiver<ClientToServer>,
    pub(super) events: mpsc::Sender<SignalingEvent>,
    pub(super) peers: watch::Sender<Vec<PeerId>>,
    pub(super) replies: Replies,
    pub(super) cancel: CancellationToken,
}

/// Carries a registered socket: sends what the client queues, pings, hands
/// answers to their callers and everything else to the event queue.
pub(super) async fn run(mut ws: Ws, mut c: Carry) -> SocketEnd {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    let mut end = SocketEnd {
        code: None,
        cancelled: false,
    };
    loop {
        tokio::select! {
            _ = c.cancel.cancelled() => {
                end.cancelled = true;
                break;
            }
            message = c.outgoing.recv() => {
                let Some(message) = message else { break };
                if ws.send(Message::text(message.to_json())).await.is_err() {
                    break;
                }
            }
            _ = ping.tick() => {
                if ws.send(Message::text(ClientToServer::Ping { id: None }.to_json())).await.is_err() {
                    break;
                }
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(frame))) => {
                        end.code = frame.map(|f| u16::from(f.code));
                        break;
                    }
                    None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(message) = serde_json::from_str::<ServerToClient>(text.as_str()) else {
                    tracing::debug!(frame = %text.as_str(), "unknown signaling message ignored");
                    continue;
                };
                match answer(&message, &c.peers, &c.replies) {
                    Answered::No => {}
                    Answered::Yes => continue,
                    Answered::Send(reply) => {
                        if ws.send(Message::text(reply.to_json())).await.is_err() {
                            break;
                        }
                        continue;
                    }
                }
                let Some(event) = to_event(message, &c.peers) else { continue };
                if c.events.send(event).await.is_err() {
                    break;
                }
            }
        }
    }
    // Bounded: a peer that takes no close frame does not hold us.
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    end
}
