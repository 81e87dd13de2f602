//! Fairness and presence on `/signaling`, on 127.0.0.1 port 0 with real
//! WebSocket clients: a crowd of senders cannot get a slowly reading peer
//! closed (each sender is bounded and refused with `peer_busy`), a peer
//! that does not read at all still is, and registering tells nobody who did
//! not ask.
#![cfg(feature = "server")]

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use support::{Client, Server, WAIT};

#[path = "support/signaling.rs"]
mod support;

/// Attackers, each within its own message rate (20/s, burst 50).
const ATTACKERS: usize = 10;
/// An offer close to the 64 KiB frame limit.
const OFFER: usize = 60 * 1024;
/// What "keeps its round trip" means here: generous for a loaded machine,
/// far below what a buried reader would see.
const RTT_BOUND: Duration = Duration::from_secs(5);

/// Spawns an attacker that sends large offers to `victim` at 15 a second
/// (after a first burst of 40) until `stop` is set, reading its own socket;
/// returns how many `peer_busy` refusals it got.
fn attacker(
    client: Client,
    victim: String,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let sdp = "a".repeat(OFFER);
        let offer = json!({"type":"offer","to":victim,"sdp":sdp}).to_string();
        let (mut sink, mut stream) = client.ws.split();
        let writer = async {
            let mut stop = stop.clone();
            for _ in 0..40 {
                sink.send(Message::text(offer.clone())).await.unwrap();
            }
            let mut tick = tokio::time::interval(Duration::from_millis(66));
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tick.tick() => sink.send(Message::text(offer.clone())).await.unwrap(),
                }
            }
            sink
        };
        let reader = async {
            let mut stop = stop.clone();
            let mut busy = 0;
            loop {
                tokio::select! {
                    _ = stop.changed() => return busy,
                    frame = stream.next() => match frame {
                        Some(Ok(Message::Text(t))) => {
                            let v: Value = serde_json::from_str(t.as_str()).unwrap();
                            if v["code"] == "peer_busy" {
                                busy += 1;
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => return busy,
                    },
                }
            }
        };
        let (_sink, busy) = tokio::join!(writer, reader);
        busy
    })
}

/// The victim's reader: takes one frame every 10 ms, slower than the crowd
/// writes, and passes on what is not an attacker's offer (its pongs, the
/// honest peer's offers) until its socket closes.
fn slow_reader(
    mut stream: futures::stream::SplitStream<support::Socket>,
) -> mpsc::Receiver<Result<Value, String>> {
    // Only what is not an attacker's offer is passed on: a handful of
    // messages a round, far below this bound.
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            let frame = match stream.next().await {
                Some(Ok(frame)) => frame,
                other => {
                    let _ = tx
                        .send(Err(format!("the victim's socket ended: {other:?}")))
                        .await;
                    return;
                }
            };
            match frame {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    let attacker =
                        v["type"] == "offer" && v["sdp"].as_str().is_some_and(|s| s.len() >= OFFER);
                    if !attacker && tx.send(Ok(v)).await.is_err() {
                        return;
                    }
                }
                Message::Close(c) => {
                    let _ = tx.send(Err(format!("the victim was closed: {c:?}"))).await;
                    return;
                }
                _ => {}
            }
        }
    });
    rx
}

/// The next message the victim's reader passes on, in time.
async fn next(rx: &mut mpsc::Receiver<Result<Value, String>>) -> Value {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(Ok(v))) => v,
        Ok(Some(Err(e))) => panic!("{e}"),
        Ok(None) => panic!("the victim's reader stopped"),
        Err(_) => panic!("nothing for the victim in time"),
    }
}

