//! A [`KeyWallet`]'s keys as JSON with the network and one WIF per key: in
//! a file written with mode 0600 (owner read/write only) since it holds the
//! secrets, or as bytes for a store of the caller's (a browser's
//! IndexedDB). UTXOs are not stored: they come from the chain and the
//! index.

use std::{io::Write, path::Path, str::FromStr};

use bitcoin::{Network, PrivateKey, secp256k1::SecretKey};

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
    /// The operating system (or the browser) gave no randomness for a key.
    #[error("no randomness for a new key: {0}")]
    Randomness(String),
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
    /// A wallet for `network` with two new keys from the operating
    /// system's randomness (`crypto.getRandomValues` in a browser): a P2TR
    /// key that receives runes and coins, and a P2WPKH key for change.
    pub fn generate(network: Network) -> Result<Self, WalletFileError> {
        Ok(KeyWallet::new(network)
            .with_key(random_key()?, KeyKind::P2tr)
            .with_key(random_key()?, KeyKind::P2wpkh))
    }

    /// The keys as JSON (the file's content): secrets, keep them private.
    pub fn to_json(&self) -> Result<Vec<u8>, WalletFileError> {
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
        serde_json::to_vec_pretty(&file).map_err(|e| WalletFileError::Format(e.to_string()))
    }

    /// A wallet from [`KeyWallet::to_json`]'s bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, WalletFileError> {
        let file: WalletFile =
            serde_json::from_slice(bytes).map_err(|e| WalletFileError::Format(e.to_string()))?;
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

    /// Writes the keys to `path` with mode 0600, through a temporary file
    /// renamed over it, so a crash never leaves half a wallet.
    pub fn save(&self, path: &Path) -> Result<(), WalletFileError> {
        let json = self.to_json()?;
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
        KeyWallet::from_json(&std::fs::read(path)?)
    }
}

fn random_key() -> Result<SecretKey, WalletFileError> {
    // A 32-byte string is a valid key unless it is zero or above the
    // curve order: a chance of about 2^-128 per try.
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| WalletFileError::Randomness(e.to_string()))?;
        if let Ok(key) = SecretKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_wallet_has_two_distinct_keys_and_round_trips_through_json() {
        let wallet = KeyWallet::generate(Network::Regtest).unwrap();
        let addresses = wallet.addresses();
        assert_eq!(addresses.len(), 2);
        assert_ne!(addresses[0], addresses[1]);
        assert!(addresses[0].to_string().starts_with("bcrt1p"), "P2TR first");
        assert!(
            addresses[1].to_string().starts_with("bcrt1q"),
            "P2WPKH change"
        );
        let back = KeyWallet::from_json(&wallet.to_json().unwrap()).unwrap();
        assert_eq!(back.addresses(), addresses);
        assert_ne!(
            KeyWallet::generate(Network::Regtest).unwrap().addresses(),
            addresses,
            "a second wallet has keys of its own"
        );
    }

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
