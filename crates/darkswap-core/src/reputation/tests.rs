use super::*;
use std::time::UNIX_EPOCH;

const T0: u64 = 1_800_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

fn config() -> ReputationConfig {
    ReputationConfig {
        base_ban_duration: Duration::from_secs(60),
        max_ban_duration: Duration::from_secs(300),
        score_half_life: Duration::from_secs(100),
        ban_memory: Duration::from_secs(1000),
        ..ReputationConfig::default()
    }
}

fn manager(config: ReputationConfig) -> ReputationManager {
    ReputationManager::new(config, at(0)).unwrap()
}

/// Penalises until banned; returns the ban and how many reports it took.
fn ban_by(
    m: &mut ReputationManager,
    peer: PeerId,
    reason: PenaltyReason,
    now: SystemTime,
) -> (BannedPeer, usize) {
    for n in 1..100 {
        let p = m.penalize(peer, reason, now).expect("counted");
        if let Some(ban) = p.ban {
            return (ban, n);
        }
    }
    panic!("never banned");
}

#[test]
fn penalties_lower_the_score_by_their_weight_until_a_ban() {
    let mut m = manager(config());
    let peer = PeerId::random();
    let honest = PeerId::random();
    let p = m
        .penalize(peer, PenaltyReason::InvalidSignature, at(0))
        .unwrap();
    assert_eq!((p.score, p.ban), (-30.0, None));
    let p = m
        .penalize(peer, PenaltyReason::InvalidOrder, at(0))
        .unwrap();
    assert_eq!(p.score, -50.0);
    m.penalize(peer, PenaltyReason::InvalidSignature, at(0))
        .unwrap();
    let p = m
        .penalize(peer, PenaltyReason::InvalidOrder, at(0))
        .unwrap();
    assert_eq!(
        p.ban,
        Some(BannedPeer {
            peer_id: peer,
            until: Some(at(60)),
            reason: BanReason::Misbehaviour(PenaltyReason::InvalidOrder),
            bans: 1,
        })
    );
    assert!(m.is_banned(&peer, at(59)));
    assert!(!m.is_banned(&honest, at(0)));
    assert_eq!(m.reputation(&honest, at(0)).score, 0.0);
    // Reports about a banned peer count for nothing.
    assert_eq!(m.penalize(peer, PenaltyReason::InvalidMessage, at(1)), None);
    assert_eq!(m.bans(at(1)).len(), 1);
}

#[test]
fn defaults_tolerate_three_bad_messages_and_ban_at_the_fourth() {
    let mut m = manager(ReputationConfig::default());
    let peer = PeerId::random();
    for reason in [
        PenaltyReason::InvalidSignature,
        PenaltyReason::InvalidOrder,
        PenaltyReason::InvalidOrder,
    ] {
        assert_eq!(m.penalize(peer, reason, at(0)).unwrap().ban, None);
    }
    let ban = m
        .penalize(peer, PenaltyReason::InvalidSignature, at(0))
        .unwrap()
        .ban
        .unwrap();
    assert_eq!(ban.until, Some(at(600)));
}

#[test]
fn scores_recover_with_the_half_life() {
    let mut m = manager(config());
    let peer = PeerId::random();
    m.penalize(peer, PenaltyReason::ProtocolViolation, at(0));
    m.penalize(peer, PenaltyReason::ProtocolViolation, at(0));
    assert_eq!(m.reputation(&peer, at(0)).score, -60.0);
    assert!((m.reputation(&peer, at(100)).score + 30.0).abs() < 1e-9);
    assert!((m.reputation(&peer, at(200)).score + 15.0).abs() < 1e-9);
    // Spread out, the same misbehaviour never reaches the threshold.
    for i in 0..50 {
        let p = m
            .penalize(peer, PenaltyReason::ProtocolViolation, at(200 + i * 100))
            .unwrap();
        assert_eq!(p.ban, None, "report {i}: score {}", p.score);
    }
    // The last report was at 5100: a clock that goes back before it
    // neither restores nor worsens the score.
    let last = m.reputation(&peer, at(5100)).score;
    assert!((-60.0..=-30.0).contains(&last), "{last}");
    assert_eq!(m.reputation(&peer, at(4000)).score, last);
    // Fully recovered peers are forgotten.
    assert!(m.expire(at(100_000)).is_empty());
    assert!(m.peers.is_empty());
}

