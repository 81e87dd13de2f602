use std::time::SystemTime;

use super::*;
use crate::auth::{AuthManagerConfig, AuthMethod, AuthRequest, AuthResponse};
use darkswap_proto::identity::Keypair;

type Keeper = RelayKeeper<u64>;

fn config(require_auth: bool) -> RelayKeeperConfig {
    RelayKeeperConfig {
        retry_initial: Duration::from_secs(1),
        retry_max: Duration::from_secs(8),
        require_auth,
        min_auth_level: AuthorizationLevel::Relay,
    }
}

fn setup() -> (Keeper, PeerId, Multiaddr, Instant) {
    let r = Keeper::new(config(false));
    let peer = PeerId::random();
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/1/p2p/{peer}").parse().unwrap();
    (r, peer, addr, Instant::now())
}

fn circuit(addr: &Multiaddr) -> Multiaddr {
    addr.clone().with(Protocol::P2pCircuit)
}

fn outputs(r: &mut Keeper) -> Vec<RelayKeeperOutput> {
    std::iter::from_fn(|| r.poll_output()).collect()
}

fn now_at(instant: Instant) -> Now {
    Now::new(
        instant,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    )
}

/// Runs the due attempts and returns the relays asked to be listened on.
fn due(r: &mut Keeper, auth: &mut AuthManager, at: Instant) -> Vec<(PeerId, Multiaddr)> {
    r.handle_timeout(auth, now_at(at));
    outputs(r)
        .into_iter()
        .filter_map(|o| match o {
            RelayKeeperOutput::Listen {
                relay,
                circuit_addr,
            } => Some((relay, circuit_addr)),
            _ => None,
        })
        .collect()
}

fn auth_manager(config: AuthManagerConfig) -> AuthManager {
    AuthManager::new(config, Keypair::generate_ed25519()).unwrap()
}

fn reserved_events(out: &[RelayKeeperOutput]) -> usize {
    out.iter()
        .filter(|o| {
            matches!(
                o,
                RelayKeeperOutput::Event(NetworkEvent::RelayReserved { .. })
            )
        })
        .count()
}

#[test]
fn first_attempt_is_immediate_then_reserved() {
    let (mut r, peer, addr, t0) = setup();
    let mut auth = auth_manager(AuthManagerConfig::default());
    r.add(&addr, t0).unwrap();
    assert_eq!(due(&mut r, &mut auth, t0), vec![(peer, circuit(&addr))]);
    r.handle_listening(&peer, 1);
    assert!(due(&mut r, &mut auth, t0).is_empty());
    assert_eq!(r.poll_timeout(), None);
    r.handle_reservation_accepted(peer, false);
    assert_eq!(
        reserved_events(&outputs(&mut r)),
        1,
        "first acceptance is new"
    );
    r.handle_reservation_accepted(peer, true);
    assert_eq!(reserved_events(&outputs(&mut r)), 0, "second is a renewal");
    assert!(r.status()[0].reserved);
}

#[test]
fn lost_reservations_are_retried_with_capped_backoff() {
    let (mut r, peer, addr, t0) = setup();
    let mut auth = auth_manager(AuthManagerConfig::default());
    r.add(&addr, t0).unwrap();
    let mut now = t0;
    let mut delays = Vec::new();
    for l in 0..6 {
        r.handle_listening(&peer, l);
        r.handle_listener_closed(l, Some("refused".into()), now);
        assert_eq!(
            outputs(&mut r),
            vec![RelayKeeperOutput::Event(
                NetworkEvent::RelayReservationFailed {
                    relay_peer_id: peer,
                    reason: "refused".into()
                }
            )],
            "nothing was reserved to lose: the attempt failed"
        );
        let next = r.poll_timeout().unwrap();
        delays.push((next - now).as_secs());
        assert!(due(&mut r, &mut auth, next - Duration::from_millis(1)).is_empty());
        assert_eq!(due(&mut r, &mut auth, next).len(), 1);
        now = next;
    }
    assert_eq!(delays, vec![1, 2, 4, 8, 8, 8]);

    // A success resets the backoff, and losing it is reported.
    r.handle_listening(&peer, 100);
    r.handle_reservation_accepted(peer, false);
    assert_eq!(reserved_events(&outputs(&mut r)), 1);
    r.handle_listener_closed(100, None, now);
    assert_eq!(
        outputs(&mut r),
        vec![RelayKeeperOutput::Event(
            NetworkEvent::RelayReservationLost {
                relay_peer_id: peer
            }
        )]
    );
    assert_eq!(r.poll_timeout().unwrap() - now, Duration::from_secs(1));
    assert!(!r.status()[0].reserved);
}

