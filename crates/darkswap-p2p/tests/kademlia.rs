//! Kademlia on `/darkswap/kad/1.0.0` finds a peer two hops away, and
//! never hands out a peer that does not serve the DHT.

use darkswap_p2p::{Error, Network, NetworkEvent, PeerId};
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

    // c knows b; a knows b; a was told nothing of c. (Kademlia's own
    // bootstrap, run when b joins a's table, may meet c through b before
    // the look-up below: that is the DHT at work too, so it is not
    // asserted against.)
    c.dial(b_addr.clone()).await.unwrap();
    wait_routing(&mut b, c_id).await;
    a.dial(b_addr).await.unwrap();
    wait_routing(&mut a, b.local_peer_id()).await;

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

/// `b` bootstraps from `r`, a relay that serves no DHT. Once identify
/// shows that, `b` drops `r` from its routing table, so `a`, walking the
/// DHT through `b`, is never sent to dial a peer that cannot answer it.
/// (`r` runs no Kademlia at all: as a DHT client it would announce itself
/// as a relay, and storing that record at `a` would connect it to `a`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_peer_that_serves_no_dht_is_not_handed_out() {
    let (r, r_addr) = spawn_node(test_config().with_relay_hop(true).with_kad(false)).await;
    let mut listen = r_addr.clone();
    listen.pop();
    r.add_external_address(listen).await.unwrap();
    let r_id = r.local_peer_id();
    let (mut b, b_addr) = spawn_node(test_config().with_bootstrap_peers(vec![r_addr])).await;
    // b reserves on r only after identify from r, the same event that
    // tells it r serves no DHT.
    wait_for(&mut b, "RelayReserved", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::RelayReserved { relay_peer_id, .. } if *relay_peer_id == r_id)
            .then_some(())
    })
    .await;

    // a's relay pool would look r up as a relay provider and dial it.
    let mut config = test_config();
    config.relay.enabled = false;
    let (mut a, _) = spawn_node(config).await;
    a.dial(b_addr).await.unwrap();
    wait_routing(&mut a, b.local_peer_id()).await;
    // A whole walk, to its end: it asks b, and b names nobody a could not
    // ask in turn.
    assert!(matches!(
        a.find_peer(PeerId::random()).await,
        Err(Error::PeerNotFound(_))
    ));
    assert!(matches!(
        a.find_peer(r_id).await,
        Err(Error::PeerNotFound(_))
    ));
    assert!(!a.connected_peers().await.unwrap().contains(&r_id));
    for n in [a, b, r] {
        n.shutdown().await.unwrap();
    }
}