#[test]
fn repeat_offenders_get_longer_bans_up_to_the_max() {
    let mut m = manager(config());
    let peer = PeerId::random();
    let mut now = at(0);
    let mut lengths = Vec::new();
    for round in 1..=5 {
        let (ban, _) = ban_by(&mut m, peer, PenaltyReason::InvalidMessage, now);
        assert_eq!(ban.bans, round);
        let until = ban.until.unwrap();
        lengths.push(until.duration_since(now).unwrap().as_secs());
        assert_eq!(m.next_expiry(), Some(until));
        assert!(m.expire(until - Duration::from_secs(1)).is_empty());
        assert_eq!(m.expire(until), vec![peer]);
        assert!(!m.is_banned(&peer, until));
        now = until + Duration::from_secs(1);
    }
    assert_eq!(lengths, [60, 120, 240, 300, 300]);
    // After ban_memory without a ban, the slate is clean again.
    let later = now + Duration::from_secs(1000);
    let (ban, _) = ban_by(&mut m, peer, PenaltyReason::InvalidMessage, later);
    assert_eq!(ban.bans, 1);
    assert_eq!(ban.until, Some(later + Duration::from_secs(60)));
}

#[test]
fn a_returning_peer_is_on_probation() {
    let mut m = manager(config());
    let peer = PeerId::random();
    let (ban, first) = ban_by(&mut m, peer, PenaltyReason::InvalidMessage, at(0));
    let end = ban.until.unwrap();
    m.expire(end);
    // After a 60 s ban with a 100 s half-life, the score is still about
    // -66: two more bad messages ban it again.
    let (_, second) = ban_by(&mut m, peer, PenaltyReason::InvalidMessage, end);
    assert_eq!((first, second), (5, 2));
}

#[test]
fn manual_bans_lifting_and_permanent_bans() {
    let mut m = manager(config());
    let (a, b) = (PeerId::random(), PeerId::random());
    let ban = m.ban(a, Some(Duration::from_secs(30)), at(0));
    assert_eq!(
        (ban.until, ban.reason, ban.bans),
        (Some(at(30)), BanReason::Manual, 0)
    );
    let forever = m.ban(b, None, at(0));
    assert_eq!(forever.until, None);
    assert_eq!(m.next_expiry(), Some(at(30)));
    assert_eq!(m.expire(at(30)), vec![a]);
    assert!(m.is_banned(&b, at(1_000_000_000)));
    // Manual bans do not escalate automatic ones.
    let (auto, _) = ban_by(&mut m, a, PenaltyReason::FailedAuth, at(40));
    assert_eq!(auto.until, Some(at(100)));
    assert!(m.unban(&a, at(50)));
    assert!(!m.unban(&a, at(50)));
    assert_eq!(m.reputation(&a, at(50)).score, 0.0);
    assert!(m.unban(&b, at(50)));
    assert!(m.bans(at(50)).is_empty());
    assert_eq!(m.next_expiry(), None);
}

#[test]
fn bans_survive_export_and_import() {
    let mut m = manager(config());
    let (a, b, old) = (PeerId::random(), PeerId::random(), PeerId::random());
    ban_by(&mut m, a, PenaltyReason::RateLimit, at(0));
    m.ban(b, None, at(0));
    let exported = m.bans(at(10));
    assert_eq!(exported.len(), 2);
    let mut stale = exported.clone();
    stale.push(BannedPeer {
        peer_id: old,
        until: Some(at(5)),
        reason: BanReason::Manual,
        bans: 3,
    });
    let restarted = ReputationManager::new(
        ReputationConfig {
            initial_bans: stale,
            ..config()
        },
        at(20),
    )
    .unwrap();
    assert_eq!(restarted.bans(at(20)), exported);
    assert!(!restarted.is_banned(&old, at(20)));
    // The escalation count came along: the next ban is twice as long.
    let mut restarted = restarted;
    restarted.expire(at(60));
    let (ban, _) = ban_by(&mut restarted, a, PenaltyReason::RateLimit, at(60));
    assert_eq!((ban.bans, ban.until), (2, Some(at(180))));
    // Importing a shorter ban keeps the longer one in force.
    let applied = restarted.import(
        [BannedPeer {
            peer_id: b,
            until: Some(at(1000)),
            reason: BanReason::Manual,
            bans: 0,
        }],
        at(60),
    );
    assert_eq!(applied[0].until, None);
}

