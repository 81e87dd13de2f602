//! `signaling_json`: a text frame as it arrives on the relay's `/signaling`
//! (or `/relay`) WebSocket, through [`ClientToServer::parse`], and a frame as
//! the native client receives it, through `ServerToClient`'s deserializer.
//!
//! Beyond "no panic" it asserts:
//! - a parsed message round-trips through `to_json`, and its `kind` is the
//!   frame's `type`;
//! - a refused frame gets the error code `docs/signaling.md` promises:
//!   `invalid_json` for non-JSON or no string `type` (and no `in_reply_to`),
//!   `unknown_type` for a type the server does not know, `invalid_message`
//!   for a known type with bad fields (both naming the type);
//! - a `register` that verifies against the challenge names the peer id in
//!   its one canonical spelling (no second string for the same identity);
//! - a server message that deserializes round-trips.

use darkswap_proto::{
    identity::Keypair,
    signaling::{
        CLIENT_TYPES, ClientToServer, ErrorCode, NONCE_LEN, ServerToClient, encode_b64,
        sign_registration, verify_registration,
    },
};
use serde_json::{Value, json};

/// The challenge every `register` is verified against; the seeds answer it.
pub const NONCE: [u8; NONCE_LEN] = [0x11; NONCE_LEN];

/// Runs one input through both parsers.
pub fn check(data: &[u8]) {
    // WebSocket text frames are UTF-8 (tungstenite refuses others), so the
    // parsers only ever see a `str`.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_client(text);
    check_server(text);
}

/// What the server does with a client text frame, up to the hub's dispatch.
pub fn check_client(text: &str) {
    let value = serde_json::from_str::<Value>(text).ok();
    let kind = value
        .as_ref()
        .and_then(|v| v.get("type"))
        .and_then(Value::as_str);
    match ClientToServer::parse(text) {
        Ok(message) => {
            assert_eq!(Some(message.kind()), kind, "kind is not the frame's type");
            let json = message.to_json();
            assert_eq!(
                ClientToServer::parse(&json).as_ref(),
                Ok(&message),
                "does not round-trip: {json}"
            );
            if let ClientToServer::Register {
                peer_id,
                public_key,
                signature,
            } = &message
                && let Ok(peer) = verify_registration(peer_id, public_key, signature, &NONCE)
            {
                assert_eq!(&peer.to_string(), peer_id, "a second spelling of a peer id");
            }
        }
        Err(e) => {
            let expected = match kind {
                None => ErrorCode::InvalidJson,
                Some(k) if !CLIENT_TYPES.contains(&k) => ErrorCode::UnknownType,
                Some(_) => ErrorCode::InvalidMessage,
            };
            assert_eq!(e.code, expected, "{e}");
            let expected_reply_to = if expected == ErrorCode::InvalidJson {
                None
            } else {
                kind
            };
            assert_eq!(e.in_reply_to.as_deref(), expected_reply_to);
            // The error reply the server sends is itself a valid frame.
            let reply = ServerToClient::error(e.code, e.message, e.in_reply_to.as_deref());
            assert_server_round_trip(&reply);
        }
    }
}

fn check_server(text: &str) {
    if let Ok(message) = serde_json::from_str::<ServerToClient>(text) {
        assert_server_round_trip(&message);
    }
}

fn assert_server_round_trip(message: &ServerToClient) {
    let json = message.to_json();
    match serde_json::from_str::<ServerToClient>(&json) {
        Ok(again) => assert_eq!(&again, message, "does not round-trip: {json}"),
        Err(e) => panic!("a server message does not parse back ({e}): {json}"),
    }
}

