//! `https://` for the test chain: a CA made for one server signs its
//! certificate for 127.0.0.1, and a listener that hands axum TLS streams.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        crypto::aws_lc_rs,
        pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    },
    server::TlsStream,
};

/// How long a client may take over its TLS handshake before the server
/// moves on to the next one.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A TLS acceptor for 127.0.0.1 and `localhost`, and the PEM of the CA a
/// client must trust to reach it.
pub(super) fn acceptor() -> io::Result<(TlsAcceptor, String)> {
    let mut ca_params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(io::Error::other)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "DarkSwap test chain CA");
    let ca = rcgen::CertifiedIssuer::self_signed(
        ca_params,
        rcgen::KeyPair::generate().map_err(io::Error::other)?,
    )
    .map_err(io::Error::other)?;
    let key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(io::Error::other)?
        .signed_by(&key, &ca)
        .map_err(io::Error::other)?;
    let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(io::Error::other)?;
    Ok((TlsAcceptor::from(Arc::new(config)), ca.pem()))
}

/// Accepts TCP connections and completes their TLS handshake; a client
/// that fails it (one that does not trust the CA, or speaks plain HTTP) is
/// dropped and the next one accepted.
pub(super) struct TlsListener {
    pub(super) tcp: TcpListener,
    pub(super) acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, addr) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                // Out of descriptors, say: let some close before trying
                // again rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if let Ok(Ok(tls)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)).await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
