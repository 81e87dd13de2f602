//! Native WebRTC peers (str0m) meeting through a real `darkswap-relay`
//! process's signaling server on 127.0.0.1, and the examples run as users
//! run them.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use darkswap_testkit::{RelayProcess, target_binary};
use darkswap_webrtc::{
    ConnectionPool, ConnectionPoolConfig, DataMessage, Keypair, PeerId, SignalingError,
    SignalingEvent, WebRtcConfig, WebRtcError, WebRtcSignalingClient,
};

mod support;
use support::{peer, signaling_url};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_native_peers_exchange_text_and_binary_over_a_data_channel() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::spawn(dir.path(), &[]);
    let url = signaling_url(&relay);
    let (alice, _) = peer(&url, WebRtcConfig::loopback()).await;
    let (bob, bob_id) = peer(&url, WebRtcConfig::loopback()).await;

    let (conn, incoming) = tokio::time::timeout(WAIT, async {
        let conn = alice.create_connection(&bob_id).await.unwrap();
        (conn, bob.accept().await.unwrap())
    })
    .await
    .expect("connected in time");
    assert_eq!(incoming.peer_id(), alice.local_peer_id());
    assert!(conn.is_initiator() && !incoming.is_initiator());
    // Both ends count their connection in use until they release it.
    for m in [&alice, &bob] {
        assert_eq!(m.get_connection_stats().in_use_connections, 1);
    }

    conn.send_text("hello bob").await.unwrap();
    assert_eq!(
        incoming.receive().await.unwrap(),
        DataMessage::Text("hello bob".into())
    );
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    incoming.send(blob.clone()).await.unwrap();
    assert_eq!(conn.receive().await.unwrap(), DataMessage::Binary(blob));
    // Many small messages arrive whole and in order.
    for n in 0..500 {
        conn.send_text(&n.to_string()).await.unwrap();
    }
    for n in 0..500 {
        assert_eq!(
            incoming.receive().await.unwrap(),
            DataMessage::Text(n.to_string())
        );
    }
    // Over the size limit: refused locally, the connection stays up.
    assert!(matches!(
        conn.send(vec![0; 300 * 1024]).await,
        Err(WebRtcError::TooLarge { .. })
    ));

    // The pool hands the same connection out again; closing reaches bob.
    alice.release_connection(&bob_id);
    assert_eq!(alice.get_connection_stats().idle_connections, 1);
    let again = alice.create_connection(&bob_id).await.unwrap();
    again.send_text("still here").await.unwrap();
    assert_eq!(
        incoming.receive().await.unwrap(),
        DataMessage::Text("still here".into())
    );
    assert!(alice.close_connection(&bob_id));
    assert_eq!(
        tokio::time::timeout(WAIT, incoming.receive())
            .await
            .unwrap(),
        Err(WebRtcError::Closed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_peers_and_stolen_ids_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::spawn(dir.path(), &[]);
    let url = signaling_url(&relay);
    let (alice, _) = peer(&url, WebRtcConfig::loopback()).await;
    let nobody = PeerId::random();
    assert_eq!(
        alice.create_connection(&nobody).await.unwrap_err(),
        WebRtcError::UnknownPeer(nobody)
    );

    // A second client with the same key is refused by the server.
    let key = Keypair::generate_ed25519();
    let first = WebRtcSignalingClient::new(key.clone());
    first.connect(&url).await.unwrap();
    let second = WebRtcSignalingClient::new(key);
    match second.connect(&url).await {
        Err(SignalingError::Refused { code, .. }) => assert_eq!(code, "already_registered"),
        other => panic!("{other:?}"),
    }
    // A server that is not there.
    let gone = WebRtcSignalingClient::new(Keypair::generate_ed25519());
    assert!(matches!(
        gone.connect("ws://127.0.0.1:1/signaling").await,
        Err(SignalingError::Connection(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_client_hears_of_the_peers_it_watches_and_pages_through_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::spawn(dir.path(), &[]);
    let url = signaling_url(&relay);
    let alice = WebRtcSignalingClient::new(Keypair::generate_ed25519());
    alice.connect(&url).await.unwrap();
    let bob_key = Keypair::generate_ed25519();
    let bob_id = bob_key.public().to_peer_id();
    let presence = alice.watch(&[bob_id]).await.unwrap();
    assert_eq!((presence.online, presence.offline), (vec![], vec![bob_id]));

    let bob = WebRtcSignalingClient::new(bob_key);
    assert_eq!(
        bob.connect(&url).await.unwrap(),
        vec![alice.local_peer_id()]
    );
    let next = || async {
        tokio::time::timeout(WAIT, alice.next_event())
            .await
            .expect("an event in time")
    };
    assert_eq!(next().await, Some(SignalingEvent::PeerJoined(bob_id)));
    assert!(alice.peers().contains(&bob_id));
    let page = alice.list_peers_page(None, Some(10)).await.unwrap();
    assert_eq!((page.peers, page.next), (vec![bob_id], None));
    bob.disconnect().await;
    assert_eq!(next().await, Some(SignalingEvent::PeerLeft(bob_id)));
    assert!(!alice.peers().contains(&bob_id));
    // A refused question is an error for its caller, not a hang.
    let too_many: Vec<PeerId> = (0..300).map(|_| PeerId::random()).collect();
    match alice.watch(&too_many).await {
        Err(SignalingError::Refused { code, .. }) => assert_eq!(code, "watch_limit"),
        other => panic!("{other:?}"),
    }
}

fn example(name: &str) -> std::path::PathBuf {
    target_binary(&format!("examples/{name}"))
}

#[test]
fn the_webrtc_and_pool_examples_run() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::spawn(dir.path(), &[]);
    let url = signaling_url(&relay);

    let mut listener = Command::new(example("webrtc_example"))
        .args([&url, "--loopback"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(listener.stdout.take().unwrap()).lines();
    let id = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("peer id: ")
        .expect("the listener prints its peer id first")
        .to_owned();

    let out = Command::new(example("webrtc_example"))
        .args([&url, &id, "--loopback", "--message", "ping from a test"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("received: hello from rust"), "{stdout}");
    assert!(
        stdout.contains("received: echo: ping from a test"),
        "{stdout}"
    );
    let heard = lines
        .map_while(Result::ok)
        .find(|l| l.starts_with("received from"))
        .unwrap();
    assert!(heard.ends_with(": ping from a test"), "{heard}");
    listener.kill().unwrap();
    listener.wait().unwrap();

    let out = Command::new(example("connection_pool_example"))
        .arg(&url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("after release: total 1 in use 0 idle 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("after close: total 0 in use 0 idle 0"),
        "{stdout}"
    );
}

#[test]
fn pool_config_defaults_are_the_seeds() {
    let c = ConnectionPoolConfig::default();
    assert_eq!(
        (c.max_connections, c.ttl, c.max_age, c.enable_reuse),
        (
            100,
            Duration::from_secs(300),
            Duration::from_secs(3600),
            true
        )
    );
    let _: ConnectionPool<darkswap_webrtc::WebRtcConnection> = ConnectionPool::new(c);
}
