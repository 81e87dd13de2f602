//! The task that drives one connection: a str0m `Rtc` over its UDP sockets.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use libp2p_identity::PeerId;
use serde_json::Value;
use str0m::{
    Candidate, Event, IceConnectionState, Input, Output, Rtc,
    change::{SdpAnswer, SdpOffer, SdpPendingOffer},
    channel::ChannelId,
    net::{Protocol, Receive},
};
use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot},
};
use tokio_util::task::AbortOnDropHandle;

use crate::{
    config::{DATA_CHANNEL_LABEL, WebRtcConfig},
    connection::{Command, ConnInner, ConnectionPath, DataMessage, WebRtcConnection},
    error::WebRtcError,
    ice::{Gathered, TurnOutbox, TurnRelay, gather},
    manager::{Shared, Signal},
};

/// Gathers the candidates (host sockets, STUN, TURN) into a new `Rtc`.
pub(crate) async fn new_rtc(config: &WebRtcConfig) -> Result<Gathered, WebRtcError> {
    let rtc = Rtc::builder()
        .set_sctp_max_buffered_amount(config.max_message_size.max(1 << 20))
        .build(Instant::now());
    gather(config, rtc).await
}

/// This side offers: a data channel, the offer, then the answer.
pub(crate) async fn offer(
    shared: Arc<Shared>,
    peer: PeerId,
    session: String,
    mut signals: mpsc::Receiver<Signal>,
) {
    let result = async {
        let mut gathered = new_rtc(&shared.attempt_config().await).await?;
        let mut api = gathered.rtc.sdp_api();
        api.add_channel(DATA_CHANNEL_LABEL.to_owned());
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| WebRtcError::Local("nothing to negotiate".into()))?;
        shared
            .signaling
            .send_offer(&peer, &offer.to_sdp_string(), Some(&session))
            .await?;
        Ok::<_, WebRtcError>((gathered, Some(pending)))
    }
    .await;
    match result {
        Ok((gathered, pending)) => {
            PeerTask::new(shared, peer, session, gathered, pending, true)
                .run(&mut signals)
                .await
        }
        Err(e) => shared.fail(peer, &session, e),
    }
}

/// The other side offered: answer it.
pub(crate) async fn answer(
    shared: Arc<Shared>,
    peer: PeerId,
    session: String,
    sdp: String,
    mut signals: mpsc::Receiver<Signal>,
) {
    let result = async {
        let offer = SdpOffer::from_sdp_string(&sdp).map_err(|e| WebRtcError::Sdp {
            peer,
            reason: e.to_string(),
        })?;
        let mut gathered = new_rtc(&shared.attempt_config().await).await?;
        let answer = gathered
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::Sdp {
                peer,
                reason: e.to_string(),
            })?;
        shared
            .signaling
            .send_answer(&peer, &answer.to_sdp_string(), Some(&session))
            .await?;
        Ok::<_, WebRtcError>(gathered)
    }
    .await;
    match result {
        Ok(gathered) => {
            PeerTask::new(shared, peer, session, gathered, None, false)
                .run(&mut signals)
                .await
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "cannot answer offer");
            shared.fail(peer, &session, e)
        }
    }
}

/// One connection: the `Rtc`, its sockets, and the application's handle.
pub(crate) struct PeerTask {
    shared: Arc<Shared>,
    peer: PeerId,
    session: String,
    rtc: Rtc,
    sockets: Vec<Arc<UdpSocket>>,
    /// Our TURN allocation, if one was made.
    relay: Option<TurnRelay>,
    /// Datagrams for the TURN allocation, once it is started.
    relay_out: Option<TurnOutbox>,
    pending_offer: Option<SdpPendingOffer>,
    initiator: bool,
    channel: Option<ChannelId>,
    alive: Arc<AtomicBool>,
    /// Which of our candidates the open channel's datagrams leave from
    /// (0 unknown, 1 host, 2 relay).
    local_candidate: Arc<AtomicU8>,
}

impl PeerTask {
    fn new(
        shared: Arc<Shared>,
        peer: PeerId,
        session: String,
        gathered: Gathered,
        pending_offer: Option<SdpPendingOffer>,
        initiator: bool,
    ) -> Self {
        PeerTask {
            shared,
            peer,
            session,
            rtc: gathered.rtc,
            sockets: gathered.sockets,
            relay: gathered.relay,
            relay_out: None,
            pending_offer,
            initiator,
            channel: None,
            alive: Arc::new(AtomicBool::new(false)),
            local_candidate: Arc::new(AtomicU8::new(0)),
        }
    }

