//! Certificates made by `deploy/generate-certs.sh`, relay processes that
//! serve them, and a look at the certificate a port serves.
#![allow(dead_code, unreachable_pub)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use darkswap_testkit::RelayProcess;
use tokio_rustls::{
    TlsConnector,
    rustls::{
        self, ClientConfig, RootCertStore,
        pki_types::{CertificateDer, ServerName, pem::PemObject},
    },
};

pub const BIN: &str = env!("CARGO_BIN_EXE_darkswap-relay");
/// Bound on every wait of these tests.
pub const WAIT: Duration = Duration::from_secs(20);

/// A directory of `generate-certs.sh` output: `ca.pem`, `ca-key.pem`,
/// `relay.pem`, `relay-key.pem`.
#[derive(Debug)]
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    /// Runs `generate-certs.sh dir args...` (a new CA unless `dir` has one).
    pub fn generate(dir: &Path, args: &[&str]) -> Self {
        darkswap_testkit::generate_certs(dir, args);
        Certs {
            dir: dir.to_owned(),
        }
    }

    /// Another relay certificate from this CA, in `dir`.
    pub fn another(&self, dir: &Path, args: &[&str]) -> Certs {
        std::fs::create_dir_all(dir).unwrap();
        for file in ["ca.pem", "ca-key.pem"] {
            std::fs::copy(self.dir.join(file), dir.join(file)).unwrap();
        }
        Certs::generate(dir, args)
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("relay.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("relay-key.pem")
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.pem")).unwrap()
    }

    /// The relay certificate, DER.
    pub fn leaf(&self) -> Vec<u8> {
        CertificateDer::from_pem_file(self.cert()).unwrap().to_vec()
    }

    /// Makes `other`'s certificate and key this one's files, as a renewal
    /// would (each file replaced whole).
    pub fn replace_with(&self, other: &Certs) {
        for (from, to) in [(other.cert(), self.cert()), (other.key(), self.key())] {
            let staged = to.with_extension("new");
            std::fs::copy(from, &staged).unwrap();
            std::fs::rename(staged, to).unwrap();
        }
    }
}

/// A relay on loopback serving `certs`, its libp2p `/tls/ws` on a port of
/// its own, with `env` on top.
pub fn start_tls_relay(data_dir: &Path, certs: &Certs, env: &[(&str, &str)]) -> RelayProcess {
    let cert = certs.cert();
    let key = certs.key();
    let mut all = vec![
        ("DARKSWAP_RELAY_TLS__CERT_FILE", cert.to_str().unwrap()),
        ("DARKSWAP_RELAY_TLS__KEY_FILE", key.to_str().unwrap()),
        (
            "DARKSWAP_RELAY_TLS__LIBP2P_LISTEN_ADDRESSES",
            "[\"/ip4/127.0.0.1/tcp/0/tls/ws\"]",
        ),
    ];
    all.extend_from_slice(env);
    RelayProcess::start(Path::new(BIN), &RelayProcess::loopback_args(data_dir), &all)
}

/// Waits (at most [`WAIT`]) for a log line of `relay` whose message is
/// `message`, and returns its fields.
pub fn wait_log(relay: &RelayProcess, message: &str) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = relay
            .logs
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no log line {message:?} within {WAIT:?}"));
        if line["fields"]["message"] == message {
            return line["fields"].clone();
        }
    }
}

/// A rustls client trusting `ca_pem` only.
pub fn client_config(ca_pem: &[u8]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The certificate `addr` serves (DER) to a client trusting `ca_pem` and
/// asking for `name`.
pub async fn served_leaf(addr: SocketAddr, name: &str, ca_pem: &[u8]) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let connect = TlsConnector::from(client_config(ca_pem)).connect(name, tcp);
    let tls = tokio::time::timeout(WAIT, connect)
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake");
    let (_, session) = tls.get_ref();
    session.peer_certificates().unwrap()[0].to_vec()
}

/// Reads `/metrics` of `relay`.
pub async fn metrics(relay: &RelayProcess) -> String {
    let addr = relay.metrics.expect("metrics on");
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample `name` (with its labels, as printed) in `text`,
/// 0 when absent.
pub fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}
