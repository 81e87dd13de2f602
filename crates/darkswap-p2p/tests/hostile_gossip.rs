//! A hostile peer (a raw libp2p swarm speaking gossipsub) sends malformed and
//! forged messages: the node rejects them, never reports them as received,
//! and still accepts the valid message that follows on the same connection.
//! A peer that floods (valid messages, over its rate) is penalised and
//! banned while an honest peer keeps gossiping.

use std::time::Duration;

use darkswap_p2p::{
    BanReason, GossipRateLimit, Keypair, NetworkEvent, ORDERBOOK_TOPIC, PenaltyReason,
    PenaltyWeights, ReputationConfig,
};
use darkswap_proto::{Message, OrderCreate, encode};
use darkswap_testkit::{
    EVENT_TIMEOUT, RawGossip, order_message, spawn_node, test_config, wait_for, wait_message,
    wait_subscribed,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_flooding_gossip_is_banned_while_an_honest_peer_keeps_gossiping() {
    // 5 messages a second, bursts of 10; two rate penalties ban.
    let reputation = ReputationConfig {
        penalties: PenaltyWeights {
            rate_limit: 50.0,
            ..PenaltyWeights::default()
        },
        ..ReputationConfig::default()
    };
    let (mut victim, victim_addr) = spawn_node(
        test_config()
            .with_gossip_rate_limit(GossipRateLimit::new(5, 10))
            .with_reputation(reputation),
    )
    .await;
    let victim_id = victim.local_peer_id();
    let honest_key = Keypair::generate_ed25519();
    let (mut honest, _) = spawn_node(
        test_config().with_identity(darkswap_p2p::Identity::Keypair(honest_key.clone())),
    )
    .await;
    let honest_id = honest.local_peer_id();
    honest.dial(victim_addr.clone()).await.unwrap();
    wait_subscribed(&mut victim, honest_id).await;
    wait_subscribed(&mut honest, victim_id).await;

    let mut flooder = RawGossip::new(&[ORDERBOOK_TOPIC]);
    let flooder_id = flooder.peer_id();
    let flooder_key = flooder.key.clone();
    flooder
        .connect(&[victim_addr], &[victim_id], ORDERBOOK_TOPIC)
        .await;
    // Valid, signed orders, 500 a second: only their number is wrong.
    let _flood = flooder.flood(ORDERBOOK_TOPIC, Duration::from_millis(2), move |n| {
        encode(&order_message(&flooder_key, n))
    });

    let during = order_message(&honest_key, 1);
    honest.publish(ORDERBOOK_TOPIC, &during).await.unwrap();
    let (mut got_honest, mut ban) = (false, None);
    wait_for(
        &mut victim,
        "the honest message and the flooder's ban",
        EVENT_TIMEOUT,
        |e| {
            match e {
                NetworkEvent::PeerPenalized { peer_id, .. } if *peer_id == honest_id => {
                    panic!("the honest peer was penalised: {e:?}")
                }
                NetworkEvent::MessageReceived {
                    peer_id, message, ..
                } if *peer_id == honest_id => got_honest |= *message == during,
                NetworkEvent::PeerBanned {
                    peer_id, reason, ..
                } if *peer_id == flooder_id => ban = Some(*reason),
                _ => {}
            }
            (got_honest && ban.is_some()).then_some(())
        },
    )
    .await;
    assert_eq!(ban, Some(BanReason::Misbehaviour(PenaltyReason::RateLimit)));

    let after = order_message(&honest_key, 2);
    honest.publish(ORDERBOOK_TOPIC, &after).await.unwrap();
    assert_eq!(
        wait_message(&mut victim, honest_id, ORDERBOOK_TOPIC).await,
        after
    );
    victim.shutdown().await.unwrap();
    honest.shutdown().await.unwrap();
}
