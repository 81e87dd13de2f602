//! A connection on the public port: plain TCP, or TLS over it when the
//! relay has a certificate (`wss://`, `https://`; then the port speaks
//! nothing else).
//!
//! The TLS handshake runs in the connection's own task, after the
//! connection was admitted and under the deadline of its first request head
//! (`signaling.request_head_timeout`, from the accept), so a client that
//! opens a connection and sends nothing, or starts a handshake and stalls,
//! costs what a silent plain client costs: its socket slot and a timer, and
//! nothing allocated for TLS before its first byte. A client that speaks
//! plain HTTP to the TLS port gets a plain 400 saying so, rather than
//! bytes it cannot read.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::FutureExt as _;
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
    time::Instant,
};
use tokio_rustls::{TlsAcceptor, rustls::ServerConfig, server::TlsStream};

use crate::metrics::TlsMetrics;

/// The first byte of every TLS connection: a handshake record (RFC 8446
/// §5.1, and the same in TLS 1.0 to 1.2).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A connection on the public port.
#[derive(Debug)]
pub(super) enum PublicStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, handshake done. Boxed: rustls's connection state is
    /// kilobytes, a plain connection should not carry its size.
    Tls(Box<TlsStream<TcpStream>>),
}

/// The public port's TLS: its configuration (the relay's certificate) and
/// the count of handshakes that did not complete.
#[derive(Debug, Clone)]
pub(super) struct PublicTls {
    pub(super) config: Arc<ServerConfig>,
    pub(super) metrics: Arc<TlsMetrics>,
}

/// How a TLS handshake ended without a connection.
#[derive(Debug, thiserror::Error)]
pub(super) enum HandshakeError {
    /// Not done by the deadline (silent, or stalled half-way).
    #[error("no TLS handshake in time")]
    TimedOut,
    /// The client closed before its first byte.
    #[error("closed before a TLS handshake")]
    Closed,
    /// The client sent something other than a TLS handshake (plain HTTP,
    /// most likely); it gets `Answer::tls_required`.
    #[error("plain text on the TLS port")]
    Plaintext(TcpStream),
    /// The handshake failed (a client refusing our certificate ends here
    /// too, with its alert).
    #[error("TLS handshake failed: {0}")]
    Failed(io::Error),
}

impl HandshakeError {
    /// The reason label of `darkswap_relay_tls_handshake_failures_total`.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            HandshakeError::TimedOut => "timeout",
            HandshakeError::Closed => "closed",
            HandshakeError::Plaintext(_) => "plaintext",
            HandshakeError::Failed(_) => "error",
        }
    }
}

impl PublicTls {
    /// Waits (until `deadline`) for the client's first byte without reading
    /// it; a TLS handshake record gets the handshake, due by `deadline` too.
    pub(super) async fn accept(
        &self,
        stream: TcpStream,
        deadline: Instant,
    ) -> Result<PublicStream, HandshakeError> {
        let result = self.handshake(stream, deadline).await;
        if let Err(e) = &result {
            self.metrics.handshake_failed(e.reason());
        }
        result
    }

    async fn handshake(
        &self,
        stream: TcpStream,
        deadline: Instant,
    ) -> Result<PublicStream, HandshakeError> {
        let mut first = [0u8; 1];
        match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
            Err(_) => return Err(HandshakeError::TimedOut),
            Ok(Err(e)) => return Err(HandshakeError::Failed(e)),
            Ok(Ok(0)) => return Err(HandshakeError::Closed),
            Ok(Ok(_)) => {}
        }
        if first[0] != TLS_HANDSHAKE_RECORD {
            return Err(HandshakeError::Plaintext(stream));
        }
        let accept = TlsAcceptor::from(self.config.clone()).accept(stream);
        match tokio::time::timeout_at(deadline, accept).await {
            Err(_) => Err(HandshakeError::TimedOut),
            Ok(Err(e)) => Err(HandshakeError::Failed(e)),
            Ok(Ok(tls)) => Ok(PublicStream::Tls(Box::new(tls))),
        }
    }
}

impl PublicStream {
    /// Writes `bytes` only as far as the socket takes them at once, for a
    /// client that already used up its time.
    pub(super) fn write_at_once(&mut self, bytes: &[u8]) {
        match self {
            PublicStream::Plain(tcp) => {
                let _ = tcp.try_write(bytes);
            }
            // rustls takes the bytes into its buffer; one poll of the
            // flush writes what the socket takes without waiting.
            PublicStream::Tls(tls) => {
                let _ = async {
                    tls.write_all(bytes).await?;
                    tls.flush().await
                }
                .now_or_never();
            }
        }
    }
}

impl AsyncRead for PublicStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PublicStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            PublicStream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PublicStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PublicStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            PublicStream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PublicStream::Plain(s) => Pin::new(s).poll_flush(cx),
            PublicStream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PublicStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            PublicStream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PublicStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            PublicStream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            PublicStream::Plain(s) => s.is_write_vectored(),
            PublicStream::Tls(s) => s.is_write_vectored(),
        }
    }
}
