//! `/darkswap/auth/1.0.0`: a verifier sends a [`Challenge`], the prover
//! answers with a [`ChallengeResponse`] or says why it refuses.
//!
//! One request and one response per stream, JSON-encoded by libp2p's
//! request-response JSON codec with both directions capped at
//! [`MAX_AUTH_MESSAGE_SIZE`] before decoding. Every DarkSwap node and relay
//! serves it, so either side of a connection can authenticate the other.

use std::time::Duration;

use libp2p::{
    StreamProtocol,
    request_response::{self, ProtocolSupport},
};
use serde::{Deserialize, Serialize};

use super::{Challenge, ChallengeResponse};

/// The protocol id.
pub const AUTH_PROTOCOL: StreamProtocol = StreamProtocol::new("/darkswap/auth/1.0.0");

/// Largest request or response accepted. A challenge or a signature answer
/// is a few hundred bytes of JSON.
pub const MAX_AUTH_MESSAGE_SIZE: u64 = 4096;

/// Streams of this protocol open at once per connection: a handshake needs
/// one, so a peer opening many gets refused rather than queued.
const MAX_CONCURRENT_STREAMS: usize = 4;

/// From the verifier to the prover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthRequest {
    /// Prove who you are by answering this challenge.
    Challenge(Challenge),
}

/// From the prover to the verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthResponse {
    /// The answer.
    Proof(ChallengeResponse),
    /// The prover will not answer, and why.
    Refused(String),
}

/// The libp2p behaviour serving and using the protocol.
pub type Behaviour = request_response::json::Behaviour<AuthRequest, AuthResponse>;

/// The behaviour with the size caps, `timeout` per request.
pub fn behaviour(timeout: Duration) -> Behaviour {
    let codec = request_response::json::codec::Codec::default()
        .set_request_size_maximum(MAX_AUTH_MESSAGE_SIZE)
        .set_response_size_maximum(MAX_AUTH_MESSAGE_SIZE);
    request_response::Behaviour::with_codec(
        codec,
        [(AUTH_PROTOCOL, ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(timeout)
            .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS),
    )
}
