//! What a node asks of peers and what it grants them.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    time::Duration,
};

use darkswap_proto::identity::PeerId;
use serde::{Deserialize, Serialize};

/// How a peer proves itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthMethod {
    /// HMAC-SHA256 of the challenge under a key both sides were given.
    SharedKey,
    /// Ed25519 signature by the prover's libp2p identity; any identity may
    /// authenticate and gets the default level.
    #[default]
    ChallengeResponse,
    /// Ed25519 signature by the prover's libp2p identity; only identities
    /// listed in `authorized_keys` may authenticate.
    PublicKey,
}

impl AuthMethod {
    pub(crate) fn tag(self) -> u8 {
        match self {
            AuthMethod::SharedKey => 1,
            AuthMethod::ChallengeResponse => 2,
            AuthMethod::PublicKey => 3,
        }
    }

    pub(crate) fn signs(self) -> bool {
        matches!(self, AuthMethod::ChallengeResponse | AuthMethod::PublicKey)
    }
}

/// What a peer may do, in increasing order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizationLevel {
    /// Nothing beyond what unauthenticated peers may do.
    #[default]
    None,
    /// An authenticated participant.
    Basic,
    /// A relay operator's node, trusted to relay for others.
    Relay,
    /// Administration.
    Admin,
}

impl AuthorizationLevel {
    pub(crate) fn tag(self) -> u8 {
        match self {
            AuthorizationLevel::None => 0,
            AuthorizationLevel::Basic => 1,
            AuthorizationLevel::Relay => 2,
            AuthorizationLevel::Admin => 3,
        }
    }
}

impl fmt::Display for AuthorizationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthorizationLevel::None => "none",
            AuthorizationLevel::Basic => "basic",
            AuthorizationLevel::Relay => "relay",
            AuthorizationLevel::Admin => "admin",
        })
    }
}

/// Configuration of an [`AuthManager`](crate::auth::AuthManager).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthManagerConfig {
    /// The method this node asks of peers it authenticates. It answers any
    /// method a verifier asks for that it can (a shared-key challenge only
    /// with a shared key). Default: [`AuthMethod::ChallengeResponse`].
    pub auth_method: AuthMethod,
    /// The operator-issued key for [`AuthMethod::SharedKey`], at least
    /// [`MIN_SHARED_KEY_LEN`](crate::auth::MIN_SHARED_KEY_LEN) bytes. Required for that method; with another
    /// method it still lets this node answer shared-key challenges.
    /// Default: none.
    pub shared_key: Option<Vec<u8>>,
    /// How long an issued token, and the authentication it records, stays
    /// valid. Default: 1 h.
    pub token_ttl: Duration,
    /// How long a challenge may be answered. Default: 30 s.
    pub challenge_ttl: Duration,
    /// Peers that get their level without a challenge: their
    /// `authorized_keys` level, else the higher of
    /// [`AuthorizationLevel::Relay`] and `default_auth_level`. Default: none.
    pub trusted_peers: HashSet<PeerId>,
    /// Peers refused before any work. Default: none.
    pub banned_peers: HashSet<PeerId>,
    /// The level a peer gets by proving itself, unless `authorized_keys`
    /// names one. Default: [`AuthorizationLevel::Basic`].
    pub default_auth_level: AuthorizationLevel,
    /// When true, a peer that has not authenticated has level
    /// [`AuthorizationLevel::None`]; when false it has `default_auth_level`
    /// without proving anything. Default: true.
    pub require_auth: bool,
    /// Per-peer levels granted on successful authentication (and to trusted
    /// peers); with [`AuthMethod::PublicKey`], the allowlist of who may
    /// authenticate at all. Default: none.
    pub authorized_keys: HashMap<PeerId, AuthorizationLevel>,
}

impl Default for AuthManagerConfig {
    fn default() -> Self {
        AuthManagerConfig {
            auth_method: AuthMethod::ChallengeResponse,
            shared_key: None,
            token_ttl: Duration::from_secs(3600),
            challenge_ttl: Duration::from_secs(30),
            trusted_peers: HashSet::new(),
            banned_peers: HashSet::new(),
            default_auth_level: AuthorizationLevel::Basic,
            require_auth: true,
            authorized_keys: HashMap::new(),
        }
    }
}

impl fmt::Debug for AuthManagerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthManagerConfig")
            .field("auth_method", &self.auth_method)
            .field(
                "shared_key",
                &self.shared_key.as_ref().map(|_| "<redacted>"),
            )
            .field("token_ttl", &self.token_ttl)
            .field("challenge_ttl", &self.challenge_ttl)
            .field("trusted_peers", &self.trusted_peers)
            .field("banned_peers", &self.banned_peers)
            .field("default_auth_level", &self.default_auth_level)
            .field("require_auth", &self.require_auth)
            .field("authorized_keys", &self.authorized_keys)
            .finish()
    }
}
