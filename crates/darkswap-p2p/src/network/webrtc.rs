//! WebRTC data channels on the handle (seed 003's Rust usage, native only):
//! a node reaches a browser or native peer registered on the same relay's
//! signaling server, over WebRTC or, when WebRTC cannot connect, an end-to-end
//! encrypted circuit through the relay. Needs
//! [`NetworkConfig::webrtc_signaling`](crate::NetworkConfig::webrtc_signaling).

use std::{sync::Arc, time::Duration};

use darkswap_webrtc::{ConnectionPath, ConnectionState, DataMessage, WebRtcError};
use libp2p::PeerId;

use super::NetworkHandle;
use crate::{
    error::{CommandError, WebRtcCommandError},
    webrtc_channels::WebRtcChannels,
};

impl NetworkHandle {
    fn webrtc(&self) -> Result<Arc<WebRtcChannels>, WebRtcCommandError> {
        self.webrtc
            .as_ref()
            .ok_or(WebRtcCommandError::Disabled)?
            .upgrade()
            .ok_or(WebRtcCommandError::Command(CommandError::Shutdown))
    }

    /// Waits (within the network's timeout) until a signaling relay took
    /// this node's registration, so that peers can open channels to it.
    pub async fn wait_for_webrtc_signaling(&self) -> Result<(), WebRtcCommandError> {
        self.webrtc()?.registered(self.timeout).await
    }

    /// Opens a data channel to `peer_id` (or finds the open one): WebRTC
    /// first, a relayed circuit if WebRTC does not connect. Returns which.
    /// The peer must be registered on one of this node's signaling relays.
    pub async fn create_webrtc_data_channel(
        &self,
        peer_id: PeerId,
    ) -> Result<ConnectionPath, WebRtcCommandError> {
        let conn = self.webrtc()?.open(peer_id, self.timeout).await?;
        Ok(conn.path())
    }

    /// Sends one message to `peer_id` (bytes as a binary frame, a string as
    /// a text frame, as a page's `RTCDataChannel` tells them apart), opening
    /// the channel first if there is none.
    pub async fn send_webrtc_message(
        &self,
        peer_id: &PeerId,
        message: impl Into<DataMessage>,
    ) -> Result<(), WebRtcCommandError> {
        let conn = self.webrtc()?.open(*peer_id, self.timeout).await?;
        conn.send_message(message.into())
            .await
            .map_err(|e| match e {
                WebRtcError::Closed => WebRtcCommandError::ChannelClosed(*peer_id),
                e => e.into(),
            })
    }

    /// The next message from `peer_id`, waiting (within the network's
    /// timeout) for a channel, opened by either side, and for the message.
    pub async fn receive_webrtc_message(
        &self,
        peer_id: &PeerId,
    ) -> Result<DataMessage, WebRtcCommandError> {
        self.receive_webrtc_message_within(peer_id, self.timeout)
            .await?
            .ok_or(CommandError::Timeout(self.timeout).into())
    }

    /// The next message from `peer_id`, waiting at most `wait` for a
    /// channel, opened by either side, and for the message: `None` if none
    /// came (a long poll). Messages the peer sent before it closed the
    /// channel are still read; then [`WebRtcCommandError::ChannelClosed`].
    pub async fn receive_webrtc_message_within(
        &self,
        peer_id: &PeerId,
        wait: Duration,
    ) -> Result<Option<DataMessage>, WebRtcCommandError> {
        let channels = self.webrtc()?;
        let deadline = tokio::time::Instant::now() + wait;
        let Some(conn) = channels.wait(*peer_id, deadline).await else {
            return Ok(None);
        };
        match tokio::time::timeout_at(deadline, conn.receive()).await {
            Ok(Ok(message)) => Ok(Some(message)),
            Ok(Err(WebRtcError::Closed)) => {
                channels.forget_closed(peer_id);
                Err(WebRtcCommandError::ChannelClosed(*peer_id))
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Ok(None),
        }
    }

    /// The peers this node has an open WebRTC channel with, and whether
    /// each is direct or relayed.
    pub fn webrtc_channels(&self) -> Vec<(PeerId, ConnectionPath)> {
        self.webrtc().map(|c| c.peers()).unwrap_or_default()
    }

    /// Each signaling relay's URL and the state of this node's
    /// registration there (`Connected` once it holds; none with WebRTC off).
    pub fn webrtc_signaling_relays(&self) -> Vec<(String, ConnectionState)> {
        self.webrtc().map(|c| c.relays()).unwrap_or_default()
    }

    /// Closes the channel to `peer_id`; `false` if there was none.
    pub fn close_webrtc_channel(&self, peer_id: &PeerId) -> bool {
        self.webrtc().is_ok_and(|c| c.close(peer_id))
    }
}
