//! The relay's TLS certificate: one certificate chain and key, read from
//! PEM files, served on the public port (`wss://`, `https://`: rustls with
//! aws-lc-rs, the crypto the relay already uses) and by libp2p's WebSocket
//! over TLS listeners (`/tls/ws`: libp2p-websocket's own rustls, on ring).
//!
//! A renewed certificate is taken without a restart: [`TlsCertificate::reload`]
//! reads the files again and, when both load and the key fits the
//! certificate, every new connection gets the new one (the public port asks
//! for the certificate at each handshake; libp2p's listeners are handed a new
//! configuration). A pair that does not load changes nothing: the
//! certificate in use stays and the error is returned. Connections already
//! open keep the certificate they were set up with, as TLS does.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, SystemTime},
};

use libp2p::websocket;
use tokio_rustls::rustls::{
    self, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio_util::sync::CancellationToken;

use crate::{clock::unix_now, metrics::TlsMetrics};

/// Largest certificate or key file read: 1 MiB, hundreds of certificates.
/// A path pointing at something else is refused rather than read whole.
const MAX_PEM_FILE: u64 = 1024 * 1024;

/// Why a certificate and key could not be used. The certificate in use, if
/// any, stays.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Only one of `tls.cert_file` and `tls.key_file` is set.
    #[error("tls.cert_file and tls.key_file go together: set both, or neither for no TLS")]
    Incomplete,
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no usable PEM item of the kind expected.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key is not one rustls can sign with, or not the certificate's.
    #[error("the key in {key} does not go with the certificate in {cert}: {reason}")]
    Key {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
    /// libp2p's WebSocket transport refused the pair.
    #[error("libp2p WebSocket over TLS: {0}")]
    Libp2p(String),
    /// rustls refused the server configuration.
    #[error("rustls: {0}")]
    Config(String),
}

/// Hands libp2p's WebSocket transport a new TLS configuration.
pub(crate) type Libp2pTlsSwitch = Box<dyn Fn(websocket::tls::Config) + Send + Sync>;

/// What identifies a file's version: replaced files change inode, edited
/// ones their modification time or length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

/// A certificate chain and its key as read from the files.
struct Pair {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read)?.len();
    if len > MAX_PEM_FILE {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            reason: format!("{len} bytes, more than a PEM file of certificates or a key holds"),
        });
    }
    std::fs::read(path).map_err(read)
}

impl Pair {
    fn read(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let pem_error = |path: &Path, reason: String| TlsError::Pem {
            path: path.to_owned(),
            reason,
        };
        let chain = CertificateDer::pem_slice_iter(&read_pem(cert_file)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(cert_file, e.to_string()))?;
        if chain.is_empty() {
            return Err(pem_error(cert_file, "no CERTIFICATE in it".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(&read_pem(key_file)?).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => pem_error(
                key_file,
                "no PRIVATE KEY (PKCS#8), RSA PRIVATE KEY or EC PRIVATE KEY in it".into(),
            ),
            e => pem_error(key_file, e.to_string()),
        })?;
        Ok(Pair { chain, key })
    }

    /// The pair for rustls, checked: the key loads and is the leaf's.
    fn certified(
        &self,
        provider: &CryptoProvider,
        files: (&Path, &Path),
    ) -> Result<CertifiedKey, TlsError> {
        CertifiedKey::from_der(self.chain.clone(), self.key.clone_key(), provider).map_err(|e| {
            TlsError::Key {
                cert: files.0.to_owned(),
                key: files.1.to_owned(),
                reason: e.to_string(),
            }
        })
    }

    /// The pair for libp2p's WebSocket transport.
    fn libp2p(&self) -> Result<websocket::tls::Config, TlsError> {
        let der = self.key.secret_der().to_vec();
        // libp2p's `PrivateKey::new` panics on bytes it cannot classify; it
        // classifies them with this very call, so check first.
        if PrivateKeyDer::try_from(der.clone()).is_err() {
            return Err(TlsError::Libp2p("unrecognised private key encoding".into()));
        }
        let chain = self
            .chain
            .iter()
            .map(|c| websocket::tls::Certificate::new(c.to_vec()));
        websocket::tls::Config::new(websocket::tls::PrivateKey::new(der), chain)
            .map_err(|e| TlsError::Libp2p(e.to_string()))
    }
}

/// The leaf certificate's notAfter, in Unix seconds.
fn not_after(key: &CertifiedKey) -> Option<i64> {
    let leaf = key.end_entity_cert().ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// The relay's TLS certificate, reloadable (see the module docs). The
/// public port resolves it at each handshake ([`ResolvesServerCert`]).
pub struct TlsCertificate {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files as they were at the last load, or the last attempt.
    seen: Mutex<[Option<FileStamp>; 2]>,
    /// Set once libp2p serves the certificate too: reloads build its
    /// configuration as well, and fail if it refuses the pair.
    libp2p: Mutex<Option<Libp2pTlsSwitch>>,
    metrics: Option<Arc<TlsMetrics>>,
}

impl fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCertificate")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each critical section replaces a value whole: a poisoned one is
    // still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TlsCertificate {
    /// Reads the certificate chain (PEM, the relay's certificate first) and
    /// its key (PEM: PKCS#8, PKCS#1 or SEC1), and checks they go together.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let seen = [stamp(cert_file), stamp(key_file)];
        let certified =
            Pair::read(cert_file, key_file)?.certified(&provider, (cert_file, key_file))?;
        let cert = TlsCertificate {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            current: RwLock::new(Arc::new(certified)),
            seen: Mutex::new(seen),
            libp2p: Mutex::new(None),
            metrics: None,
        };
        cert.loaded();
        Ok(cert)
    }

