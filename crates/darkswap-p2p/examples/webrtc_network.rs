//! A DarkSwap node that reaches a browser page (or another node) over a
//! WebRTC data channel with the `Network` handle alone (seed 003's Rust
//! usage): it registers on a relay's signaling server with its node
//! identity, opens a channel to the peer, sends it a chat message, and
//! answers the peer's first message with its echo.
//!
//! ```sh
//! cargo run -p darkswap-relay                         # signaling on :9001
//! # open clients/js/example.html, copy the page's peer id, then
//! cargo run -p darkswap-p2p --example webrtc_network -- \
//!     --signaling /ip4/127.0.0.1/tcp/9001/ws --peer <page peer id>
//! # and send it a chat message from the page
//! ```

use clap::Parser;
use darkswap_p2p::{DataMessage, Multiaddr, Network, NetworkConfig, PeerId};

#[derive(Debug, Parser)]
struct Args {
    /// The relay's public port, e.g. /ip4/127.0.0.1/tcp/9001/ws.
    #[arg(long)]
    signaling: Multiaddr,
    /// The peer to open a channel to.
    #[arg(long)]
    peer: PeerId,
    /// What to say first.
    #[arg(long, default_value = "hello from a darkswap network")]
    message: String,
}

/// A chat message as the example page sends and shows them.
fn chat(text: &str) -> String {
    format!(
        "{{\"type\":\"chat\",\"text\":{}}}",
        serde_json::Value::String(text.to_owned())
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let network = Network::new(
        NetworkConfig::default()
            .with_mdns(false)
            .with_kad(false)
            .with_webrtc_signaling_relays([args.signaling]),
    )
    .await?;
    network.wait_for_webrtc_signaling().await?;
    println!("peer id: {}", network.local_peer_id());

    let path = network.create_webrtc_data_channel(args.peer).await?;
    println!("path: {path}");
    network
        .send_webrtc_message(&args.peer, chat(&args.message))
        .await?;
    println!("sent: {}", args.message);
    let text = match network.receive_webrtc_message(&args.peer).await? {
        DataMessage::Text(t) => serde_json::from_str::<serde_json::Value>(&t)
            .ok()
            .and_then(|v| v["text"].as_str().map(str::to_owned))
            .unwrap_or(t),
        DataMessage::Binary(b) => format!("[{} bytes]", b.len()),
    };
    println!("received: {text}");
    network
        .send_webrtc_message(&args.peer, chat(&format!("echo: {text}")))
        .await?;
    println!("echoed");
    // Until the peer closes the channel (or says more): the echo is out then.
    let _ = network.receive_webrtc_message(&args.peer).await;
    println!("done");
    network.shutdown().await?;
    Ok(())
}
