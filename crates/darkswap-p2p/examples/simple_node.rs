//! A DarkSwap node on the `Network` API.
//!
//! With no arguments it runs a self-contained demo: two nodes on 127.0.0.1,
//! one publishes a signed order, the other receives and verifies it, then
//! both shut down. With `--listen`/`--dial`/`--relay` it runs as a real node
//! and prints events until Ctrl-C.
//!
//! ```text
//! cargo run -p darkswap-p2p --example simple_node
//! cargo run -p darkswap-p2p --example simple_node -- --listen /ip4/0.0.0.0/tcp/4001
//! cargo run -p darkswap-p2p --example simple_node -- --dial /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo...
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use darkswap_p2p::{
    Identity, Keypair, Multiaddr, Network, NetworkConfig, NetworkEvent, ORDERBOOK_TOPIC,
};
use darkswap_proto::{Asset, Message, NewOrder, OrderCreate, PRICE_SCALE, Side};

#[derive(Parser)]
struct Args {
    /// Address to listen on (repeatable).
    #[arg(long)]
    listen: Vec<Multiaddr>,
    /// Peer to dial at start (repeatable).
    #[arg(long)]
    dial: Vec<Multiaddr>,
    /// Relay to hold a reservation on (repeatable).
    #[arg(long)]
    relay: Vec<Multiaddr>,
}

fn config(identity: Identity) -> NetworkConfig {
    NetworkConfig::default()
        .with_identity(identity)
        .with_mdns(false)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    if args.listen.is_empty() && args.dial.is_empty() && args.relay.is_empty() {
        return demo().await;
    }
    let mut network = Network::new(
        NetworkConfig::default()
            .with_listen_addresses(args.listen)
            .with_relay_peers(args.relay),
    )
    .await?;
    println!("Local peer ID: {}", network.local_peer_id());
    for addr in args.dial {
        println!("Connected to {}", network.dial(addr).await?);
    }
    loop {
        tokio::select! {
            event = network.next_event() => match event {
                Some(event) => println!("{event:?}"),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    network.shutdown().await?;
    Ok(())
}

async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let maker_key = Keypair::generate_ed25519();
    let maker = Network::new(config(Identity::Keypair(maker_key.clone()))).await?;
    let mut taker = Network::new(config(Identity::Ephemeral)).await?;
    let addr = maker.listen_on("/ip4/127.0.0.1/tcp/0").await?;
    println!("maker {} listening on {addr}", maker.local_peer_id());
    taker.dial(addr).await?;

    // Publish once the taker has joined the orderbook topic.
    let mut maker_events = maker;
    loop {
        match tokio::time::timeout(Duration::from_secs(20), maker_events.next_event()).await? {
            Some(NetworkEvent::PeerSubscribed { topic, .. }) if topic == ORDERBOOK_TOPIC => break,
            Some(_) => continue,
            None => return Err("maker stopped".into()),
        }
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let order = NewOrder {
        side: Side::Sell,
        base: "rune:840000:3".parse()?,
        quote: Asset::Btc,
        amount: 5_000,
        price: 3 * PRICE_SCALE / 1000,
        created_at: now,
        expires_at: now + 600,
        nonce: 1,
    }
    .sign(&maker_key)?;
    let message = Message::OrderCreate(OrderCreate::from_order(order));
    maker_events.publish(ORDERBOOK_TOPIC, &message).await?;

    loop {
        match tokio::time::timeout(Duration::from_secs(20), taker.next_event()).await? {
            Some(NetworkEvent::MessageReceived {
                peer_id,
                message: Message::OrderCreate(OrderCreate { order: Some(o), .. }),
                ..
            }) => {
                let o = o.verify()?;
                println!(
                    "taker received order {} from {peer_id}: {} {} {} @ {} {}",
                    o.id, o.side, o.amount, o.base, o.price, o.quote
                );
                break;
            }
            Some(_) => continue,
            None => return Err("taker stopped".into()),
        }
    }
    maker_events.shutdown().await?;
    taker.shutdown().await?;
    Ok(())
}
