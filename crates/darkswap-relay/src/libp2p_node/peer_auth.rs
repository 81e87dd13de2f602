//! The relay's side of `/darkswap/auth/1.0.0` (configured by
//! [`PeerAuthConfig`], the file's `[peer_auth]`).
//!
//! The relay answers nodes' challenges, so nodes with `require_relay_auth`
//! can verify it before reserving (with its identity key, or with the
//! operator-issued shared key). With `require_auth` it also challenges every
//! peer that connects, and disconnects those that fail or stay below
//! `min_level`.

use std::{collections::HashMap, time::SystemTime};

use darkswap_p2p::auth::{
    self, AuthManager, AuthManagerConfig, AuthRequest, AuthResponse, AuthorizationLevel,
};
use libp2p::{PeerId, identity::Keypair, request_response};

use crate::config::PeerAuthConfig;

/// The manager's configuration from the relay's, reading the shared key
/// file.
fn manager_config(c: &PeerAuthConfig) -> Result<AuthManagerConfig, String> {
    let shared_key = match &c.shared_key_file {
        Some(path) => {
            let fail = |e: &dyn std::fmt::Display| {
                format!("peer_auth.shared_key_file {}: {e}", path.display())
            };
            let text = std::fs::read_to_string(path).map_err(|e| fail(&e))?;
            let key = hex::decode(text.trim()).map_err(|e| fail(&format!("not hex: {e}")))?;
            Some(key)
        }
        None => None,
    };
    Ok(AuthManagerConfig {
        auth_method: c.method,
        shared_key,
        token_ttl: c.token_ttl,
        challenge_ttl: c.challenge_ttl,
        trusted_peers: c.trusted_peers.iter().copied().collect(),
        banned_peers: c.banned_peers.iter().copied().collect(),
        default_auth_level: c.default_level,
        require_auth: true,
        authorized_keys: c.authorized_keys.iter().map(|(p, l)| (*p, *l)).collect(),
    })
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
    pub(crate) fn new(section: &PeerAuthConfig, key: Keypair) -> Result<Self, String> {
        let config = manager_config(section)?;
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
                Err(darkswap_p2p::auth::outbound_failure(&error)),
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
