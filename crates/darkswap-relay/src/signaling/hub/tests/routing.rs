//! Routing: ICE candidates checked before they are forwarded; a refusal by
//! the recipient's queue told to the sender.

use serde_json::Value;

use super::*;

fn candidate(f: &mut Fixture, from: ConnId, to: &Keypair, candidate: Value) -> Vec<Output> {
    f.send(
        from,
        &ClientToServer::Candidate {
            to: id(to),
            candidate,
            session: None,
            from: None,
        },
    )
}

#[test]
fn browser_candidates_and_the_end_of_candidates_are_forwarded() {
    let mut f = Fixture::new();
    let (a, _) = f.peer();
    let (b, kb) = f.peer();
    let full = json!({
        "candidate": "candidate:842163049 1 udp 1677729535 192.0.2.1 3478 typ srflx raddr 0.0.0.0 rport 0 generation 0",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": "EsP5",
    });
    for good in [
        full.clone(),
        json!({"candidate": "", "sdpMid": null, "sdpMLineIndex": null}),
        json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}),
        Value::Null,
    ] {
        let out = candidate(&mut f, a, &kb, good.clone());
        assert_eq!(routed_to(&out, b).len(), 1, "{good}: {out:?}");
    }
    // Fields browsers do not send are not forwarded.
    let mut extra = full.clone();
    extra["payload"] = json!("x".repeat(1000));
    let out = candidate(&mut f, a, &kb, extra);
    let [ServerToClient::Candidate { candidate, .. }] = &routed_to(&out, b)[..] else {
        panic!("{out:?}")
    };
    assert_eq!(candidate, &full);
}

#[test]
fn a_candidate_of_the_wrong_type_or_size_is_refused() {
    let mut f = Fixture::new();
    let (a, _) = f.peer();
    let (b, kb) = f.peer();
    let long = "c".repeat(darkswap_proto::signaling::MAX_CANDIDATE_LEN + 1);
    for bad in [
        json!("candidate:1 1 udp 1 127.0.0.1 9 typ host"),
        json!([1, 2, 3]),
        json!(42),
        json!({}),
        json!({"candidate": 7}),
        json!({"candidate": long}),
        json!({"candidate": "", "sdpMid": 0}),
        json!({"candidate": "", "sdpMid": "m".repeat(300)}),
        json!({"candidate": "", "sdpMLineIndex": -1}),
        json!({"candidate": "", "sdpMLineIndex": 1.5}),
        json!({"candidate": "", "sdpMLineIndex": 70000}),
        json!({"candidate": "", "usernameFragment": {"a": 1}}),
    ] {
        let out = candidate(&mut f, a, &kb, bad.clone());
        assert!(routed_to(&out, b).is_empty(), "{bad} was forwarded");
        let errors = Fixture::sent_to(&out, a);
        assert_eq!(
            error_code(&errors),
            Some(ErrorCode::InvalidMessage),
            "{bad}"
        );
        assert!(matches!(
            &errors[0],
            ServerToClient::Error { in_reply_to: Some(t), .. } if t == "candidate"
        ));
    }
}

#[test]
fn a_refused_message_is_told_to_its_sender_only() {
    let mut f = Fixture::new();
    let (a, ka) = f.peer();
    let (b, kb) = f.peer();
    let out = f.send(
        a,
        &ClientToServer::Offer {
            to: id(&kb),
            sdp: "v=0".into(),
            session: None,
            from: None,
        },
    );
    assert!(out.contains(&Output::Route {
        from: a,
        to: b,
        kind: "offer",
        message: ServerToClient::Offer {
            from: id(&ka),
            sdp: "v=0".into(),
            session: None
        }
    }));
    f.hub.handle_refused(a, b, "offer");
    let out = f.drain();
    assert!(Fixture::sent_to(&out, b).is_empty());
    let errors = Fixture::sent_to(&out, a);
    assert_eq!(error_code(&errors), Some(ErrorCode::PeerBusy));
    let ServerToClient::Error {
        message,
        in_reply_to,
        ..
    } = &errors[0]
    else {
        unreachable!()
    };
    assert_eq!(in_reply_to.as_deref(), Some("offer"));
    assert!(message.contains(&id(&kb)), "{message}");
    // A sender that has gone hears nothing.
    f.hub.handle_closed(a);
    f.hub.handle_refused(a, b, "offer");
    assert!(f.drain().is_empty());
}
