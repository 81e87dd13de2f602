//! One open data channel to a peer, as the application holds it.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use libp2p_identity::PeerId;
use tokio::sync::{mpsc, oneshot};

use crate::{connection_pool::PooledConnection, error::WebRtcError, ice::CandidateType};

/// One message on a data channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataMessage {
    /// A text frame (the JS client sends JSON this way).
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

impl From<Vec<u8>> for DataMessage {
    fn from(bytes: Vec<u8>) -> Self {
        DataMessage::Binary(bytes)
    }
}

impl From<String> for DataMessage {
    fn from(text: String) -> Self {
        DataMessage::Text(text)
    }
}

impl From<&str> for DataMessage {
    fn from(text: &str) -> Self {
        DataMessage::Text(text.to_owned())
    }
}

impl DataMessage {
    /// The payload's bytes (a text frame's UTF-8).
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            DataMessage::Text(t) => t.into_bytes(),
            DataMessage::Binary(b) => b,
        }
    }

    fn len(&self) -> usize {
        match self {
            DataMessage::Text(t) => t.len(),
            DataMessage::Binary(b) => b.len(),
        }
    }
}

/// How a connection reaches its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionPath {
    /// A WebRTC data channel, peer to peer.
    Direct,
    /// A circuit through the relay's `/relay` endpoint, end-to-end
    /// encrypted: the relay forwards only ciphertext.
    Relayed,
}

impl ConnectionPath {
    /// `direct` or `relayed`, as the browser client names them.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionPath::Direct => "direct",
            ConnectionPath::Relayed => "relayed",
        }
    }
}

impl fmt::Display for ConnectionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An open connection to one peer, direct or relayed. Cheap to clone; the connection closes
/// when [`close`](Self::close) is called or the last clone is dropped.
#[derive(Clone)]
pub struct WebRtcConnection {
    pub(crate) peer: PeerId,
    pub(crate) inner: Arc<ConnInner>,
}

pub(crate) struct ConnInner {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) incoming: tokio::sync::Mutex<mpsc::Receiver<DataMessage>>,
    pub(crate) alive: Arc<AtomicBool>,
    pub(crate) initiator: bool,
    pub(crate) path: ConnectionPath,
    /// For a direct path: which of our ICE candidates is in use (0 unknown,
    /// 1 host, 2 relay).
    pub(crate) local_candidate: Option<Arc<std::sync::atomic::AtomicU8>>,
    pub(crate) max_message_size: usize,
}

#[derive(Debug)]
pub(crate) enum Command {
    Send(DataMessage, oneshot::Sender<Result<(), WebRtcError>>),
    Close,
}

impl fmt::Debug for WebRtcConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebRtcConnection")
            .field("peer", &self.peer)
            .field("initiator", &self.inner.initiator)
            .field("path", &self.inner.path)
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl WebRtcConnection {
    /// The peer at the other end.
    pub fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// Whether this side made the offer (or requested the circuit).
    pub fn is_initiator(&self) -> bool {
        self.inner.initiator
    }

    /// Whether the connection is a direct data channel or a relayed circuit.
    pub fn path(&self) -> ConnectionPath {
        self.inner.path
    }

    /// For a direct path, which of our ICE candidates its datagrams leave
    /// from: a local socket, or our TURN allocation. `None` for a relayed
    /// circuit, or before the first datagram.
    pub fn local_candidate_type(&self) -> Option<CandidateType> {
        match self.inner.local_candidate.as_ref()?.load(Ordering::Relaxed) {
            1 => Some(CandidateType::Host),
            2 => Some(CandidateType::Relay),
            _ => None,
        }
    }

    /// The largest message [`send_message`](Self::send_message) takes on
    /// this connection (a relayed circuit carries a little less than a data
    /// channel).
    pub fn max_message_size(&self) -> usize {
        self.inner.max_message_size
    }

    /// Whether the data channel is still open.
    pub fn is_alive(&self) -> bool {
        self.inner.alive.load(Ordering::Relaxed)
    }

    /// Sends a binary message; waits while the send buffer is full.
    pub async fn send(&self, data: Vec<u8>) -> Result<(), WebRtcError> {
        self.send_message(DataMessage::Binary(data)).await
    }

    /// Sends a text message (what a browser peer reads as a string).
    pub async fn send_text(&self, text: &str) -> Result<(), WebRtcError> {
        self.send_message(DataMessage::Text(text.to_owned())).await
    }

    /// Sends one message.
    pub async fn send_message(&self, message: DataMessage) -> Result<(), WebRtcError> {
        if message.len() > self.inner.max_message_size {
            return Err(WebRtcError::TooLarge {
                size: message.len(),
                max: self.inner.max_message_size,
            });
        }
        let (tx, rx) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Send(message, tx))
            .await
            .map_err(|_| WebRtcError::Closed)?;
        rx.await.map_err(|_| WebRtcError::Closed)?
    }

    /// The next message; [`WebRtcError::Closed`] once the channel closed
    /// and everything received was read.
    pub async fn receive(&self) -> Result<DataMessage, WebRtcError> {
        self.inner
            .incoming
            .lock()
            .await
            .recv()
            .await
            .ok_or(WebRtcError::Closed)
    }

    /// Closes the connection (both ends see the channel close).
    pub fn close(&self) {
        let _ = self.inner.commands.try_send(Command::Close);
    }
}

impl PooledConnection for WebRtcConnection {
    fn is_alive(&self) -> bool {
        WebRtcConnection::is_alive(self)
    }

    fn close(&self) {
        WebRtcConnection::close(self)
    }
}
