//! Peer authentication over `/darkswap/auth/1.0.0`: the sans-IO
//! [`AuthManager`] and its wire types from `darkswap-core`, and the libp2p
//! request-response behaviour that carries them.
//!
//! One request and one response per stream, JSON-encoded by libp2p's
//! request-response JSON codec with both directions capped at
//! [`MAX_AUTH_MESSAGE_SIZE`] before decoding. Every DarkSwap node and relay
//! serves it, so either side of a connection can authenticate the other.

use std::time::Duration;

pub use darkswap_core::auth::*;
use libp2p::{
    StreamProtocol,
    request_response::{self, ProtocolSupport},
};

/// The protocol id.
pub const AUTH_PROTOCOL: StreamProtocol =
    StreamProtocol::new(darkswap_core::protocols::AUTH_PROTOCOL);

/// Streams of this protocol open at once per connection: a handshake needs
/// one, so a peer opening many gets refused rather than queued.
const MAX_CONCURRENT_STREAMS: usize = 4;

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

/// The [`AuthError`] of a request that got no answer.
///
/// Outbound streams negotiate lazily (the request follows the protocol
/// proposal without waiting for the echo), so a remote that does not speak
/// `/darkswap/auth/1.0.0` shows as an I/O error carrying multistream-select's
/// negotiation failure rather than as `UnsupportedProtocols`; both read the
/// same here.
pub fn outbound_failure(error: &request_response::OutboundFailure) -> AuthError {
    let refused = match error {
        request_response::OutboundFailure::UnsupportedProtocols => true,
        request_response::OutboundFailure::Io(e) => e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<libp2p::core::upgrade::NegotiationError>())
            .is_some_and(|n| matches!(n, libp2p::core::upgrade::NegotiationError::Failed)),
        _ => false,
    };
    AuthError::Protocol(if refused {
        request_response::OutboundFailure::UnsupportedProtocols.to_string()
    } else {
        error.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lazily_refused_protocol_reads_as_unsupported() {
        let lazy = request_response::OutboundFailure::Io(std::io::Error::other(
            libp2p::core::upgrade::NegotiationError::Failed,
        ));
        let unsupported =
            outbound_failure(&request_response::OutboundFailure::UnsupportedProtocols);
        assert_eq!(outbound_failure(&lazy), unsupported);
        assert!(matches!(&unsupported, AuthError::Protocol(r) if r.contains("protocols")));
        let reset = request_response::OutboundFailure::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        ));
        assert!(
            matches!(outbound_failure(&reset), AuthError::Protocol(r) if !r.contains("protocols"))
        );
    }
}
