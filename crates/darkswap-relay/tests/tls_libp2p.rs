//! libp2p over WebSocket with TLS (`/tls/ws`) to the real `darkswap-relay`
//! binary serving a certificate made by `deploy/generate-certs.sh`. The
//! client is a bare rust-libp2p swarm (WebSocket over TCP, Noise, Yamux,
//! the relay client and identify): the SDK's WebSocket transport trusts the
//! public web roots only, so it cannot be pointed at a private CA.
#![cfg(feature = "server")]

use std::time::Duration;

use futures::StreamExt;
use libp2p::{
    Multiaddr, Swarm, Transport,
    core::upgrade::Version,
    dns, identify, identity,
    multiaddr::Protocol,
    noise, relay,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, websocket, yamux,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, pem::PemObject};

use support::*;

#[path = "support/tls.rs"]
mod support;

#[derive(NetworkBehaviour)]
struct Client {
    relay: relay::client::Behaviour,
    identify: identify::Behaviour,
}

/// A node whose WebSocket transport uses `tls` (its client half).
fn node(tls: websocket::tls::Config) -> Swarm<Client> {
    let key = identity::Keypair::generate_ed25519();
    let peer = key.public().to_peer_id();
    let (relay_transport, relay) = relay::client::new(peer);
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let mut ws = websocket::Config::new(dns::tokio::Transport::system(tcp).unwrap());
    ws.set_tls_config(tls);
    let transport = relay_transport
        .or_transport(ws)
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(&key).unwrap())
        .multiplex(yamux::Config::default())
        .boxed();
    let identify = identify::Behaviour::new(identify::Config::new(
        darkswap_p2p::IDENTIFY_PROTOCOL_VERSION.to_owned(),
        key.public(),
    ));
    Swarm::new(
        transport,
        Client { relay, identify },
        peer,
        libp2p::swarm::Config::with_tokio_executor()
            .with_idle_connection_timeout(Duration::from_secs(30)),
    )
}

/// libp2p-websocket's client configuration trusting the public web roots
/// and the CA in `certs`.
fn trusting(certs: &Certs) -> websocket::tls::Config {
    let ca = CertificateDer::from_pem_slice(&certs.ca_pem()).unwrap();
    let mut builder = websocket::tls::Config::builder();
    builder
        .add_trust(&websocket::tls::Certificate::new(ca.to_vec()))
        .unwrap();
    builder.finish()
}

fn is_tls_websocket(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::Tls))
        && addr.iter().any(|p| matches!(p, Protocol::Ws(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_trusting_the_ca_reserves_on_the_relay_over_tls_websocket_and_sees_it_announced() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(&dir.path().join("certs"), &["--hosts", "127.0.0.1"]);
    let relay = start_tls_relay(&dir.path().join("relay"), &certs, &[]);
    let wss = relay.wss_addr.clone().expect("a /tls/ws listener");
    assert!(is_tls_websocket(&wss), "{wss}");

    let mut client = node(trusting(&certs));
    client
        .listen_on(wss.clone().with(Protocol::P2pCircuit))
        .unwrap();
    let (mut reserved, mut announced, mut over_tls) = (false, Vec::new(), false);
    let waited = tokio::time::timeout(WAIT, async {
        while !(reserved && over_tls && !announced.is_empty()) {
            match client.select_next_some().await {
                SwarmEvent::ConnectionEstablished {
                    peer_id, endpoint, ..
                } if peer_id == relay.peer_id => {
                    over_tls = is_tls_websocket(endpoint.get_remote_address());
                }
                SwarmEvent::Behaviour(ClientEvent::Relay(
                    relay::client::Event::ReservationReqAccepted { relay_peer_id, .. },
                )) => {
                    assert_eq!(relay_peer_id, relay.peer_id);
                    reserved = true;
                }
                SwarmEvent::Behaviour(ClientEvent::Identify(identify::Event::Received {
                    peer_id,
                    info,
                    ..
                })) if peer_id == relay.peer_id => {
                    announced = info.listen_addrs;
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    panic!("dial failed: {error}")
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "reserved {reserved}, over TLS {over_tls}, announced {announced:?}"
    );
    // Its identify tells every peer of the /tls/ws address, port and all.
    let bound: Multiaddr = wss
        .iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect();
    assert!(announced.contains(&bound), "{announced:?} lacks {bound}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_only_the_public_roots_cannot_dial_the_relay_over_tls_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(&dir.path().join("certs"), &["--hosts", "127.0.0.1"]);
    let relay = start_tls_relay(&dir.path().join("relay"), &certs, &[]);
    let wss = relay.wss_addr.clone().expect("a /tls/ws listener");

    let mut client = node(websocket::tls::Config::client());
    client.dial(wss).unwrap();
    let error = tokio::time::timeout(WAIT, async {
        loop {
            match client.select_next_some().await {
                SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                    assert_eq!(peer_id, Some(relay.peer_id));
                    break error;
                }
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    panic!("connected to {peer_id} without trusting its CA")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the dial ends in time");
    let chain = {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(e) = source {
            text.push_str(&format!(": {e}"));
            source = e.source();
        }
        text
    };
    assert!(chain.contains("UnknownIssuer"), "{chain}");
}
