//! The load of `signaling`, the same for both servers: registered clients
//! (most idle), and pairs of them exchanging offers and answers at a set
//! rate. A pair's offerer sends an offer (a realistic SDP, numbered in its
//! `session`) on a fixed schedule; the answerer answers each at once; the
//! offerer times offer → answer. Only the wire protocol differs between our
//! relay (`/signaling`, signed registration) and PeerJS (`/peerjs`, id and
//! token in the URL; `{type:"OFFER",dst,payload}` relayed as
//! `{type:"OFFER",src,payload}`).

use std::{
    collections::VecDeque,
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use darkswap_proto::signaling::{ClientToServer, ServerToClient};
use futures::{SinkExt, StreamExt};
use rand::{Rng, distributions::Alphanumeric};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::{
    client::{self, Ws},
    peerjs,
    soak_relay::BENCH_SDP,
};

/// Which server, and so which wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    Ours,
    PeerJs,
}

/// A registered client: its socket and the id others address it by.
#[derive(Debug)]
pub(crate) struct Registered {
    pub(crate) ws: Ws,
    pub(crate) id: String,
}

/// Connects and registers one client from `source`.
pub(crate) async fn register(
    server: Server,
    addr: SocketAddr,
    source: Ipv4Addr,
) -> anyhow::Result<Registered> {
    match server {
        Server::Ours => {
            let r = client::register(addr, source, client::REGISTER_TIMEOUT).await?;
            Ok(Registered {
                ws: r.ws,
                id: r.peer.to_string(),
            })
        }
        Server::PeerJs => {
            // Ids as long as our peer ids (52 characters), so that both
            // servers relay messages of the same size.
            let id = random_text(52);
            let token = random_text(10);
            let path = format!("/peerjs?key={}&id={id}&token={token}", peerjs::KEY);
            tokio::time::timeout(client::REGISTER_TIMEOUT, async {
                let mut ws = client::open(addr, &path, source).await?;
                match next(server, &mut ws).await? {
                    Incoming::Open => Ok(Registered { ws, id }),
                    other => bail!("expected OPEN, got {other:?}"),
                }
            })
            .await
            .context("registration timed out")?
        }
    }
}

