//! A raw libp2p gossipsub peer that publishes whatever bytes a test gives it,
//! and hand-signed orders whose terms no honest node would sign.

use std::time::Duration;

use darkswap_p2p::{Keypair, gossipsub_behaviour};
use darkswap_proto::{MAX_MESSAGE_SIZE, OrderBody, SignedOrder};
use futures::StreamExt;
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, swarm::SwarmEvent};
use prost::Message as _;
use tokio_util::task::AbortOnDropHandle;

use crate::EVENT_TIMEOUT;

/// A gossipsub peer with no DarkSwap validation of its own: it signs its
/// gossipsub messages correctly, so receivers judge only the payload.
#[allow(missing_debug_implementations)]
pub struct RawGossip {
    /// Its identity.
    pub key: Keypair,
    swarm: Swarm<gossipsub::Behaviour>,
}

impl RawGossip {
    /// A new peer with a fresh key, subscribed to `topics`.
    pub fn new(topics: &[&str]) -> Self {
        let key = Keypair::generate_ed25519();
        let mut swarm = crate::raw_swarm(&key, |key| {
            gossipsub_behaviour(key, MAX_MESSAGE_SIZE).expect("gossipsub")
        });
        for t in topics {
            swarm
                .behaviour_mut()
                .subscribe(&gossipsub::IdentTopic::new(*t))
                .expect("subscribe");
        }
        RawGossip { key, swarm }
    }

    /// Its peer id.
    pub fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Dials `addrs` and drives the swarm until every peer in `peers` has
    /// subscribed to `topic`.
    pub async fn connect(&mut self, addrs: &[Multiaddr], peers: &[PeerId], topic: &str) {
        for a in addrs {
            self.swarm.dial(a.clone()).expect("dial");
        }
        let mut missing: std::collections::HashSet<PeerId> = peers.iter().copied().collect();
        let wait = async {
            while !missing.is_empty() {
                if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed { peer_id, topic: t }) =
                    self.swarm.select_next_some().await
                    && t.as_str() == topic
                {
                    missing.remove(&peer_id);
                }
            }
        };
        tokio::time::timeout(EVENT_TIMEOUT, wait)
            .await
            .expect("peers subscribed to the raw gossip peer's topic");
    }

    /// Drives the swarm until a gossip message arrives on `topic`; its
    /// data. Panics after [`EVENT_TIMEOUT`].
    pub async fn next_message(&mut self, topic: &str) -> Vec<u8> {
        let wait = async {
            loop {
                if let SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) =
                    self.swarm.select_next_some().await
                    && message.topic.as_str() == topic
                {
                    return message.data;
                }
            }
        };
        tokio::time::timeout(EVENT_TIMEOUT, wait)
            .await
            .expect("a gossip message on the topic")
    }

    /// Publishes `data` on `topic` as is.
    pub fn publish(&mut self, topic: &str, data: Vec<u8>) {
        self.swarm
            .behaviour_mut()
            .publish(gossipsub::IdentTopic::new(topic), data)
            .expect("publish");
    }

    /// Keeps the swarm running in the background (so published messages go
    /// out and connections stay up) until the returned handle is dropped.
    pub fn run(mut self) -> AbortOnDropHandle<()> {
        AbortOnDropHandle::new(tokio::spawn(async move {
            loop {
                self.swarm.select_next_some().await;
            }
        }))
    }

    /// Keeps the swarm running in the background and publishes `make(n)`
    /// on `topic` every `every` (n = 0, 1, 2, ...), until the returned
    /// handle is dropped: a flood. Publish errors (no peer left, say once it
    /// is banned) are ignored.
    pub fn flood(
        mut self,
        topic: &str,
        every: Duration,
        mut make: impl FnMut(u64) -> Vec<u8> + Send + 'static,
    ) -> AbortOnDropHandle<()> {
        let topic = gossipsub::IdentTopic::new(topic);
        AbortOnDropHandle::new(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut n = 0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let _ = self.swarm.behaviour_mut().publish(topic.clone(), make(n));
                        n += 1;
                    }
                    _ = self.swarm.select_next_some() => {}
                }
            }
        }))
    }
}

/// Signs `body` with `key` exactly as [`darkswap_proto::NewOrder::sign`]
/// does, but without checking its terms: an order a malicious maker could send.
pub fn sign_raw_order(key: &Keypair, body: &OrderBody) -> SignedOrder {
    let body = body.encode_to_vec();
    let signature = key
        .sign(&[b"darkswap/order/v1".as_slice(), &body].concat())
        .expect("sign");
    SignedOrder {
        body,
        public_key: key.public().encode_protobuf(),
        signature,
    }
}

/// The body of a valid sell order by `key`, valid for ten minutes.
pub fn order_body(key: &Keypair, nonce: u64) -> OrderBody {
    let now = crate::now();
    OrderBody {
        maker: key.public().to_peer_id().to_bytes(),
        // SIDE_SELL in messages.proto.
        side: 2,
        base: "rune:840000:3".into(),
        quote: "BTC".into(),
        amount: 1_000,
        price: darkswap_proto::PRICE_SCALE,
        created_at: now,
        expires_at: now + 600,
        nonce,
    }
}
