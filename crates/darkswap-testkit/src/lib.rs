//! Test helpers shared by the DarkSwap crates: an in-process circuit relay,
//! ephemeral nodes on 127.0.0.1 port 0, and bounded waits on events.
//!
//! Everything here panics with a clear message instead of returning errors:
//! it is only for tests.

pub mod raw_trade;
pub mod trade;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use darkswap_p2p::{
    KadMode, Keypair, Network, NetworkConfig, NetworkEvent, ORDERBOOK_TOPIC, ReconnectConfig,
    TRADE_TOPIC,
};
use darkswap_proto::{Asset, Message, NewOrder, OrderCreate, PRICE_SCALE, Side};
use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, identify,
    multiaddr::Protocol,
    noise, ping, relay,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux,
};
use tokio::sync::oneshot;
use tokio_util::task::AbortOnDropHandle;

mod gossip;
pub mod netns;
mod process;
pub use gossip::{RawGossip, order_body, sign_raw_order};
pub use process::{RelayProcess, START_TIMEOUT, generate_certs, target_binary};
pub use raw_trade::RawTrader;

/// Default bound on waiting for one event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A node configuration for tests: no mDNS (tests must not find each other
/// across the machine), Kademlia in server mode (loopback addresses are
/// never confirmed external), short timeouts, and retries (relays, lost
/// peers) at most 2 s apart, so a test that waits for one to succeed after
/// an outage is not at the mercy of a 30 s back-off step.
pub fn test_config() -> NetworkConfig {
    NetworkConfig::default()
        .with_mdns(false)
        .with_kad_mode(KadMode::Server)
        .with_connection_timeout(Duration::from_secs(15))
        .with_relay_retry_initial(Duration::from_millis(200))
        .with_relay_retry_max(Duration::from_secs(2))
        .with_reconnect(ReconnectConfig {
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(2),
            ..ReconnectConfig::default()
        })
}

/// Starts a node listening on `127.0.0.1` TCP port 0; returns it and its
/// full address (`/ip4/127.0.0.1/tcp/<port>/p2p/<id>`).
pub async fn spawn_node(config: NetworkConfig) -> (Network, Multiaddr) {
    let network = Network::new(config).await.expect("start node");
    let addr = network
        .listen_on("/ip4/127.0.0.1/tcp/0")
        .await
        .expect("listen");
    let full = addr.with(Protocol::P2p(network.local_peer_id()));
    (network, full)
}

