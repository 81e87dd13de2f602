//! The WebSocket signaling plane's JSON messages (`docs/signaling.md`):
//! what clients send ([`ClientToServer`]), what the server sends
//! ([`ServerToClient`]), the registration proof, and the error and close
//! codes. Shared by the relay server and the native client so both sides
//! parse and write exactly one schema.

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use libp2p_identity::{Keypair, PeerId, PublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Domain tag of the registration signature: clients sign
/// `REGISTER_TAG || nonce`.
pub const REGISTER_TAG: &[u8] = b"darkswap-signaling/v1/register";
/// Length of a registration challenge nonce.
pub const NONCE_LEN: usize = 32;
/// Longest `session` value passed through.
pub const MAX_SESSION_LEN: usize = 64;
/// Longest `candidate` string of an ICE candidate, in bytes (a host
/// candidate with an mDNS name is about 120; the attribute has no limit of
/// its own, so this bounds what one message may carry).
pub const MAX_CANDIDATE_LEN: usize = 512;
/// Longest `sdpMid` or `usernameFragment` of an ICE candidate, in bytes.
pub const MAX_CANDIDATE_FIELD_LEN: usize = 256;

/// WebSocket close codes the server uses.
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame that breaks the WebSocket protocol (reserved bits, a bad
    /// opcode, an unmasked client frame, ...).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Binary on `/signaling`, or text after `attach` on `/relay`.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text frame that is not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Sustained flooding past the rate limit.
    pub const POLICY: u16 = 1008;
    /// A frame over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Refused by a connection limit (per address or global); retry later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// No activity within the idle timeout.
    pub const IDLE_TIMEOUT: u16 = 4000;
    /// No valid registration within the registration timeout.
    pub const REGISTER_TIMEOUT: u16 = 4001;
    /// Registration refused (bad signature, id taken, server full).
    pub const REGISTER_REFUSED: u16 = 4003;
    /// The token is invalid, expired or revoked, names another peer, or its
    /// role may not register.
    pub const UNAUTHORIZED: u16 = 4004;
    /// The relayed circuit this `/relay` socket carried closed.
    pub const CIRCUIT_CLOSED: u16 = 4010;
}

/// Error codes of [`ServerToClient::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not a JSON object with a string `type`.
    InvalidJson,
    /// A `type` the server does not know.
    UnknownType,
    /// A known type with a missing or malformed field.
    InvalidMessage,
    /// Only `register` and `ping` are allowed before registering.
    NotRegistered,
    /// Public key, peer id and signature do not match.
    BadSignature,
    /// The peer id is registered already.
    AlreadyRegistered,
    /// The server holds its maximum number of peers.
    ServerFull,
    /// `to` names a peer that is not registered.
    UnknownPeer,
    /// `from` is not the sender's own id.
    SpoofedSender,
    /// Over the message rate; the message was dropped.
    RateLimited,
    /// A circuit limit was reached.
    CircuitLimit,
    /// No such circuit for this peer, or a wrong token.
    UnknownCircuit,
    /// A binary frame on `/relay` before the circuit opened.
    CircuitNotOpen,
    /// The token is missing where needed, invalid, expired, revoked or
    /// issued to another peer (the socket is closed with 4004).
    Unauthorized,
    /// The connection's role may not do this (the message is dropped).
    Forbidden,
    /// The recipient has too much waiting to be read, from this sender or
    /// from everybody; the message was dropped. Retry later.
    PeerBusy,
    /// A `watch` would take this connection over its number of watched
    /// peers; nothing of it was applied.
    WatchLimit,
}

