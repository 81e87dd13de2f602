//! The node's other transports, end to end: two nodes connect and gossip
//! over QUIC (`/udp/0/quic-v1`) and over the libp2p WebSocket transport
//! (`/tcp/0/ws`), each the only address either node has.

use darkswap_p2p::{Identity, Keypair, Multiaddr, Network};
use darkswap_testkit::{gossip_both_ways, test_config};
use libp2p::multiaddr::Protocol;

/// Node a listens on `listen` only, b listens nowhere and dials it; the
/// connection must run over `over`, and gossip must cross it both ways.
async fn two_nodes_gossip_over(listen: &str, over: fn(&Multiaddr) -> bool) {
    let (key_a, key_b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let config = |key: &Keypair| test_config().with_identity(Identity::Keypair(key.clone()));
    let mut a = Network::new(config(&key_a)).await.unwrap();
    let mut b = Network::new(config(&key_b)).await.unwrap();
    let a_id = a.local_peer_id();
    let addr = a.listen_on(listen).await.unwrap();
    assert!(over(&addr), "listening on {addr}");

    let full = addr.clone().with(Protocol::P2p(a_id));
    assert_eq!(b.dial(full).await.unwrap(), a_id);
    let peers = b.peers().await.unwrap();
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert!(
        over(&peers[0].address),
        "connected over {}",
        peers[0].address
    );

    gossip_both_ways(&mut a, &key_a, &mut b, &key_b).await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_connect_and_gossip_over_quic() {
    two_nodes_gossip_over("/ip4/127.0.0.1/udp/0/quic-v1", |a| {
        a.iter().any(|p| matches!(p, Protocol::QuicV1))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_connect_and_gossip_over_websocket() {
    two_nodes_gossip_over("/ip4/127.0.0.1/tcp/0/ws", |a| {
        a.iter().any(|p| matches!(p, Protocol::Ws(_)))
    })
    .await;
}
