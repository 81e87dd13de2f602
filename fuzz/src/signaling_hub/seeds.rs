//! The committed seeds of `signaling_hub`: one script per part of the hub.

use super::Op;

/// Scripts that reach each part of the hub: registration (and its
/// refusals), routing, a circuit through to pairing and its end, deadlines.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use Op::*;
    let op = |o: Op| o as u8;
    // Sockets are chosen by index among the open ones, in opening order.
    let two_peers = vec![
        op(OpenSignaling),
        1,
        0,
        op(OpenSignaling),
        1,
        0,
        op(Register),
        0,
        0,
        op(Register),
        1,
        1,
    ];
    let with = |rest: &[u8]| {
        let mut script = vec![0, 7];
        script.extend_from_slice(&two_peers);
        script.extend_from_slice(rest);
        script
    };
    let circuit = [
        op(CircuitRequest),
        0,
        1,
        op(CircuitAccept),
        1,
        0,
        op(OpenRelay),
        op(OpenRelay),
        op(Attach),
        2,
        0,
        op(Attach),
        3,
        1,
    ];
    let mut circuit_then_close = circuit.to_vec();
    circuit_then_close.extend_from_slice(&[op(Close), 1]);
    let mut circuit_then_limit = circuit.to_vec();
    circuit_then_limit.extend_from_slice(&[op(CircuitEnded), 0, 0, op(Advance), 61]);
    vec![
        ("register_two", with(&[op(Query), 0, 0])),
        (
            "watch_then_join",
            vec![
                0,
                8,
                op(OpenSignaling),
                1,
                0,
                op(Register),
                0,
                0,
                op(Watch),
                0,
                0b10,
                op(OpenSignaling),
                1,
                0,
                op(Register),
                1,
                1,
                op(Close),
                1,
                op(ListPage),
                0,
                0,
                0,
            ],
        ),
        (
            "route_refused",
            with(&[op(Route), 0, 0, 1, 0, op(Refuse), 0]),
        ),
        (
            "bad_candidate",
            with(&[op(RawCandidate), 0, 1, 255, 3, b'c', b'a', b'b']),
        ),
        ("route_offer", with(&[op(Route), 0, 0, 1, 0])),
        ("route_spoofed", with(&[op(Route), 0, 2, 1, 2])),
        ("circuit_open", with(&circuit)),
        ("circuit_peer_leaves", with(&circuit_then_close)),
        ("circuit_ended", with(&circuit_then_limit)),
        (
            "circuit_rejected",
            with(&[
                op(CircuitRequest),
                0,
                1,
                op(CircuitReject),
                1,
                0,
                3,
                b'n',
                b'o',
                b'!',
            ]),
        ),
        (
            "register_timeout",
            vec![0, 1, op(OpenSignaling), 1, 0, op(Advance), 11],
        ),
        (
            "guest_refused",
            vec![0, 2, op(OpenSignaling), 0, 0, op(Register), 0, 0],
        ),
        (
            "stolen_subject",
            vec![0, 3, op(OpenSignaling), 1, 2, op(Register), 0, 0],
        ),
        (
            "raw_text",
            vec![
                0,
                4,
                op(OpenSignaling),
                1,
                0,
                op(RawText),
                0,
                5,
                b'{',
                b'"',
                b't',
                b'y',
                b'p',
            ],
        ),
        (
            "forged_attach",
            vec![0, 5, op(OpenRelay), op(Attach), 0, 0xff],
        ),
    ]
}