/// Waits for the first event `pick` maps to `Some`, skipping others; panics
/// after `timeout` naming `what`.
pub async fn wait_for<T>(
    network: &mut Network,
    what: &str,
    timeout: Duration,
    mut pick: impl FnMut(&NetworkEvent) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            match network.next_event().await {
                Some(event) => {
                    if let Some(v) = pick(&event) {
                        return v;
                    }
                }
                None => panic!("network stopped while waiting for {what}"),
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

#[derive(NetworkBehaviour)]
struct RelayBehaviour {
    relay: relay::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// A circuit relay v2 server running in the test process.
#[derive(Debug)]
pub struct TestRelay {
    /// The relay's peer id.
    pub peer_id: PeerId,
    /// Its TCP address including `/p2p/<peer id>`.
    pub addr: Multiaddr,
    /// Its key, to restart it with the same identity.
    pub keypair: Keypair,
    /// Each inbound connection: the peer and the address it came from.
    inbound: std::sync::Arc<std::sync::Mutex<Vec<(PeerId, Multiaddr)>>>,
    task: Option<AbortOnDropHandle<()>>,
}

impl TestRelay {
    /// Starts a relay with a fresh identity on 127.0.0.1, port 0.
    pub async fn spawn() -> Self {
        Self::spawn_with(
            Keypair::generate_ed25519(),
            "/ip4/127.0.0.1/tcp/0".parse().expect("addr"),
        )
        .await
    }

    /// Starts a relay with `keypair` listening on `listen` (to restart one on
    /// the port it had).
    pub async fn spawn_with(keypair: Keypair, listen: Multiaddr) -> Self {
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp")
            .with_behaviour(|key| RelayBehaviour {
                relay: relay::Behaviour::new(
                    key.public().to_peer_id(),
                    relay::Config {
                        max_circuit_duration: Duration::from_secs(600),
                        max_circuit_bytes: 16 * 1024 * 1024,
                        ..relay::Config::default()
                    },
                ),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/darkswap-test-relay/1".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::new(ping::Config::new()),
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        swarm.listen_on(listen).expect("relay listen");
        let peer_id = *swarm.local_peer_id();
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        let inbound = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = inbound.clone();
        let task = tokio::spawn(async move {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr { address, .. } => {
                        // A relay refuses reservations until it has an
                        // external address.
                        swarm.add_external_address(address.clone());
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(address);
                        }
                    }
                    SwarmEvent::ConnectionEstablished {
                        peer_id,
                        endpoint: libp2p::core::ConnectedPoint::Listener { send_back_addr, .. },
                        ..
                    } => seen
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((peer_id, send_back_addr)),
                    _ => {}
                }
            }
        });
        let addr = tokio::time::timeout(EVENT_TIMEOUT, rx)
            .await
            .expect("relay listen timed out")
            .expect("relay task ended");
        TestRelay {
            peer_id,
            addr: addr.with(Protocol::P2p(peer_id)),
            keypair,
            inbound,
            task: Some(AbortOnDropHandle::new(task)),
        }
    }

    /// The addresses `peer`'s connections to the relay came from, as the
    /// relay observed them.
    pub fn observed(&self, peer: PeerId) -> Vec<Multiaddr> {
        self.inbound
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(p, _)| *p == peer)
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// The listen address without the `/p2p/` suffix.
    pub fn socket_addr(&self) -> Multiaddr {
        let mut a = self.addr.clone();
        a.pop();
        a
    }

    /// Stops the relay and waits until its task (and so its listener) is gone.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// A bare swarm for raw test peers: TCP, Noise, Yamux, `behaviour`, and
/// connections kept for a minute when idle.
pub(crate) fn raw_swarm<B: NetworkBehaviour>(
    key: &Keypair,
    behaviour: impl FnOnce(&Keypair) -> B,
) -> libp2p::Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(key.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp transport")
        .with_behaviour(behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signed, unannounced order create by `key`, valid for 10 minutes.
pub fn order_message(key: &Keypair, nonce: u64) -> Message {
    let now = now();
    let order = NewOrder {
        side: Side::Sell,
        base: "rune:840000:3".parse().unwrap(),
        quote: Asset::Btc,
        amount: 1_000 + nonce,
        price: 25 * PRICE_SCALE,
        created_at: now,
        expires_at: now + 600,
        nonce,
    }
    .sign(key)
    .unwrap();
    Message::OrderCreate(OrderCreate::from_order(order))
}

/// `orders` signed order creates valid for an hour, `per_maker` by each
/// fresh maker key in turn: a book of market size, for sync tests and
/// benchmarks.
pub fn signed_creates(orders: usize, per_maker: usize) -> Vec<OrderCreate> {
    let now = now();
    let per_maker = per_maker.max(1);
    let mut key = Keypair::generate_ed25519();
    (0..orders)
        .map(|i| {
            if i > 0 && i % per_maker == 0 {
                key = Keypair::generate_ed25519();
            }
            let nonce = i as u64;
            let order = NewOrder {
                side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
                base: "rune:840000:3".parse().expect("a valid asset"),
                quote: Asset::Btc,
                amount: 1_000 + nonce,
                price: (20 + nonce % 10) * PRICE_SCALE,
                created_at: now,
                expires_at: now + 3600,
                nonce,
            }
            .sign(&key)
            .expect("an ed25519 key signs");
            OrderCreate::from_order(order)
        })
        .collect()
}

/// Waits until `peer` has subscribed to both DarkSwap topics.
pub async fn wait_subscribed(net: &mut Network, peer: PeerId) {
    let mut missing: std::collections::HashSet<&str> = [ORDERBOOK_TOPIC, TRADE_TOPIC].into();
    wait_for(
        net,
        &format!("{peer} subscribed to the DarkSwap topics"),
        EVENT_TIMEOUT,
        |e| {
            if let NetworkEvent::PeerSubscribed { peer_id, topic } = e
                && *peer_id == peer
            {
                missing.remove(topic.as_str());
            }
            missing.is_empty().then_some(())
        },
    )
    .await
}

/// Waits for a message from `from` on `topic` and returns it.
pub async fn wait_message(net: &mut Network, from: PeerId, topic: &str) -> Message {
    wait_for(
        net,
        &format!("message from {from} on {topic}"),
        EVENT_TIMEOUT,
        |e| match e {
            NetworkEvent::MessageReceived {
                peer_id,
                topic: t,
                message,
            } if *peer_id == from && t == topic => Some(message.clone()),
            _ => None,
        },
    )
    .await
}

/// Waits until `a` and `b` (signing with `key_a` and `key_b`) have
/// subscribed to each other's topics, then has each publish an order and
/// asserts that the other receives it: the two nodes gossip both ways.
pub async fn gossip_both_ways(a: &mut Network, key_a: &Keypair, b: &mut Network, key_b: &Keypair) {
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    wait_subscribed(a, b_id).await;
    wait_subscribed(b, a_id).await;
    let from_a = order_message(key_a, 1);
    a.publish(ORDERBOOK_TOPIC, &from_a).await.unwrap();
    assert_eq!(wait_message(b, a_id, ORDERBOOK_TOPIC).await, from_a);
    let from_b = order_message(key_b, 2);
    b.publish(ORDERBOOK_TOPIC, &from_b).await.unwrap();
    assert_eq!(wait_message(a, b_id, ORDERBOOK_TOPIC).await, from_b);
}