#[test]
fn unrelated_listeners_are_ignored() {
    let (mut r, peer, addr, t0) = setup();
    r.add(&addr, t0).unwrap();
    r.handle_listening(&peer, 1);
    r.handle_listener_closed(2, None, t0);
    assert_eq!(r.poll_timeout(), None, "still listening");
    r.handle_reservation_accepted(PeerId::random(), true);
    assert!(outputs(&mut r).is_empty(), "a renewal elsewhere is not new");
    r.handle_listen_failed(&peer, "no route".into(), t0);
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(1)));
}

#[test]
fn a_removed_relay_hands_back_its_listener_and_is_not_retried() {
    let (mut r, peer, addr, t0) = setup();
    r.add(&addr, t0).unwrap();
    r.handle_listening(&peer, 7);
    r.handle_reservation_accepted(peer, false);
    outputs(&mut r);
    assert_eq!(r.remove(&peer), Some(7));
    assert!(!r.is_kept(&peer));
    assert!(!r.status()[0].reserved, "still shown, not reserved");
    // Its listener closing afterwards is not a loss to report or retry.
    r.handle_listener_closed(7, None, t0);
    assert!(outputs(&mut r).is_empty());
    assert_eq!(r.poll_timeout(), None);
    assert_eq!(r.remove(&peer), None);
    // Taken up again, it is tried at once.
    r.add(&addr, t0).unwrap();
    assert_eq!(r.poll_timeout(), Some(t0));
    r.forget(&peer);
    assert!(r.status().is_empty());
}

#[test]
fn relays_listened_on_by_hand_report_each_new_reservation_once() {
    let (mut r, _, _, _) = setup();
    let other = PeerId::random();
    r.handle_reservation_accepted(other, false);
    r.handle_reservation_accepted(other, true);
    let ids: Vec<_> = outputs(&mut r)
        .into_iter()
        .filter_map(|o| match o {
            RelayKeeperOutput::Event(NetworkEvent::RelayReserved { reservation_id, .. }) => {
                Some(reservation_id)
            }
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![ReservationId(1)]);
}

#[test]
fn an_address_without_a_peer_id_is_refused() {
    let (mut r, _, _, t0) = setup();
    let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
    assert_eq!(r.add(&addr, t0), Err(MissingPeerId(addr)));
}

/// A relay that must authenticate: the keeper asks for a challenge to be
/// sent before any listen.
fn gated() -> (Keeper, AuthManager, PeerId, Multiaddr, Instant) {
    let (_, peer, addr, t0) = setup();
    let mut r = Keeper::new(config(true));
    r.add(&addr, t0).unwrap();
    (
        r,
        auth_manager(AuthManagerConfig::default()),
        peer,
        addr,
        t0,
    )
}

fn challenge_sent(out: Vec<RelayKeeperOutput>) -> (PeerId, Vec<Multiaddr>, Challenge) {
    match out.as_slice() {
        [
            RelayKeeperOutput::SendChallenge {
                relay,
                addresses,
                challenge,
            },
        ] => (*relay, addresses.clone(), challenge.clone()),
        other => panic!("expected one challenge, got {other:?}"),
    }
}

#[test]
fn a_relay_that_must_authenticate_is_challenged_before_any_reservation() {
    let (mut r, mut auth, peer, addr, t0) = gated();
    assert_eq!(r.status()[0].auth, RelayAuthStatus::Pending);
    r.handle_timeout(&mut auth, now_at(t0));
    let (relay, addresses, challenge) = challenge_sent(outputs(&mut r));
    assert_eq!(relay, peer);
    assert_eq!(addresses, vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap()]);
    assert_eq!(challenge.prover, peer);
    assert!(
        due(&mut r, &mut auth, t0).is_empty(),
        "not due while authenticating"
    );
    r.handle_reservation_accepted(peer, false);
    assert_eq!(
        reserved_events(&outputs(&mut r)),
        0,
        "no reservation while authenticating"
    );

    // The relay proves a Relay level (it is configured so): listen.
    let token = Ok(AuthToken {
        issuer: auth.local_peer_id(),
        peer,
        level: AuthorizationLevel::Relay,
        expires_at_ms: u64::MAX,
        mac: [0; 32],
    });
    r.handle_auth_result(peer, token, t0);
    assert_eq!(
        outputs(&mut r),
        vec![
            RelayKeeperOutput::Event(NetworkEvent::RelayAuthenticated {
                relay_peer_id: peer,
                level: AuthorizationLevel::Relay
            }),
            RelayKeeperOutput::Listen {
                relay: peer,
                circuit_addr: circuit(&addr)
            },
        ]
    );
    r.handle_listening(&peer, 7);
    r.handle_reservation_accepted(peer, false);
    assert_eq!(reserved_events(&outputs(&mut r)), 1);
    let status = &r.status()[0];
    assert_eq!(
        status.auth,
        RelayAuthStatus::Authenticated(AuthorizationLevel::Relay)
    );
    assert!(status.reserved);
}

