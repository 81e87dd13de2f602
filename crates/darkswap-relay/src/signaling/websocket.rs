//! What `/signaling` and `/relay` sockets share: the stream type, bounded
//! sends, the close handshake and what a failed read means.

use darkswap_proto::signaling::{ErrorCode, ServerToClient, close_code};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

use crate::{defaults::timeouts, metrics::SignalingMetrics};

/// A WebSocket on the public port, after the upgrade.
pub(super) type Ws = WebSocketStream<super::public_stream::PublicStream>;

/// What ended a socket's loop.
pub(super) enum Exit {
    /// The peer closed or the connection failed: nothing more to send.
    Gone,
    /// Close with this code and reason.
    Close(u16, &'static str),
}

/// Sends a close frame and waits (bounded) for the client's half of the
/// close handshake; counts the close by its code.
pub(super) async fn close(ws: &mut Ws, metrics: &SignalingMetrics, code: u16, reason: &str) {
    metrics.ws_closed(code);
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    };
    let _ = tokio::time::timeout(timeouts::CLOSE_SEND, ws.send(Message::Close(Some(frame)))).await;
    drain(ws).await;
}

/// Reads (and discards) until the client completes the close handshake or
/// [`timeouts::CLOSE_DRAIN`] passes.
pub(super) async fn drain<S>(stream: &mut S)
where
    S: futures::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let _ = tokio::time::timeout(timeouts::CLOSE_DRAIN, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

/// Why reading a frame failed, as a close code (None: the connection is
/// gone, or failed below the WebSocket layer: nothing can be sent).
pub(super) fn read_error(e: &tungstenite::Error) -> Option<(u16, &'static str)> {
    match e {
        tungstenite::Error::Capacity(_) => Some((close_code::TOO_BIG, "message too big")),
        tungstenite::Error::Protocol(_) => Some((close_code::PROTOCOL_ERROR, "protocol error")),
        tungstenite::Error::Utf8(_) => Some((close_code::INVALID_PAYLOAD, "text is not UTF-8")),
        _ => None,
    }
}

/// Sends on a `/signaling` socket, bounded: a client that stops reading
/// is gone, not a reason to stall.
pub(super) async fn send_bounded(ws: &mut Ws, message: Message) -> bool {
    matches!(
        tokio::time::timeout(timeouts::SEND, ws.send(message)).await,
        Ok(Ok(()))
    )
}

/// An `error` message that answers no particular request.
pub(super) fn error_frame(code: ErrorCode, message: &str) -> Message {
    Message::text(ServerToClient::error(code, message, None).to_json())
}
