//! Why a WebRTC operation failed.

use libp2p_identity::PeerId;

use crate::signaling_client::SignalingError;

/// Why a WebRTC operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebRtcError {
    /// Signaling failed.
    #[error(transparent)]
    Signaling(#[from] SignalingError),
    /// The connection did not open in time.
    #[error("WebRTC connection to {0} did not open in time")]
    Timeout(PeerId),
    /// The remote sent an SDP this peer cannot use.
    #[error("bad SDP from {peer}: {reason}")]
    Sdp {
        /// The remote.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// Local sockets or the WebRTC stack failed.
    #[error("WebRTC failure: {0}")]
    Local(String),
    /// The connection is closed.
    #[error("WebRTC connection closed")]
    Closed,
    /// The peer is not registered on the signaling server.
    #[error("{0} is not on the signaling server")]
    UnknownPeer(PeerId),
    /// A message over the size limit.
    #[error("message of {size} bytes is over the {max} byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// End-to-end encryption of a relayed circuit failed: a forged key, an
    /// altered, replayed or unencrypted frame. The connection is closed.
    #[error("end-to-end encryption failed: {0}")]
    Encryption(String),
    /// The peer or the relay refused the relayed circuit, or closed it
    /// before it opened (`rejected`, `accept_timeout`, `peer_left`, a limit).
    #[error("relayed circuit refused: {0}")]
    CircuitRefused(String),
    /// Neither WebRTC nor a relayed circuit may be tried (relay-only ICE
    /// policy without TURN, and no fallback).
    #[error("no way to reach {0}: no ICE candidates and no relayed fallback")]
    NoPath(PeerId),
    /// The pool is full of connections in use.
    #[error(transparent)]
    Pool(#[from] crate::PoolError),
}