fn random_text(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// What a client reads, in either protocol.
#[derive(Debug, PartialEq)]
pub(crate) enum Incoming {
    Open,
    Offer { from: String, session: u64 },
    Answer { session: u64 },
    Other(String),
}

/// Parses one text frame of `server`'s protocol.
pub(crate) fn parse(server: Server, text: &str) -> anyhow::Result<Incoming> {
    let session = |s: Option<&str>| s.and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
    Ok(match server {
        Server::Ours => match serde_json::from_str(text).context("server message")? {
            ServerToClient::Offer {
                from, session: s, ..
            } => Incoming::Offer {
                from,
                session: session(s.as_deref()),
            },
            ServerToClient::Answer { session: s, .. } => Incoming::Answer {
                session: session(s.as_deref()),
            },
            other => Incoming::Other(format!("{other:?}")),
        },
        Server::PeerJs => {
            let v: serde_json::Value = serde_json::from_str(text).context("server message")?;
            let kind = v["type"].as_str().unwrap_or_default();
            let s = || session(v["payload"]["session"].as_str());
            match kind {
                "OPEN" => Incoming::Open,
                "OFFER" => Incoming::Offer {
                    from: v["src"].as_str().unwrap_or_default().to_owned(),
                    session: s(),
                },
                "ANSWER" => Incoming::Answer { session: s() },
                _ => Incoming::Other(text.to_owned()),
            }
        }
    })
}

/// An offer (`answer` false) or an answer to `to`, numbered `session`.
pub(crate) fn message(server: Server, answer: bool, to: &str, session: u64) -> String {
    let (to, session) = (to.to_owned(), session.to_string());
    match server {
        Server::Ours => {
            let (sdp, session, from) = (BENCH_SDP.to_owned(), Some(session), None);
            if answer {
                ClientToServer::Answer {
                    to,
                    sdp,
                    session,
                    from,
                }
            } else {
                ClientToServer::Offer {
                    to,
                    sdp,
                    session,
                    from,
                }
            }
            .to_json()
        }
        Server::PeerJs => serde_json::json!({
            "type": if answer { "ANSWER" } else { "OFFER" },
            "dst": to,
            "payload": { "sdp": BENCH_SDP, "session": session },
        })
        .to_string(),
    }
}

/// How often a PeerJS client sends `HEARTBEAT` (the peerjs client's
/// default `pingInterval`): the server closes a client silent for its
/// `alive_timeout` (90 s by default). Our clients send nothing of the kind:
/// the relay pings them (every 20 s by default) and reading answers.
pub(crate) const PEERJS_HEARTBEAT: Duration = Duration::from_secs(5);

/// The keep-alive a client of `server` sends of its own accord: PeerJS's
/// heartbeats, the first at a random point of the first period (clients
/// do not start together); nothing for ours.
pub(crate) struct KeepAlive(Option<tokio::time::Interval>);

impl KeepAlive {
    pub(crate) fn new(server: Server) -> Self {
        KeepAlive(match server {
            Server::Ours => None,
            Server::PeerJs => {
                let first = PEERJS_HEARTBEAT.mul_f64(rand::random::<f64>());
                let start = tokio::time::Instant::now() + first;
                Some(tokio::time::interval_at(start, PEERJS_HEARTBEAT))
            }
        })
    }

    /// Waits until a keep-alive is due; never completes for our clients.
    pub(crate) async fn due(&mut self) {
        match &mut self.0 {
            Some(interval) => {
                interval.tick().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// Sends PeerJS's heartbeat; `false` if the socket failed.
pub(crate) async fn heartbeat(ws: &mut Ws) -> bool {
    ws.send(Message::text(r#"{"type":"HEARTBEAT"}"#))
        .await
        .is_ok()
}

/// Holds a registered client idle ([`keep`]) until `stop`; then closes.
pub(crate) async fn idle(server: Server, ws: Ws, stop: CancellationToken) {
    if let Some(ws) = keep(server, ws, stop).await {
        client::close(ws).await;
    }
}

/// Keeps a registered client alive until `handover`, then gives its socket
/// back (`None` if it failed meanwhile): reads (and drops) what the server
/// sends, which also answers our relay's pings, and sends PeerJS's
/// heartbeats.
pub(crate) async fn keep(server: Server, mut ws: Ws, handover: CancellationToken) -> Option<Ws> {
    let mut keepalive = KeepAlive::new(server);
    loop {
        tokio::select! {
            _ = handover.cancelled() => return Some(ws),
            _ = keepalive.due() => if !heartbeat(&mut ws).await { return None },
            frame = ws.next() => if !matches!(frame, Some(Ok(_))) { return None },
        }
    }
}

/// The next text frame, parsed; control frames are skipped (reading
/// answers pings).
pub(crate) async fn next(server: Server, ws: &mut Ws) -> anyhow::Result<Incoming> {
    loop {
        match ws.next().await {
            None => bail!("socket closed"),
            Some(Err(e)) => bail!("socket failed: {e}"),
            Some(Ok(Message::Text(text))) => return parse(server, text.as_str()),
            Some(Ok(Message::Close(frame))) => bail!("closed by the server: {frame:?}"),
            Some(Ok(_)) => {}
        }
    }
}

/// A period during which every offerer sends at a fixed interval.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Phase {
    pub(crate) id: u32,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    /// Between two offers of one pair.
    pub(crate) interval: Duration,
    pub(crate) pairs: usize,
}

/// What offerers report.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Sent(u32),
    /// Phase, offer → answer in milliseconds.
    Answered(u32, f64),
}

/// Answers every offer at once, until the socket ends or `stop`.
pub(crate) async fn answerer(server: Server, mut ws: Ws, stop: CancellationToken) {
    let mut keepalive = KeepAlive::new(server);
    loop {
        let incoming = tokio::select! {
            _ = stop.cancelled() => break,
            _ = keepalive.due() => if heartbeat(&mut ws).await { continue } else { return },
            i = next(server, &mut ws) => i,
        };
        match incoming {
            Ok(Incoming::Offer { from, session }) => {
                let answer = message(server, true, &from, session);
                if ws.send(Message::text(answer)).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
    client::close(ws).await;
}

/// Sends offers to `to` on the schedule of each phase `phases` announces
/// (pair `index` of `phase.pairs` starts `index / pairs` of an interval
/// late, so the pairs' offers spread evenly), and reports each sent offer
/// and each answer's latency.
pub(crate) async fn offerer(
    server: Server,
    mut ws: Ws,
    to: String,
    index: usize,
    mut phases: watch::Receiver<Option<Phase>>,
    events: mpsc::Sender<Event>,
    stop: CancellationToken,
) {
    let mut session = 0u64;
    // Offers awaiting their answer: (session, phase, sent at).
    let mut pending: VecDeque<(u64, u32, Instant)> = VecDeque::new();
    let mut phase: Option<Phase> = None;
    let mut next_send = Instant::now();
    let mut keepalive = KeepAlive::new(server);
    loop {
        let sending = phase.is_some_and(|p| next_send < p.end);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = keepalive.due() => if !heartbeat(&mut ws).await { return },
            changed = phases.changed() => {
                if changed.is_err() {
                    break;
                }
                phase = *phases.borrow_and_update();
                if let Some(p) = phase {
                    let offset = p.interval.mul_f64(index as f64 / p.pairs.max(1) as f64);
                    next_send = p.start + offset;
                }
            }
            _ = tokio::time::sleep_until(next_send.into()), if sending => {
                let Some(p) = phase else { continue };
                let offer = message(server, false, &to, session);
                pending.push_back((session, p.id, Instant::now()));
                session += 1;
                next_send += p.interval;
                if ws.send(Message::text(offer)).await.is_err() {
                    return;
                }
                let _ = events.send(Event::Sent(p.id)).await;
            }
            incoming = next(server, &mut ws) => match incoming {
                Ok(Incoming::Answer { session: s }) => {
                    // Answers come in order; older offers without one
                    // were lost.
                    while let Some(&(pending_session, phase_id, at)) = pending.front() {
                        if pending_session > s {
                            break;
                        }
                        pending.pop_front();
                        if pending_session == s {
                            let ms = at.elapsed().as_secs_f64() * 1e3;
                            let _ = events.send(Event::Answered(phase_id, ms)).await;
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            },
        }
    }
    client::close(ws).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peerjs_messages_round_trip() {
        let offer = message(Server::PeerJs, false, "bob", 7);
        let v: serde_json::Value = serde_json::from_str(&offer).unwrap();
        assert_eq!(v["type"], "OFFER");
        assert_eq!(v["dst"], "bob");
        // What the server relays: the same with `src` instead of `dst`.
        let relayed = serde_json::json!({"type": "OFFER", "src": "alice", "dst": "bob", "payload": v["payload"]});
        assert_eq!(
            parse(Server::PeerJs, &relayed.to_string()).unwrap(),
            Incoming::Offer {
                from: "alice".into(),
                session: 7
            }
        );
        let answer =
            serde_json::json!({"type": "ANSWER", "src": "bob", "payload": {"session": "7"}});
        assert_eq!(
            parse(Server::PeerJs, &answer.to_string()).unwrap(),
            Incoming::Answer { session: 7 }
        );
        assert_eq!(
            parse(Server::PeerJs, r#"{"type":"OPEN"}"#).unwrap(),
            Incoming::Open
        );
    }

    #[test]
    fn our_messages_round_trip() {
        let offer = message(Server::Ours, false, "bob", 3);
        let ClientToServer::Offer { to, session, .. } = serde_json::from_str(&offer).unwrap()
        else {
            panic!("not an offer: {offer}");
        };
        assert_eq!((to.as_str(), session.as_deref()), ("bob", Some("3")));
        let relayed = ServerToClient::Answer {
            from: "bob".into(),
            sdp: "v=0".into(),
            session: Some("3".into()),
        };
        assert_eq!(
            parse(Server::Ours, &serde_json::to_string(&relayed).unwrap()).unwrap(),
            Incoming::Answer { session: 3 }
        );
    }

    #[test]
    fn both_protocols_carry_the_same_payload() {
        // The offers differ only in framing: within 10 % in size.
        let (ours, theirs) = (
            message(Server::Ours, false, &"x".repeat(52), 1).len() as f64,
            message(Server::PeerJs, false, &"x".repeat(52), 1).len() as f64,
        );
        assert!((ours / theirs - 1.0).abs() < 0.1, "{ours} vs {theirs}");
    }
}
