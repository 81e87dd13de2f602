//! mDNS discovery for real: two nodes with mDNS on, neither told about the
//! other, find each other and gossip; one of them serves as a relay, and the
//! other takes it as one found by mDNS and reserves on it. Every other test turns mDNS off (it
//! would find whatever else runs on the machine), so this one runs in a
//! network namespace of its own, with a veth pair for multicast to cross:
//! the test re-runs its own binary inside the namespace (`ip netns exec`)
//! to run the nodes there. Needs root (CI runs as root); fails without it
//! unless `DARKSWAP_SKIP_NETNS_TESTS` is set.

use std::time::Duration;

use darkswap_p2p::{
    Identity, Keypair, Multiaddr, Network, NetworkEvent, ORDERBOOK_TOPIC, PeerId, RelaySource,
};
use darkswap_testkit::{
    EVENT_TIMEOUT,
    netns::{Netns, is_root, run_with_timeout},
    order_message, test_config, wait_for, wait_message, wait_subscribed,
};
use libp2p::multiaddr::Protocol;

/// Set in the environment of the run inside the namespace.
const INSIDE: &str = "DARKSWAP_MDNS_TEST_INSIDE";
/// Set to skip the test when not root.
const SKIP: &str = "DARKSWAP_SKIP_NETNS_TESTS";
/// The test run inside the namespace.
const NODES_TEST: &str = "two_nodes_with_mdns_in_this_namespace_find_each_other_and_gossip";

#[test]
fn two_nodes_with_mdns_find_each_other_in_a_network_namespace() {
    if !is_root() {
        // A skipped test proves nothing, so skipping is asked for, not
        // assumed: CI runs as root.
        assert!(
            std::env::var_os(SKIP).is_some(),
            "creating a network namespace needs root; set {SKIP}=1 to skip this test"
        );
        eprintln!("skipped ({SKIP} is set): creating a network namespace needs root");
        return;
    }
    let ns = Netns::new("mdns");
    // Two addresses on one link: each node answers on both, and the
    // queries and answers cross the veth pair as multicast.
    ns.ip(&[
        "link", "add", "mdns0", "type", "veth", "peer", "name", "mdns1",
    ]);
    for (dev, addr) in [("mdns0", "10.77.0.1/24"), ("mdns1", "10.77.0.2/24")] {
        ns.ip(&["addr", "add", addr, "dev", dev]);
        ns.ip(&["link", "set", dev, "up"]);
    }
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = ns.command(exe.to_str().expect("utf-8 path"));
    cmd.args([NODES_TEST, "--exact", "--ignored", "--nocapture"])
        .env(INSIDE, "1");
    let run = run_with_timeout(cmd, Duration::from_secs(90));
    assert!(
        run.status.success() && run.output.contains("1 passed"),
        "the nodes inside the namespace failed:\n{}",
        run.output
    );
}

async fn mdns_node(key: &Keypair) -> Network {
    mdns_node_with(key, test_config()).await.0
}

/// A node with mDNS on `config`, listening on every address of the
/// namespace (mDNS answers with the addresses of the interface a query came
/// in on, never loopback); with its listen address.
async fn mdns_node_with(
    key: &Keypair,
    config: darkswap_p2p::NetworkConfig,
) -> (Network, Multiaddr) {
    let network = Network::new(
        config
            .with_mdns(true)
            .with_identity(Identity::Keypair(key.clone())),
    )
    .await
    .expect("start node");
    let addr = network
        .listen_on("/ip4/0.0.0.0/tcp/0")
        .await
        .expect("listen");
    (network, addr)
}

async fn wait_connected(net: &mut Network, peer: PeerId) {
    wait_for(
        net,
        &format!("{peer} found and connected"),
        EVENT_TIMEOUT,
        |e| matches!(e, NetworkEvent::PeerConnected(p) if *p == peer).then_some(()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run inside its namespace by two_nodes_with_mdns_find_each_other_in_a_network_namespace"]
async fn two_nodes_with_mdns_in_this_namespace_find_each_other_and_gossip() {
    assert!(
        std::env::var_os(INSIDE).is_some(),
        "run by two_nodes_with_mdns_find_each_other_in_a_network_namespace inside a namespace"
    );
    let (key_a, key_b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    // a serves as a relay on its namespace address.
    let (mut a, a_listen) = mdns_node_with(&key_a, test_config().with_relay_hop(true)).await;
    let port = a_listen.iter().find_map(|p| match p {
        Protocol::Tcp(port) => Some(port),
        _ => None,
    });
    let external: Multiaddr = format!("/ip4/10.77.0.1/tcp/{}", port.expect("tcp port"))
        .parse()
        .unwrap();
    a.add_external_address(external).await.unwrap();
    let mut b = mdns_node(&key_b).await;
    let (a_id, b_id) = (a.local_peer_id(), b.local_peer_id());
    // Nobody dials: mDNS finds the peer and the node dials what it found.
    wait_connected(&mut a, b_id).await;
    wait_connected(&mut b, a_id).await;
    wait_subscribed(&mut a, b_id).await;
    // b learns a is a relay (found by mDNS) and reserves on it by itself;
    // those and a's subscription come in any order.
    let (mut subscribed, mut discovered) = (false, false);
    while !(subscribed && discovered) {
        wait_for(
            &mut b,
            "a subscribed and found as a relay",
            EVENT_TIMEOUT,
            |e| {
                match e {
                    NetworkEvent::PeerSubscribed { peer_id, topic }
                        if *peer_id == a_id && topic == ORDERBOOK_TOPIC =>
                    {
                        subscribed = true
                    }
                    NetworkEvent::RelayDiscovered {
                        relay_peer_id,
                        source,
                    } if *relay_peer_id == a_id => {
                        assert_eq!(*source, RelaySource::Mdns);
                        discovered = true
                    }
                    _ => return None,
                }
                Some(())
            },
        )
        .await;
    }
    wait_for(&mut b, "a reservation on a", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::RelayReserved { relay_peer_id, .. } if *relay_peer_id == a_id)
            .then_some(())
    })
    .await;
    let order = order_message(&key_a, 1);
    a.publish(ORDERBOOK_TOPIC, &order).await.unwrap();
    assert_eq!(wait_message(&mut b, a_id, ORDERBOOK_TOPIC).await, order);
    let peers = b.peers().await.unwrap();
    assert!(
        peers
            .iter()
            .any(|p| p.peer_id == a_id && p.address.to_string().starts_with("/ip4/10.77.0.")),
        "connected over the namespace's link: {peers:?}"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
