//! [`RelayManager`]: one relay's signaling plane for a native peer (seed
//! 000's relay manager). From the relay's multiaddr it derives the
//! WebSocket URLs ([`RelayUrls`]), registers on `/signaling`, and opens and
//! accepts connections to other peers through it: WebRTC first, a relayed
//! circuit through `/relay` when WebRTC cannot connect, end-to-end encrypted
//! either way.

use std::{fmt, sync::Arc};

use libp2p_identity::{Keypair, PeerId};
use multiaddr::{Multiaddr, Protocol};

use crate::{
    config::WebRtcConfig,
    connection::{DataMessage, WebRtcConnection},
    error::WebRtcError,
    manager::WebRtcConnectionManager,
    signaling_client::{SignalingOptions, WebRtcSignalingClient},
};

/// The HTTP and WebSocket endpoints of a relay's public port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayUrls {
    /// `ws://host:port/signaling` (or `wss://`).
    pub signaling: String,
    /// `ws://host:port/relay`: relayed circuits.
    pub relay: String,
    /// `http://host:port` (or `https://`): the token service (`/auth/*`).
    pub http: String,
}

/// Why a multiaddr names no relay public port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{addr} is not a relay's public port (/ip4|ip6|dns|dns4|dns6/HOST/tcp/PORT[/ws|/wss|/tls/ws][/p2p/ID]): {reason}"
)]
pub struct RelayAddrError {
    addr: String,
    reason: &'static str,
}

impl RelayUrls {
    /// The URLs of the relay whose public port is `addr`, e.g.
    /// `/ip4/203.0.113.7/tcp/9001/ws` or `/dns4/relay.example/tcp/443/wss`.
    /// Without `/ws` the port is taken as plain WebSocket; `/wss` or
    /// `/tls/ws` mean TLS. A trailing `/p2p/<id>` is allowed.
    pub fn from_multiaddr(addr: &Multiaddr) -> Result<Self, RelayAddrError> {
        let error = |reason| RelayAddrError {
            addr: addr.to_string(),
            reason,
        };
        let mut parts = addr.iter();
        let host = match parts.next() {
            Some(Protocol::Ip4(ip)) => ip.to_string(),
            Some(Protocol::Ip6(ip)) => format!("[{ip}]"),
            Some(Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h)) => h.to_string(),
            _ => return Err(error("no host")),
        };
        let port = match parts.next() {
            Some(Protocol::Tcp(port)) => port,
            _ => return Err(error("no TCP port")),
        };
        let mut tls = false;
        for part in parts {
            match part {
                Protocol::Ws(path) | Protocol::Wss(path) if path != "/" => {
                    return Err(error("a WebSocket path other than /"));
                }
                Protocol::Wss(_) | Protocol::Tls => tls = true,
                Protocol::Ws(_) | Protocol::P2p(_) => {}
                _ => return Err(error("an unexpected protocol")),
            }
        }
        let (ws, http) = if tls {
            ("wss", "https")
        } else {
            ("ws", "http")
        };
        Ok(Self::at(ws, http, &host, port))
    }

    /// The public port of the relay whose libp2p address is `addr`
    /// (`/ip4/H/tcp/9000/p2p/ID`, QUIC or WebSocket alike): the same host,
    /// plain WebSocket on `port` (the relay's default is 9001).
    pub fn for_libp2p_relay(addr: &Multiaddr, port: u16) -> Result<Self, RelayAddrError> {
        let error = |reason| RelayAddrError {
            addr: addr.to_string(),
            reason,
        };
        if addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
            return Err(error("a relayed address"));
        }
        let host = match addr.iter().next() {
            Some(Protocol::Ip4(ip)) => ip.to_string(),
            Some(Protocol::Ip6(ip)) => format!("[{ip}]"),
            Some(Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h)) => h.to_string(),
            _ => return Err(error("no host")),
        };
        Ok(Self::at("ws", "http", &host, port))
    }

    fn at(ws: &str, http: &str, host: &str, port: u16) -> Self {
        RelayUrls {
            signaling: format!("{ws}://{host}:{port}/signaling"),
            relay: format!("{ws}://{host}:{port}/relay"),
            http: format!("{http}://{host}:{port}"),
        }
    }
}

/// A native peer on one relay's signaling plane: registered on its
/// `/signaling`, connecting to and accepting other peers (browsers or
/// native) through it.
pub struct RelayManager {
    urls: RelayUrls,
    signaling: Arc<WebRtcSignalingClient>,
    connections: WebRtcConnectionManager,
}

impl fmt::Debug for RelayManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayManager")
            .field("urls", &self.urls)
            .field("connections", &self.connections)
            .finish()
    }
}

impl RelayManager {
    /// Registers `keypair`'s peer id on the relay at `relay` (its public
    /// port's multiaddr, see [`RelayUrls::from_multiaddr`]).
    pub async fn connect(
        keypair: Keypair,
        relay: &Multiaddr,
        config: WebRtcConfig,
    ) -> Result<Self, WebRtcError> {
        let urls =
            RelayUrls::from_multiaddr(relay).map_err(|e| WebRtcError::Local(e.to_string()))?;
        Self::connect_url(keypair, urls, config).await
    }

