//! `/v1/webrtc` and `/v1/webrtc/channels...`: the node's WebRTC data
//! channels (its signaling relays' peers, browsers included), each call
//! one of the handle's WebRTC operations.

use std::time::Duration;

use axum::extract::{Path, State};
use darkswap_p2p::{DataMessage, PeerId, WebRtcCommandError};

use super::{
    ApiError, ApiState,
    json::{Answer, ApiJson},
};
use crate::v1::{
    CloseWebRtcChannel, GetWebRtc, MAX_RECEIVE_WAIT_MS, OpenWebRtcChannel, ReceiveWebRtcMessage,
    SendWebRtcMessage, SignalingRelay, WebRtcChannel, WebRtcMessage, WebRtcStatus,
};

fn parse_peer(value: &str) -> Result<PeerId, ApiError> {
    value
        .parse()
        .map_err(|e| ApiError::bad_request(format!("peer_id: {e}")))
}

/// The frame a request asks for: exactly one of `text` and `hex`.
fn to_frame(m: WebRtcMessage) -> Result<DataMessage, ApiError> {
    match (m.text, m.hex) {
        (Some(text), None) => Ok(DataMessage::Text(text)),
        (None, Some(hex)) => hex::decode(&hex)
            .map(DataMessage::Binary)
            .map_err(|e| ApiError::bad_request(format!("hex: {e}"))),
        _ => Err(ApiError::bad_request("give exactly one of text and hex")),
    }
}

fn from_frame(m: DataMessage) -> WebRtcMessage {
    match m {
        DataMessage::Text(text) => WebRtcMessage {
            text: Some(text),
            hex: None,
        },
        DataMessage::Binary(bytes) => WebRtcMessage {
            text: None,
            hex: Some(hex::encode(bytes)),
        },
    }
}

pub(super) async fn status(State(s): State<ApiState>) -> Result<Answer<GetWebRtc>, ApiError> {
    let net = &s.network;
    let signaling: Vec<SignalingRelay> = net
        .webrtc_signaling_relays()
        .into_iter()
        .map(|(url, state)| SignalingRelay {
            url,
            state: state.as_str().to_owned(),
        })
        .collect();
    Ok(Answer::new(WebRtcStatus {
        enabled: !signaling.is_empty(),
        signaling,
        channels: net
            .webrtc_channels()
            .into_iter()
            .map(|(peer, path)| WebRtcChannel {
                peer_id: peer.to_string(),
                path: path.as_str().to_owned(),
            })
            .collect(),
    }))
}

pub(super) async fn open(
    State(s): State<ApiState>,
    ApiJson(o): ApiJson<OpenWebRtcChannel>,
) -> Result<Answer<OpenWebRtcChannel>, ApiError> {
    let peer = parse_peer(&o.peer_id)?;
    let path = s.network.create_webrtc_data_channel(peer).await?;
    Ok(Answer::new(WebRtcChannel {
        peer_id: peer.to_string(),
        path: path.as_str().to_owned(),
    }))
}

pub(super) async fn send(
    State(s): State<ApiState>,
    Path(peer): Path<String>,
    ApiJson(m): ApiJson<SendWebRtcMessage>,
) -> Result<Answer<SendWebRtcMessage>, ApiError> {
    let peer = parse_peer(&peer)?;
    let frame = to_frame(m.message())?;
    s.network.send_webrtc_message(&peer, frame).await?;
    Ok(Answer::new(()))
}

pub(super) async fn receive(
    State(s): State<ApiState>,
    Path(peer): Path<String>,
    ApiJson(r): ApiJson<ReceiveWebRtcMessage>,
) -> Result<Answer<ReceiveWebRtcMessage>, ApiError> {
    let peer = parse_peer(&peer)?;
    if r.wait_ms > MAX_RECEIVE_WAIT_MS {
        return Err(ApiError::bad_request(format!(
            "wait_ms: at most {MAX_RECEIVE_WAIT_MS}"
        )));
    }
    let message = s
        .network
        .receive_webrtc_message_within(&peer, Duration::from_millis(r.wait_ms))
        .await?;
    Ok(Answer::new(message.map(from_frame)))
}

pub(super) async fn close(
    State(s): State<ApiState>,
    Path(peer): Path<String>,
) -> Result<Answer<CloseWebRtcChannel>, ApiError> {
    let peer = parse_peer(&peer)?;
    if s.network.close_webrtc_channel(&peer) {
        Ok(Answer::new(()))
    } else {
        Err(WebRtcCommandError::ChannelClosed(peer).into())
    }
}