#[tokio::test]
async fn a_flooded_peer_that_reads_slowly_stays_connected_and_the_crowd_is_refused() {
    let server = Server::start(|_, _| {}).await;
    let victim = Client::registered(&server).await;
    let victim_id = victim.id();
    let mut honest = Client::registered(&server).await;
    let (stop_tx, stop) = watch::channel(false);
    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        let a = Client::registered(&server).await;
        attackers.push(attacker(a, victim_id.clone(), stop.clone()));
    }
    let (mut victim_sink, victim_stream) = victim.ws.split();
    let mut inbox = slow_reader(victim_stream);
    let mut send = async |v: Value| {
        victim_sink
            .send(Message::text(v.to_string()))
            .await
            .unwrap();
    };

    // While the crowd writes, the victim keeps a round trip to the server
    // and an honest peer's offer gets its answer.
    let mut worst = Duration::ZERO;
    for round in 0..4 {
        let start = Instant::now();
        send(json!({"type":"ping","id":round})).await;
        assert_eq!(next(&mut inbox).await, json!({"type":"pong","id":round}));
        worst = worst.max(start.elapsed());

        let start = Instant::now();
        let session = format!("honest-{round}");
        honest
            .send(json!({"type":"offer","to":victim_id,"sdp":"v=0 honest","session":session}))
            .await;
        let offer = next(&mut inbox).await;
        assert_eq!(
            (&offer["from"], &offer["session"]),
            (&json!(honest.id()), &json!(session))
        );
        send(json!({"type":"answer","to":honest.id(),"sdp":"v=0 answer","session":session})).await;
        let answer = honest.recv_type("answer").await;
        assert_eq!(answer["session"], json!(session));
        worst = worst.max(start.elapsed());
    }
    assert!(worst < RTT_BOUND, "round trip {worst:?}");

    stop_tx.send(true).unwrap();
    let mut refused = 0;
    for a in attackers {
        refused += a.await.unwrap();
    }
    assert!(refused > 0, "the crowd was never refused");
    assert!(
        server.metric("darkswap_relay_signaling_errors_total{code=\"peer_busy\"}")
            >= refused as f64
    );
    // Still registered and served.
    send(json!({"type":"ping","id":"end"})).await;
    assert_eq!(next(&mut inbox).await, json!({"type":"pong","id":"end"}));
    server.stop().await;
}

#[tokio::test]
async fn a_peer_that_does_not_read_at_all_is_closed_as_too_slow() {
    let server = Server::start(|s, _| s.slow_reader_timeout = Duration::from_secs(1)).await;
    let victim = Client::registered(&server).await;
    let mut honest = Client::registered(&server).await;
    honest
        .send(json!({"type":"watch","peers":[victim.id()]}))
        .await;
    assert_eq!(
        honest.recv_type("presence").await["online"],
        json!([victim.id()])
    );
    let (stop_tx, stop) = watch::channel(false);
    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        let a = Client::registered(&server).await;
        attackers.push(attacker(a, victim.id(), stop.clone()));
    }
    // The victim reads nothing: once its buffers are full, nothing drains,
    // and it is closed within the deadline (well within WAIT).
    assert_eq!(
        honest.recv_type("peer_left").await["peer_id"],
        json!(victim.id())
    );
    assert!(
        server.metric("darkswap_relay_rate_limited_total{plane=\"ws\",limit=\"slow_reader\"}")
            >= 1.0
    );
    stop_tx.send(true).unwrap();
    for a in attackers {
        a.await.unwrap();
    }
    drop(victim);
    server.stop().await;
}

#[tokio::test]
async fn registering_tells_only_the_peers_that_watch_and_peers_come_in_pages() {
    let server = Server::start(|s, _| s.peer_page_size = 3).await;
    let mut first = Client::registered(&server).await;
    let mut watcher = Client::registered(&server).await;
    let mut others = Vec::new();
    for _ in 0..5 {
        others.push(Client::registered(&server).await);
    }
    let late = Client::connect(&server.url("/signaling")).await;
    watcher
        .send(json!({"type":"watch","peers":[late.id()]}))
        .await;
    assert_eq!(watcher.recv().await["type"], "presence");
    let mut late = late;
    let registered = late.register().await;
    assert_eq!(
        registered["peers"].as_array().unwrap().len(),
        3,
        "{registered}"
    );
    assert!(registered["next"].is_string(), "{registered}");
    assert_eq!(
        watcher.recv().await,
        json!({"type":"peer_joined","peer_id":late.id()})
    );
    // The first peer heard nothing of the seven registrations after it: its
    // next message answers its ping.
    first.send(json!({"type":"ping","id":1})).await;
    assert_eq!(first.recv().await, json!({"type":"pong","id":1}));
    // Its pages cover the other seven, once each.
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let mut ask = json!({"type":"list_peers"});
        if !after.is_null() {
            ask["after"] = after.clone();
        }
        first.send(ask).await;
        let page = first.recv_type("peers").await;
        seen.extend(page["peers"].as_array().unwrap().iter().cloned());
        after = page["next"].clone();
        if after.is_null() {
            break;
        }
    }
    let mut expected: Vec<Value> = others.iter().map(|c| json!(c.id())).collect();
    expected.extend([json!(watcher.id()), json!(late.id())]);
    seen.sort_by_key(|v| v.to_string());
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(seen, expected);
    server.stop().await;
}