    async fn run(mut self, signals: &mut mpsc::Receiver<Signal>) {
        // Datagrams from every socket funnel into one queue.
        let (udp_tx, mut udp) = mpsc::channel::<(Vec<u8>, SocketAddr, SocketAddr)>(256);
        let _readers: Vec<AbortOnDropHandle<()>> = self
            .sockets
            .iter()
            .map(|s| AbortOnDropHandle::new(tokio::spawn(read_socket(s.clone(), udp_tx.clone()))))
            .collect();
        let _relay_tasks = self.relay.as_ref().map(|relay| {
            let (out, tasks) = relay.start(udp_tx.clone());
            self.relay_out = Some(out);
            tasks
        });
        drop(udp_tx);
        let deadline = Instant::now() + self.shared.config.connect_timeout;
        // Until the channel opens, this task belongs to the attempt; then it
        // lives on in the connection handle it hands out.
        let (commands_tx, mut commands) = mpsc::channel(64);
        let (incoming_tx, incoming_rx) = mpsc::channel(1024);
        let mut handle_parts = Some((commands_tx, incoming_rx));
        let mut disconnected_since: Option<Instant> = None;
        let mut blocked: Option<(DataMessage, oneshot::Sender<Result<(), WebRtcError>>)> = None;
        let mut signals_done = false;
        let outcome: Result<(), WebRtcError> = loop {
            let timeout = match self.drain(&incoming_tx, &mut disconnected_since).await {
                Ok(Some(t)) => t,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            if self.channel.is_some()
                && let Some((commands_tx, incoming_rx)) = handle_parts.take()
            {
                self.alive.store(true, Ordering::Relaxed);
                self.open(commands_tx, incoming_rx);
            }
            if self.channel.is_none() && Instant::now() >= deadline {
                break Err(WebRtcError::Timeout(self.peer));
            }
            if let Some(since) = disconnected_since
                && since.elapsed() >= self.shared.config.disconnect_grace
            {
                break Ok(());
            }
            let wake = timeout
                .min(Instant::now() + Duration::from_millis(500))
                .min(if self.channel.is_none() {
                    deadline
                } else {
                    timeout
                });
            tokio::select! {
                datagram = udp.recv() => {
                    let Some((data, source, destination)) = datagram else {
                        break Err(WebRtcError::Local("sockets closed".into()));
                    };
                    if let Ok(receive) = Receive::new(Protocol::Udp, source, destination, &data)
                        && let Err(e) = self.rtc.handle_input(Input::Receive(Instant::now(), receive))
                    {
                        break Err(WebRtcError::Local(e.to_string()));
                    }
                }
                signal = signals.recv(), if !signals_done => match signal {
                    Some(Signal::Answer(sdp)) => {
                        if let Err(e) = self.on_answer(&sdp) {
                            break Err(e);
                        }
                    }
                    Some(Signal::Candidate(c)) => self.on_candidate(&c),
                    None => {
                        // The manager dropped the route: a newer attempt
                        // replaced this one. An open connection carries on.
                        signals_done = true;
                        if self.channel.is_none() {
                            break Err(WebRtcError::Closed);
                        }
                    }
                },
                command = commands.recv(), if blocked.is_none() && self.channel.is_some() => match command {
                    Some(Command::Send(message, reply)) => {
                        if let Some(back) = self.write(message, reply) {
                            blocked = Some(back);
                        }
                    }
                    Some(Command::Close) | None => {
                        let _ = self.rtc.close();
                        let _ = self.drain(&incoming_tx, &mut disconnected_since).await;
                        break Ok(());
                    }
                },
                _ = tokio::time::sleep_until(wake.into()) => {
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        break Err(WebRtcError::Local(e.to_string()));
                    }
                    if let Some((message, reply)) = blocked.take() {
                        blocked = self.write(message, reply);
                    }
                }
            }
            if let Some((message, reply)) = blocked.take() {
                blocked = self.write(message, reply);
            }
        };
        self.alive.store(false, Ordering::Relaxed);
        if let Some(relay) = &self.relay {
            relay.close().await;
        }
        if let Some((_, reply)) = blocked {
            let _ = reply.send(Err(WebRtcError::Closed));
        }
        if handle_parts.is_some() {
            // Never opened.
            let e = outcome.err().unwrap_or(WebRtcError::Closed);
            tracing::debug!(peer = %self.peer, error = %e, "WebRTC attempt failed");
            self.shared.fail(self.peer, &self.session, e);
        } else {
            tracing::debug!(peer = %self.peer, "WebRTC connection closed");
            let mut state = self.shared.state();
            if state
                .routes
                .get(&self.peer)
                .is_some_and(|r| r.session == self.session)
            {
                state.routes.remove(&self.peer);
            }
        }
    }

    /// Hands the application its connection. This task then runs until the
    /// connection closes or every handle is dropped (its command queue closes).
    fn open(&mut self, commands: mpsc::Sender<Command>, incoming: mpsc::Receiver<DataMessage>) {
        let conn = WebRtcConnection {
            peer: self.peer,
            inner: Arc::new(ConnInner {
                commands,
                incoming: tokio::sync::Mutex::new(incoming),
                alive: self.alive.clone(),
                initiator: self.initiator,
                path: ConnectionPath::Direct,
                local_candidate: Some(self.local_candidate.clone()),
                max_message_size: self.shared.config.max_message_size,
            }),
        };
        self.shared.deliver(conn);
    }

