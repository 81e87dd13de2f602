//! `[tls]`: [`TlsConfig`], the certificate of the public port and of
//! libp2p's WebSocket over TLS.

use std::{path::PathBuf, time::Duration};

use darkswap_relay::config::TlsConfig;
use libp2p::{Multiaddr, multiaddr::Protocol};
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[tls]`. The files are absent by default (TLS off).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TlsSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_file: Option<PathBuf>,
    reload_interval_secs: u64,
    libp2p_listen_addresses: Vec<Multiaddr>,
}

impl Default for TlsSection {
    fn default() -> Self {
        let t = TlsConfig::default();
        TlsSection {
            cert_file: t.cert_file,
            key_file: t.key_file,
            reload_interval_secs: t.reload_interval.as_secs(),
            libp2p_listen_addresses: t.libp2p_listen_addresses,
        }
    }
}

/// `/tls/ws` or `/wss`.
fn is_tls_websocket(addr: &Multiaddr) -> bool {
    addr.iter()
        .any(|p| matches!(p, Protocol::Tls | Protocol::Wss(_)))
}

impl TlsSection {
    /// Checks the section against `listen`, `network.listen_addresses`.
    /// The files themselves are read at start.
    pub(crate) fn validate(&self, listen: &[Multiaddr]) -> Result<(), ConfigError> {
        let on = match (&self.cert_file, &self.key_file) {
            (Some(_), Some(_)) => true,
            (None, None) => false,
            _ => {
                return Err(ConfigError(
                    "tls.cert_file and tls.key_file go together: set both, or neither for no TLS"
                        .into(),
                ));
            }
        };
        if let Some(addr) = self
            .libp2p_listen_addresses
            .iter()
            .find(|a| !is_tls_websocket(a))
        {
            return Err(ConfigError(format!(
                "tls.libp2p_listen_addresses: {addr} is not WebSocket over TLS (…/tcp/PORT/tls/ws or …/wss)"
            )));
        }
        if !on && let Some(addr) = listen.iter().find(|a| is_tls_websocket(a)) {
            return Err(ConfigError(format!(
                "network.listen_addresses: {addr} needs tls.cert_file and tls.key_file"
            )));
        }
        Ok(())
    }

    pub(crate) fn tls_config(&self) -> TlsConfig {
        let mut t = TlsConfig::default();
        t.cert_file = self.cert_file.clone();
        t.key_file = self.key_file.clone();
        t.reload_interval = Duration::from_secs(self.reload_interval_secs);
        t.libp2p_listen_addresses = self.libp2p_listen_addresses.clone();
        t
    }
}

#[cfg(test)]
mod tests {
    // figment's Jail API returns its (large) error type; fine in tests.
    #![allow(clippy::result_large_err)]

    use figment::Jail;

    use super::super::ConfigFile;

    fn no_overrides() -> serde_json::Value {
        serde_json::json!({})
    }

    #[test]
    fn tls_is_off_by_default_and_its_keys_come_from_file_and_environment() {
        Jail::expect_with(|jail| {
            let c = ConfigFile::load(None, no_overrides())
                .unwrap()
                .relay_config()
                .unwrap();
            assert_eq!(c.tls.files(), None);

            jail.create_file(
                "tls.toml",
                "[tls]\ncert_file = \"/etc/relay/relay.pem\"\nreload_interval_secs = 5\n",
            )?;
            jail.set_env("DARKSWAP_RELAY_TLS__KEY_FILE", "/etc/relay/relay-key.pem");
            jail.set_env(
                "DARKSWAP_RELAY_TLS__LIBP2P_LISTEN_ADDRESSES",
                "[\"/ip4/127.0.0.1/tcp/0/tls/ws\", \"/ip6/::1/tcp/0/wss\"]",
            );
            let c = ConfigFile::load(Some("tls.toml".as_ref()), no_overrides())
                .unwrap()
                .relay_config()
                .unwrap();
            let (cert, key) = c.tls.files().expect("TLS on");
            assert_eq!(cert, std::path::Path::new("/etc/relay/relay.pem"));
            assert_eq!(key, std::path::Path::new("/etc/relay/relay-key.pem"));
            assert_eq!(c.tls.reload_interval, std::time::Duration::from_secs(5));
            let listen: Vec<String> = c
                .tls
                .libp2p_listen_addresses
                .iter()
                .map(|a| a.to_string())
                .collect();
            assert_eq!(
                listen,
                ["/ip4/127.0.0.1/tcp/0/tls/ws", "/ip6/::1/tcp/0/wss"]
            );
            Ok(())
        });
    }

    #[test]
    fn a_certificate_without_its_key_or_a_plain_address_for_tls_is_refused() {
        Jail::expect_with(|jail| {
            jail.set_env("DARKSWAP_RELAY_TLS__CERT_FILE", "/etc/relay/relay.pem");
            let e = ConfigFile::load(None, no_overrides())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("tls.cert_file and tls.key_file go together"),
                "{e}"
            );

            jail.set_env("DARKSWAP_RELAY_TLS__KEY_FILE", "/etc/relay/relay-key.pem");
            jail.set_env(
                "DARKSWAP_RELAY_TLS__LIBP2P_LISTEN_ADDRESSES",
                "[\"/ip4/0.0.0.0/tcp/9443/ws\"]",
            );
            let e = ConfigFile::load(None, no_overrides())
                .unwrap_err()
                .to_string();
            assert!(e.contains("is not WebSocket over TLS"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env(
                "DARKSWAP_RELAY_NETWORK__LISTEN_ADDRESSES",
                "[\"/ip4/0.0.0.0/tcp/9443/tls/ws\"]",
            );
            let e = ConfigFile::load(None, no_overrides())
                .unwrap_err()
                .to_string();
            assert!(e.contains("needs tls.cert_file and tls.key_file"), "{e}");
            Ok(())
        });
    }
}