impl ErrorCode {
    /// The code as it appears on the wire and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::NotRegistered => "not_registered",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::AlreadyRegistered => "already_registered",
            ErrorCode::ServerFull => "server_full",
            ErrorCode::UnknownPeer => "unknown_peer",
            ErrorCode::SpoofedSender => "spoofed_sender",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::CircuitLimit => "circuit_limit",
            ErrorCode::UnknownCircuit => "unknown_circuit",
            ErrorCode::CircuitNotOpen => "circuit_not_open",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::PeerBusy => "peer_busy",
            ErrorCode::WatchLimit => "watch_limit",
        }
    }
}

/// A message from a client to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientToServer {
    /// Answer to the challenge, proving the peer id.
    Register {
        /// The claimed peer id.
        peer_id: String,
        /// Base64 of the libp2p protobuf encoding of the public key.
        public_key: String,
        /// Base64 signature over `REGISTER_TAG || nonce`.
        signature: String,
    },
    /// Asks for one page of the registered peers.
    ListPeers {
        /// Start after this peer id (the `next` of the previous page);
        /// absent: the first page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        /// At most this many (the server caps it at its page size).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Asks to be told when these peers register or leave; answered with
    /// `presence`.
    Watch {
        /// Peer ids, registered or not.
        peers: Vec<String>,
    },
    /// Stops watching these peers.
    Unwatch {
        /// Peer ids.
        peers: Vec<String>,
    },
    /// A WebRTC offer for `to`.
    Offer {
        /// Recipient.
        to: String,
        /// SDP text.
        sdp: String,
        /// Opaque attempt id, passed through.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// Must be absent or the sender's own id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// A WebRTC answer for `to`.
    Answer {
        /// Recipient.
        to: String,
        /// SDP text.
        sdp: String,
        /// Opaque attempt id, passed through.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// Must be absent or the sender's own id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// An ICE candidate (`RTCIceCandidate.toJSON()`, or null at the end).
    Candidate {
        /// Recipient.
        to: String,
        /// The candidate object, or null.
        candidate: Value,
        /// Opaque attempt id, passed through.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// Must be absent or the sender's own id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// Keep-alive; answered with `pong`.
    Ping {
        /// Echoed back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
    /// Asks for a relayed circuit to `to`.
    CircuitRequest {
        /// The other peer.
        to: String,
    },
    /// Accepts a circuit requested by another peer.
    CircuitAccept {
        /// The circuit.
        circuit_id: String,
    },
    /// Refuses a circuit requested by another peer.
    CircuitReject {
        /// The circuit.
        circuit_id: String,
        /// Why, for the requester.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Closes a circuit.
    CircuitClose {
        /// The circuit.
        circuit_id: String,
    },
    /// First frame on `/relay`: joins that socket to a circuit.
    Attach {
        /// The circuit.
        circuit_id: String,
        /// The token `circuit_ready` gave this side.
        token: String,
    },
}

/// Every `type` a client may send.
pub const CLIENT_TYPES: &[&str] = &[
    "register",
    "list_peers",
    "watch",
    "unwatch",
    "offer",
    "answer",
    "candidate",
    "ping",
    "circuit_request",
    "circuit_accept",
    "circuit_reject",
    "circuit_close",
    "attach",
];

/// Why a client frame could not be parsed, with the error code it earns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// `invalid_json`, `unknown_type` or `invalid_message`.
    pub code: ErrorCode,
    /// The message's `type`, when it had one.
    pub in_reply_to: Option<String>,
    /// What is wrong, naming the field where serde can.
    pub message: String,
}

impl ClientToServer {
    /// Parses one text frame, telling malformed JSON, unknown types and
    /// known types with bad fields apart.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let value: Value = serde_json::from_str(text).map_err(|e| ParseError {
            code: ErrorCode::InvalidJson,
            in_reply_to: None,
            message: format!("not JSON: {e}"),
        })?;
        let Some(kind) = value.get("type").and_then(Value::as_str) else {
            return Err(ParseError {
                code: ErrorCode::InvalidJson,
                in_reply_to: None,
                message: "expected a JSON object with a string \"type\"".to_owned(),
            });
        };
        let kind = kind.to_owned();
        if !CLIENT_TYPES.contains(&kind.as_str()) {
            return Err(ParseError {
                code: ErrorCode::UnknownType,
                message: format!("unknown message type {kind:?}"),
                in_reply_to: Some(kind),
            });
        }
        serde_json::from_value(value).map_err(|e| ParseError {
            code: ErrorCode::InvalidMessage,
            message: format!("{kind}: {e}"),
            in_reply_to: Some(kind),
        })
    }

    /// The wire `type` of this message.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientToServer::Register { .. } => "register",
            ClientToServer::ListPeers { .. } => "list_peers",
            ClientToServer::Watch { .. } => "watch",
            ClientToServer::Unwatch { .. } => "unwatch",
            ClientToServer::Offer { .. } => "offer",
            ClientToServer::Answer { .. } => "answer",
            ClientToServer::Candidate { .. } => "candidate",
            ClientToServer::Ping { .. } => "ping",
            ClientToServer::CircuitRequest { .. } => "circuit_request",
            ClientToServer::CircuitAccept { .. } => "circuit_accept",
            ClientToServer::CircuitReject { .. } => "circuit_reject",
            ClientToServer::CircuitClose { .. } => "circuit_close",
            ClientToServer::Attach { .. } => "attach",
        }
    }

    /// This message as one JSON text frame.
    pub fn to_json(&self) -> String {
        // Serialising these plain enums cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A message from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerToClient {
    /// Sent on connect: sign it to register.
    Challenge {
        /// Base64 of [`NONCE_LEN`] random bytes.
        nonce: String,
    },
    /// Registration accepted.
    Registered {
        /// The verified peer id.
        peer_id: String,
        /// The first page of the other registered peers.
        peers: Vec<String>,
        /// Where the next page starts (`list_peers` `after`); absent when
        /// this page is the last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// A watched peer registered.
    PeerJoined {
        /// Its id.
        peer_id: String,
    },
    /// A watched peer left.
    PeerLeft {
        /// Its id.
        peer_id: String,
    },
    /// Answer to `list_peers`: one page of the other registered peers.
    Peers {
        /// The page.
        peers: Vec<String>,
        /// Where the next page starts; absent when this page is the last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// Answer to `watch`: which of the peers it named are registered now.
    Presence {
        /// Registered now.
        online: Vec<String>,
        /// Not registered now.
        offline: Vec<String>,
    },
    /// An offer from `from`.
    Offer {
        /// The verified sender.
        from: String,
        /// SDP text.
        sdp: String,
        /// As the sender gave it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// An answer from `from`.
    Answer {
        /// The verified sender.
        from: String,
        /// SDP text.
        sdp: String,
        /// As the sender gave it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// An ICE candidate from `from`.
    Candidate {
        /// The verified sender.
        from: String,
        /// The candidate object, or null.
        candidate: Value,
        /// As the sender gave it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// Answer to `ping`.
    Pong {
        /// The ping's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
    /// Your circuit request was forwarded.
    CircuitPending {
        /// The circuit.
        circuit_id: String,
        /// The peer asked.
        peer: String,
    },
    /// `from` asks for a circuit with you.
    CircuitRequest {
        /// The circuit.
        circuit_id: String,
        /// The requester.
        from: String,
    },
    /// The circuit was accepted: attach to it on `/relay` with `token`.
    CircuitReady {
        /// The circuit.
        circuit_id: String,
        /// The other end.
        peer: String,
        /// This side's secret for `attach`.
        token: String,
    },
    /// Your circuit request was refused.
    CircuitRejected {
        /// The circuit.
        circuit_id: String,
        /// The peer that refused (or could not answer).
        peer: String,
        /// Why.
        reason: String,
    },
    /// The circuit closed.
    CircuitClosed {
        /// The circuit.
        circuit_id: String,
        /// `closed`, `peer_left`, `rejected`, `accept_timeout`,
        /// `idle_timeout`, `byte_limit`, `duration_limit` or `shutdown`.
        reason: String,
    },
    /// On `/relay`: this socket is attached.
    Attached {
        /// The circuit.
        circuit_id: String,
    },
    /// On `/relay`: both ends are attached; binary frames flow.
    Open {
        /// The circuit.
        circuit_id: String,
    },
    /// Something the client sent was refused.
    Error {
        /// What kind of error.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
        /// The `type` of the message that caused it, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<String>,
    },
}

impl ServerToClient {
    /// This message as one JSON text frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// An error reply.
    pub fn error(code: ErrorCode, message: impl Into<String>, in_reply_to: Option<&str>) -> Self {
        ServerToClient::Error {
            code,
            message: message.into(),
            in_reply_to: in_reply_to.map(str::to_owned),
        }
    }
}

/// Why a registration does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// A field is not valid base64 or not a peer id.
    #[error("{0} is malformed")]
    Malformed(&'static str),
    /// The public key does not decode.
    #[error("public key cannot be decoded")]
    InvalidPublicKey,
    /// The peer id is not the one derived from the public key.
    #[error("peer id does not match the public key")]
    PeerIdMismatch,
    /// The signature does not verify over the challenge.
    #[error("signature does not verify over the challenge")]
    BadSignature,
}

/// The bytes a client signs to answer `nonce`.
pub fn register_payload(nonce: &[u8]) -> Vec<u8> {
    [REGISTER_TAG, nonce].concat()
}

/// Answers a challenge: the `register` message signed by `key`.
pub fn sign_registration(key: &Keypair, nonce_b64: &str) -> Result<ClientToServer, RegisterError> {
    let nonce = B64
        .decode(nonce_b64)
        .map_err(|_| RegisterError::Malformed("nonce"))?;
    let signature = key
        .sign(&register_payload(&nonce))
        .map_err(|_| RegisterError::BadSignature)?;
    Ok(ClientToServer::Register {
        peer_id: key.public().to_peer_id().to_string(),
        public_key: B64.encode(key.public().encode_protobuf()),
        signature: B64.encode(signature),
    })
}

/// Checks a registration against the `nonce` the server sent; returns the
/// proven peer id.
pub fn verify_registration(
    peer_id: &str,
    public_key: &str,
    signature: &str,
    nonce: &[u8],
) -> Result<PeerId, RegisterError> {
    let claimed: PeerId = peer_id
        .parse()
        .map_err(|_| RegisterError::Malformed("peer_id"))?;
    let key_bytes = B64
        .decode(public_key)
        .map_err(|_| RegisterError::Malformed("public_key"))?;
    let signature = B64
        .decode(signature)
        .map_err(|_| RegisterError::Malformed("signature"))?;
    let key =
        PublicKey::try_decode_protobuf(&key_bytes).map_err(|_| RegisterError::InvalidPublicKey)?;
    if key.to_peer_id() != claimed {
        return Err(RegisterError::PeerIdMismatch);
    }
    if !key.verify(&register_payload(nonce), &signature) {
        return Err(RegisterError::BadSignature);
    }
    Ok(claimed)
}

/// Base64 (standard, padded), the encoding of every binary field.
pub fn encode_b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decodes [`encode_b64`]'s output.
pub fn decode_b64(text: &str) -> Option<Vec<u8>> {
    B64.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_tells_json_type_and_field_errors_apart() {
        assert_eq!(
            ClientToServer::parse("{nope").unwrap_err().code,
            ErrorCode::InvalidJson
        );
        assert_eq!(
            ClientToServer::parse("[1,2]").unwrap_err().code,
            ErrorCode::InvalidJson
        );
        let e = ClientToServer::parse(r#"{"type":"teleport"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.in_reply_to.as_deref()),
            (ErrorCode::UnknownType, Some("teleport"))
        );
        let e = ClientToServer::parse(r#"{"type":"offer","sdp":"v=0"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidMessage);
        assert!(e.message.contains("to"), "{e}");
        assert_eq!(
            ClientToServer::parse(r#"{"type":"offer","to":"x","sdp":"v=0","extra":1}"#).unwrap(),
            ClientToServer::Offer {
                to: "x".into(),
                sdp: "v=0".into(),
                session: None,
                from: None
            }
        );
    }

    #[test]
    fn every_client_type_round_trips() {
        let all = [
            ClientToServer::Register {
                peer_id: "p".into(),
                public_key: "k".into(),
                signature: "s".into(),
            },
            ClientToServer::ListPeers {
                after: None,
                limit: None,
            },
            ClientToServer::ListPeers {
                after: Some("12D3KooW".into()),
                limit: Some(10),
            },
            ClientToServer::Watch {
                peers: vec!["a".into(), "b".into()],
            },
            ClientToServer::Unwatch {
                peers: vec!["a".into()],
            },
            ClientToServer::Candidate {
                to: "b".into(),
                candidate: json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host"}),
                session: Some("s1".into()),
                from: None,
            },
            ClientToServer::Ping { id: Some(json!(7)) },
            ClientToServer::CircuitReject {
                circuit_id: "c".into(),
                reason: None,
            },
            ClientToServer::Attach {
                circuit_id: "c".into(),
                token: "t".into(),
            },
        ];
        for m in all {
            assert!(CLIENT_TYPES.contains(&m.kind()));
            assert_eq!(ClientToServer::parse(&m.to_json()).unwrap(), m);
        }
    }

    #[test]
    fn server_messages_have_the_documented_shape() {
        let e = ServerToClient::error(ErrorCode::UnknownPeer, "no such peer", Some("offer"));
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"type":"error","code":"unknown_peer","message":"no such peer","in_reply_to":"offer"})
        );
        let r = ServerToClient::CircuitReady {
            circuit_id: "c1".into(),
            peer: "p".into(),
            token: "t".into(),
        };
        assert_eq!(
            serde_json::from_str::<ServerToClient>(&r.to_json()).unwrap(),
            r
        );
        assert_eq!(ErrorCode::CircuitNotOpen.as_str(), "circuit_not_open");
    }

    #[test]
    fn registration_proves_the_key() {
        let key = Keypair::generate_ed25519();
        let nonce = [7u8; NONCE_LEN];
        let ClientToServer::Register {
            peer_id,
            public_key,
            signature,
        } = sign_registration(&key, &encode_b64(&nonce)).unwrap()
        else {
            unreachable!()
        };
        assert_eq!(
            verify_registration(&peer_id, &public_key, &signature, &nonce),
            Ok(key.public().to_peer_id())
        );
        // Another nonce (a replayed answer) fails.
        assert_eq!(
            verify_registration(&peer_id, &public_key, &signature, &[8u8; NONCE_LEN]),
            Err(RegisterError::BadSignature)
        );
        // Someone else's id with my key fails.
        let other = Keypair::generate_ed25519()
            .public()
            .to_peer_id()
            .to_string();
        assert_eq!(
            verify_registration(&other, &public_key, &signature, &nonce),
            Err(RegisterError::PeerIdMismatch)
        );
        assert_eq!(
            verify_registration(&peer_id, "%%%", &signature, &nonce),
            Err(RegisterError::Malformed("public_key"))
        );
    }

    #[test]
    fn browser_key_encoding_matches_libp2p() {
        // What the JS client builds by hand: 08 01 12 20 || raw Ed25519 key.
        let key = Keypair::generate_ed25519();
        let raw = key.clone().try_into_ed25519().unwrap().public().to_bytes();
        let mut encoded = vec![0x08, 0x01, 0x12, 0x20];
        encoded.extend_from_slice(&raw);
        assert_eq!(encoded, key.public().encode_protobuf());
    }
}