    /// Runs `poll_output` until it asks to wait; returns until when, or
    /// `None` when the connection is over.
    async fn drain(
        &mut self,
        incoming: &mpsc::Sender<DataMessage>,
        disconnected_since: &mut Option<Instant>,
    ) -> Result<Option<Instant>, WebRtcError> {
        loop {
            if !self.rtc.is_alive() {
                return Ok(None);
            }
            let output = self
                .rtc
                .poll_output()
                .map_err(|e| WebRtcError::Local(e.to_string()))?;
            match output {
                Output::Timeout(t) => return Ok(Some(t)),
                Output::Transmit(t) => {
                    if let Some(relay) = &self.relay
                        && t.source == relay.addr
                    {
                        if self.channel.is_some() {
                            self.local_candidate.store(2, Ordering::Relaxed);
                        }
                        if let Some(out) = &self.relay_out {
                            // Full: dropped, as a congested link would.
                            let _ = out.try_send((t.contents.to_vec(), t.destination));
                        }
                        continue;
                    }
                    if self.channel.is_some() {
                        self.local_candidate.store(1, Ordering::Relaxed);
                    }
                    if let Some(socket) = self
                        .sockets
                        .iter()
                        .find(|s| s.local_addr().ok() == Some(t.source))
                    {
                        let _ = socket.send_to(&t.contents, t.destination).await;
                    }
                }
                Output::Event(event) => match event {
                    Event::ChannelOpen(id, label) => {
                        tracing::debug!(peer = %self.peer, %label, "data channel open");
                        self.channel = Some(id);
                    }
                    Event::ChannelData(d) if Some(d.id) == self.channel => {
                        let message = if d.binary {
                            DataMessage::Binary(d.data)
                        } else {
                            DataMessage::Text(String::from_utf8_lossy(&d.data).into_owned())
                        };
                        if incoming.send(message).await.is_err() {
                            // Nobody reads: the application let go of the connection.
                            return Ok(None);
                        }
                    }
                    Event::ChannelClose(id) if Some(id) == self.channel => return Ok(None),
                    Event::Closed => return Ok(None),
                    Event::IceConnectionStateChange(state) => {
                        tracing::debug!(peer = %self.peer, ?state, "ICE state");
                        *disconnected_since = match state {
                            IceConnectionState::Disconnected => Some(Instant::now()),
                            _ => None,
                        };
                    }
                    _ => {}
                },
            }
        }
    }

    fn on_answer(&mut self, sdp: &str) -> Result<(), WebRtcError> {
        let Some(pending) = self.pending_offer.take() else {
            return Ok(());
        };
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| WebRtcError::Sdp {
            peer: self.peer,
            reason: e.to_string(),
        })?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| WebRtcError::Sdp {
                peer: self.peer,
                reason: e.to_string(),
            })
    }

    fn on_candidate(&mut self, candidate: &Value) {
        // Browsers send RTCIceCandidate.toJSON(); null or "" ends the list,
        // and mDNS (`.local`) candidates cannot be used: the remote's checks
        // reach our host candidates and it is learnt as peer-reflexive.
        let Some(text) = candidate.get("candidate").and_then(Value::as_str) else {
            return;
        };
        if text.is_empty() {
            return;
        }
        match Candidate::from_sdp_string(text) {
            Ok(c) => self.rtc.add_remote_candidate(c),
            Err(e) => {
                tracing::debug!(peer = %self.peer, candidate = %text, error = %e, "remote candidate skipped")
            }
        }
    }

    /// Writes a message, or gives it back if the send buffer is full.
    fn write(
        &mut self,
        message: DataMessage,
        reply: oneshot::Sender<Result<(), WebRtcError>>,
    ) -> Option<(DataMessage, oneshot::Sender<Result<(), WebRtcError>>)> {
        let Some(mut channel) = self.channel.and_then(|id| self.rtc.channel(id)) else {
            let _ = reply.send(Err(WebRtcError::Closed));
            return None;
        };
        let written = match &message {
            DataMessage::Text(t) => channel.write(false, t.as_bytes()),
            DataMessage::Binary(b) => channel.write(true, b),
        };
        match written {
            Ok(true) => {
                let _ = reply.send(Ok(()));
                None
            }
            Ok(false) => Some((message, reply)),
            Err(e) => {
                let _ = reply.send(Err(WebRtcError::Local(e.to_string())));
                None
            }
        }
    }
}

pub(crate) async fn read_socket(
    socket: Arc<UdpSocket>,
    out: mpsc::Sender<(Vec<u8>, SocketAddr, SocketAddr)>,
) {
    let Ok(local) = socket.local_addr() else {
        return;
    };
    let mut buf = vec![0u8; 2048];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, source)) => {
                if out.send((buf[..n].to_vec(), source, local)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive failed");
                return;
            }
        }
    }
}
