//! [`TlsRoots`]: which certificate authorities a client trusts when it
//! reaches a relay over `wss://` (signaling, relayed circuits) and
//! `https://` (its token service).

use std::{
    fmt,
    sync::{Arc, OnceLock},
};

use rustls::{
    ClientConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, pem::PemObject},
};
use tokio_tungstenite::{
    Connector, MaybeTlsStream, WebSocketStream, connect_async_tls_with_config,
    tungstenite::{self, client::IntoClientRequest, handshake::client::Response},
};

/// Why PEM certificates could not be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsRootsError {
    /// The text is not PEM, or a certificate in it does not decode.
    #[error("extra root certificates: {0}")]
    Pem(String),
    /// The text holds no certificate: a mistake, not "trust none".
    #[error("extra root certificates: no CERTIFICATE in them")]
    Empty,
}

/// The certificate authorities a client trusts for `wss://` and
/// `https://`: the system's (rustls with the platform verifier, as the
/// chain services' clients), plus those given to
/// [`with_extra_pem`](Self::with_extra_pem), for a relay whose certificate
/// comes from a private CA (`deploy/generate-certs.sh`'s `ca.pem`).
/// Verification is never turned off: a relay whose certificate does not
/// chain to one of these, has expired, or names another host is refused.
#[derive(Clone, Default)]
pub struct TlsRoots {
    extra: Arc<[CertificateDer<'static>]>,
    /// The rustls configuration, built at the first `wss://` connection:
    /// loading the system's roots is not free, and `ws://` needs none.
    config: Arc<OnceLock<Arc<ClientConfig>>>,
}

impl fmt::Debug for TlsRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsRoots")
            .field("extra", &self.extra.len())
            .finish()
    }
}

impl TlsRoots {
    /// The system's roots only (the default).
    pub fn system() -> Self {
        TlsRoots::default()
    }

    /// The system's roots and every certificate in `pem` (one or more
    /// `-----BEGIN CERTIFICATE-----` blocks).
    pub fn with_extra_pem(pem: &[u8]) -> Result<Self, TlsRootsError> {
        let extra = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsRootsError::Pem(e.to_string()))?;
        if extra.is_empty() {
            return Err(TlsRootsError::Empty);
        }
        Ok(TlsRoots {
            extra: extra.into(),
            config: Arc::default(),
        })
    }

    /// The rustls client configuration: the platform verifier with the
    /// extra roots, aws-lc-rs (the crypto str0m and the HTTP client use).
    fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        if let Some(config) = self.config.get() {
            return Ok(config.clone());
        }
        let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
            self.extra.iter().cloned(),
            provider.clone(),
        )
        .map_err(|e| format!("certificate verifier: {e}"))?;
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("rustls: {e}"))?
            // The platform verifier is a full verifier (chain, expiry, name);
            // "dangerous" is only rustls's name for bringing one's own.
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(self.config.get_or_init(|| Arc::new(config)).clone())
    }

    /// `builder` trusting the extra roots too.
    pub(crate) fn http_client(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, String> {
        if self.extra.is_empty() {
            return Ok(builder);
        }
        let roots = self
            .extra
            .iter()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        Ok(builder.tls_certs_merge(roots))
    }

    /// Opens a WebSocket to `request`'s URL, over TLS with these roots for
    /// `wss://`.
    pub(crate) async fn connect_websocket(
        &self,
        request: impl IntoClientRequest + Unpin,
    ) -> Result<
        (
            WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
            Response,
        ),
        tungstenite::Error,
    > {
        let request = request.into_client_request()?;
        let connector = match request.uri().scheme_str() {
            Some("wss") => {
                Some(Connector::Rustls(self.client_config().map_err(|e| {
                    tungstenite::Error::Io(std::io::Error::other(e))
                })?))
            }
            _ => None,
        };
        connect_async_tls_with_config(request, None, false, connector).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_roots_must_hold_a_certificate() {
        assert_eq!(
            TlsRoots::with_extra_pem(b"not pem").unwrap_err(),
            TlsRootsError::Empty
        );
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            TlsRoots::with_extra_pem(broken),
            Err(TlsRootsError::Pem(_))
        ));
    }
}
