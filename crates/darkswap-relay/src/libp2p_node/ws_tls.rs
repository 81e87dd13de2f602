//! libp2p's WebSocket transport with a TLS configuration that can change
//! while it runs, so `/tls/ws` listeners take a renewed certificate without
//! a restart.
//!
//! libp2p-websocket takes its server certificate once, in its
//! `tls::Config`, but clones that configuration into each incoming
//! connection's upgrade when the connection arrives. Sharing the transport
//! behind a mutex lets [`ReloadableWs::switch`] set a new configuration
//! between two connections: the next handshake uses it, those under way
//! finish with the old one.

use std::{
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
};

use libp2p::{
    Multiaddr, Transport,
    core::transport::{DialOpts, ListenerId, TransportError, TransportEvent},
    dns, tcp, websocket,
};

use crate::tls::Libp2pTlsSwitch;

/// The relay's WebSocket transport: over TCP, with DNS.
type Ws = websocket::Config<dns::tokio::Transport<tcp::tokio::Transport>>;

/// The WebSocket transport, whose TLS configuration [`switch`](Self::switch)
/// replaces.
pub(crate) struct ReloadableWs {
    inner: Arc<Mutex<Ws>>,
}

impl ReloadableWs {
    pub(crate) fn new(inner: Ws) -> Self {
        ReloadableWs {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ws> {
        // Every critical section is one call into the transport, which
        // leaves it consistent whether or not it panicked half-way.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the TLS configuration of the connections that arrive from now on.
    pub(crate) fn switch(&self) -> Libp2pTlsSwitch {
        let inner = self.inner.clone();
        Box::new(move |config| {
            inner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .set_tls_config(config);
        })
    }
}

impl Transport for ReloadableWs {
    type Output = <Ws as Transport>::Output;
    type Error = <Ws as Transport>::Error;
    type ListenerUpgrade = <Ws as Transport>::ListenerUpgrade;
    type Dial = <Ws as Transport>::Dial;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        self.lock().listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.lock().remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        self.lock().dial(addr, opts)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        let mut inner = self.lock();
        Pin::new(&mut *inner).poll(cx)
    }
}
