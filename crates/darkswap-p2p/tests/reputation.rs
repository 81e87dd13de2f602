//! Reputation and bans on real swarms: a peer that keeps sending forged
//! orders is banned, disconnected and refused in both directions while an
//! honest peer keeps trading; bans expire, repeat offenders get longer ones,
//! and bans carry over to a restarted node.

use std::time::{Duration, SystemTime};

use darkswap_p2p::{
    BanReason, BannedPeer, Error, Identity, Keypair, Multiaddr, Network, NetworkConfig,
    NetworkEvent, ORDERBOOK_TOPIC, PeerId, PenaltyReason, ReputationConfig,
};
use darkswap_proto::{Message, OrderCreate, encode};
use darkswap_testkit::{
    EVENT_TIMEOUT, RawGossip, order_message, spawn_node, test_config, wait_for, wait_message,
    wait_subscribed,
};

fn config_with(reputation: ReputationConfig) -> NetworkConfig {
    test_config().with_reputation(reputation)
}

/// Waits until `net` has banned `peer` and its connection is gone; returns
/// the ban's end and reason.
async fn wait_banned(net: &mut Network, peer: PeerId) -> (Option<SystemTime>, BanReason) {
    let (mut ban, mut gone) = (None, false);
    wait_for(
        net,
        &format!("{peer} banned and disconnected"),
        EVENT_TIMEOUT,
        |e| {
            match e {
                NetworkEvent::PeerBanned {
                    peer_id,
                    until,
                    reason,
                } if *peer_id == peer => ban = Some((*until, *reason)),
                NetworkEvent::PeerDisconnected(p) if *p == peer => gone = true,
                _ => {}
            }
            if gone { ban } else { None }
        },
    )
    .await
}

async fn wait_event(net: &mut Network, what: &str, pick: impl Fn(&NetworkEvent) -> bool) {
    wait_for(net, what, EVENT_TIMEOUT, |e| pick(e).then_some(())).await
}

async fn wait_connected(net: &mut Network, peer: PeerId) {
    wait_event(
        net,
        &format!("{peer} connected"),
        |e| matches!(e, NetworkEvent::PeerConnected(p) if *p == peer),
    )
    .await
}

async fn wait_unbanned(net: &mut Network, peer: PeerId) {
    wait_event(
        net,
        &format!("{peer} unbanned"),
        |e| matches!(e, NetworkEvent::PeerUnbanned { peer_id } if *peer_id == peer),
    )
    .await
}

/// `net` refuses to dial the banned peer listening at `addr`.
async fn dial_is_refused(net: &Network, addr: Multiaddr) {
    match net.dial(addr).await {
        Err(Error::Dial { reason, .. }) => assert!(reason.contains("block list"), "{reason}"),
        other => panic!("dialling a banned peer: {other:?}"),
    }
}

/// `banned` dials `target`, which refuses the connection: the dialler may
/// see it come up for an instant before `target` drops it, and `target`
/// never counts it as connected.
async fn incoming_is_refused(banned: &mut Network, target: &Network, target_addr: &Multiaddr) {
    let target_id = target.local_peer_id();
    if banned.dial(target_addr.clone()).await.is_ok() {
        wait_event(
            banned,
            "the refused connection to close",
            |e| matches!(e, NetworkEvent::PeerDisconnected(p) if *p == target_id),
        )
        .await;
    }
    let banned_id = banned.local_peer_id();
    assert!(!target.connected_peers().await.unwrap().contains(&banned_id));
}