    /// [`connect`](Self::connect) with the URLs given.
    pub async fn connect_url(
        keypair: Keypair,
        urls: RelayUrls,
        config: WebRtcConfig,
    ) -> Result<Self, WebRtcError> {
        Self::connect_with(keypair, urls, config, SignalingOptions::default()).await
    }

    /// [`connect_url`](Self::connect_url) with the signaling client's
    /// options: tokens, reconnection, TLS roots.
    pub async fn connect_with(
        keypair: Keypair,
        urls: RelayUrls,
        config: WebRtcConfig,
        options: SignalingOptions,
    ) -> Result<Self, WebRtcError> {
        let signaling = Arc::new(WebRtcSignalingClient::with_options(keypair, options));
        signaling.connect(&urls.signaling).await?;
        let connections = WebRtcConnectionManager::new(signaling.clone(), config);
        Ok(RelayManager {
            urls,
            signaling,
            connections,
        })
    }

    /// The relay's endpoints.
    pub fn urls(&self) -> &RelayUrls {
        &self.urls
    }

    /// This peer's id.
    pub fn local_peer_id(&self) -> PeerId {
        self.signaling.local_peer_id()
    }

    /// The signaling client (presence, watching peers).
    pub fn signaling(&self) -> &Arc<WebRtcSignalingClient> {
        &self.signaling
    }

    /// The connections made through this relay.
    pub fn connections(&self) -> &WebRtcConnectionManager {
        &self.connections
    }

    /// A connection to `peer`: WebRTC first, a relayed circuit if WebRTC
    /// does not connect ([`WebRtcConnectionManager::create_connection`]).
    pub async fn connect_peer(&self, peer: &PeerId) -> Result<WebRtcConnection, WebRtcError> {
        self.connections.create_connection(peer).await
    }

    /// A relayed circuit to `peer` through this relay, without trying WebRTC.
    pub async fn open_circuit(&self, peer: &PeerId) -> Result<WebRtcConnection, WebRtcError> {
        self.connections.create_relayed_connection(peer).await
    }

    /// Sends `message` to `peer` over the connection to it, made first if
    /// there is none.
    pub async fn send(&self, peer: &PeerId, message: DataMessage) -> Result<(), WebRtcError> {
        let conn = self.connect_peer(peer).await?;
        let sent = conn.send_message(message).await;
        self.connections.release_connection(peer);
        sent
    }

    /// The next connection another peer made to this one.
    pub async fn accept(&self) -> Option<WebRtcConnection> {
        self.connections.accept().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(addr: &str) -> Result<RelayUrls, RelayAddrError> {
        RelayUrls::from_multiaddr(&addr.parse().unwrap())
    }

    #[test]
    fn a_relay_multiaddr_gives_its_websocket_and_http_urls() {
        let u = urls("/ip4/203.0.113.7/tcp/9001/ws").unwrap();
        assert_eq!(u.signaling, "ws://203.0.113.7:9001/signaling");
        assert_eq!(u.relay, "ws://203.0.113.7:9001/relay");
        assert_eq!(u.http, "http://203.0.113.7:9001");
        let u = urls("/dns4/relay.example/tcp/443/wss").unwrap();
        assert_eq!(u.signaling, "wss://relay.example:443/signaling");
        assert_eq!(u.http, "https://relay.example:443");
        let id = PeerId::random();
        let u = urls(&format!("/ip6/::1/tcp/9001/tls/ws/p2p/{id}")).unwrap();
        assert_eq!(u.relay, "wss://[::1]:9001/relay");
        assert_eq!(
            urls("/ip4/127.0.0.1/tcp/9001").unwrap().relay,
            "ws://127.0.0.1:9001/relay"
        );
    }

    #[test]
    fn a_libp2p_relay_address_gives_its_public_port() {
        let id = PeerId::random();
        let addr = format!("/ip4/10.0.0.7/udp/9000/quic-v1/p2p/{id}")
            .parse()
            .unwrap();
        let u = RelayUrls::for_libp2p_relay(&addr, 9001).unwrap();
        assert_eq!(u.signaling, "ws://10.0.0.7:9001/signaling");
        let circuit = format!("/ip4/10.0.0.7/tcp/9000/p2p/{id}/p2p-circuit")
            .parse()
            .unwrap();
        assert!(RelayUrls::for_libp2p_relay(&circuit, 9001).is_err());
    }

    #[test]
    fn other_multiaddrs_are_refused_with_the_reason() {
        for (addr, reason) in [
            ("/ip4/1.2.3.4/udp/9000/quic-v1", "no TCP port"),
            ("/tcp/9001", "no host"),
            (
                "/ip4/1.2.3.4/tcp/9001/ws/p2p-circuit",
                "an unexpected protocol",
            ),
        ] {
            assert_eq!(urls(addr).unwrap_err().reason, reason, "{addr}");
        }
    }
}
