//! The relay's STUN/TURN port (a real `darkswap-relay` process) against
//! webrtc-rs's TURN client: STUN for anyone, TURN only with the credentials
//! `POST /auth/ice-servers` mints for a token holder, allocation limits and
//! refusals counted in the metrics.
#![cfg(feature = "server")]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use darkswap_proto::relay_auth::sign_token_request;
use darkswap_testkit::RelayProcess;
use libp2p_identity::Keypair;
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use turn::client::{Client, ClientConfig};
use webrtc_util::Conn;

const WAIT: Duration = Duration::from_secs(20);

fn turn_relay(dir: &std::path::Path) -> RelayProcess {
    let args = RelayProcess::loopback_args(dir);
    RelayProcess::start(
        &RelayProcess::binary(),
        &args,
        &[
            ("DARKSWAP_RELAY_TURN__ENABLED", "true"),
            ("DARKSWAP_RELAY_TURN__LISTEN", "127.0.0.1:0"),
            ("DARKSWAP_RELAY_TURN__MAX_ALLOCATIONS_PER_PEER", "1"),
        ],
    )
}

async fn post(url: &str, bearer: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = tokio::time::timeout(WAIT, request.send())
        .await
        .unwrap()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn token_for(http: &str, key: &Keypair) -> String {
    let peer = key.public().to_peer_id().to_string();
    let (status, challenge) = post(
        &format!("{http}/auth/challenge"),
        None,
        json!({ "peer_id": peer }),
    )
    .await;
    assert_eq!(status, 200, "{challenge}");
    let relay = challenge["relay_peer_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let answer = sign_token_request(key, &relay, challenge["challenge"].as_str().unwrap()).unwrap();
    let (status, token) = post(
        &format!("{http}/auth/token"),
        None,
        serde_json::to_value(answer).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{token}");
    token["token"].as_str().unwrap().to_owned()
}

async fn client(server: SocketAddr, username: &str, password: &str) -> Client {
    let conn = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let client = Client::new(ClientConfig {
        stun_serv_addr: server.to_string(),
        turn_serv_addr: server.to_string(),
        username: username.to_owned(),
        password: password.to_owned(),
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn,
        vnet: None,
    })
    .await
    .unwrap();
    client.listen().await.unwrap();
    client
}

/// The TURN entry of an `/auth/ice-servers` answer: URL, username, password.
fn turn_entry(answer: &Value) -> (String, String, String) {
    let turn = &answer["ice_servers"][1];
    (
        turn["urls"][0].as_str().unwrap().to_owned(),
        turn["username"].as_str().unwrap().to_owned(),
        turn["credential"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_peers_the_relay_admits_can_allocate_and_every_refusal_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let relay = turn_relay(dir.path());
    let http = format!("http://{}", relay.signaling.unwrap());
    let server = relay.turn.expect("the relay reports its STUN/TURN port");

    // ICE servers need a token.
    let (status, refused) = post(&format!("{http}/auth/ice-servers"), None, json!({})).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (401, Some("missing_token"))
    );
    let key = Keypair::generate_ed25519();
    let token = token_for(&http, &key).await;
    let (status, answer) = post(&format!("{http}/auth/ice-servers"), Some(&token), json!({})).await;
    assert_eq!(status, 200, "{answer}");
    let port = server.port();
    assert_eq!(
        answer["ice_servers"][0]["urls"][0],
        format!("stun:127.0.0.1:{port}")
    );
    let (url, username, password) = turn_entry(&answer);
    assert_eq!(url, format!("turn:127.0.0.1:{port}?transport=udp"));
    let peer = key.public().to_peer_id().to_string();
    assert!(username.ends_with(&format!(":{peer}")), "{username}");
    assert!(answer["expires_at"].as_u64().unwrap() > 0);

    // STUN answers anyone: our address as the relay sees it.
    let stranger = client(server, "", "").await;
    let reflexive = tokio::time::timeout(WAIT, stranger.send_binding_request())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reflexive.ip().to_string(), "127.0.0.1");

    // TURN does not: no credentials, a forged password, a made-up username.
    for (user, pass) in [
        ("", ""),
        (username.as_str(), "forged"),
        ("4102444800:me", "x"),
    ] {
        let c = client(server, user, pass).await;
        match tokio::time::timeout(WAIT, c.allocate()).await.unwrap() {
            Err(turn::Error::Other(e)) => assert!(e.contains("error 400"), "{e}"),
            Err(e) => panic!("refused for the wrong reason: {e}"),
            Ok(_) => panic!("{user:?} allocated without valid credentials"),
        }
        c.close().await.unwrap();
    }

    // With the minted credentials: an allocation that relays both ways.
    let holder = client(server, &username, &password).await;
    let relayed = tokio::time::timeout(WAIT, holder.allocate())
        .await
        .unwrap()
        .expect("allocated");
    let relayed_addr = relayed.local_addr().unwrap();
    assert_eq!(relayed_addr.ip().to_string(), "127.0.0.1");
    let outside = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    relayed
        .send_to(b"through the relay", outside.local_addr().unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = tokio::time::timeout(WAIT, outside.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&buf[..n], from), (&b"through the relay"[..], relayed_addr));
    outside.send_to(b"and back", relayed_addr).await.unwrap();
    let (n, _) = tokio::time::timeout(WAIT, relayed.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"and back");

    // One allocation per peer here (max_allocations_per_peer = 1): a second
    // one for the same peer is refused with 486.
    let (_, again) = post(&format!("{http}/auth/ice-servers"), Some(&token), json!({})).await;
    let (_, username2, password2) = turn_entry(&again);
    let second = client(server, &username2, &password2).await;
    match tokio::time::timeout(WAIT, second.allocate()).await.unwrap() {
        Err(turn::Error::Other(e)) => assert!(e.contains("error 486"), "{e}"),
        Err(e) => panic!("refused for the wrong reason: {e}"),
        Ok(_) => panic!("a second allocation for one peer"),
    }

    let metrics = reqwest::get(format!("http://{}/metrics", relay.metrics.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "darkswap_relay_turn_allocations_total 1",
        "darkswap_relay_turn_allocations_active 1",
        "darkswap_relay_turn_refusals_total{reason=\"unauthorized\"} 3",
        "darkswap_relay_turn_refusals_total{reason=\"peer_limit\"} 1",
        "darkswap_relay_turn_credentials_issued_total 2",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    relayed.close().await.unwrap();
    holder.close().await.unwrap();
}
