//! What the WebRTC tests against a relay process share.

use std::sync::Arc;

use darkswap_testkit::RelayProcess;
use darkswap_webrtc::{
    Keypair, PeerId, WebRtcConfig, WebRtcConnectionManager, WebRtcSignalingClient,
};

/// The relay's signaling URL.
pub(crate) fn signaling_url(relay: &RelayProcess) -> String {
    format!("ws://{}/signaling", relay.signaling.expect("signaling on"))
}

/// A peer with a fresh key registered at `url`, and its id.
pub(crate) async fn peer(url: &str, config: WebRtcConfig) -> (WebRtcConnectionManager, PeerId) {
    let signaling = Arc::new(WebRtcSignalingClient::new(Keypair::generate_ed25519()));
    signaling.connect(url).await.unwrap();
    let id = signaling.local_peer_id();
    (WebRtcConnectionManager::new(signaling, config), id)
}
