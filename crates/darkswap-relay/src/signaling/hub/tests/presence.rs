//! Presence: pages of peers on demand, joins and leaves only to watchers.

use super::*;

fn ids(keys: &[&Keypair]) -> Vec<String> {
    let mut v: Vec<String> = keys.iter().map(|k| id(k)).collect();
    v.sort_by_key(|s| s.parse::<PeerId>().unwrap());
    v
}

#[test]
fn peers_come_in_pages_that_cover_everyone_once() {
    let mut f = Fixture::new();
    f.hub.config.max_peers = 10;
    let (a, ka) = f.peer();
    let others: Vec<Keypair> = (0..4).map(|_| f.peer().1).collect();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let out = f.send(
            a,
            &ClientToServer::ListPeers {
                after: after.clone(),
                limit: Some(50),
            },
        );
        let Some(ServerToClient::Peers { peers, next }) =
            Fixture::sent_to(&out, a).into_iter().next()
        else {
            panic!("{out:?}")
        };
        assert!(peers.len() <= 2, "capped at the page size: {peers:?}");
        seen.extend(peers);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ids(&others.iter().collect::<Vec<_>>()));
    assert!(!seen.contains(&id(&ka)), "not itself");
    let out = f.send(
        a,
        &ClientToServer::ListPeers {
            after: Some("nope".into()),
            limit: None,
        },
    );
    assert_eq!(
        error_code(&Fixture::sent_to(&out, a)),
        Some(ErrorCode::InvalidMessage)
    );
}

#[test]
fn a_registration_costs_one_message_per_watcher_not_per_peer() {
    let mut f = Fixture::new();
    f.hub.config.max_peers = 100;
    let conns: Vec<ConnId> = (0..50).map(|_| f.peer().0).collect();
    let key = Keypair::generate_ed25519();
    // One of them watches the newcomer before it registers.
    let out = f.send(
        conns[0],
        &ClientToServer::Watch {
            peers: vec![id(&key)],
        },
    );
    assert_eq!(
        Fixture::sent_to(&out, conns[0]),
        vec![ServerToClient::Presence {
            online: vec![],
            offline: vec![id(&key)]
        }]
    );
    let (c, nonce) = f.open();
    let out = f.send(c, &sign_registration(&key, &nonce).unwrap());
    let to_others: Vec<&Output> = out
        .iter()
        .filter(|o| matches!(o, Output::Send(to, _) if *to != c))
        .collect();
    assert_eq!(
        to_others,
        vec![&Output::Send(
            conns[0],
            ServerToClient::PeerJoined { peer_id: id(&key) }
        )]
    );
    // Its first page, not the whole list.
    let Some(ServerToClient::Registered { peers, next, .. }) =
        Fixture::sent_to(&out, c).into_iter().next()
    else {
        panic!("{out:?}")
    };
    assert_eq!((peers.len(), next.is_some()), (2, true));
    f.hub.handle_closed(c);
    assert_eq!(
        f.drain(),
        vec![Output::Send(
            conns[0],
            ServerToClient::PeerLeft { peer_id: id(&key) }
        )]
    );
}

#[test]
fn watching_is_bounded_undone_by_unwatch_and_forgotten_on_close() {
    let mut f = Fixture::new();
    let (a, _) = f.peer();
    let (b, kb) = f.peer();
    let (w1, w2, w3) = (
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
    );
    let watch = |keys: &[&Keypair]| ClientToServer::Watch {
        peers: keys.iter().map(|k| id(k)).collect(),
    };
    let out = f.send(a, &watch(&[&kb, &w1]));
    assert_eq!(
        Fixture::sent_to(&out, a),
        vec![ServerToClient::Presence {
            online: vec![id(&kb)],
            offline: vec![id(&w1)]
        }]
    );
    // Watching one already watched costs nothing; a third is over the limit
    // of 2, and nothing of that message is applied.
    let out = f.send(a, &watch(&[&kb, &w2]));
    assert_eq!(
        error_code(&Fixture::sent_to(&out, a)),
        Some(ErrorCode::WatchLimit)
    );
    let out = f.send(a, &watch(&[&w1, &w2, &w3]));
    assert_eq!(
        error_code(&Fixture::sent_to(&out, a)),
        Some(ErrorCode::WatchLimit)
    );
    let out = f.send(
        a,
        &ClientToServer::Watch {
            peers: vec!["not a peer id".into()],
        },
    );
    assert_eq!(
        error_code(&Fixture::sent_to(&out, a)),
        Some(ErrorCode::InvalidMessage)
    );
    // Unwatched: b's leaving is not told.
    let out = f.send(
        a,
        &ClientToServer::Unwatch {
            peers: vec![id(&kb)],
        },
    );
    assert!(out.is_empty(), "{out:?}");
    f.send(a, &watch(&[&w2]));
    f.hub.handle_closed(b);
    assert!(Fixture::sent_to(&f.drain(), a).is_empty());
    // A closed watcher is forgotten: w1 registering tells nobody.
    f.hub.handle_closed(a);
    assert!(f.hub.watchers.is_empty(), "{:?}", f.hub.watchers);
    let (c, nonce) = f.open();
    let out = f.send(c, &sign_registration(&w1, &nonce).unwrap());
    assert_eq!(out.len(), 1, "only its own registered: {out:?}");
}
