use super::*;

fn conn(n: usize) -> ConnectionId {
    ConnectionId::new_unchecked(n)
}

/// Two peer ids, the lower first.
fn ordered_ids() -> (PeerId, PeerId) {
    let (a, b) = (PeerId::random(), PeerId::random());
    if a < b { (a, b) } else { (b, a) }
}

/// Asks the gate about a connection and, as the swarm does, reports it
/// established right after.
fn establish(gate: &mut PunchGate, peer: PeerId, connection: ConnectionId, link: Link) -> Verdict {
    let verdict = gate.decide(peer, connection, link);
    gate.on_established(peer, connection, link);
    verdict
}

#[test]
fn a_lone_inbound_relayed_connection_starts_an_attempt() {
    let mut gate = PunchGate::new(PeerId::random());
    let peer = PeerId::random();
    assert_eq!(
        establish(&mut gate, peer, conn(1), Link::InboundRelayed),
        Verdict::Delegate
    );
}

#[test]
fn an_inbound_relayed_connection_starts_no_attempt_while_a_direct_one_is_open() {
    let mut gate = PunchGate::new(PeerId::random());
    let peer = PeerId::random();
    establish(&mut gate, peer, conn(1), Link::Direct);
    assert_eq!(
        establish(&mut gate, peer, conn(2), Link::InboundRelayed),
        Verdict::Skip(Skip::DirectConnection)
    );
    gate.on_closed(peer, conn(1));
    assert_eq!(
        establish(&mut gate, peer, conn(3), Link::InboundRelayed),
        Verdict::Delegate,
        "the skipped connection holds no attempt"
    );
}

#[test]
fn a_second_inbound_relayed_connection_starts_no_attempt_while_the_first_is_open() {
    let mut gate = PunchGate::new(PeerId::random());
    let peer = PeerId::random();
    assert_eq!(
        establish(&mut gate, peer, conn(1), Link::InboundRelayed),
        Verdict::Delegate
    );
    assert_eq!(
        establish(&mut gate, peer, conn(2), Link::InboundRelayed),
        Verdict::Skip(Skip::AttemptUnderway)
    );
    gate.on_closed(peer, conn(1));
    assert_eq!(
        establish(&mut gate, peer, conn(3), Link::InboundRelayed),
        Verdict::Delegate
    );
}

#[test]
fn the_attempt_of_one_peer_does_not_hold_back_another() {
    let mut gate = PunchGate::new(PeerId::random());
    let (first, second) = (PeerId::random(), PeerId::random());
    establish(&mut gate, first, conn(1), Link::InboundRelayed);
    assert_eq!(
        establish(&mut gate, second, conn(2), Link::InboundRelayed),
        Verdict::Delegate
    );
}

#[test]
fn the_higher_id_holding_an_outbound_relayed_connection_leaves_the_attempt_to_the_peer() {
    let (low, high) = ordered_ids();
    let mut gate = PunchGate::new(high);
    establish(&mut gate, low, conn(1), Link::OutboundRelayed);
    assert_eq!(
        establish(&mut gate, low, conn(2), Link::InboundRelayed),
        Verdict::Skip(Skip::RemoteInitiates)
    );
}

#[test]
fn the_lower_id_holding_an_outbound_relayed_connection_starts_the_attempt() {
    let (low, high) = ordered_ids();
    let mut gate = PunchGate::new(low);
    establish(&mut gate, high, conn(1), Link::OutboundRelayed);
    assert_eq!(
        establish(&mut gate, high, conn(2), Link::InboundRelayed),
        Verdict::Delegate
    );
}

#[test]
fn outbound_and_direct_connections_are_always_delegated() {
    let (low, high) = ordered_ids();
    let mut gate = PunchGate::new(high);
    establish(&mut gate, low, conn(1), Link::Direct);
    establish(&mut gate, low, conn(2), Link::InboundRelayed);
    establish(&mut gate, low, conn(3), Link::OutboundRelayed);
    for (n, link) in [
        (4, Link::OutboundRelayed),
        (5, Link::Direct),
        (6, Link::OutboundRelayed),
    ] {
        assert_eq!(
            establish(&mut gate, low, conn(n), link),
            Verdict::Delegate,
            "{link:?}"
        );
    }
}

#[test]
fn a_connection_denied_after_the_verdict_holds_no_attempt() {
    let mut gate = PunchGate::new(PeerId::random());
    let peer = PeerId::random();
    assert_eq!(
        gate.decide(peer, conn(1), Link::InboundRelayed),
        Verdict::Delegate
    );
    gate.on_denied(conn(1));
    assert_eq!(
        establish(&mut gate, peer, conn(2), Link::InboundRelayed),
        Verdict::Delegate
    );
    assert!(gate.decided.is_empty());
}

#[test]
fn a_peers_state_goes_with_its_last_connection() {
    let mut gate = PunchGate::new(PeerId::random());
    let peer = PeerId::random();
    establish(&mut gate, peer, conn(1), Link::Direct);
    establish(&mut gate, peer, conn(2), Link::InboundRelayed);
    establish(&mut gate, peer, conn(3), Link::OutboundRelayed);
    gate.on_closed(peer, conn(1));
    gate.on_closed(peer, conn(2));
    assert_eq!(gate.tracked_peers(), 1);
    gate.on_closed(peer, conn(3));
    assert_eq!(gate.tracked_peers(), 0);
    assert!(gate.decided.is_empty());
    // A close the gate never saw the connection of changes nothing.
    gate.on_closed(peer, conn(4));
    assert_eq!(gate.tracked_peers(), 0);
}
