//! Shutdown is clean, identities persist, and `/perf/1.0.0` measures.

use std::time::Duration;

use darkswap_p2p::{CommandError, Error, Identity, Network, NetworkEvent, PerfError};
use darkswap_testkit::{EVENT_TIMEOUT, spawn_node, test_config, wait_for};
use libp2p::multiaddr::Protocol;

fn tcp_port(addr: &libp2p::Multiaddr) -> u16 {
    addr.iter()
        .find_map(|p| {
            if let Protocol::Tcp(port) = p {
                Some(port)
            } else {
                None
            }
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_everything_and_leaves_no_task() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let (a, a_addr) = spawn_node(test_config().with_perf(true)).await;
    let (mut b, _) = spawn_node(test_config()).await;
    let a_id = a.local_peer_id();
    b.dial(a_addr.clone()).await.unwrap();
    assert!(metrics.num_alive_tasks() > baseline);

    let handle = a.handle();
    a.shutdown().await.unwrap();
    wait_for(&mut b, "a disconnected", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::PeerDisconnected(p) if *p == a_id).then_some(())
    })
    .await;
    assert!(matches!(
        handle.connected_peers().await,
        Err(Error::Command(CommandError::Shutdown))
    ));
    assert!(matches!(
        handle
            .publish("t", &darkswap_proto::Message::Ping(Default::default()))
            .await,
        Err(Error::Command(CommandError::Shutdown))
    ));
    // The listener is gone: its port can be bound again.
    std::net::TcpListener::bind(("127.0.0.1", tcp_port(&a_addr))).expect("port released");

    b.shutdown().await.unwrap();
    // Connection tasks end right after their swarm; bounded wait for them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metrics.num_alive_tasks() > baseline {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} tasks outlived the networks",
            metrics.num_alive_tasks() - baseline
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_file_gives_a_stable_peer_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.key");
    let config = || test_config().with_identity(Identity::File(path.clone()));
    let first = Network::new(config()).await.unwrap();
    let id = first.local_peer_id();
    first.shutdown().await.unwrap();
    let second = Network::new(config()).await.unwrap();
    assert_eq!(second.local_peer_id(), id);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    second.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_protocol_measures_both_directions() {
    let (a, _) = spawn_node(test_config().with_perf(true)).await;
    let (b, b_addr) = spawn_node(test_config().with_perf(true)).await;
    let b_id = a.dial(b_addr).await.unwrap();
    let report = a.perf(b_id, 1 << 20, 2 << 20).await.unwrap();
    assert_eq!((report.uploaded, report.downloaded), (1 << 20, 2 << 20));
    assert!(report.upload_bps() > 0.0 && report.download_bps() > 0.0);

    let (c, _) = spawn_node(test_config()).await;
    assert!(matches!(c.perf(b_id, 1, 1).await, Err(PerfError::Disabled)));
    for n in [a, b, c] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_on_a_taken_port_is_an_error() {
    let (a, a_addr) = spawn_node(test_config()).await;
    let b = Network::new(test_config()).await.unwrap();
    let taken = format!("/ip4/127.0.0.1/tcp/{}", tcp_port(&a_addr));
    assert!(matches!(
        b.listen_on(taken.as_str()).await,
        Err(Error::Listen { .. })
    ));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_refused_and_admitted_peers_stay() {
    use darkswap_p2p::ConnectionLimits;

    let (mut hub, hub_addr) = spawn_node(test_config().with_connection_limits(ConnectionLimits {
        max_established: 2,
        ..ConnectionLimits::default()
    }))
    .await;
    let hub_id = hub.local_peer_id();
    let a = Network::new(test_config()).await.unwrap();
    let b = Network::new(test_config()).await.unwrap();
    assert_eq!(a.dial(hub_addr.clone()).await.unwrap(), hub_id);
    assert_eq!(b.dial(hub_addr.clone()).await.unwrap(), hub_id);
    // A dialer's side is up before the listener's: wait until the hub
    // counts both, or an extra peer could take a slot first.
    let mut pending = vec![a.local_peer_id(), b.local_peer_id()];
    wait_for(
        &mut hub,
        "a and b connected to the hub",
        EVENT_TIMEOUT,
        |e| {
            if let NetworkEvent::PeerConnected(p) = e {
                pending.retain(|q| q != p);
            }
            pending.is_empty().then_some(())
        },
    )
    .await;
    for _ in 0..5 {
        let mut extra = Network::new(test_config()).await.unwrap();
        // Refused once Noise names the dialer: it may see the connection
        // open and then close at once, never stay.
        if extra.dial(hub_addr.clone()).await.is_ok() {
            wait_for(
                &mut extra,
                "the hub drops the connection",
                EVENT_TIMEOUT,
                |e| matches!(e, NetworkEvent::PeerDisconnected(p) if *p == hub_id).then_some(()),
            )
            .await;
        }
        extra.shutdown().await.unwrap();
    }
    let mut peers = hub.connected_peers().await.unwrap();
    peers.sort();
    let mut admitted = vec![a.local_peer_id(), b.local_peer_id()];
    admitted.sort();
    assert_eq!(peers, admitted, "only the two admitted peers are connected");

    let bad = Network::new(test_config().with_connection_limits(ConnectionLimits {
        max_memory_fraction: 1.5,
        ..ConnectionLimits::default()
    }))
    .await;
    assert!(bad.unwrap_err().to_string().contains("max_memory_fraction"));
}
