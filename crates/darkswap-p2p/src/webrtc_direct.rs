//! WebRTC-direct (`/webrtc-direct`): how browsers reach a native node
//! without a TLS certificate, and the certificate of its listener.
//!
//! A browser dials WebRTC-direct without a CA: the listen address carries
//! the certificate's hash (`/certhash/…`), and the connection is accepted
//! only if the node presents that certificate. A node that made a new one
//! at every start would change its address with it, so it is kept in a
//! file like the identity key.

use std::path::Path;

use libp2p::{
    PeerId, Transport,
    core::{muxing::StreamMuxerBox, transport::Boxed},
    identity::Keypair,
};
pub use libp2p_webrtc::tokio::Certificate as WebRtcCertificate;

use crate::{error::Error, identity::load_or_create_secret};

/// The WebRTC-direct transport (UDP; DTLS and SCTP data channels, Noise
/// over them to authenticate the peer ids), presenting `certificate`. The
/// relay adds it to its own stack; the SDK's node has it built in.
pub fn webrtc_direct_transport(
    key: &Keypair,
    certificate: WebRtcCertificate,
) -> Boxed<(PeerId, StreamMuxerBox)> {
    // DTLS (webrtc-rs) builds a rustls verifier from the process-wide
    // crypto provider, and rustls cannot pick one when the build has both
    // ring and aws-lc-rs (ours does): without this the first WebRTC-direct
    // handshake panicked. A provider installed already (by the embedding
    // application) is kept.
    let _ = rustls::crypto::ring::default_provider().install_default();
    libp2p_webrtc::tokio::Transport::new(key.clone(), certificate)
        .map(|(peer, connection), _| (peer, StreamMuxerBox::new(connection)))
        .boxed()
}

/// A new certificate, for a node whose address may change at every start.
pub fn generate_webrtc_certificate() -> Result<WebRtcCertificate, Error> {
    WebRtcCertificate::generate(&mut rand_webrtc::rng())
        .map_err(|e| Error::Build(format!("webrtc certificate: {e}")))
}

/// Loads the certificate stored (PEM) at `path`, or makes one and stores it
/// there with mode 0600: it holds the private key.
pub fn load_or_create_webrtc_certificate(path: &Path) -> Result<WebRtcCertificate, Error> {
    load_or_create_secret(
        path,
        |bytes| {
            let pem = std::str::from_utf8(bytes).map_err(|_| "not PEM text".to_owned())?;
            WebRtcCertificate::from_pem(pem).map_err(|e| e.to_string())
        },
        || {
            let certificate =
                WebRtcCertificate::generate(&mut rand_webrtc::rng()).map_err(|e| e.to_string())?;
            let pem = certificate.serialize_pem();
            tracing::info!(path = %path.display(), "created WebRTC-direct certificate");
            Ok((certificate, pem.into_bytes()))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_certificate_keeps_its_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webrtc.pem");
        let first = load_or_create_webrtc_certificate(&path).unwrap();
        let again = load_or_create_webrtc_certificate(&path).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_ne!(
            generate_webrtc_certificate().unwrap().fingerprint(),
            first.fingerprint()
        );
        std::fs::write(&path, b"garbage").unwrap();
        assert!(load_or_create_webrtc_certificate(&path).is_err());
    }
}
