//! The libp2p `/perf/1.0.0` protocol (libp2p specs, `perf/perf.md`), so our
//! throughput can be compared with rust-libp2p's perf tool and iperf3.
//!
//! The published `libp2p-perf` crate targets an older libp2p, so the (tiny)
//! protocol runs here over `libp2p-stream`: the client sends the number of
//! bytes it wants back as a big-endian u64, uploads its bytes and closes its
//! write side; the server counts until EOF, then sends the requested bytes.

use std::time::Duration;

use web_time::Instant;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};

use crate::error::PerfError;

/// The perf protocol id.
pub const PERF_PROTOCOL: StreamProtocol =
    StreamProtocol::new(darkswap_core::protocols::PERF_PROTOCOL);

const BUF: usize = 64 * 1024;
/// Perf streams served at once; more wait.
const MAX_CONCURRENT_SERVED: usize = 4;

/// Result of one perf run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerfReport {
    /// Bytes sent to the server.
    pub uploaded: u64,
    /// Bytes received from the server.
    pub downloaded: u64,
    /// Time from the start until the upload was written and closed.
    pub upload_time: Duration,
    /// Time from the end of the upload until the last byte was received.
    pub download_time: Duration,
}

impl PerfReport {
    /// Upload throughput in bits per second.
    pub fn upload_bps(&self) -> f64 {
        bits_per_sec(self.uploaded, self.upload_time)
    }

    /// Download throughput in bits per second.
    pub fn download_bps(&self) -> f64 {
        bits_per_sec(self.downloaded, self.download_time)
    }
}

fn bits_per_sec(bytes: u64, t: Duration) -> f64 {
    bytes as f64 * 8.0 / t.as_secs_f64().max(1e-9)
}

/// Runs one perf exchange on a new stream to `peer` through `control`:
/// uploads `upload` bytes, then receives `download` bytes. What
/// [`crate::NetworkHandle::perf`] does; public so that a swarm built
/// elsewhere (a benchmark's reference) runs the very same client.
pub async fn run_client(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    upload: u64,
    download: u64,
) -> Result<PerfReport, PerfError> {
    let mut stream = control
        .open_stream(peer, PERF_PROTOCOL)
        .await
        .map_err(|e| PerfError::Open(e.to_string()))?;
    let start = Instant::now();
    stream.write_all(&download.to_be_bytes()).await?;
    let buf = vec![0u8; BUF];
    let mut left = upload;
    while left > 0 {
        let n = left.min(BUF as u64) as usize;
        stream.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    stream.close().await?;
    let upload_time = start.elapsed();
    let downloaded = drain(&mut stream).await?;
    let download_time = start.elapsed() - upload_time;
    if downloaded != download {
        return Err(PerfError::WrongLength {
            asked: download,
            got: downloaded,
        });
    }
    Ok(PerfReport {
        uploaded: upload,
        downloaded,
        upload_time,
        download_time,
    })
}

async fn drain(stream: &mut Stream) -> std::io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

async fn serve_one(peer: PeerId, mut stream: Stream) -> std::io::Result<()> {
    let mut len = [0u8; 8];
    stream.read_exact(&mut len).await?;
    let to_send = u64::from_be_bytes(len);
    let received = drain(&mut stream).await?;
    let buf = vec![0u8; BUF];
    let mut left = to_send;
    while left > 0 {
        let n = left.min(BUF as u64) as usize;
        stream.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    stream.close().await?;
    tracing::debug!(%peer, received, sent = to_send, "served perf run");
    Ok(())
}

/// Serves the perf streams of `incoming` (a `libp2p_stream::Control`'s
/// [`PERF_PROTOCOL`] acceptor) until it ends, a few at a time: how a node
/// that embeds its own swarm (the relay) serves `/perf/1.0.0`.
pub async fn serve(incoming: libp2p_stream::IncomingStreams) {
    incoming
        .for_each_concurrent(MAX_CONCURRENT_SERVED, |(peer, stream)| async move {
            if let Err(e) = serve_one(peer, stream).await {
                tracing::debug!(%peer, error = %e, "perf run failed");
            }
        })
        .await;
}