#[test]
fn a_relay_that_fails_auth_is_not_listened_on_and_is_retried() {
    let (mut r, mut auth, peer, addr, t0) = gated();
    r.handle_timeout(&mut auth, now_at(t0));
    challenge_sent(outputs(&mut r));
    r.handle_auth_result(peer, Err(AuthError::BadSignature), t0);
    assert_eq!(
        outputs(&mut r),
        vec![RelayKeeperOutput::Event(NetworkEvent::RelayAuthFailed {
            relay_peer_id: peer,
            error: AuthError::BadSignature
        })]
    );
    let status = &r.status()[0];
    assert_eq!(
        status.auth,
        RelayAuthStatus::Refused("signature does not verify".into())
    );
    assert!(!status.reserved);
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(1)));

    // The retry challenges again; this time a good enough proof gets it in.
    let later = t0 + Duration::from_secs(1);
    r.handle_timeout(&mut auth, now_at(later));
    challenge_sent(outputs(&mut r));
    r.handle_auth_result(
        peer,
        Ok(AuthToken {
            issuer: auth.local_peer_id(),
            peer,
            level: AuthorizationLevel::Admin,
            expires_at_ms: u64::MAX,
            mac: [0; 32],
        }),
        later,
    );
    let out = outputs(&mut r);
    assert!(out.contains(&RelayKeeperOutput::Listen {
        relay: peer,
        circuit_addr: circuit(&addr)
    }));
}

#[test]
fn a_proof_below_the_relay_level_is_a_refusal() {
    let (mut r, mut auth, peer, _, t0) = gated();
    r.handle_timeout(&mut auth, now_at(t0));
    challenge_sent(outputs(&mut r));
    r.handle_auth_result(
        peer,
        Ok(AuthToken {
            issuer: auth.local_peer_id(),
            peer,
            level: AuthorizationLevel::Basic,
            expires_at_ms: u64::MAX,
            mac: [0; 32],
        }),
        t0,
    );
    let error = AuthError::InsufficientLevel {
        have: AuthorizationLevel::Basic,
        need: AuthorizationLevel::Relay,
    };
    assert_eq!(
        outputs(&mut r),
        vec![RelayKeeperOutput::Event(NetworkEvent::RelayAuthFailed {
            relay_peer_id: peer,
            error
        })]
    );
    assert!(matches!(r.status()[0].auth, RelayAuthStatus::Refused(_)));
}

#[test]
fn a_trusted_relay_passes_without_a_challenge() {
    let (mut r, _, peer, addr, t0) = gated();
    let mut auth = auth_manager(AuthManagerConfig {
        trusted_peers: [peer].into(),
        ..AuthManagerConfig::default()
    });
    r.handle_timeout(&mut auth, now_at(t0));
    // Trust is standing authentication: nothing new happened to report.
    assert_eq!(
        outputs(&mut r),
        vec![RelayKeeperOutput::Listen {
            relay: peer,
            circuit_addr: circuit(&addr)
        }]
    );
    assert_eq!(
        r.status()[0].auth,
        RelayAuthStatus::Authenticated(AuthorizationLevel::Relay)
    );
    assert_eq!(auth.pending_challenges(), 0);
}