/// Every client message type (a `register` that answers [`NONCE`]), some
/// server messages, and refused frames of each error class.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let key =
        Keypair::ed25519_from_bytes([0x02; 32]).unwrap_or_else(|e| panic!("ed25519 key: {e}"));
    let me = key.public().to_peer_id().to_string();
    let other = Keypair::ed25519_from_bytes([0x03; 32])
        .unwrap_or_else(|e| panic!("ed25519 key: {e}"))
        .public()
        .to_peer_id()
        .to_string();
    let register = sign_registration(&key, &encode_b64(&NONCE))
        .unwrap_or_else(|e| panic!("seed registration: {e}"));
    let candidate = json!({
        "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    });
    let client = [
        ("register", register),
        (
            "list_peers",
            ClientToServer::ListPeers {
                after: None,
                limit: None,
            },
        ),
        (
            "list_peers_page",
            ClientToServer::ListPeers {
                after: Some(other.clone()),
                limit: Some(50),
            },
        ),
        (
            "watch",
            ClientToServer::Watch {
                peers: vec![other.clone(), me.clone()],
            },
        ),
        (
            "unwatch",
            ClientToServer::Unwatch {
                peers: vec![other.clone()],
            },
        ),
        (
            "offer",
            ClientToServer::Offer {
                to: other.clone(),
                sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n".into(),
                session: Some("s1".into()),
                from: Some(me.clone()),
            },
        ),
        (
            "answer",
            ClientToServer::Answer {
                to: other.clone(),
                sdp: "v=0\r\n".into(),
                session: None,
                from: None,
            },
        ),
        (
            "candidate",
            ClientToServer::Candidate {
                to: other.clone(),
                candidate,
                session: Some("s1".into()),
                from: None,
            },
        ),
        (
            "candidate_end",
            ClientToServer::Candidate {
                to: other.clone(),
                candidate: Value::Null,
                session: None,
                from: None,
            },
        ),
        ("ping", ClientToServer::Ping { id: Some(json!(7)) }),
        (
            "circuit_request",
            ClientToServer::CircuitRequest { to: other.clone() },
        ),
        (
            "circuit_accept",
            ClientToServer::CircuitAccept {
                circuit_id: "0123456789abcdef".into(),
            },
        ),
        (
            "circuit_reject",
            ClientToServer::CircuitReject {
                circuit_id: "0123456789abcdef".into(),
                reason: Some("busy".into()),
            },
        ),
        (
            "circuit_close",
            ClientToServer::CircuitClose {
                circuit_id: "0123456789abcdef".into(),
            },
        ),
        (
            "attach",
            ClientToServer::Attach {
                circuit_id: "0123456789abcdef".into(),
                token: "AAECAwQFBgcICQoLDA0ODw==".into(),
            },
        ),
    ];
    let server = [
        (
            "server_challenge",
            ServerToClient::Challenge {
                nonce: encode_b64(&NONCE),
            },
        ),
        (
            "server_circuit_ready",
            ServerToClient::CircuitReady {
                circuit_id: "0123456789abcdef".into(),
                peer: other,
                token: "AAECAwQFBgcICQoLDA0ODw==".into(),
            },
        ),
        (
            "server_peers_page",
            ServerToClient::Peers {
                peers: vec![me.clone()],
                next: Some(me.clone()),
            },
        ),
        (
            "server_presence",
            ServerToClient::Presence {
                online: vec![me.clone()],
                offline: vec![],
            },
        ),
        (
            "server_error",
            ServerToClient::error(ErrorCode::UnknownPeer, "not registered", Some("offer")),
        ),
    ];
    let mut seeds: Vec<(&'static str, Vec<u8>)> = client
        .into_iter()
        .map(|(name, m)| (name, m.to_json().into_bytes()))
        .collect();
    seeds.extend(
        server
            .into_iter()
            .map(|(name, m)| (name, m.to_json().into_bytes())),
    );
    for (name, text) in [
        ("bad_json", "{\"type\":"),
        ("no_type", "[1,2]"),
        ("unknown_type", "{\"type\":\"teleport\"}"),
        ("missing_field", "{\"type\":\"offer\",\"sdp\":\"v=0\"}"),
    ] {
        seeds.push((name, text.as_bytes().to_vec()));
    }
    seeds
}
