//! A lingering close for the API's connections (RFC 9112 §9.6).
//!
//! When the API refuses a body before reading it all (413 for a body over
//! [`MAX_BODY`](super::MAX_BODY)), hyper answers and closes the connection
//! while the client is still sending. Closing a socket with unread bytes in
//! its receive queue (or receiving bytes after the close) makes the kernel
//! reset the connection, and the client sees the reset (a broken pipe while
//! it writes, or its unread answer thrown away) instead of the 413. So the
//! close is made in two steps, as HTTP/1.1 asks of servers: shut down the
//! write half (the answer and a FIN go out), then read and discard what
//! the client still sends until it closes, pauses for [`LINGER_IDLE`], or
//! [`LINGER_MAX`] has passed; only then is the socket closed.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    time::{Instant, Sleep, sleep},
};

/// Longest a closing connection drains what its client still sends. At
/// loopback speed that is far more than any body; a client slower than
/// that is cut as before.
pub(crate) const LINGER_MAX: Duration = Duration::from_secs(5);
/// A closing connection whose client sends nothing for this long is closed
/// at once: nothing is in flight that a close would turn into a reset.
pub(crate) const LINGER_IDLE: Duration = Duration::from_secs(1);

/// How long a [`Lingering`] connection drains before closing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Linger {
    /// Bound on the whole drain.
    pub(crate) max: Duration,
    /// Bound on a pause of the client.
    pub(crate) idle: Duration,
}

impl Default for Linger {
    fn default() -> Self {
        Linger {
            max: LINGER_MAX,
            idle: LINGER_IDLE,
        }
    }
}

/// The API's TCP listener, whose connections close with a linger.
#[derive(Debug)]
pub(crate) struct LingeringListener(pub(crate) TcpListener);

impl axum::serve::Listener for LingeringListener {
    type Io = Lingering<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own accept loop (it rides out EMFILE and aborted handshakes).
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (Lingering::new(io, Linger::default()), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

enum Closing {
    Open,
    Draining {
        until: Pin<Box<Sleep>>,
        idle: Pin<Box<Sleep>>,
    },
    Closed,
}

/// A stream whose `poll_shutdown` is a lingering close: reads and writes
/// pass through untouched.
pub(crate) struct Lingering<S> {
    inner: S,
    linger: Linger,
    closing: Closing,
}

impl<S> std::fmt::Debug for Lingering<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lingering").finish_non_exhaustive()
    }
}

impl<S> Lingering<S> {
    pub(crate) fn new(inner: S, linger: Linger) -> Self {
        Lingering {
            inner,
            linger,
            closing: Closing::Open,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Lingering<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Lingering<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.closing {
                Closing::Open => {
                    ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                    this.closing = Closing::Draining {
                        until: Box::pin(sleep(this.linger.max)),
                        idle: Box::pin(sleep(this.linger.idle)),
                    };
                }
                Closing::Draining { until, idle } => {
                    if until.as_mut().poll(cx).is_ready() {
                        this.closing = Closing::Closed;
                        continue;
                    }
                    let mut scratch = [0u8; 8192];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                        // More of what the client sends: discarded.
                        Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                            idle.as_mut().reset(Instant::now() + this.linger.idle);
                        }
                        // The client closed (or reset): nothing left in flight.
                        Poll::Ready(_) => this.closing = Closing::Closed,
                        Poll::Pending => {
                            if idle.as_mut().poll(cx).is_ready() {
                                this.closing = Closing::Closed;
                            } else {
                                return Poll::Pending;
                            }
                        }
                    }
                }
                Closing::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    const BOUND: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_closing_connection_reads_what_its_client_still_sends_until_it_closes() {
        let (mut client, server) = duplex(1024);
        let mut server = Lingering::new(server, Linger::default());
        let closing = tokio::spawn(async move { server.shutdown().await });
        // Far more than the pipe holds: it only goes through if the closing
        // side keeps reading.
        let sent = tokio::time::timeout(BOUND, client.write_all(&vec![b'x'; 1 << 20])).await;
        assert!(matches!(sent, Ok(Ok(()))), "{sent:?}");
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0, "EOF");
        drop(client);
        let closed = tokio::time::timeout(BOUND, closing).await.unwrap().unwrap();
        assert!(closed.is_ok(), "{closed:?}");
    }

    #[tokio::test]
    async fn a_silent_client_is_closed_after_the_idle_bound() {
        let (_client, server) = duplex(1024);
        let linger = Linger {
            max: Duration::from_secs(3600),
            idle: Duration::from_millis(50),
        };
        let mut server = Lingering::new(server, linger);
        let closed = tokio::time::timeout(BOUND, server.shutdown()).await;
        assert!(matches!(closed, Ok(Ok(()))), "{closed:?}");
    }

    #[tokio::test]
    async fn a_client_that_never_stops_sending_is_closed_after_the_whole_bound() {
        let (mut client, server) = duplex(1024);
        let linger = Linger {
            max: Duration::from_millis(200),
            idle: Duration::from_secs(3600),
        };
        let mut server = Lingering::new(server, linger);
        let _flood =
            tokio::spawn(async move { while client.write_all(&[b'x'; 512]).await.is_ok() {} });
        let closed = tokio::time::timeout(BOUND, server.shutdown()).await;
        assert!(matches!(closed, Ok(Ok(()))), "{closed:?}");
    }
}
