//! A [`KeyWallet`]'s keys in a file: JSON with the network and one WIF per
//! key, written with mode 0600 (owner read/write only) since it holds the
//! secrets. UTXOs are not stored: they come from the chain and the index.

use std::{io::Write, path::Path, str::FromStr};

use bitcoin::{Network, PrivateKey};

use super::{KeyKind, KeyWallet};

/// Why a wallet file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletFileError {
    /// Reading or writing the file failed.
    #[error("wallet file: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a wallet file.
    #[error("wallet file format: {0}")]
    Format(String),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyEntry {
    kind: KeyKind,
    wif: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WalletFile {
    network: String,
    keys: Vec<KeyEntry>,
}

impl KeyWallet {
    /// Writes the keys to `path` with mode 0600, through a temporary file
    /// renamed over it, so a crash never leaves half a wallet.
    pub fn save(&self, path: &Path) -> Result<(), WalletFileError> {
        let file = WalletFile {
            network: self.network.to_string(),
            keys: self
                .keys
                .iter()
                .map(|k| KeyEntry {
                    kind: k.kind,
                    wif: PrivateKey::new(k.secret, self.network).to_wif(),
                })
                .collect(),
        };
        let json =
            serde_json::to_vec_pretty(&file).map_err(|e| WalletFileError::Format(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            options.mode(0o600);
            // `mode` only applies to a new file; a stale one keeps its bits.
            if tmp.exists() {
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
            }
        }
        let mut out = options.open(&tmp)?;
        out.write_all(&json)?;
        out.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Reads a wallet written by [`KeyWallet::save`].
    pub fn load(path: &Path) -> Result<Self, WalletFileError> {
        let bytes = std::fs::read(path)?;
        let file: WalletFile =
            serde_json::from_slice(&bytes).map_err(|e| WalletFileError::Format(e.to_string()))?;
        let network =
            Network::from_str(&file.network).map_err(|e| WalletFileError::Format(e.to_string()))?;
        let mut wallet = KeyWallet::new(network);
        for entry in file.keys {
            let key = PrivateKey::from_wif(&entry.wif)
                .map_err(|e| WalletFileError::Format(e.to_string()))?;
            wallet.add_key(key.inner, entry.kind);
        }
        Ok(wallet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::SecretKey;

    #[test]
    fn a_saved_wallet_loads_with_the_same_addresses_and_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.json");
        let wallet = KeyWallet::new(Network::Signet)
            .with_key(SecretKey::from_slice(&[7; 32]).unwrap(), KeyKind::P2wpkh)
            .with_key(SecretKey::from_slice(&[8; 32]).unwrap(), KeyKind::P2tr);
        wallet.save(&path).unwrap();
        let loaded = KeyWallet::load(&path).unwrap();
        assert_eq!(loaded.network(), Network::Signet);
        for n in 0..2 {
            assert_eq!(loaded.address(n), wallet.address(n));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_file_that_is_not_a_wallet_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.json");
        std::fs::write(&path, b"{\"network\":\"moon\",\"keys\":[]}").unwrap();
        assert!(matches!(
            KeyWallet::load(&path),
            Err(WalletFileError::Format(_))
        ));
    }
}
