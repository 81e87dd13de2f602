//! The node's Ed25519 identity, persisted to a key file.

use std::{
    fs,
    io::{self, Write},
    path::Path,
};

use libp2p::identity::Keypair;

use crate::error::Error;

/// Loads the keypair stored at `path`, or creates an Ed25519 keypair there.
///
/// A new file is written with mode 0600 (owner read/write only) to a
/// temporary name and renamed into place, so a crash never leaves a
/// half-written key. A key file readable by others is refused, as ssh does.
pub fn load_or_create_keypair(path: &Path) -> Result<Keypair, Error> {
    match fs::read(path) {
        Ok(bytes) => {
            check_permissions(path)?;
            Keypair::from_protobuf_encoding(&bytes).map_err(|e| Error::KeyFile {
                path: path.to_owned(),
                reason: e.to_string(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            write_key(path, &keypair).map_err(|e| Error::KeyFile {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            tracing::info!(path = %path.display(), peer_id = %keypair.public().to_peer_id(), "created identity key");
            Ok(keypair)
        }
        Err(e) => Err(Error::KeyFile {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

fn write_key(path: &Path, keypair: &Keypair) -> io::Result<()> {
    let bytes = keypair.to_protobuf_encoding().map_err(io::Error::other)?;
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
    file.write_all(&bytes)?;
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
