//! The node's Ed25519 identity, persisted to a key file, and the way every
//! secret of the node is kept on disk.

use std::{
    fs,
    io::{self, Write},
    path::Path,
};

use libp2p::identity::Keypair;

use crate::error::Error;

impl crate::Identity {
    /// The keypair this identity names: a fresh one, the one given, or the
    /// one in the key file (created if missing).
    pub(crate) fn resolve(&self) -> Result<Keypair, Error> {
        match self {
            crate::Identity::Ephemeral => Ok(Keypair::generate_ed25519()),
            crate::Identity::Keypair(k) => Ok(k.clone()),
            crate::Identity::File(path) => load_or_create_keypair(path),
        }
    }
}

/// Loads the keypair stored at `path`, or creates an Ed25519 keypair there.
///
/// A new file is written with mode 0600 (owner read/write only) to a
/// temporary name and renamed into place, so a crash never leaves a
/// half-written key. A key file readable by others is refused, as ssh does.
pub fn load_or_create_keypair(path: &Path) -> Result<Keypair, Error> {
    load_or_create_secret(
        path,
        |bytes| Keypair::from_protobuf_encoding(bytes).map_err(|e| e.to_string()),
        || {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair.to_protobuf_encoding().map_err(|e| e.to_string())?;
            tracing::info!(path = %path.display(), peer_id = %keypair.public().to_peer_id(), "created identity key");
            Ok((keypair, bytes))
        },
    )
}

/// Loads the secret stored at `path` with `decode`, or makes one with
/// `create` and stores its bytes there: mode 0600, written to a temporary
/// name and renamed into place. A file readable by others is refused.
pub(crate) fn load_or_create_secret<T>(
    path: &Path,
    decode: impl FnOnce(&[u8]) -> Result<T, String>,
    create: impl FnOnce() -> Result<(T, Vec<u8>), String>,
) -> Result<T, Error> {
    let fail = |reason: String| Error::KeyFile {
        path: path.to_owned(),
        reason,
    };
    match fs::read(path) {
        Ok(bytes) => {
            check_permissions(path)?;
            decode(&bytes).map_err(fail)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let (secret, bytes) = create().map_err(fail)?;
            write_secret(path, &bytes).map_err(|e| fail(e.to_string()))?;
            Ok(secret)
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

fn write_secret(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|e| Error::KeyFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::KeyFile {
            path: path.to_owned(),
            reason: format!(
                "permissions {:o} are too open; run chmod 600 on it",
                mode & 0o777
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_: &Path) -> Result<(), Error> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_loads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/identity.key");
        let a = load_or_create_keypair(&path).unwrap();
        let b = load_or_create_keypair(&path).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn refuses_garbage_and_open_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity.key");
        load_or_create_keypair(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let err = load_or_create_keypair(&path).unwrap_err().to_string();
            assert!(err.contains("too open"), "{err}");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        fs::write(&path, b"not a key").unwrap();
        assert!(matches!(
            load_or_create_keypair(&path),
            Err(Error::KeyFile { .. })
        ));
    }
}
