//! The relay's token service (`/auth/*`, `docs/security.md`): the JSON bodies
//! of its requests and answers, the roles a token grants, the proof a peer
//! gives to obtain a token, and how a token travels on a WebSocket
//! handshake. Shared by the relay, native clients and (by documentation) the
//! browser client. The token itself is opaque here: checking it is the
//! relay's business (`darkswap_relay::token`), so this crate needs no JWT
//! library and no C crypto.
//!
//! A peer proves it holds the key of its peer id by signing
//! `AUTH_TAG || relay peer id || challenge`. The relay's id in the signed
//! bytes means a challenge forwarded from one relay to a victim cannot be
//! answered into a token valid at another relay.

use libp2p_identity::{Keypair, PeerId, PublicKey};
use serde::{Deserialize, Serialize};

use crate::signaling::{RegisterError, decode_b64, encode_b64};

/// Domain tag of the token challenge signature.
pub const AUTH_TAG: &[u8] = b"darkswap-relay/v1/auth-token";
/// Length of a token challenge.
pub const CHALLENGE_LEN: usize = 32;
/// WebSocket subprotocol a client offers with its token (browsers cannot set
/// headers on a WebSocket, but can list subprotocols). The server answers
/// with [`WS_PROTOCOL`]; the token itself is never echoed.
pub const WS_TOKEN_PROTOCOL_PREFIX: &str = "darkswap-token.";
/// The subprotocol a client offers beside its token, and the one the server selects.
pub const WS_PROTOCOL: &str = "darkswap.v1";

/// Roles the relay grants, lowest first. Permissions name the lowest role
/// allowed to do something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May do nothing that needs a permission (the role to give to anonymous
    /// clients of a closed relay).
    Guest,
    /// An ordinary peer.
    User,
    /// An operator: may revoke tokens.
    Admin,
}

impl Role {
    /// The role's name on the wire and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "guest" => Ok(Role::Guest),
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?} (expected guest, user or admin)"
            )),
        }
    }
}

/// `POST /auth/challenge` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The peer that will answer the challenge.
    pub peer_id: String,
}

/// `POST /auth/challenge` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// Base64 challenge to sign.
    pub challenge: String,
    /// The relay's peer id, part of the signed bytes.
    pub relay_peer_id: String,
    /// Seconds the challenge stays valid.
    pub expires_in: u64,
}

/// `POST /auth/token` body: the answered challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The peer id the challenge was issued to.
    pub peer_id: String,
    /// Base64 protobuf-encoded libp2p public key of that peer id.
    pub public_key: String,
    /// The challenge, as received.
    pub challenge: String,
    /// Base64 signature over [`auth_payload`].
    pub signature: String,
}

/// Answer of `POST /auth/token` and `POST /auth/refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The JWT (EdDSA, signed by the relay's identity key).
    pub token: String,
    /// The role the token carries.
    pub role: Role,
    /// Unix seconds after which the token is refused.
    pub expires_at: u64,
}

/// `POST /auth/revoke` body (an admin's token in `Authorization: Bearer`).
/// Exactly one field is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Revoke this one token (its `jti`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// Revoke every token issued to this peer until now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
}

/// One ICE server entry as WebRTC's `RTCIceServer` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:host:port` or `turn:host:port?transport=udp`.
    pub urls: Vec<String>,
    /// For TURN: the time-limited username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// For TURN: the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Answer of `POST /auth/ice-servers` (an `Authorization: Bearer` token
/// of a role the relay gives TURN credentials to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServersResponse {
    /// The relay's STUN server, then its TURN server with credentials.
    pub ice_servers: Vec<IceServer>,
    /// Unix seconds after which the TURN credentials are refused.
    pub expires_at: u64,
}

/// The bytes a peer signs to answer `challenge` from `relay`.
pub fn auth_payload(relay: &PeerId, challenge: &[u8]) -> Vec<u8> {
    [AUTH_TAG, &relay.to_bytes(), challenge].concat()
}

/// Answers a challenge of `relay` with `key`.
pub fn sign_token_request(
    key: &Keypair,
    relay: &PeerId,
    challenge_b64: &str,
) -> Result<TokenRequest, RegisterError> {
    let challenge = decode_b64(challenge_b64).ok_or(RegisterError::Malformed("challenge"))?;
    let signature = key
        .sign(&auth_payload(relay, &challenge))
        .map_err(|_| RegisterError::BadSignature)?;
    Ok(TokenRequest {
        peer_id: key.public().to_peer_id().to_string(),
        public_key: encode_b64(&key.public().encode_protobuf()),
        challenge: challenge_b64.to_owned(),
        signature: encode_b64(&signature),
    })
}

/// Checks an answered challenge; returns the proven peer id and the raw
/// challenge. The caller checks that it issued the challenge to that peer.
pub fn verify_token_request(
    request: &TokenRequest,
    relay: &PeerId,
) -> Result<(PeerId, Vec<u8>), RegisterError> {
    let claimed: PeerId = request
        .peer_id
        .parse()
        .map_err(|_| RegisterError::Malformed("peer_id"))?;
    let key_bytes =
        decode_b64(&request.public_key).ok_or(RegisterError::Malformed("public_key"))?;
    let challenge = decode_b64(&request.challenge).ok_or(RegisterError::Malformed("challenge"))?;
    let signature = decode_b64(&request.signature).ok_or(RegisterError::Malformed("signature"))?;
    let key =
        PublicKey::try_decode_protobuf(&key_bytes).map_err(|_| RegisterError::InvalidPublicKey)?;
    if key.to_peer_id() != claimed {
        return Err(RegisterError::PeerIdMismatch);
    }
    if !key.verify(&auth_payload(relay, &challenge), &signature) {
        return Err(RegisterError::BadSignature);
    }
    Ok((claimed, challenge))
}

/// The token a client offered in its `Sec-WebSocket-Protocol` header, if any.
pub fn token_from_ws_protocols(header: &str) -> Option<&str> {
    header
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix(WS_TOKEN_PROTOCOL_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_request_verifies_only_for_its_relay() {
        let key = Keypair::generate_ed25519();
        let relay = PeerId::random();
        let challenge = encode_b64(&[7u8; CHALLENGE_LEN]);
        let request = sign_token_request(&key, &relay, &challenge).unwrap();
        let (peer, raw) = verify_token_request(&request, &relay).unwrap();
        assert_eq!(peer, key.public().to_peer_id());
        assert_eq!(raw, vec![7u8; CHALLENGE_LEN]);
        assert_eq!(
            verify_token_request(&request, &PeerId::random()),
            Err(RegisterError::BadSignature)
        );
        let other = Keypair::generate_ed25519();
        let mut stolen = request.clone();
        stolen.peer_id = other.public().to_peer_id().to_string();
        assert_eq!(
            verify_token_request(&stolen, &relay),
            Err(RegisterError::PeerIdMismatch)
        );
    }

    #[test]
    fn the_token_is_found_among_offered_protocols() {
        assert_eq!(
            token_from_ws_protocols("darkswap.v1, darkswap-token.a.b.c"),
            Some("a.b.c")
        );
        assert_eq!(token_from_ws_protocols("darkswap.v1"), None);
    }

    #[test]
    fn roles_are_ordered_and_parse() {
        assert!(Role::Guest < Role::User && Role::User < Role::Admin);
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert!("root".parse::<Role>().is_err());
    }
}
