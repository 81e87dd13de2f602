//! Short-lived TURN credentials, the time-limited scheme of coturn's REST API
//! (`use-auth-secret`, draft-uberti-behave-turn-rest): the username is
//! `<unix expiry>:<peer id>` and the password is
//! `base64(HMAC-SHA1(secret, username))`. The relay mints them for a peer
//! that showed a valid token (`POST /auth/ice-servers`) and its TURN server
//! checks them without keeping any state; a coturn configured with the same
//! `static-auth-secret` accepts them too.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use hmac::{Hmac, Mac};
use sha1::Sha1;

pub use darkswap_proto::relay_auth::{IceServer, IceServersResponse};

/// Why a TURN username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Not `<unix expiry>:<peer id>`.
    #[error("malformed TURN username")]
    Malformed,
    /// Its expiry has passed.
    #[error("TURN credentials expired")]
    Expired,
}

/// Mints and checks TURN credentials with one secret.
#[derive(Clone)]
pub struct TurnCredentials {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TurnCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnCredentials").finish_non_exhaustive()
    }
}

impl TurnCredentials {
    /// Credentials under `secret`.
    pub fn new(secret: &[u8]) -> Self {
        TurnCredentials {
            secret: secret.to_vec(),
        }
    }

    /// A username and password for `peer` valid until `expires_at` (unix seconds).
    pub fn mint(&self, peer: &str, expires_at: u64) -> (String, String) {
        let username = format!("{expires_at}:{peer}");
        let password = self.password(&username);
        (username, password)
    }

    /// The password of `username` if it is well formed and not expired at
    /// `now` (unix seconds).
    pub fn check(&self, username: &str, now: u64) -> Result<String, CredentialError> {
        let (expiry, peer) = username.split_once(':').ok_or(CredentialError::Malformed)?;
        let expiry: u64 = expiry.parse().map_err(|_| CredentialError::Malformed)?;
        if peer.is_empty() || peer.len() > 128 {
            return Err(CredentialError::Malformed);
        }
        if expiry < now {
            return Err(CredentialError::Expired);
        }
        Ok(self.password(username))
    }

    fn password(&self, username: &str) -> String {
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(username.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }
}

/// The peer a TURN username names (`<expiry>:<peer id>`), if well formed.
pub fn peer_of(username: &str) -> Option<&str> {
    username.split_once(':').map(|(_, peer)| peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_credentials_check_until_they_expire() {
        let c = TurnCredentials::new(b"secret");
        let (user, pass) = c.mint("12D3KooWpeer", 1_000);
        assert_eq!(user, "1000:12D3KooWpeer");
        assert_eq!(c.check(&user, 1_000).unwrap(), pass);
        assert_eq!(c.check(&user, 1_001), Err(CredentialError::Expired));
        assert_eq!(peer_of(&user), Some("12D3KooWpeer"));
        // Another secret gives another password: the server would refuse it.
        assert_ne!(
            TurnCredentials::new(b"other").check(&user, 0).unwrap(),
            pass
        );
        for bad in ["", "1000", "x:peer", "1000:"] {
            assert_eq!(c.check(bad, 0), Err(CredentialError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn the_password_is_coturns() {
        // coturn REST API: base64(HMAC-SHA1(static-auth-secret, username)),
        // computed independently (Python's hmac module).
        let c = TurnCredentials::new(b"north");
        assert_eq!(
            c.check("1700000000:alice", 0).unwrap(),
            "Cd/49soE35ICqcJF/bCTn8Z4OyE="
        );
    }
}
