//! Kademlia on `/darkswap/kad/1.0.0` finds a peer two hops away.

use darkswap_p2p::{Network, NetworkEvent, PeerId};
use darkswap_testkit::{EVENT_TIMEOUT, spawn_node, test_config, wait_for};
use libp2p::multiaddr::Protocol;

async fn wait_routing(net: &mut Network, peer: PeerId) {
    wait_for(net, "routing table update", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::RoutingUpdated { peer_id } if *peer_id == peer).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_a_peer_two_hops_away() {
    let (mut b, b_addr) = spawn_node(test_config()).await;
    let (c, _) = spawn_node(test_config()).await;
    let (mut a, _) = spawn_node(test_config()).await;
    let (a_id, c_id) = (a.local_peer_id(), c.local_peer_id());

    // c knows b; a knows b; a has never heard of c.
    c.dial(b_addr.clone()).await.unwrap();
    wait_routing(&mut b, c_id).await;
    a.dial(b_addr).await.unwrap();
    wait_routing(&mut a, b.local_peer_id()).await;
    assert!(!a.connected_peers().await.unwrap().contains(&c_id));

    let addrs = a.find_peer(c_id).await.unwrap();
    assert!(!addrs.is_empty());
    let addr = addrs[0].clone().with(Protocol::P2p(c_id));
    assert_eq!(a.dial(addr).await.unwrap(), c_id);
    assert!(a.connected_peers().await.unwrap().contains(&c_id));

    // An unknown peer is a typed error, not a hang.
    assert!(matches!(
        a.find_peer(PeerId::random()).await,
        Err(darkswap_p2p::Error::PeerNotFound(_))
    ));
    let _ = a_id;
    for n in [a, b, c] {
        n.shutdown().await.unwrap();
    }
}