#[test]
fn disabled_scoring_counts_nothing_but_manual_bans_hold() {
    let mut m = manager(ReputationConfig {
        enabled: false,
        ..config()
    });
    let peer = PeerId::random();
    assert_eq!(
        m.penalize(peer, PenaltyReason::InvalidSignature, at(0)),
        None
    );
    m.ban(peer, None, at(0));
    assert!(m.is_banned(&peer, at(0)));
}

#[test]
fn the_table_is_bounded_and_bans_are_kept_over_scores() {
    let mut m = manager(ReputationConfig {
        max_peers: 3,
        ..config()
    });
    let banned = PeerId::random();
    ban_by(&mut m, banned, PenaltyReason::InvalidSignature, at(0));
    let (mild, bad) = (PeerId::random(), PeerId::random());
    m.penalize(mild, PenaltyReason::RateLimit, at(0));
    m.penalize(bad, PenaltyReason::InvalidSignature, at(0));
    let newcomer = PeerId::random();
    assert!(
        m.penalize(newcomer, PenaltyReason::RateLimit, at(0))
            .is_some()
    );
    assert_eq!(m.peers.len(), 3);
    assert!(
        !m.peers.contains_key(&mild),
        "the mildest record goes first"
    );
    assert!(m.is_banned(&banned, at(0)));
    // With every slot banned there is no room, and bans stay.
    let mut full = manager(ReputationConfig {
        max_peers: 1,
        ..config()
    });
    full.ban(banned, None, at(0));
    assert_eq!(
        full.penalize(newcomer, PenaltyReason::RateLimit, at(0)),
        None
    );
    assert!(full.is_banned(&banned, at(0)));
}

#[test]
fn bad_configs_are_refused() {
    for bad in [
        ReputationConfig {
            ban_threshold: 0.0,
            ..config()
        },
        ReputationConfig {
            ban_threshold: f64::NAN,
            ..config()
        },
        ReputationConfig {
            ban_escalation: 0.5,
            ..config()
        },
        ReputationConfig {
            score_half_life: Duration::ZERO,
            ..config()
        },
        ReputationConfig {
            max_ban_duration: Duration::from_secs(1),
            ..config()
        },
        ReputationConfig {
            max_peers: 0,
            ..config()
        },
        ReputationConfig {
            penalties: PenaltyWeights {
                rate_limit: -1.0,
                ..PenaltyWeights::default()
            },
            ..config()
        },
    ] {
        assert!(ReputationManager::new(bad, at(0)).is_err());
    }
}

#[test]
fn only_misbehaviour_no_honest_peer_causes_is_penalised() {
    let forged = ValidationError::Order {
        kind: "order_create",
        error: OrderError::BadSignature,
    };
    assert_eq!(
        validation_penalty(&forged),
        Some(PenaltyReason::InvalidSignature)
    );
    assert_eq!(
        validation_penalty(&ValidationError::Decode("x".into())),
        Some(PenaltyReason::InvalidMessage)
    );
    let late = ValidationError::Order {
        kind: "order_create",
        error: OrderError::Expired {
            expires_at: 1,
            now: 2,
        },
    };
    assert_eq!(validation_penalty(&late), None);
    assert_eq!(
        orderbook_penalty(&OrderbookError::NotMaker),
        Some(PenaltyReason::InvalidOrder)
    );
    assert_eq!(
        orderbook_penalty(&OrderbookError::StaleUpdate { got: 1, have: 2 }),
        None
    );
    assert_eq!(
        orderbook_penalty(&OrderbookError::BookFull { limit: 1 }),
        None
    );
    let w = PenaltyWeights::default();
    assert_eq!(
        sync_penalty(
            &[
                OrderbookError::BookFull { limit: 1 },
                OrderbookError::NotMaker,
                OrderbookError::Invalid(OrderError::BadSignature),
                OrderbookError::Invalid(OrderError::ZeroAmount),
            ],
            &w
        ),
        Some(PenaltyReason::InvalidSignature)
    );
    assert_eq!(
        sync_penalty(&[OrderbookError::BookFull { limit: 1 }], &w),
        None
    );
}

#[test]
fn reasons_round_trip_through_their_labels() {
    for r in PenaltyReason::ALL {
        assert_eq!(r.as_str().parse::<PenaltyReason>(), Ok(r));
        let ban = BanReason::Misbehaviour(r);
        assert_eq!(ban.as_str().parse::<BanReason>(), Ok(ban));
    }
    assert_eq!("manual".parse::<BanReason>(), Ok(BanReason::Manual));
    assert!("nonsense".parse::<BanReason>().is_err());
}
