//! Two native peers on a relay's signaling plane, one of which WebRTC cannot
//! reach (it gathers no ICE candidate, as behind a firewall that drops UDP):
//! the other's WebRTC attempt times out and the connection falls back to a
//! circuit through the relay's `/relay` endpoint, end-to-end encrypted, so
//! the relay forwards only ciphertext.
//!
//! ```sh
//! cargo run -p darkswap-webrtc --example relay_example                               # its own signaling server
//! cargo run -p darkswap-webrtc --example relay_example /ip4/127.0.0.1/tcp/9001/ws  # a running relay's public port
//! ```
//!
//! Exits non-zero unless both messages cross the circuit.

use std::{sync::Arc, time::Duration};

use darkswap_relay::{
    SignalingServer, config::RelayConfig, metrics::SecurityMetrics, token_authority::TokenAuthority,
};
use darkswap_webrtc::{
    ConnectionPath, DataMessage, IceTransportPolicy, Keypair, RelayManager, WebRtcConfig,
};
use multiaddr::Multiaddr;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cancel = CancellationToken::new();
    // The relay: the one named, or a signaling server of our own.
    let (relay, server): (Multiaddr, _) = match std::env::args().nth(1) {
        Some(addr) => (addr.parse()?, None),
        None => {
            let mut config = RelayConfig::default();
            config.signaling.listen = "127.0.0.1:0".parse()?;
            let mut registry = Registry::default();
            let authority = Arc::new(TokenAuthority::new(
                &Keypair::generate_ed25519(),
                config.tokens.clone(),
                None,
                Arc::new(SecurityMetrics::register(&mut registry)),
            )?);
            let server =
                SignalingServer::bind(&config, authority, &mut registry, cancel.clone()).await?;
            let port = server.local_addr().port();
            (
                format!("/ip4/127.0.0.1/tcp/{port}/ws").parse()?,
                Some(server),
            )
        }
    };

    // Alice may use WebRTC on loopback; Bob gathers no candidate.
    let alice_config = WebRtcConfig::loopback().with_ice_timeout(Duration::from_secs(2));
    let bob_config = WebRtcConfig::loopback().with_ice_transport_policy(IceTransportPolicy::Relay);
    let alice = RelayManager::connect(Keypair::generate_ed25519(), &relay, alice_config).await?;
    let bob = RelayManager::connect(Keypair::generate_ed25519(), &relay, bob_config).await?;
    println!("relay {relay}");
    println!("  signaling: {}", alice.urls().signaling);
    println!("  circuits:  {}", alice.urls().relay);
    println!("alice: {}", alice.local_peer_id());
    println!("bob:   {}", bob.local_peer_id());

    let bob_id = bob.local_peer_id();
    let (to_bob, to_alice) = tokio::time::timeout(WAIT, async {
        let conn = alice.connect_peer(&bob_id).await?;
        let incoming = bob
            .accept()
            .await
            .ok_or_else(|| anyhow::anyhow!("bob stopped"))?;
        anyhow::Ok((conn, incoming))
    })
    .await??;
    println!("alice → bob: {} (WebRTC gave up after 2 s)", to_bob.path());
    anyhow::ensure!(
        to_bob.path() == ConnectionPath::Relayed,
        "expected a relayed circuit"
    );
    anyhow::ensure!(
        to_alice.path() == ConnectionPath::Relayed,
        "bob sees the circuit too"
    );

    to_bob
        .send_text(r#"{"type":"chat","text":"hello through the relay"}"#)
        .await?;
    let got = tokio::time::timeout(WAIT, to_alice.receive()).await??;
    println!("bob received: {got:?}");
    anyhow::ensure!(matches!(&got, DataMessage::Text(t) if t.contains("hello through the relay")));
    to_alice.send(b"binary back".to_vec()).await?;
    let got = tokio::time::timeout(WAIT, to_bob.receive()).await??;
    println!("alice received: {got:?}");
    anyhow::ensure!(got == DataMessage::Binary(b"binary back".to_vec()));
    println!("both ways over the circuit, end-to-end encrypted");

    to_bob.close();
    cancel.cancel();
    if let Some(server) = server {
        server.stopped().await;
    }
    Ok(())
}
