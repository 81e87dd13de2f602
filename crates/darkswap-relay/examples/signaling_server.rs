//! The WebSocket signaling server alone (no libp2p node): `/signaling` and
//! `/relay` as `docs/signaling.md` describes them, with the default limits.
//!
//! ```sh
//! cargo run -p darkswap-relay --example signaling_server            # ws://localhost:9001/signaling
//! cargo run -p darkswap-relay --example signaling_server 127.0.0.1:0  # any free port
//! ```
//!
//! The full relay (`cargo run -p darkswap-relay`) serves the same endpoints
//! beside its libp2p relay, with metrics and configuration.

use std::sync::Arc;

use darkswap_relay::{
    SignalingServer, config::RelayConfig, metrics::SecurityMetrics, token_authority::TokenAuthority,
};
use libp2p::identity::Keypair;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = RelayConfig::default();
    config.signaling.listen = match std::env::args().nth(1) {
        Some(addr) => addr.parse()?,
        None => "127.0.0.1:9001".parse()?,
    };
    let cancel = CancellationToken::new();
    let mut registry = Registry::default();
    // Tokens from `/auth/token` are signed with this (throwaway) key.
    let authority = Arc::new(TokenAuthority::new(
        &Keypair::generate_ed25519(),
        config.tokens.clone(),
        None,
        Arc::new(SecurityMetrics::register(&mut registry)),
    )?);
    let server = SignalingServer::bind(&config, authority, &mut registry, cancel.clone()).await?;
    println!("signaling: ws://{}/signaling", server.local_addr());
    println!("relayed circuits: ws://{}/relay", server.local_addr());
    tokio::signal::ctrl_c().await?;
    cancel.cancel();
    server.stopped().await;
    Ok(())
}
