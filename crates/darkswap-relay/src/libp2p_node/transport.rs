//! The relay's transport stack: TCP and QUIC, DNS, WebSocket (over TLS
//! too, `/tls/ws`, when the relay has a certificate) and WebRTC-direct
//! (browsers without TLS), with
//! bandwidth metrics and a count of the bytes that circuits carry.
//!
//! libp2p's relay behaviour copies circuit data between two streams without
//! telling anyone how much. Every relayed byte enters the relay once, on the
//! source's `hop` stream or the destination's `stop` stream, so counting the
//! bytes read on streams that negotiated those protocols counts the bytes
//! relayed in both directions (plus a few dozen bytes of protocol framing per
//! circuit). The protocol is recognised from the multistream-select header at
//! the start of each stream.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use futures::{AsyncRead, AsyncWrite};
use libp2p::{
    PeerId, Transport,
    core::{
        muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent},
        transport::{Boxed, timeout::TransportTimeout},
        upgrade::Version,
    },
    dns,
    identity::Keypair,
    noise, quic, tcp, websocket, yamux,
};
use prometheus_client::{metrics::counter::Counter, registry::Registry};

use super::{Certificates, ws_tls::ReloadableWs};
use crate::server::StartError;

const HOP: &[u8] = b"/libp2p/circuit/relay/0.2.0/hop\n";
const STOP: &[u8] = b"/libp2p/circuit/relay/0.2.0/stop\n";
/// The protocol name shows up within the first bytes of a stream or never.
const SNIFF_LIMIT: usize = 128;
/// Bound on a dial and on a connection's handshake, either way. The relay
/// dials only to answer AutoNAT: a dial-back into a NAT that drops it would
/// otherwise wait for the system's TCP connect timeout (minutes), long after
/// the asking node (30 s) gave up, and it never learnt it is private.
pub(crate) const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn build(
    key: &Keypair,
    certificates: Certificates<'_>,
    registry: &mut Registry,
    relayed_bytes: Counter,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, StartError> {
    let build = |e: &dyn std::fmt::Display| StartError::Build(e.to_string());
    let noise = noise::Config::new(key).map_err(|e| build(&e))?;
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(noise.clone())
        .multiplex(yamux::Config::default())
        .map(|(p, c), _| (p, StreamMuxerBox::new(c)));
    let quic = quic::tokio::Transport::new(quic::Config::new(key))
        .map(|(p, c), _| (p, StreamMuxerBox::new(c)));
    let direct = dns::tokio::Transport::system(quic.or_transport(tcp).map(|e, _| e.into_inner()))
        .map_err(|e| build(&e))?;
    let ws_tcp = dns::tokio::Transport::system(tcp::tokio::Transport::new(
        tcp::Config::default().nodelay(true),
    ))
    .map_err(|e| build(&e))?;
    let mut ws = websocket::Config::new(ws_tcp);
    let tls = certificates.tls;
    if let Some(tls) = tls {
        ws.set_tls_config(tls.libp2p_config().map_err(StartError::Tls)?);
    }
    let ws = ReloadableWs::new(ws);
    if let Some(tls) = tls {
        tls.attach_libp2p(ws.switch());
    }
    let ws = ws
        .upgrade(Version::V1Lazy)
        .authenticate(noise)
        .multiplex(yamux::Config::default())
        .map(|(p, c), _| (p, StreamMuxerBox::new(c)));
    let webrtc = darkswap_p2p::webrtc_direct_transport(key, certificates.webrtc);
    let all = TransportTimeout::new(
        ws.or_transport(direct)
            .map(|e, _| e.into_inner())
            .or_transport(webrtc)
            .map(|e, _| e.into_inner()),
        DIAL_TIMEOUT,
    );
    Ok(libp2p::metrics::BandwidthTransport::new(all, registry)
        .map(move |(peer, muxer), _| {
            (
                peer,
                StreamMuxerBox::new(CircuitCountingMuxer {
                    inner: StreamMuxerBox::new(muxer),
                    counter: relayed_bytes.clone(),
                }),
            )
        })
        .boxed())
}

struct CircuitCountingMuxer {
    inner: StreamMuxerBox,
    counter: Counter,
}

impl StreamMuxer for CircuitCountingMuxer {
    type Substream = CountedStream<<StreamMuxerBox as StreamMuxer>::Substream>;
    type Error = <StreamMuxerBox as StreamMuxer>::Error;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let counter = self.counter.clone();
        Pin::new(&mut self.inner)
            .poll_inbound(cx)
            .map_ok(|s| CountedStream::new(s, counter))
    }

    fn poll_outbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let counter = self.counter.clone();
        Pin::new(&mut self.inner)
            .poll_outbound(cx)
            .map_ok(|s| CountedStream::new(s, counter))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

enum Sniff {
    Looking(Vec<u8>),
    Circuit,
    Other,
}

/// A stream that counts the bytes read once it is known to be a circuit stream.
pub(crate) struct CountedStream<S> {
    inner: S,
    counter: Counter,
    state: Sniff,
}

impl<S> CountedStream<S> {
    fn new(inner: S, counter: Counter) -> Self {
        CountedStream {
            inner,
            counter,
            state: Sniff::Looking(Vec::new()),
        }
    }

    fn observe(&mut self, data: &[u8]) {
        match &mut self.state {
            Sniff::Circuit => {
                self.counter.inc_by(data.len() as u64);
            }
            Sniff::Other => {}
            Sniff::Looking(seen) => {
                let take = data.len().min(SNIFF_LIMIT.saturating_sub(seen.len()));
                seen.extend_from_slice(&data[..take]);
                let found = |needle: &[u8]| seen.windows(needle.len()).any(|w| w == needle);
                if found(HOP) || found(STOP) {
                    self.counter.inc_by(data.len() as u64);
                    self.state = Sniff::Circuit;
                } else if seen.len() >= SNIFF_LIMIT {
                    self.state = Sniff::Other;
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = futures::ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        self.observe(&buf[..n]);
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountedStream<S> {
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

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> (CountedStream<()>, Counter) {
        let c = Counter::default();
        (CountedStream::new((), c.clone()), c)
    }

    #[test]
    fn counts_circuit_streams_only() {
        let (mut s, c) = stream();
        // multistream-select header split across reads, then payload.
        s.observe(b"\x13/multistream/1.0.0\n\x20/libp2p/circ");
        assert_eq!(c.get(), 0);
        s.observe(b"uit/relay/0.2.0/hop\n");
        assert!(c.get() > 0);
        let before = c.get();
        s.observe(&[0u8; 1000]);
        assert_eq!(c.get(), before + 1000);

        let (mut other, c) = stream();
        other.observe(b"\x13/multistream/1.0.0\n\x10/meshsub/1.1.0\n");
        other.observe(&[1u8; 200]);
        other.observe(b"/libp2p/circuit/relay/0.2.0/hop\n");
        assert_eq!(c.get(), 0, "a non-circuit stream is never counted");

        let (mut stop, c) = stream();
        stop.observe(b"\x13/multistream/1.0.0\n\x21/libp2p/circuit/relay/0.2.0/stop\n");
        stop.observe(&[2u8; 10]);
        assert!(c.get() >= 10);
    }
}
