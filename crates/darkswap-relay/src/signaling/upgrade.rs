//! The first moments of a connection on the public port: its request head,
//! read under a deadline without ever polling for bytes that are not there,
//! says which endpoint it wants (`/signaling`, `/relay`, or plain HTTP for
//! the token service); then the WebSocket handshake, answered here, takes
//! the token the client may show. What the head means is decided sans IO in
//! `request.rs`.

use std::{
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use bytes::BufMut as _;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    time::Instant,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::protocol::{Role, WebSocketConfig},
};

use super::{
    Context,
    public_stream::PublicStream,
    request::{Answer, Endpoint, HeadError, RequestHead, check_upgrade, head_end},
    websocket::Ws,
};
use crate::defaults::{queues, timeouts};

/// Bytes read at a time while a head comes in.
const READ_STEP: usize = 1024;

/// A connection's first request head and every byte read so far.
#[derive(Debug)]
pub(super) struct FirstRequest {
    pub(super) head: RequestHead,
    /// The head, and whatever the client sent after it.
    bytes: Vec<u8>,
    head_len: usize,
}

/// Reads a request head that must be complete by `deadline`. On plain TCP
/// it waits for the socket to be readable before each read, so a client
/// that sent a byte and then nothing costs a timer, not polling, and nothing
/// is allocated before bytes arrive. Over TLS the records are read as they
/// come (rustls holds its buffers from the handshake on anyway).
pub(super) async fn read_head(
    stream: &mut PublicStream,
    deadline: Instant,
) -> Result<FirstRequest, HeadError> {
    let mut bytes = Vec::new();
    loop {
        let room = queues::REQUEST_HEAD - bytes.len();
        if room == 0 {
            return Err(HeadError::TooLarge);
        }
        let from = bytes.len();
        let step = room.min(READ_STEP);
        if !read_some(stream, &mut bytes, step, deadline).await? {
            continue;
        }
        if let Some(head_len) = head_end(&bytes, from) {
            let head = RequestHead::parse(&bytes[..head_len])?;
            return Ok(FirstRequest {
                head,
                bytes,
                head_len,
            });
        }
    }
}

/// Appends at most `step` bytes from `stream` to `bytes`; false when
/// nothing was read after all (a spurious readiness).
async fn read_some(
    stream: &mut PublicStream,
    bytes: &mut Vec<u8>,
    step: usize,
    deadline: Instant,
) -> Result<bool, HeadError> {
    match stream {
        PublicStream::Plain(tcp) => {
            match tokio::time::timeout_at(deadline, tcp.readable()).await {
                Err(_) => return Err(HeadError::TimedOut),
                Ok(Err(e)) => return Err(HeadError::Io(e)),
                Ok(Ok(())) => {}
            }
            bytes.reserve(step);
            match tcp.try_read_buf(&mut (&mut *bytes).limit(step)) {
                Ok(0) => Err(HeadError::Closed),
                Ok(_) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
                Err(e) => Err(HeadError::Io(e)),
            }
        }
        PublicStream::Tls(tls) => {
            let mut chunk = [0u8; READ_STEP];
            let read = tls.read(&mut chunk[..step.min(READ_STEP)]);
            match tokio::time::timeout_at(deadline, read).await {
                Err(_) => Err(HeadError::TimedOut),
                Ok(Err(e)) => Err(HeadError::Io(e)),
                Ok(Ok(0)) => Err(HeadError::Closed),
                Ok(Ok(n)) => {
                    bytes.extend_from_slice(&chunk[..n]);
                    Ok(true)
                }
            }
        }
    }
}

/// What the WebSocket handshake learnt about the client's credentials.
#[derive(Debug, Default)]
pub(super) struct Credentials {
    pub(super) token: Option<String>,
}

/// The WebSocket handshake of a request for `/signaling` or `/relay`: a
/// valid upgrade gets 101 and the socket, anything else its 400 or 426.
/// Writing the answer is bounded by [`timeouts::ANSWER`].
pub(super) async fn accept_websocket(
    mut stream: PublicStream,
    request: FirstRequest,
    endpoint: Endpoint,
    ctx: &Context,
) -> Option<(Ws, Credentials)> {
    let upgrade = match check_upgrade(&request.head) {
        Ok(upgrade) => upgrade,
        Err(refused) => {
            tracing::debug!(reason = %refused, "not a websocket upgrade");
            answer_and_close(stream, &refused.answer()).await;
            return None;
        }
    };
    let answer = upgrade.switching_protocols();
    // Flushed: over TLS, written is not yet sent.
    let sent = tokio::time::timeout(timeouts::ANSWER, async {
        stream.write_all(&answer).await?;
        stream.flush().await
    })
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return None;
    }
    // A client may send its first frame right behind the request.
    let early = request.bytes[request.head_len..].to_vec();
    let config = Some(ws_config(ctx, endpoint));
    let ws = WebSocketStream::from_partially_read(stream, early, Role::Server, config).await;
    Some((
        ws,
        Credentials {
            token: upgrade.token,
        },
    ))
}

/// Each endpoint's largest message is the socket's bound, so a `/signaling`
/// socket never buffers a frame the size `/relay` allows.
fn ws_config(ctx: &Context, endpoint: Endpoint) -> WebSocketConfig {
    let text = ctx.signaling.max_message_size;
    let max = match endpoint {
        Endpoint::Relay => text.max(ctx.ws_circuit.max_frame_size),
        Endpoint::Signaling | Endpoint::Http => text,
    };
    // Buffers sized to use, not to the largest message: an idle socket
    // keeps its read buffer, and writes are flushed one message at a time.
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(queues::WS_READ_BUFFER)
        .write_buffer_size(0)
}

/// Writes `answer` and closes, bounded by [`timeouts::ANSWER`] for the write
/// and [`timeouts::CLOSE_DRAIN`] for what the client still sends: reading
/// that rather than closing on it keeps the close a FIN, not a reset that
/// could lose the answer.
pub(super) async fn answer_and_close(mut stream: PublicStream, answer: &Answer) {
    let sent = tokio::time::timeout(timeouts::ANSWER, async {
        stream.write_all(&answer.to_bytes()).await?;
        stream.flush().await
    })
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(timeouts::CLOSE_DRAIN, async {
        let mut sink = [0u8; 512];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Writes `answer` only if the socket takes it at once, then closes: for a
/// client that already used up its time.
pub(super) fn answer_at_once(mut stream: PublicStream, answer: &Answer) {
    stream.write_at_once(&answer.to_bytes());
}

/// A stream that yields the bytes already read from it before reading more:
/// how the token service's HTTP server gets the head read here.
#[derive(Debug)]
pub(super) struct Replay<S> {
    read: Vec<u8>,
    pos: usize,
    inner: S,
}

impl Replay<PublicStream> {
    pub(super) fn new(stream: PublicStream, request: FirstRequest) -> Self {
        Replay {
            read: request.bytes,
            pos: 0,
            inner: stream,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.read.len() {
            let n = buf.remaining().min(this.read.len() - this.pos);
            buf.put_slice(&this.read[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.read.len() {
                this.read = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
