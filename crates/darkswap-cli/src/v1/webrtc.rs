//! WebRTC data channels to peers on the node's signaling relays (browsers
//! or native nodes): `/v1/webrtc`, `/v1/webrtc/channels`,
//! `/v1/webrtc/channels/{peer_id}`, `.../messages`, `.../receive`.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{Endpoint, Verb};

/// Longest wait a [`ReceiveWebRtcMessage`] may ask for, in milliseconds.
pub const MAX_RECEIVE_WAIT_MS: u64 = 60_000;

/// `GET /v1/webrtc`: whether the node registers for WebRTC data channels,
/// where, and the channels open now.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GetWebRtc;

impl Endpoint for GetWebRtc {
    const VERB: Verb = Verb::Get;
    const ROUTE: &'static str = "/v1/webrtc";
    type Response = WebRtcStatus;
}

/// The answer to [`GetWebRtc`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebRtcStatus {
    /// `webrtc = true` and at least one signaling relay.
    pub enabled: bool,
    /// The signaling relays and the node's registration on each.
    pub signaling: Vec<SignalingRelay>,
    /// The open channels.
    pub channels: Vec<WebRtcChannel>,
}

/// A signaling relay in [`WebRtcStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalingRelay {
    /// Its `ws://` or `wss://` signaling URL.
    pub url: String,
    /// `connecting`, `connected`, `disconnected`, `failed` or `closed`.
    pub state: String,
}

/// An open channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebRtcChannel {
    /// The peer at the other end.
    pub peer_id: String,
    /// `direct` (a WebRTC data channel) or `relayed` (an end-to-end
    /// encrypted circuit through the relay).
    pub path: String,
}

/// `POST /v1/webrtc/channels`: open a channel to a peer registered on one
/// of the node's signaling relays (or find the open one): WebRTC first, a
/// relayed circuit when WebRTC does not connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenWebRtcChannel {
    /// The peer.
    pub peer_id: String,
}

impl Endpoint for OpenWebRtcChannel {
    const VERB: Verb = Verb::Post;
    const ROUTE: &'static str = "/v1/webrtc/channels";
    type Response = WebRtcChannel;
}

/// `DELETE /v1/webrtc/channels/{peer_id}`: close the channel; answers
/// `204`, or `404 channel_closed` when there was none.
#[derive(Debug, Clone, Serialize)]
pub struct CloseWebRtcChannel {
    /// The peer (in the path).
    #[serde(skip)]
    pub peer_id: String,
}

impl Endpoint for CloseWebRtcChannel {
    const VERB: Verb = Verb::Delete;
    const ROUTE: &'static str = "/v1/webrtc/channels/{peer_id}";
    const SUCCESS: StatusCode = StatusCode::NO_CONTENT;
    type Response = ();

    fn path(&self) -> String {
        format!("/v1/webrtc/channels/{}", self.peer_id)
    }
}

/// One message on a channel: `{"text": "..."}` (a text frame, what a page
/// reads as a string) or `{"hex": "..."}` (a binary frame), exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebRtcMessage {
    /// A text frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A binary frame, hex-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
}

/// `POST /v1/webrtc/channels/{peer_id}/messages`: send one message,
/// opening the channel first if there is none; answers `204` once it is
/// handed to the channel.
/// The body is a [`WebRtcMessage`]: its fields are repeated here rather
/// than flattened, as serde's `flatten` would let misspelt fields through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendWebRtcMessage {
    /// The peer (in the path).
    #[serde(skip)]
    pub peer_id: String,
    /// A text frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A binary frame, hex-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
}

impl SendWebRtcMessage {
    /// What to send to `peer_id`.
    pub fn new(peer_id: String, message: WebRtcMessage) -> Self {
        SendWebRtcMessage {
            peer_id,
            text: message.text,
            hex: message.hex,
        }
    }

    /// The message in the body.
    pub fn message(&self) -> WebRtcMessage {
        WebRtcMessage {
            text: self.text.clone(),
            hex: self.hex.clone(),
        }
    }
}

impl Endpoint for SendWebRtcMessage {
    const VERB: Verb = Verb::Post;
    const ROUTE: &'static str = "/v1/webrtc/channels/{peer_id}/messages";
    const SUCCESS: StatusCode = StatusCode::NO_CONTENT;
    type Response = ();

    fn path(&self) -> String {
        format!("/v1/webrtc/channels/{}/messages", self.peer_id)
    }
}

/// `POST /v1/webrtc/channels/{peer_id}/receive`: take the next message from
/// the peer, waiting up to `wait_ms` for a channel (opened by either side)
/// and a message; answers the message, or `null` if none came in time. A
/// `POST`, not a `GET`: it consumes what it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveWebRtcMessage {
    /// The peer (in the path).
    #[serde(skip)]
    pub peer_id: String,
    /// How long to wait, at most [`MAX_RECEIVE_WAIT_MS`]. Default: 0 (only
    /// a message already there).
    #[serde(default)]
    pub wait_ms: u64,
}

impl Endpoint for ReceiveWebRtcMessage {
    const VERB: Verb = Verb::Post;
    const ROUTE: &'static str = "/v1/webrtc/channels/{peer_id}/receive";
    type Response = Option<WebRtcMessage>;

    fn path(&self) -> String {
        format!("/v1/webrtc/channels/{}/receive", self.peer_id)
    }
}
