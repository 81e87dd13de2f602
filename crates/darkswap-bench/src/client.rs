//! A bare signaling client for load: connects from a chosen loopback source
//! address, registers with a real signed registration
//! ([`sign_registration`]), and hands back the socket. Thousands of them run
//! in one process, so it is a socket and nothing more (the SDK's
//! `WebRtcSignalingClient` holds two queues and a task per client).

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use darkswap_proto::signaling::{ClientToServer, ServerToClient, sign_registration};
use futures::{SinkExt, StreamExt};
use libp2p_identity::{Keypair, PeerId};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::{WebSocketStream, tungstenite::Message};

/// A client's WebSocket.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// Bound on connecting and registering one client.
pub(crate) const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Loopback source addresses clients are spread over: each has its own
/// range of ephemeral ports, so repeated rounds of thousands of clients do
/// not run out of ports while earlier sockets sit in TIME_WAIT, and a
/// per-address limit sees `n` addresses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sources {
    n: u8,
}

impl Sources {
    /// `n` addresses, 127.0.0.1 to 127.0.0.n (at least one, at most 250).
    pub(crate) fn new(n: u8) -> Self {
        Sources { n: n.clamp(1, 250) }
    }

    /// The address client number `i` connects from.
    pub(crate) fn get(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, 1 + (i % self.n as usize) as u8)
    }
}

/// Opens a WebSocket to `ws://{server}{path}` from `source`.
pub(crate) async fn open(server: SocketAddr, path: &str, source: Ipv4Addr) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4().context("socket")?;
    socket
        .bind(SocketAddr::new(source.into(), 0))
        .with_context(|| format!("bind {source}"))?;
    let stream = socket
        .connect(server)
        .await
        .with_context(|| format!("connect {server}"))?;
    stream.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{server}{path}"), stream)
        .await
        .context("WebSocket handshake")?;
    Ok(ws)
}

/// A registered client.
#[derive(Debug)]
pub(crate) struct Registered {
    pub(crate) ws: Ws,
    pub(crate) peer: PeerId,
    /// From the start of the TCP connect to `registered`.
    pub(crate) took: Duration,
}

/// Connects from `source`, answers the challenge with a fresh key's
/// signature and waits for `registered`, all within `timeout`.
pub(crate) async fn register(
    server: SocketAddr,
    source: Ipv4Addr,
    timeout: Duration,
) -> anyhow::Result<Registered> {
    let start = Instant::now();
    let key = Keypair::generate_ed25519();
    let peer = key.public().to_peer_id();
    let mut ws = tokio::time::timeout(timeout, async {
        let mut ws = open(server, "/signaling", source).await?;
        let nonce = match next(&mut ws).await? {
            ServerToClient::Challenge { nonce } => nonce,
            other => bail!("expected a challenge, got {other:?}"),
        };
        let register = sign_registration(&key, &nonce)?;
        ws.send(Message::text(register.to_json())).await?;
        Ok(ws)
    })
    .await
    .context("connect timed out")??;
    let left = timeout.saturating_sub(start.elapsed());
    match tokio::time::timeout(left, next(&mut ws))
        .await
        .context("registration timed out")??
    {
        ServerToClient::Registered { .. } => Ok(Registered {
            ws,
            peer,
            took: start.elapsed(),
        }),
        ServerToClient::Error { code, message, .. } => {
            bail!("registration refused: {}: {message}", code.as_str())
        }
        other => bail!("expected registered, got {other:?}"),
    }
}

/// The next server message, skipping control frames.
pub(crate) async fn next(ws: &mut Ws) -> anyhow::Result<ServerToClient> {
    loop {
        match ws.next().await {
            None => bail!("socket closed"),
            Some(Err(e)) => bail!("socket failed: {e}"),
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str()).context("server message");
            }
            Some(Ok(Message::Close(frame))) => bail!("closed by the server: {frame:?}"),
            Some(Ok(_)) => {}
        }
    }
}

/// Sends one client message.
pub(crate) async fn send(ws: &mut Ws, message: &ClientToServer) -> anyhow::Result<()> {
    ws.send(Message::text(message.to_json()))
        .await
        .context("send")
}

/// Closes `ws` and reads until the server's close arrives, at most 5 s.
pub(crate) async fn close(mut ws: Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}
