//! Relay tokens for native peers (`docs/signaling.md`, Tokens): earned by
//! answering the relay's challenge with the peer's identity key
//! (`POST /auth/challenge`, `POST /auth/token`), refreshed before they expire
//! (`POST /auth/refresh`), shown on the `/signaling` upgrade as
//! `Authorization: Bearer`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use darkswap_proto::relay_auth::{
    ChallengeRequest, ChallengeResponse, IceServersResponse, Role, TokenResponse,
    sign_token_request,
};
use libp2p_identity::{Keypair, PeerId};
use serde::de::DeserializeOwned;

use crate::{signaling_client::SignalingError, tls::TlsRoots};

/// Bound on one token request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A token the relay issued to this peer.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayToken {
    /// The JWT.
    pub token: String,
    /// The role it grants.
    pub role: Role,
    /// Unix seconds after which the relay refuses it.
    pub expires_at: u64,
}

impl std::fmt::Debug for RelayToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never in logs.
        f.debug_struct("RelayToken")
            .field("role", &self.role)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl RelayToken {
    /// A token obtained elsewhere (`darkswap-relay token issue`), valid
    /// until `expires_at` (unix seconds).
    pub fn new(token: String, role: Role, expires_at: u64) -> Self {
        RelayToken {
            token,
            role,
            expires_at,
        }
    }

    /// How long from `now` until it should be refreshed: after 3/4 of what
    /// is left of its lifetime, so a reconnection always finds it valid.
    pub(crate) fn refresh_in(&self, now: SystemTime) -> Duration {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        Duration::from_secs(self.expires_at.saturating_sub(now)).mul_f64(0.75)
    }
}

impl From<TokenResponse> for RelayToken {
    fn from(r: TokenResponse) -> Self {
        RelayToken::new(r.token, r.role, r.expires_at)
    }
}

/// The token service of one relay.
#[derive(Debug, Clone)]
pub(crate) struct TokenClient {
    http: reqwest::Client,
    /// `http://host:port`.
    base: String,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

impl TokenClient {
    /// The token service at `base` (`https://` checked against `roots`).
    pub(crate) fn new(base: String, roots: &TlsRoots) -> Result<Self, SignalingError> {
        let error = |e: String| SignalingError::Connection(e);
        let http = roots
            .http_client(reqwest::Client::builder())
            .map_err(error)?
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| error(e.to_string()))?;
        Ok(TokenClient { http, base })
    }

    /// Earns a token: asks for a challenge and answers it with `key`.
    pub(crate) async fn earn(&self, key: &Keypair) -> Result<RelayToken, SignalingError> {
        let peer_id = key.public().to_peer_id().to_string();
        let challenge: ChallengeResponse = self
            .post("/auth/challenge", None, &ChallengeRequest { peer_id })
            .await?;
        let relay: PeerId = challenge.relay_peer_id.parse().map_err(|_| {
            SignalingError::Protocol(format!(
                "relay peer id {:?} is no peer id",
                challenge.relay_peer_id
            ))
        })?;
        let answer = sign_token_request(key, &relay, &challenge.challenge)
            .map_err(|e| SignalingError::Protocol(format!("challenge: {e}")))?;
        let token: TokenResponse = self.post("/auth/token", None, &answer).await?;
        Ok(token.into())
    }

    /// A new token for `token` (which the relay retires).
    pub(crate) async fn refresh(&self, token: &RelayToken) -> Result<RelayToken, SignalingError> {
        let fresh: TokenResponse = self
            .post("/auth/refresh", Some(&token.token), &serde_json::json!({}))
            .await?;
        Ok(fresh.into())
    }

    /// The relay's STUN and TURN servers, with TURN credentials for the
    /// token's peer (`POST /auth/ice-servers`).
    pub(crate) async fn ice_servers(
        &self,
        token: &RelayToken,
    ) -> Result<IceServersResponse, SignalingError> {
        self.post(
            "/auth/ice-servers",
            Some(&token.token),
            &serde_json::json!({}),
        )
        .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: &impl serde::Serialize,
    ) -> Result<T, SignalingError> {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SignalingError::Connection(format!("{path}: {e}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| SignalingError::Connection(format!("{path}: {e}")))?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => SignalingError::Refused {
                    code: b.error.code,
                    message: b.error.message,
                },
                Err(_) => SignalingError::Protocol(format!("{path}: HTTP {status}")),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| SignalingError::Protocol(format!("{path}: {e}")))
    }
}

/// `ws://host:port/signaling` → `http://host:port` (`wss` → `https`).
pub(crate) fn http_base_of(signaling: &str) -> Result<String, SignalingError> {
    let (scheme, rest) = if let Some(rest) = signaling.strip_prefix("ws://") {
        ("http", rest)
    } else if let Some(rest) = signaling.strip_prefix("wss://") {
        ("https", rest)
    } else {
        return Err(SignalingError::Connection(format!(
            "{signaling}: not a ws:// or wss:// URL"
        )));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    Ok(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_service_is_on_the_signaling_port() {
        assert_eq!(
            http_base_of("ws://127.0.0.1:9001/signaling").unwrap(),
            "http://127.0.0.1:9001"
        );
        assert_eq!(
            http_base_of("wss://relay.example/signaling?x").unwrap(),
            "https://relay.example"
        );
        assert!(http_base_of("http://relay.example/signaling").is_err());
    }

    #[test]
    fn a_token_is_refreshed_after_three_quarters_of_its_life() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let token = RelayToken::new("t".into(), Role::User, 1_400);
        assert_eq!(token.refresh_in(now), Duration::from_secs(300));
        assert_eq!(
            RelayToken::new("t".into(), Role::User, 10).refresh_in(now),
            Duration::ZERO
        );
        assert!(!format!("{token:?}").contains("\"t\""));
    }
}
