//! The authentication facet of the handle.

use darkswap_core::auth::{AuthError, AuthToken, AuthorizationLevel, Challenge, ChallengeResponse};
use libp2p::PeerId;
use tokio::sync::oneshot::Sender as Reply;

use crate::{
    command::AuthCommand,
    error::{AuthCommandError, CommandError},
    network::NetworkHandle,
};

/// Authentication of relays and peers over `/darkswap/auth/1.0.0`: what
/// [`NetworkHandle::auth`] returns.
#[derive(Debug, Clone, Copy)]
pub struct AuthHandle<'a> {
    pub(super) handle: &'a NetworkHandle,
}

impl AuthHandle<'_> {
    /// Asks the swarm task; both the command and the authentication may fail.
    async fn ask<T>(
        &self,
        make: impl FnOnce(Reply<Result<T, AuthError>>) -> AuthCommand,
    ) -> Result<T, AuthCommandError> {
        Ok(self.handle.ask(make).await??)
    }

    /// A fresh challenge for `relay` (the out-of-band half of relay
    /// authentication: deliver it to the relay however you like, then pass
    /// its answer to [`verify_relay_challenge_response`](Self::verify_relay_challenge_response)).
    /// Refused for banned relays before anything is generated.
    pub async fn generate_relay_challenge(
        &self,
        relay: &PeerId,
    ) -> Result<Challenge, AuthCommandError> {
        let relay = *relay;
        self.ask(|reply| AuthCommand::GenerateRelayChallenge { relay, reply })
            .await
    }

    /// Verifies `relay`'s answer to a challenge from
    /// [`generate_relay_challenge`](Self::generate_relay_challenge). The
    /// relay must reach `min_relay_auth_level`. On success it counts as
    /// authenticated (so `require_relay_auth` reserves on it without a new
    /// challenge) until the returned token expires.
    pub async fn verify_relay_challenge_response(
        &self,
        relay: &PeerId,
        response: &ChallengeResponse,
    ) -> Result<AuthToken, AuthCommandError> {
        let response = Box::new(response.clone());
        self.ask(|reply| AuthCommand::VerifyRelayChallengeResponse {
            relay: *relay,
            response,
            reply,
        })
        .await
    }

    /// Re-authenticates `relay` with a token this node issued to it,
    /// without a challenge. The token's level must reach `min_relay_auth_level`.
    pub async fn authenticate_relay(
        &self,
        relay: &PeerId,
        token: &AuthToken,
    ) -> Result<AuthorizationLevel, AuthCommandError> {
        let (relay, token) = (*relay, Box::new(token.clone()));
        self.ask(|reply| AuthCommand::AuthenticateRelay {
            relay,
            token,
            reply,
        })
        .await
    }

    /// Authenticates `peer` over `/darkswap/auth/1.0.0` with this node's
    /// configured method (dialling it if needed, when its address is
    /// known); trusted peers pass without a challenge. Returns the token
    /// recording the level it reached.
    pub async fn authenticate_peer(&self, peer: &PeerId) -> Result<AuthToken, AuthCommandError> {
        let peer = *peer;
        self.ask(|reply| AuthCommand::AuthenticatePeer { peer, reply })
            .await
    }

    /// The level `peer` has with this node now (see
    /// [`AuthManager::authorization_level`](crate::auth::AuthManager::authorization_level)).
    pub async fn peer_level(&self, peer: &PeerId) -> Result<AuthorizationLevel, CommandError> {
        let peer = *peer;
        self.handle
            .ask(|reply| AuthCommand::PeerLevel { peer, reply })
            .await
    }
}
