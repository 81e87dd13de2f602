//! A hostile peer for the browser tests: a raw gossipsub node (no DarkSwap
//! validation of its own) listening on WebRTC-direct, so a page can dial it
//! and take its gossip straight, with no honest node in between.
//!
//! `forge-order IP` listens on `/ip4/IP/udp/0/webrtc-direct` and prints
//! `{"addr": "<multiaddr with /p2p/>"}`. Each line then read on standard
//! input publishes, once a peer has subscribed to the orderbook topic, a
//! fresh batch of one valid order and two forgeries (a broken signature,
//! and an order that claims another maker than the key that signed it),
//! and prints `{"valid": id, "forged": [id, id]}`. It ends when its
//! standard input closes.

use std::{net::IpAddr, process::ExitCode};

use darkswap_p2p::{
    Keypair, Multiaddr, ORDERBOOK_TOPIC, generate_webrtc_certificate, gossipsub_behaviour,
    webrtc_direct_transport,
};
use darkswap_proto::{MAX_MESSAGE_SIZE, Message, OrderCreate, SignedOrder, encode};
use darkswap_testkit::{order_body, sign_raw_order};
use futures::StreamExt;
use libp2p::{gossipsub, multiaddr::Protocol, swarm::SwarmEvent};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(ip) = std::env::args()
        .nth(1)
        .and_then(|a| a.parse::<IpAddr>().ok())
    else {
        eprintln!("usage: forge-order IP");
        return ExitCode::from(2);
    };
    match run(ip).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("forge-order: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(ip: IpAddr) -> Result<(), String> {
    let key = Keypair::generate_ed25519();
    let certificate = generate_webrtc_certificate().map_err(|e| e.to_string())?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
        .with_tokio()
        .with_other_transport(|key| webrtc_direct_transport(key, certificate))
        .map_err(|e| e.to_string())?
        .with_behaviour(|key| gossipsub_behaviour(key, MAX_MESSAGE_SIZE).expect("gossipsub"))
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(std::time::Duration::from_secs(120)))
        .build();
    let topic = gossipsub::IdentTopic::new(ORDERBOOK_TOPIC);
    swarm
        .behaviour_mut()
        .subscribe(&topic)
        .map_err(|e| e.to_string())?;
    let listen = Multiaddr::from(ip)
        .with(Protocol::Udp(0))
        .with(Protocol::WebRTCDirect);
    swarm.listen_on(listen).map_err(|e| e.to_string())?;

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut subscribed = false;
    let mut asked = 0u64;
    let mut published = 0u64;
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    let addr = address.with(Protocol::P2p(key.public().to_peer_id()));
                    println!("{}", serde_json::json!({"addr": addr.to_string()}));
                }
                SwarmEvent::Behaviour(gossipsub::Event::Subscribed { topic: t, .. })
                    if t == topic.hash() => subscribed = true,
                _ => {}
            },
            line = lines.next_line() => match line {
                Ok(Some(_)) => asked += 1,
                _ => return Ok(()),
            },
        }
        while subscribed && asked > 0 {
            asked -= 1;
            // Fresh nonces each batch: new orders, new gossip ids.
            let ids = publish_batch(&mut swarm, &topic, &key, published);
            published += 1;
            println!("{ids}");
        }
    }
}

/// One valid order, then two forgeries; their ids as JSON.
fn publish_batch(
    swarm: &mut libp2p::Swarm<gossipsub::Behaviour>,
    topic: &gossipsub::IdentTopic,
    key: &Keypair,
    batch: u64,
) -> serde_json::Value {
    let nonce = batch * 3;
    let valid = sign_raw_order(key, &order_body(key, nonce));
    let mut bad_signature = sign_raw_order(key, &order_body(key, nonce + 1));
    bad_signature.signature[7] ^= 0x20;
    // Signed by this key, but the body names someone else as the maker:
    // taking it would send a trade to a peer that never offered it.
    let victim = Keypair::generate_ed25519();
    let mut body = order_body(key, nonce + 2);
    body.maker = victim.public().to_peer_id().to_bytes();
    let impostor = sign_raw_order(key, &body);
    let ids = serde_json::json!({
        "valid": valid.id().to_string(),
        "forged": [bad_signature.id().to_string(), impostor.id().to_string()],
    });
    for order in [valid, bad_signature, impostor] {
        publish(swarm, topic, order);
    }
    ids
}

fn publish(
    swarm: &mut libp2p::Swarm<gossipsub::Behaviour>,
    topic: &gossipsub::IdentTopic,
    order: SignedOrder,
) {
    let message = encode(&Message::OrderCreate(OrderCreate::from_order(order)));
    if let Err(e) = swarm.behaviour_mut().publish(topic.clone(), message) {
        eprintln!("forge-order: publish: {e}");
    }
}
