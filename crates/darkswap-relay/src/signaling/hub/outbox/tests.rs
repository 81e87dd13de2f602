use super::*;

const CONFIG: OutboxConfig = OutboxConfig {
    bytes: 1000,
    bytes_per_sender: 400,
    reserve_per_sender: 100,
    max_control: 4,
};

fn text(n: usize) -> String {
    "x".repeat(n)
}

fn drain(outbox: &mut Outbox) -> Vec<Next> {
    std::iter::from_fn(|| outbox.pop()).collect()
}

#[test]
fn a_sender_over_its_bound_is_refused_and_others_still_get_in() {
    let mut o = Outbox::new(CONFIG);
    // Sender 1 fills its own bound and no more.
    for _ in 0..4 {
        o.push_routed(1, text(100)).unwrap();
    }
    assert_eq!(o.push_routed(1, text(100)), Err(Refused));
    // Three more senders fill the shared part up to the recipient's bound.
    for from in 2..=3 {
        for _ in 0..2 {
            o.push_routed(from, text(100)).unwrap();
        }
    }
    assert_eq!(o.routed_bytes(), 800);
    o.push_routed(4, text(150)).unwrap();
    o.push_routed(4, text(50)).unwrap();
    assert_eq!(o.routed_bytes(), 1000);
    assert_eq!(o.push_routed(4, text(10)), Err(Refused), "over the total");
    // A newcomer still has its reserve, and one message of any size.
    o.push_routed(5, text(60)).unwrap();
    o.push_routed(5, text(40)).unwrap();
    assert_eq!(o.push_routed(5, text(1)), Err(Refused), "reserve used up");
    o.push_routed(6, text(500)).unwrap();
    assert_eq!(o.push_routed(6, text(1)), Err(Refused));
}

#[test]
fn senders_are_served_in_turn_after_the_servers_own_messages() {
    let mut o = Outbox::new(CONFIG);
    for n in 0..3 {
        o.push_routed(1, format!("a{n}")).unwrap();
    }
    o.push_routed(2, "b0".into()).unwrap();
    o.push_control("pong".into()).unwrap();
    o.push_routed(3, "c0".into()).unwrap();
    let order: Vec<Next> = drain(&mut o);
    let m = |s: &str| Next::Message(s.to_owned());
    assert_eq!(
        order,
        vec![m("pong"), m("a0"), m("b0"), m("c0"), m("a1"), m("a2")]
    );
    assert_eq!(o.routed_bytes(), 0);
    // What was drained frees the sender's bound again.
    for _ in 0..4 {
        o.push_routed(1, text(100)).unwrap();
    }
}

#[test]
fn the_servers_own_messages_overflow_only_past_their_ceiling() {
    let mut o = Outbox::new(CONFIG);
    for _ in 0..4 {
        o.push_control("e".into()).unwrap();
    }
    assert_eq!(o.push_control("e".into()), Err(Overflow));
    o.pop();
    o.push_control("e".into()).unwrap();
}

#[test]
fn a_close_waits_for_the_servers_messages_and_an_abort_does_not() {
    let mut o = Outbox::new(CONFIG);
    o.push_routed(1, "offer".into()).unwrap();
    o.push_control("error".into()).unwrap();
    o.close(4003, "bad_signature");
    o.push_control("late".into()).unwrap();
    assert_eq!(
        drain(&mut o),
        [
            Next::Message("error".into()),
            Next::Close(4003, "bad_signature")
        ]
    );
    let mut o = Outbox::new(CONFIG);
    o.push_control("error".into()).unwrap();
    o.abort(1008, "too slow");
    assert_eq!(drain(&mut o), [Next::Close(1008, "too slow")]);
}