/// `until` lies `length` after a moment between `before` and `after`.
fn lasts(until: Option<SystemTime>, length: Duration, before: SystemTime, after: SystemTime) {
    let until = until.expect("a timed ban");
    assert!(
        until >= before + length && until <= after + length,
        "ban until {until:?} is not {length:?} after {before:?}..{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_forged_orders_is_banned_while_an_honest_peer_keeps_trading() {
    let ban_length = Duration::from_secs(600);
    let (mut victim, victim_addr) = spawn_node(config_with(ReputationConfig {
        base_ban_duration: ban_length,
        ..ReputationConfig::default()
    }))
    .await;
    let victim_id = victim.local_peer_id();
    let honest_key = Keypair::generate_ed25519();
    let (mut honest, _) =
        spawn_node(test_config().with_identity(Identity::Keypair(honest_key.clone()))).await;
    let honest_id = honest.local_peer_id();
    honest.dial(victim_addr.clone()).await.unwrap();
    wait_subscribed(&mut victim, honest_id).await;
    wait_subscribed(&mut honest, victim_id).await;

    // Four forged orders: 4 × 30 points crosses the default threshold of 100.
    let mut hostile = RawGossip::new(&[ORDERBOOK_TOPIC]);
    let hostile_key = hostile.key.clone();
    let hostile_id = hostile.peer_id();
    hostile
        .connect(
            std::slice::from_ref(&victim_addr),
            &[victim_id],
            ORDERBOOK_TOPIC,
        )
        .await;
    for nonce in 0..4 {
        let Message::OrderCreate(OrderCreate {
            order: Some(mut forged),
            ..
        }) = order_message(&hostile_key, nonce)
        else {
            unreachable!()
        };
        forged.signature[0] ^= 0x01;
        let forged = Message::OrderCreate(OrderCreate::from_order(forged));
        hostile.publish(ORDERBOOK_TOPIC, encode(&forged));
    }
    let before = SystemTime::now();
    let driver = hostile.run();

    let mut penalties = Vec::new();
    let (mut ban, mut gone) = (None, false);
    wait_for(
        &mut victim,
        "the forger banned and disconnected",
        EVENT_TIMEOUT,
        |e| {
            match e {
                NetworkEvent::PeerPenalized {
                    peer_id,
                    reason,
                    score,
                } => {
                    assert_eq!(*peer_id, hostile_id, "only the forger is penalised");
                    penalties.push((*reason, *score));
                }
                NetworkEvent::PeerBanned {
                    peer_id,
                    until,
                    reason,
                } => {
                    assert_eq!(*peer_id, hostile_id);
                    ban = Some((*until, *reason));
                }
                NetworkEvent::PeerDisconnected(p) => {
                    assert_eq!(*p, hostile_id, "the honest peer stays connected");
                    gone = true;
                }
                _ => {}
            }
            (ban.is_some() && gone).then_some(())
        },
    )
    .await;
    let after = SystemTime::now();
    let (until, reason) = ban.unwrap();
    assert_eq!(
        reason,
        BanReason::Misbehaviour(PenaltyReason::InvalidSignature)
    );
    lasts(until, ban_length, before, after);
    assert_eq!(penalties.len(), 4, "{penalties:?}");
    assert!(
        penalties
            .iter()
            .all(|(r, _)| *r == PenaltyReason::InvalidSignature)
    );
    assert!(
        penalties.windows(2).all(|w| w[1].1 < w[0].1),
        "{penalties:?}"
    );
    assert_eq!(
        penalties[3].1, -100.0,
        "a ban leaves the score at the threshold"
    );

    assert_eq!(
        victim.reputation().banned().await.unwrap(),
        vec![BannedPeer {
            peer_id: hostile_id,
            until,
            reason,
            bans: 1,
        }]
    );
    let rep = victim.reputation().peer(hostile_id).await.unwrap();
    assert_eq!((rep.bans, rep.ban.map(|b| b.until)), (1, Some(until)));
    assert_eq!(victim.connected_peers().await.unwrap(), vec![honest_id]);

    // The honest peer keeps trading with the victim, both ways.
    let order = order_message(&honest_key, 1);
    honest.publish(ORDERBOOK_TOPIC, &order).await.unwrap();
    assert_eq!(
        wait_message(&mut victim, honest_id, ORDERBOOK_TOPIC).await,
        order
    );
    assert_eq!(
        victim.reputation().peer(honest_id).await.unwrap().score,
        0.0
    );

    // The forger's identity cannot come back: not by dialling, not dialled.
    let (mut comeback, comeback_addr) =
        spawn_node(test_config().with_identity(Identity::Keypair(hostile_key))).await;
    dial_is_refused(&victim, comeback_addr).await;
    incoming_is_refused(&mut comeback, &victim, &victim_addr).await;

    drop(driver);
    for n in [victim, honest, comeback] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_expires_and_a_repeat_offender_gets_a_longer_one() {
    let base = Duration::from_secs(1);
    let (mut victim, victim_addr) = spawn_node(config_with(ReputationConfig {
        base_ban_duration: base,
        max_ban_duration: Duration::from_secs(60),
        // Scores barely recover during the test: a returning peer is on probation.
        score_half_life: Duration::from_secs(3600),
        ..ReputationConfig::default()
    }))
    .await;
    let (peer, _) = spawn_node(test_config()).await;
    let peer_id = peer.local_peer_id();
    peer.dial(victim_addr.clone()).await.unwrap();
    wait_connected(&mut victim, peer_id).await;

    // Other components (auth, rate limits) report through the handle.
    for _ in 0..3 {
        let p = victim
            .reputation()
            .report(peer_id, PenaltyReason::ProtocolViolation)
            .await
            .unwrap()
            .expect("counted");
        assert_eq!(p.ban, None);
    }
    let before = SystemTime::now();
    let first = victim
        .reputation()
        .report(peer_id, PenaltyReason::ProtocolViolation)
        .await
        .unwrap()
        .and_then(|p| p.ban)
        .expect("banned at the fourth report");
    lasts(first.until, base, before, SystemTime::now());
    assert_eq!(
        wait_banned(&mut victim, peer_id).await,
        (
            first.until,
            BanReason::Misbehaviour(PenaltyReason::ProtocolViolation)
        )
    );
    // Reports about a banned peer count for nothing.
    assert_eq!(
        victim
            .reputation()
            .report(peer_id, PenaltyReason::RateLimit)
            .await
            .unwrap(),
        None
    );

    wait_unbanned(&mut victim, peer_id).await;
    assert!(SystemTime::now() >= first.until.unwrap());
    assert!(victim.reputation().banned().await.unwrap().is_empty());
    assert_eq!(
        peer.dial(victim_addr.clone()).await.unwrap(),
        victim.local_peer_id()
    );
    wait_connected(&mut victim, peer_id).await;

    // On probation, one more offence bans it again, for twice as long.
    let before = SystemTime::now();
    let second = victim
        .reputation()
        .report(peer_id, PenaltyReason::ProtocolViolation)
        .await
        .unwrap()
        .and_then(|p| p.ban)
        .expect("banned again at once");
    lasts(second.until, base * 2, before, SystemTime::now());
    assert_eq!(second.bans, 2);
    wait_banned(&mut victim, peer_id).await;
    wait_unbanned(&mut victim, peer_id).await;
    assert!(SystemTime::now() >= second.until.unwrap());

    victim.shutdown().await.unwrap();
    peer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_bans_hold_until_lifted_and_carry_over_to_a_restart() {
    let key = Keypair::generate_ed25519();
    let node = |bans: Vec<BannedPeer>| {
        config_with(ReputationConfig {
            initial_bans: bans,
            ..ReputationConfig::default()
        })
    };
    let (mut victim, victim_addr) =
        spawn_node(node(vec![]).with_identity(Identity::Keypair(key.clone()))).await;
    let (mut peer, peer_addr) = spawn_node(test_config()).await;
    let peer_id = peer.local_peer_id();
    peer.dial(victim_addr.clone()).await.unwrap();
    wait_connected(&mut victim, peer_id).await;

    let ban = victim.reputation().ban(peer_id, None).await.unwrap();
    assert_eq!((ban.until, ban.reason), (None, BanReason::Manual));
    assert_eq!(
        wait_banned(&mut victim, peer_id).await,
        (None, BanReason::Manual)
    );
    dial_is_refused(&victim, peer_addr.clone()).await;
    incoming_is_refused(&mut peer, &victim, &victim_addr).await;
    let exported = victim.reputation().banned().await.unwrap();
    assert_eq!(exported, vec![ban]);
    victim.shutdown().await.unwrap();

    // Restarted with the exported list: the ban holds from the first moment.
    let (mut victim, victim_addr) =
        spawn_node(node(exported.clone()).with_identity(Identity::Keypair(key))).await;
    assert_eq!(victim.reputation().banned().await.unwrap(), exported);
    dial_is_refused(&victim, peer_addr.clone()).await;
    incoming_is_refused(&mut peer, &victim, &victim_addr).await;

    // Lifted by hand: the peer connects again.
    assert!(victim.reputation().unban(peer_id).await.unwrap());
    wait_unbanned(&mut victim, peer_id).await;
    assert!(!victim.reputation().unban(peer_id).await.unwrap());
    assert_eq!(
        peer.dial(victim_addr.clone()).await.unwrap(),
        victim.local_peer_id()
    );
    wait_connected(&mut victim, peer_id).await;

    // Importing the list again disconnects it; expired entries are skipped.
    let expired = BannedPeer {
        peer_id: PeerId::random(),
        until: Some(SystemTime::now() - Duration::from_secs(1)),
        reason: BanReason::Manual,
        bans: 0,
    };
    let mut list = exported;
    list.push(expired);
    assert_eq!(victim.reputation().import(list).await.unwrap(), 1);
    wait_event(
        &mut victim,
        "the re-banned peer disconnected",
        |e| matches!(e, NetworkEvent::PeerDisconnected(p) if *p == peer_id),
    )
    .await;
    dial_is_refused(&victim, peer_addr).await;

    victim.shutdown().await.unwrap();
    peer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reputation_config_is_refused_at_start() {
    let err = Network::new(config_with(ReputationConfig {
        ban_escalation: 0.5,
        ..ReputationConfig::default()
    }))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("ban_escalation"), "{err}");
}

/// An application that reads its events too slowly loses book changes (it
/// is told how many, and can ask for the book) but never a ban: bans wait,
/// in order, for room in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_told_what_was_dropped_and_gets_every_ban() {
    let (mut net, _) = spawn_node(test_config().with_event_buffer(4)).await;
    let create = |nonce| darkswap_proto::NewOrder {
        nonce,
        ..darkswap_testkit::trade::rune_sale()
    };
    // Nobody reads yet: own orders' book changes fill the queue.
    for nonce in 0..8 {
        net.orderbook().create(create(nonce)).await.unwrap();
    }
    let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
    for (nonce, peer) in (100..).zip(&peers) {
        net.reputation().ban(*peer, None).await.unwrap();
        net.orderbook().create(create(nonce)).await.unwrap();
    }
    let (mut bans, mut dropped) = (Vec::new(), 0);
    while bans.len() < peers.len() {
        wait_for(&mut net, "every ban", EVENT_TIMEOUT, |e| match e {
            NetworkEvent::PeerBanned { peer_id, .. } => {
                bans.push(*peer_id);
                Some(())
            }
            NetworkEvent::EventsDropped { count } => {
                dropped += count;
                None
            }
            _ => None,
        })
        .await;
    }
    assert_eq!(bans, peers);
    assert!(dropped > 0, "the queue of 4 overflowed");
    // Past the backlog, events flow as before.
    let (order, _) = net.orderbook().create(create(200)).await.unwrap();
    wait_for(&mut net, "the next book change", EVENT_TIMEOUT, |e| {
        matches!(e, NetworkEvent::OrderbookChanged(darkswap_p2p::OrderbookChange::Added(o)) if o.id == order.id)
            .then_some(())
    })
    .await;
    net.shutdown().await.unwrap();
}
