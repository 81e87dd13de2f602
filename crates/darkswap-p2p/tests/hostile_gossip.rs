//! A hostile peer (a raw libp2p swarm speaking gossipsub) sends malformed and
//! forged messages: the node rejects them, never reports them as received,
//! and still accepts the valid message that follows on the same connection.

use std::time::Duration;

use darkswap_p2p::{Keypair, NetworkEvent, ORDERBOOK_TOPIC, gossipsub_behaviour};
use darkswap_proto::{MAX_MESSAGE_SIZE, Message, OrderCreate, encode};
use darkswap_testkit::order_message;
use darkswap_testkit::{EVENT_TIMEOUT, spawn_node, test_config, wait_for};
use futures::StreamExt;
use libp2p::{gossipsub, noise, swarm::SwarmEvent, tcp, yamux};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_gossip_is_rejected() {
    let (mut victim, victim_addr) = spawn_node(test_config()).await;
    let victim_id = victim.local_peer_id();

    let hostile_key = Keypair::generate_ed25519();
    let mut hostile = libp2p::SwarmBuilder::with_existing_identity(hostile_key.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| gossipsub_behaviour(key, MAX_MESSAGE_SIZE).unwrap())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let topic = gossipsub::IdentTopic::new(ORDERBOOK_TOPIC);
    hostile.behaviour_mut().subscribe(&topic).unwrap();
    hostile.dial(victim_addr).unwrap();
    let hostile_id = *hostile.local_peer_id();

    // Drive the hostile swarm until the victim's subscription is known.
    let wait_sub = async {
        loop {
            if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed { peer_id, .. }) =
                hostile.select_next_some().await
                && peer_id == victim_id
            {
                break;
            }
        }
    };
    tokio::time::timeout(EVENT_TIMEOUT, wait_sub)
        .await
        .expect("victim subscribed");

    let Message::OrderCreate(OrderCreate {
        order: Some(mut forged),
        ..
    }) = order_message(&hostile_key, 1)
    else {
        unreachable!()
    };
    forged.signature[0] ^= 0x01;
    let forged = Message::OrderCreate(OrderCreate::from_order(forged));
    let valid = order_message(&hostile_key, 2);
    for data in [
        b"\x08\x01\x52\xff\xff".to_vec(),
        encode(&forged),
        encode(&valid),
    ] {
        hostile
            .behaviour_mut()
            .publish(topic.clone(), data)
            .unwrap();
    }
    // Keep the hostile swarm running while the victim processes.
    let driver = tokio::spawn(async move {
        loop {
            hostile.select_next_some().await;
        }
    });

    // One connection carries the three messages in order: once the valid one
    // arrives, the two before it have been judged.
    let mut rejected = Vec::new();
    let received = wait_for(&mut victim, "the valid order", EVENT_TIMEOUT, |e| match e {
        NetworkEvent::InvalidMessage { peer_id, error, .. } => {
            assert_eq!(*peer_id, hostile_id);
            rejected.push(error.to_string());
            None
        }
        NetworkEvent::MessageReceived { message, .. } => Some(message.clone()),
        _ => None,
    })
    .await;
    assert_eq!(received, valid, "only the valid message surfaces");
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected[0].contains("undecodable"), "{rejected:?}");
    assert!(rejected[1].contains("signature"), "{rejected:?}");
    driver.abort();
    victim.shutdown().await.unwrap();
}
