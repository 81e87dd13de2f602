//! `[peer_auth]`: the relay's side of `/darkswap/auth/1.0.0`.
//!
//! The relay answers nodes' challenges, so nodes with `require_relay_auth`
//! can verify it before reserving (with its identity key, or with the
//! operator-issued shared key). With `require_auth` it also challenges every
//! peer that connects, and disconnects those that fail or stay below
//! `min_level`.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    time::{Duration, SystemTime},
};

use darkswap_p2p::auth::{
    self, AuthError, AuthManager, AuthManagerConfig, AuthMethod, AuthRequest, AuthResponse,
    AuthorizationLevel,
};
use libp2p::{PeerId, identity::Keypair, request_response};
use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// The relay's peer authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct PeerAuthSection {
    /// Serve `/darkswap/auth/1.0.0`, so nodes requiring relay
    /// authentication can use this relay. Default: true.
    pub enabled: bool,
    /// File holding the operator-issued shared key in hex (at least 16
    /// bytes), kept out of the config file. The relay answers shared-key
    /// challenges with it, and verifies with it when `method = "shared_key"`.
    /// Default: none.
    pub shared_key_file: Option<PathBuf>,
    /// What the relay asks of peers with `require_auth`: `shared_key`,
    /// `challenge_response` (any identity, `default_level`) or `public_key`
    /// (only `authorized_keys`). Default: `challenge_response`.
    pub method: AuthMethod,
    /// Challenge every peer that connects and disconnect it if it fails or
    /// its level is below `min_level`. Default: false.
    pub require_auth: bool,
    /// The level a peer needs with `require_auth`. Default: `basic`.
    pub min_level: AuthorizationLevel,
    /// The level a peer gets by proving itself, unless `authorized_keys`
    /// names one. Default: `basic`.
    pub default_level: AuthorizationLevel,
    /// Peers accepted without a challenge (level `relay`, or their
    /// `authorized_keys` entry). Default: none.
    pub trusted_peers: Vec<PeerId>,
    /// Peers the relay never answers nor authenticates; with `require_auth`
    /// they are disconnected at once. Default: none.
    pub banned_peers: Vec<PeerId>,
    /// Peer id → level granted on authentication; with `method =
    /// "public_key"` the allowlist. Default: none.
    pub authorized_keys: BTreeMap<String, AuthorizationLevel>,
    /// Seconds a challenge may be answered. Default: 30.
    pub challenge_ttl_secs: u64,
    /// Seconds an authentication lasts. Default: 3600.
    pub token_ttl_secs: u64,
}

impl Default for PeerAuthSection {
    fn default() -> Self {
        PeerAuthSection {
            enabled: true,
            shared_key_file: None,
            method: AuthMethod::ChallengeResponse,
            require_auth: false,
            min_level: AuthorizationLevel::Basic,
            default_level: AuthorizationLevel::Basic,
            trusted_peers: Vec::new(),
            banned_peers: Vec::new(),
            authorized_keys: BTreeMap::new(),
            challenge_ttl_secs: 30,
            token_ttl_secs: 3600,
        }
    }
}