    /// Reports the certificate's expiry in `metrics`, and each reload.
    pub fn with_metrics(mut self, metrics: Arc<TlsMetrics>) -> Self {
        if let Some(at) = not_after(&self.certified()) {
            metrics.set_expiry(at);
        }
        self.metrics = Some(metrics);
        self
    }

    /// The certificate and key in use.
    pub fn certified(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The public port's rustls configuration: TLS 1.2 and 1.3, HTTP/1.1
    /// (the only HTTP the port speaks), this certificate at each handshake.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// libp2p's WebSocket TLS configuration from the files, for the
    /// transport's listeners; reloads build it again from then on.
    pub(crate) fn libp2p_config(&self) -> Result<websocket::tls::Config, TlsError> {
        let config = Pair::read(&self.cert_file, &self.key_file)?.libp2p()?;
        let mut switch = lock(&self.libp2p);
        if switch.is_none() {
            // Until the transport attaches its switch, a reload has
            // nowhere to send the new configuration: build it anyway, so a
            // pair libp2p refuses is refused everywhere.
            *switch = Some(Box::new(|_| {}));
        }
        Ok(config)
    }

    /// Where reloads send libp2p's new configuration.
    pub(crate) fn attach_libp2p(&self, switch: Libp2pTlsSwitch) {
        *lock(&self.libp2p) = Some(switch);
    }

    /// Reads the files again if they changed since they were last read
    /// (always with `force`) and serves the new pair to new connections.
    /// `Ok(true)`: a new pair is in use; `Ok(false)`: nothing changed. On
    /// an error the pair in use stays.
    pub fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let now = [stamp(&self.cert_file), stamp(&self.key_file)];
        {
            let mut seen = lock(&self.seen);
            if !force && *seen == now {
                return Ok(false);
            }
            // An attempt that fails is not repeated for the same files: one
            // error for each change, not one a minute.
            *seen = now;
        }
        let result = self.load_again();
        if let Some(metrics) = &self.metrics {
            metrics.reloaded(if result.is_ok() { "ok" } else { "error" });
        }
        result.map(|()| true)
    }

    fn load_again(&self) -> Result<(), TlsError> {
        let files = (self.cert_file.as_path(), self.key_file.as_path());
        let pair = Pair::read(files.0, files.1)?;
        let certified = pair.certified(&self.provider, files)?;
        let switch = lock(&self.libp2p);
        let libp2p = match switch.as_ref() {
            Some(_) => Some(pair.libp2p()?),
            None => None,
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(certified);
        if let (Some(switch), Some(config)) = (switch.as_ref(), libp2p) {
            switch(config);
        }
        drop(switch);
        self.loaded();
        Ok(())
    }

    /// Logs (and counts) the certificate now in use.
    fn loaded(&self) {
        let at = not_after(&self.certified());
        if let (Some(metrics), Some(at)) = (&self.metrics, at) {
            metrics.set_expiry(at);
        }
        let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
        match at {
            Some(at) if at <= now => tracing::warn!(
                cert = %self.cert_file.display(),
                not_after = at,
                "serving an expired TLS certificate: clients refuse it"
            ),
            _ => tracing::info!(
                cert = %self.cert_file.display(),
                not_after = at,
                "TLS certificate loaded"
            ),
        }
    }
}

impl ResolvesServerCert for TlsCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certified())
    }
}

/// Checks the files every `interval` until `cancel` fires, reloading them
/// when they changed; a pair that does not load is logged and the one in
/// use kept.
pub(crate) async fn watch(
    cert: Arc<TlsCertificate>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now: the files were just read.
    ticks.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(e) = cert.reload(false) {
            tracing::error!(error = %e, "TLS certificate not reloaded; the one in use stays");
        }
    }
}
