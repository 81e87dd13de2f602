//! A hostile peer (a raw libp2p swarm speaking gossipsub) sends malformed and
//! forged messages: the node rejects them, never reports them as received,
//! and still accepts the valid message that follows on the same connection.

use darkswap_p2p::{NetworkEvent, ORDERBOOK_TOPIC};
use darkswap_proto::{Message, OrderCreate, encode};
use darkswap_testkit::{
    EVENT_TIMEOUT, RawGossip, order_message, spawn_node, test_config, wait_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_gossip_is_rejected() {
    let (mut victim, victim_addr) = spawn_node(test_config()).await;
    let mut hostile = RawGossip::new(&[ORDERBOOK_TOPIC]);
    let hostile_key = hostile.key.clone();
    let hostile_id = hostile.peer_id();
    hostile
        .connect(&[victim_addr], &[victim.local_peer_id()], ORDERBOOK_TOPIC)
        .await;

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
        hostile.publish(ORDERBOOK_TOPIC, data);
    }
    // Keep the hostile swarm running while the victim processes.
    let driver = hostile.run();

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
    drop(driver);
    victim.shutdown().await.unwrap();
}