impl PeerAuthSection {
    /// Builds the manager's configuration, reading the shared key file.
    pub fn manager_config(&self) -> Result<AuthManagerConfig, ConfigError> {
        let shared_key = match &self.shared_key_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(format!("peer_auth.shared_key_file {}: {e}", path.display()))
                })?;
                Some(hex::decode(text.trim()).map_err(|e| {
                    ConfigError::new(format!(
                        "peer_auth.shared_key_file {}: not hex: {e}",
                        path.display()
                    ))
                })?)
            }
            None => None,
        };
        let mut authorized_keys = HashMap::new();
        for (peer, level) in &self.authorized_keys {
            let peer: PeerId = peer.parse().map_err(|e| {
                ConfigError::new(format!("peer_auth.authorized_keys {peer:?}: {e}"))
            })?;
            authorized_keys.insert(peer, *level);
        }
        Ok(AuthManagerConfig {
            auth_method: self.method,
            shared_key,
            token_ttl: Duration::from_secs(self.token_ttl_secs),
            challenge_ttl: Duration::from_secs(self.challenge_ttl_secs),
            trusted_peers: self.trusted_peers.iter().copied().collect(),
            banned_peers: self.banned_peers.iter().copied().collect(),
            default_auth_level: self.default_level,
            require_auth: true,
            authorized_keys,
        })
    }

    /// Checks the section without touching the key file.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.challenge_ttl_secs == 0 || self.token_ttl_secs == 0 {
            return Err(ConfigError::new(
                "peer_auth.challenge_ttl_secs and token_ttl_secs must be greater than 0",
            ));
        }
        if self.method == AuthMethod::SharedKey && self.shared_key_file.is_none() {
            return Err(ConfigError::new(
                "peer_auth.method = \"shared_key\" needs peer_auth.shared_key_file",
            ));
        }
        for peer in self.authorized_keys.keys() {
            peer.parse::<PeerId>().map_err(|e| {
                ConfigError::new(format!("peer_auth.authorized_keys {peer:?}: {e}"))
            })?;
        }
        Ok(())
    }
}

/// The relay's auth state: its manager and the challenges it has sent.
#[derive(Debug)]
pub(crate) struct PeerAuth {
    manager: AuthManager,
    require_auth: bool,
    min_level: AuthorizationLevel,
    pending: HashMap<request_response::OutboundRequestId, PeerId>,
}

impl PeerAuth {
    pub(crate) fn new(section: &PeerAuthSection, key: Keypair) -> Result<Self, String> {
        let config = section.manager_config().map_err(|e| e.to_string())?;
        let manager = AuthManager::new(config, key).map_err(|e| e.to_string())?;
        Ok(PeerAuth {
            manager,
            require_auth: section.require_auth,
            min_level: section.min_level,
            pending: HashMap::new(),
        })
    }

    /// A peer's first connection opened. Returns true if it must be
    /// disconnected now (banned, with `require_auth`).
    pub(crate) fn on_connected(&mut self, peer: PeerId, behaviour: &mut auth::Behaviour) -> bool {
        if !self.require_auth {
            return false;
        }
        let now = SystemTime::now();
        match self.manager.authenticate_trusted(peer, now) {
            Ok(Some(_)) => return !self.level_ok(&peer, now),
            Ok(None) => {}
            Err(_) => return true,
        }
        if self.manager.is_authenticated(&peer, now) {
            return !self.level_ok(&peer, now);
        }
        match self.manager.generate_challenge(peer, now) {
            Ok(challenge) => {
                let id = behaviour.send_request(&peer, AuthRequest::Challenge(challenge));
                self.pending.insert(id, peer);
                false
            }
            Err(error) => {
                tracing::info!(%peer, %error, "peer refused: authentication");
                true
            }
        }
    }

    fn level_ok(&self, peer: &PeerId, now: SystemTime) -> bool {
        self.manager.authorize(peer, self.min_level, now).is_ok()
    }

    /// Handles one protocol event. Returns a peer to disconnect, if one
    /// failed authentication.
    pub(crate) fn on_event(
        &mut self,
        event: request_response::Event<AuthRequest, AuthResponse>,
        behaviour: &mut auth::Behaviour,
    ) -> Option<PeerId> {
        let now = SystemTime::now();
        self.manager.prune(now);
        let (request_id, peer, result) = match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let response = self.manager.answer(&request, peer, now);
                let _ = behaviour.send_response(channel, response);
                return None;
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let result = self
                    .manager
                    .check_answer(peer, response, now)
                    .and_then(|_| self.manager.authorize(&peer, self.min_level, now));
                (request_id, peer, result)
            }
            request_response::Event::OutboundFailure {
                request_id,
                peer,
                error,
                ..
            } => (
                request_id,
                peer,
                Err(AuthError::Protocol(error.to_string())),
            ),
            _ => return None,
        };
        self.pending.remove(&request_id)?;
        match result {
            Ok(level) => {
                tracing::debug!(%peer, %level, "peer authenticated");
                None
            }
            Err(error) => {
                tracing::info!(%peer, %error, "peer refused: authentication failed");
                Some(peer)
            }
        }
    }
}
