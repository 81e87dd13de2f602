//! A native WebRTC peer on a DarkSwap signaling server.
//!
//! ```sh
//! # a relay (or `cargo run -p darkswap-relay --example signaling_server`)
//! cargo run -p darkswap-relay
//! # a peer that waits for connections and answers every chat message
//! cargo run -p darkswap-webrtc --example webrtc_example ws://localhost:9001/signaling
//! # a peer that connects to it (or open clients/js/example.html and connect)
//! cargo run -p darkswap-webrtc --example webrtc_example ws://localhost:9001/signaling <peer-id>
//! # the same, but WebRTC cannot reach it: connections take a relayed circuit
//! cargo run -p darkswap-webrtc --example webrtc_example ws://localhost:9001/signaling --relay-only
//! ```
//!
//! Messages are chat objects as the JS client's example page sends them,
//! `{"type":"chat","text":"..."}`, as text frames on the data channel.

use std::{sync::Arc, time::Duration};

use clap::Parser;
use darkswap_webrtc::{
    CandidateType, DataMessage, IceServer, IceTransportPolicy, Keypair, PeerId, WebRtcConfig,
    WebRtcConnection, WebRtcConnectionManager, WebRtcSignalingClient,
};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
struct Args {
    /// The signaling server, e.g. ws://localhost:9001/signaling.
    url: String,
    /// Connect to this peer and send it a message; without it, wait for
    /// peers and answer them.
    peer: Option<PeerId>,
    /// The message to send.
    #[arg(long, default_value = "Hello, world!")]
    message: String,
    /// Offer only 127.0.0.1 as ICE candidate (same-host peers, tests).
    #[arg(long)]
    loopback: bool,
    /// Gather no ICE candidate (ICE policy `relay` without a TURN server),
    /// so that every connection takes a relayed circuit.
    #[arg(long)]
    relay_only: bool,
    /// A STUN server to learn this peer's public address from
    /// (`stun:host:port`); repeatable.
    #[arg(long)]
    stun: Vec<String>,
    /// Use the relay's own STUN and TURN servers (`POST /auth/ice-servers`).
    #[arg(long)]
    relay_ice: bool,
    /// Never fall back to a relayed circuit: WebRTC or nothing.
    #[arg(long)]
    no_fallback: bool,
}

fn chat(text: &str) -> String {
    json!({ "type": "chat", "text": text }).to_string()
}

/// The text of a chat message, or the message as received.
fn text_of(message: &DataMessage) -> String {
    match message {
        DataMessage::Text(t) => serde_json::from_str::<Value>(t)
            .ok()
            .and_then(|v| v["text"].as_str().map(str::to_owned))
            .unwrap_or_else(|| t.clone()),
        DataMessage::Binary(b) => format!("[{} bytes]", b.len()),
    }
}

/// Which of our ICE candidates the connection uses: `host` (a local
/// socket, also for server-reflexive candidates) or `relay` (TURN).
fn print_candidate(conn: &WebRtcConnection) {
    if let Some(kind) = conn.local_candidate_type() {
        let kind = match kind {
            CandidateType::Host => "host",
            CandidateType::Relay => "relay",
            _ => "other",
        };
        println!("candidate: {} {kind}", conn.peer_id());
    }
}

/// Greets a connected peer, then answers each message with its echo.
async fn serve(conn: WebRtcConnection) {
    let peer = conn.peer_id();
    println!("connected: {peer}");
    println!("path: {peer} {}", conn.path());
    if conn.send_text(&chat("hello from rust")).await.is_err() {
        return;
    }
    while let Ok(message) = conn.receive().await {
        let text = text_of(&message);
        println!("received from {peer}: {text}");
        print_candidate(&conn);
        if conn
            .send_text(&chat(&format!("echo: {text}")))
            .await
            .is_err()
        {
            break;
        }
    }
    println!("disconnected: {peer}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let signaling = Arc::new(WebRtcSignalingClient::new(Keypair::generate_ed25519()));
    let peers = signaling.connect(&args.url).await?;
    println!("peer id: {}", signaling.local_peer_id());
    println!("peers: {}", peers.len());
    let mut config = if args.loopback {
        WebRtcConfig::loopback()
    } else {
        WebRtcConfig::default()
    };
    if args.relay_only {
        config = config.with_ice_transport_policy(IceTransportPolicy::Relay);
    }
    if !args.stun.is_empty() {
        config = config.with_ice_servers(vec![IceServer {
            urls: args.stun.clone(),
            username: None,
            credential: None,
        }]);
    }
    config = config
        .with_relay_ice_servers(args.relay_ice)
        .with_relay_fallback(!args.no_fallback);
    let manager = WebRtcConnectionManager::new(signaling, config);

    let Some(peer) = args.peer else {
        while let Some(conn) = manager.accept().await {
            tokio::spawn(serve(conn));
        }
        return Ok(());
    };
    let conn = manager.create_connection(&peer).await?;
    println!("connected: {peer}");
    println!("path: {peer} {}", conn.path());
    conn.send_text(&chat(&args.message)).await?;
    println!("sent: {}", args.message);
    // The listener greets first, then echoes: wait for the echo.
    let echo = format!("echo: {}", args.message);
    loop {
        let message = tokio::time::timeout(Duration::from_secs(15), conn.receive()).await??;
        let text = text_of(&message);
        println!("received: {text}");
        print_candidate(&conn);
        if text == echo {
            break;
        }
    }
    conn.close();
    Ok(())
}
