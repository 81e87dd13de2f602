//! The first moments of a connection on the public port: its first request
//! line says which endpoint it wants (`/signaling`, `/relay`, or plain HTTP
//! for the token service), then the WebSocket handshake takes the token the
//! client may show.

use std::{net::SocketAddr, time::Duration};

use darkswap_proto::relay_auth::{WS_PROTOCOL, token_from_ws_protocols};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{
    handshake::server::{ErrorResponse, Request, Response},
    http::{HeaderValue, StatusCode, header},
    protocol::WebSocketConfig,
};

use super::{Context, websocket::Ws};
use crate::defaults::{queues, timeouts};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Signaling,
    Relay,
    /// Anything else is plain HTTP (`/auth/*`, or a 404).
    Http,
}

/// Reads, without consuming, the request line of a new connection to tell
/// the WebSocket endpoints from plain HTTP. `None` if the client sends no
/// complete line in time.
pub(super) async fn sniff(stream: &TcpStream) -> Option<Endpoint> {
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + timeouts::HANDSHAKE;
    let mut seen = 0;
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].iter().position(|b| *b == b'\n') {
            let line = std::str::from_utf8(&buf[..end]).ok()?;
            let target = line.split(' ').nth(1).unwrap_or("");
            let path = target.split('?').next().unwrap_or("");
            return Some(match path {
                "/signaling" => Endpoint::Signaling,
                "/relay" => Endpoint::Relay,
                _ => Endpoint::Http,
            });
        }
        if n == buf.len() {
            // A request line this long is no request for the WebSocket endpoints.
            return Some(Endpoint::Http);
        }
        if n == seen {
            // Peeking does not wait for more bytes than it saw; pause briefly
            // rather than spin while the rest of the line is in flight.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen = n;
    }
}

/// What the WebSocket handshake learnt about the client's credentials.
#[derive(Debug, Default)]
pub(super) struct Credentials {
    pub(super) token: Option<String>,
}

/// The WebSocket handshake. A client that offers subprotocols gets
/// `darkswap.v1` selected; the token it may offer beside it is taken, never
/// echoed and never logged.
pub(super) async fn upgrade(
    stream: TcpStream,
    remote: SocketAddr,
    ctx: &Context,
) -> Option<(Ws, Credentials)> {
    let mut credentials = Credentials::default();
    // The callback's signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let route = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        if !matches!(req.uri().path(), "/signaling" | "/relay") {
            let mut not_found = ErrorResponse::new(Some("no such endpoint".to_owned()));
            *not_found.status_mut() = StatusCode::NOT_FOUND;
            return Err(not_found);
        }
        let offered = req
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        if !offered.is_empty() {
            credentials.token = token_from_ws_protocols(&offered).map(str::to_owned);
            if offered.split(',').any(|p| p.trim() == WS_PROTOCOL) {
                resp.headers_mut().insert(
                    header::SEC_WEBSOCKET_PROTOCOL,
                    HeaderValue::from_static(WS_PROTOCOL),
                );
            }
        }
        if credentials.token.is_none() {
            credentials.token = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim().to_owned());
        }
        Ok(resp)
    };
    // The socket-level bound is the larger of the two; each endpoint then
    // enforces its own.
    let max = ctx
        .signaling
        .max_message_size
        .max(ctx.ws_circuit.max_frame_size);
    // Buffers sized to use, not to the largest message: an idle socket
    // keeps its read buffer, and writes are flushed one message at a time.
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(queues::WS_READ_BUFFER)
        .write_buffer_size(0);
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, route, Some(config));
    match tokio::time::timeout(timeouts::HANDSHAKE, handshake).await {
        Ok(Ok(ws)) => Some((ws, credentials)),
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "websocket handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%remote, "websocket handshake timed out");
            None
        }
    }
}
