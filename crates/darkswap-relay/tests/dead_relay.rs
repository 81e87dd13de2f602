//! A relay that dies without a word (`kill -9`) over QUIC, where nothing
//! tells the node: it must notice within seconds, not report a dead
//! reservation as held, and reserve again once the relay is back on its
//! address.
#![cfg(feature = "server")]

use std::{path::Path, time::Duration};

use darkswap_p2p::{Network, NetworkEvent};
use darkswap_testkit::{EVENT_TIMEOUT, RelayProcess, test_config, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_darkswap-relay");

/// The relay binary on loopback, QUIC on `port` (0: the OS chooses).
fn relay_on_quic(dir: &Path, port: u16) -> RelayProcess {
    let mut args = RelayProcess::loopback_args(dir);
    args.extend([
        "--listen".to_owned(),
        format!("/ip4/127.0.0.1/udp/{port}/quic-v1"),
    ]);
    RelayProcess::start(Path::new(BIN), &args, &[])
}

async fn wait_reserved(node: &mut Network, relay: darkswap_p2p::PeerId, limit: Duration) {
    wait_for(node, "the reservation", limit, |e| {
        matches!(e, NetworkEvent::RelayReserved { relay_peer_id, .. } if *relay_peer_id == relay)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_on_quic_is_noticed_within_seconds_and_reserved_on_again_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = relay_on_quic(dir.path(), 0);
    let quic = relay.quic_addr.clone().expect("a QUIC listener");
    let port = quic
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Udp(port) => Some(port),
            _ => None,
        })
        .expect("a UDP port");
    let mut node = Network::new(test_config().with_relay_peers(vec![quic.clone()]))
        .await
        .unwrap();
    wait_reserved(&mut node, relay.peer_id, EVENT_TIMEOUT).await;

    // kill -9: no CONNECTION_CLOSE, no reply to anything from now on. The
    // node's QUIC idle timeout (5 s of silence, keep-alives every 1.5 s)
    // ends the connection and with it the reservation; 8 s is the bound
    // the "within seconds" gets here, quinn's default took 11–15.
    relay.child.kill().unwrap();
    relay.child.wait().unwrap();
    let relay_id = relay.peer_id;
    wait_for(&mut node, "the lost reservation", Duration::from_secs(8), |e| {
        matches!(e, NetworkEvent::RelayReservationLost { relay_peer_id } if *relay_peer_id == relay_id)
            .then_some(())
    })
    .await;
    let status = node.relay_status().await.unwrap();
    assert!(status.iter().all(|s| !s.reserved), "{status:?}");

    // The same relay back on the same address: reserved on again (the
    // keeper retries with a backoff of at most 2 s in the test config).
    drop(relay);
    let relay = relay_on_quic(dir.path(), port);
    assert_eq!(relay.peer_id, relay_id, "the same key from its data dir");
    wait_reserved(&mut node, relay_id, Duration::from_secs(10)).await;
    node.shutdown().await.unwrap();
}