#[test]
fn a_banned_relay_is_refused_before_any_challenge() {
    let (mut r, _, peer, _, t0) = gated();
    let mut auth = auth_manager(AuthManagerConfig {
        banned_peers: [peer].into(),
        ..AuthManagerConfig::default()
    });
    r.handle_timeout(&mut auth, now_at(t0));
    assert_eq!(
        outputs(&mut r),
        vec![RelayKeeperOutput::Event(NetworkEvent::RelayAuthFailed {
            relay_peer_id: peer,
            error: AuthError::Banned(peer)
        })]
    );
    assert_eq!(auth.pending_challenges(), 0);
}

#[test]
fn a_relay_still_authenticated_is_listened_on_again_without_a_new_proof() {
    // Two real managers: the node verifies, the relay proves.
    let t0 = Instant::now();
    let now = now_at(t0);
    let relay = auth_manager(AuthManagerConfig {
        auth_method: AuthMethod::ChallengeResponse,
        ..AuthManagerConfig::default()
    });
    let relay_id = relay.local_peer_id();
    let mut node = auth_manager(AuthManagerConfig {
        authorized_keys: [(relay_id, AuthorizationLevel::Relay)].into(),
        ..AuthManagerConfig::default()
    });
    let relay_addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/2/p2p/{relay_id}")
        .parse()
        .unwrap();
    let mut r = Keeper::new(config(true));
    r.add(&relay_addr, t0).unwrap();
    r.handle_timeout(&mut node, now);
    let (_, _, challenge) = challenge_sent(outputs(&mut r));
    let answer = relay.answer(
        &AuthRequest::Challenge(challenge),
        node.local_peer_id(),
        now.wall,
    );
    assert!(matches!(answer, AuthResponse::Proof(_)));
    let result = node.check_answer(relay_id, answer, now.wall);
    r.handle_auth_result(relay_id, result, t0);
    assert!(outputs(&mut r).contains(&RelayKeeperOutput::Listen {
        relay: relay_id,
        circuit_addr: circuit(&relay_addr)
    }));

    // The reservation is lost; the retry needs no new challenge.
    r.handle_listening(&relay_id, 1);
    r.handle_reservation_accepted(relay_id, false);
    outputs(&mut r);
    r.handle_listener_closed(1, None, t0);
    outputs(&mut r);
    let at = r.poll_timeout().unwrap();
    r.handle_timeout(&mut node, now_at(at));
    assert_eq!(
        outputs(&mut r),
        vec![RelayKeeperOutput::Listen {
            relay: relay_id,
            circuit_addr: circuit(&relay_addr)
        }]
    );
    assert_eq!(node.pending_challenges(), 0);
}

#[test]
fn a_connection_to_a_relay_in_back_off_asks_for_the_reservation_at_once() {
    let (mut r, peer, addr, t0) = setup();
    let mut auth = auth_manager(AuthManagerConfig::default());
    r.add(&addr, t0).unwrap();
    assert_eq!(due(&mut r, &mut auth, t0).len(), 1);
    r.handle_listening(&peer, 1);
    // The attempt failed while the node was still dialling the relay.
    r.handle_listener_closed(1, None, t0);
    let _ = outputs(&mut r);
    let later = t0 + Duration::from_millis(10);
    assert!(due(&mut r, &mut auth, later).is_empty(), "backing off");
    r.handle_connected(&peer, later);
    assert_eq!(r.poll_timeout(), Some(later));
    assert_eq!(due(&mut r, &mut auth, later), vec![(peer, circuit(&addr))]);
    // A connection to a relay that is not waiting changes nothing.
    r.handle_listening(&peer, 2);
    r.handle_connected(&peer, later);
    assert!(due(&mut r, &mut auth, later).is_empty());
    r.handle_connected(&PeerId::random(), later);
}
