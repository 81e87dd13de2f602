//! The task of one `/signaling` socket: checks the token it showed, hands
//! the socket to the hub, then reads frames (size, per-socket and global
//! message rates, idle pings) into the hub and writes what the hub sends it
//! from its [`SendQueue`], until either side closes, the server stops, an
//! admin revokes the token, or the client stops taking what is written to it
//! for `signaling.slow_reader_timeout`.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use bytes::Bytes;
use darkswap_proto::signaling::{ErrorCode, close_code};
use futures::{SinkExt, StreamExt};
use governor::{Quota, RateLimiter};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use super::{
    Context,
    hub::{
        Access, ConnId,
        outbox::{Next, Outbox, OutboxConfig, Refused},
    },
    upgrade::Credentials,
    websocket::{Exit, Ws, close, error_frame, read_error, send_bounded},
};
use crate::{
    config::SignalingConfig,
    defaults::{queues, timeouts},
    token::Claims,
};

/// What waits to be written to one `/signaling` socket: its [`Outbox`],
/// pushed to by whichever task drives the hub and popped by the socket
/// task. The lock is held to push or pop one message, never across an
/// await.
#[derive(Debug)]
pub(super) struct SendQueue {
    outbox: Mutex<Outbox>,
    ready: Notify,
}

impl SendQueue {
    fn new(config: &SignalingConfig) -> Self {
        SendQueue {
            outbox: Mutex::new(Outbox::new(OutboxConfig {
                bytes: config.send_queue_bytes,
                bytes_per_sender: config.send_queue_bytes_per_sender,
                reserve_per_sender: queues::SENDER_RESERVE,
                max_control: queues::SOCKET,
            })),
            ready: Notify::new(),
        }
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        // Every critical section is one push or pop: a poisoned lock still
        // holds a consistent outbox.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one of the server's own messages; `false` if they pile up
    /// unread, and the socket is then closed as too slow.
    pub(super) fn push_control(&self, text: String) -> bool {
        let queued = {
            let mut outbox = self.outbox();
            let queued = outbox.push_control(text).is_ok();
            if !queued {
                outbox.abort(close_code::POLICY, "too slow");
            }
            queued
        };
        self.ready.notify_one();
        queued
    }

    /// Queues a message another peer sent, if the outbox's bounds admit it.
    pub(super) fn push_routed(&self, from: ConnId, text: String) -> Result<(), Refused> {
        self.outbox().push_routed(from, text)?;
        self.ready.notify_one();
        Ok(())
    }

    /// Closes the socket once the server's messages queued so far are out.
    pub(super) fn close(&self, code: u16, reason: &'static str) {
        self.outbox().close(code, reason);
        self.ready.notify_one();
    }

    /// What to write next, waiting until there is something.
    async fn next(&self) -> Next {
        loop {
            let next = self.outbox().pop();
            if let Some(next) = next {
                return next;
            }
            // One consumer: a push between the pop and here leaves a permit,
            // so this wakes at once.
            self.ready.notified().await;
        }
    }
}

/// A socket's pings: when the first one is due (as time since the server's
/// epoch) and their period, for a socket opened `opened` after the epoch
/// that pings every `period` (at least 1 ms: a zero idle timeout must not
/// panic the interval), with `random` in [0, 1).
///
/// The first ping comes at a random point of the first period: sockets
/// opened together (every client reconnecting after a restart) would
/// otherwise ping in step for as long as they live, a burst of thousands
/// every period. And every ping falls on a multiple of `slot` from the
/// epoch (the period is cut to a multiple of it): a timer wake-up then
/// sends the pings of many sockets, not one, which is most of what an idle
/// socket's pings cost.
fn ping_schedule(
    opened: Duration,
    period: Duration,
    slot: Duration,
    random: f64,
) -> (Duration, Duration) {
    // Whole slots, in nanoseconds; saturating, so no configured timeout
    // can wrap them.
    let nanos = |n: u128| Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX));
    let period = period.max(Duration::from_millis(1));
    let slot = slot.min(period).max(Duration::from_millis(1)).as_nanos();
    let period = nanos(period.as_nanos() / slot * slot);
    let at = opened.saturating_add(period.mul_f64(random.clamp(0.0, 1.0)));
    (nanos(at.as_nanos().div_ceil(slot) * slot), period)
}

/// A `/signaling` socket from its upgrade to its close.
pub(super) struct SignalingSocket {
    ws: Ws,
    conn: ConnId,
    ctx: Arc<Context>,
    credentials: Credentials,
}

impl SignalingSocket {
    pub(super) fn new(ws: Ws, conn: ConnId, ctx: Arc<Context>, credentials: Credentials) -> Self {
        SignalingSocket {
            ws,
            conn,
            ctx,
            credentials,
        }
    }

    /// The socket's access from its token, or why the token is refused.
    fn access(&self) -> Result<(Access, Option<Claims>), String> {
        match &self.credentials.token {
            None => Ok((
                Access {
                    role: self.ctx.anonymous_role,
                    subject: None,
                },
                None,
            )),
            Some(token) => match self.ctx.authority.validate(token) {
                Ok(claims) => Ok((
                    Access {
                        role: claims.role,
                        subject: claims.peer(),
                    },
                    Some(claims),
                )),
                Err(e) => Err(e.to_string()),
            },
        }
    }

    pub(super) async fn run(mut self) {
        let (access, claims) = match self.access() {
            Ok(a) => a,
            Err(reason) => {
                self.ctx.metrics.error(ErrorCode::Unauthorized);
                let _ =
                    send_bounded(&mut self.ws, error_frame(ErrorCode::Unauthorized, &reason)).await;
                let (ws, metrics) = (&mut self.ws, &self.ctx.metrics);
                close(ws, metrics, close_code::UNAUTHORIZED, "invalid token").await;
                return;
            }
        };
        let queue = Arc::new(SendQueue::new(&self.ctx.signaling));
        let conn = self.conn;
        if self
            .ctx
            .hub
            .open_signaling(conn, queue.clone(), access)
            .is_err()
        {
            return;
        }
        match self.serve(&queue, claims).await {
            Exit::Close(code, reason) => close(&mut self.ws, &self.ctx.metrics, code, reason).await,
            // Completes the handshake if the client closed first (its reply
            // is queued in tungstenite); fails fast if the socket is dead.
            Exit::Gone => {
                let _ = tokio::time::timeout(timeouts::CLOSE_SEND, self.ws.close(None)).await;
            }
        }
        let _ = self.ctx.hub.closed(conn);
    }

    async fn serve(&mut self, queue: &SendQueue, claims: Option<Claims>) -> Exit {
        let cfg = &self.ctx.signaling;
        // The token is checked when the socket opens; the socket then lives
        // until it closes or an admin revokes the token (or all of the
        // peer's), not until the token expires: a client renews its token
        // for its next connection without dropping this one.
        let mut revocations = self.ctx.authority.revocations_changed();
        let limiter = RateLimiter::direct(
            Quota::per_second(cfg.messages_per_second).allow_burst(cfg.message_burst),
        );
        let idle = cfg.idle_timeout;
        let mut last_activity = Instant::now();
        let (first, period) = ping_schedule(
            self.ctx.epoch.elapsed(),
            idle / 3,
            timeouts::PING_SLOT,
            rand::random(),
        );
        let mut pings = tokio::time::interval_at((self.ctx.epoch + first).into(), period);
        let mut violations = 0u32;
        loop {
            tokio::select! {
                biased;
                _ = self.ctx.cancel.cancelled() => return Exit::Close(close_code::GOING_AWAY, "server shutting down"),
                Ok(()) = revocations.changed(), if claims.is_some() => {
                    if let Some(claims) = &claims
                        && self.ctx.authority.revoked_by_admin(claims)
                    {
                        return Exit::Close(close_code::UNAUTHORIZED, "token revoked");
                    }
                }
                _ = pings.tick() => {
                    if last_activity.elapsed() >= idle {
                        return Exit::Close(close_code::IDLE_TIMEOUT, "idle timeout");
                    }
                    if !send_bounded(&mut self.ws, Message::Ping(Bytes::new())).await {
                        return Exit::Gone;
                    }
                }
                frame = self.ws.next() => {
                    let frame = match frame {
                        None => return Exit::Gone,
                        Some(Err(e)) => return read_error(&e).map_or(Exit::Gone, |(c, r)| Exit::Close(c, r)),
                        Some(Ok(f)) => f,
                    };
                    last_activity = Instant::now();
                    let text = match frame {
                        Message::Text(t) => t,
                        Message::Binary(_) => {
                            return Exit::Close(close_code::UNSUPPORTED_DATA, "binary frames are not signaling");
                        }
                        Message::Close(_) => return Exit::Gone,
                        _ => continue,
                    };
                    if text.len() > cfg.max_message_size {
                        return Exit::Close(close_code::TOO_BIG, "message too big");
                    }
                    if limiter.check().is_err() {
                        violations += 1;
                        self.ctx.security.limited("ws", "messages_per_socket");
                        self.ctx.metrics.error(ErrorCode::RateLimited);
                        if violations > cfg.max_rate_violations {
                            return Exit::Close(close_code::POLICY, "rate limit exceeded");
                        }
                        let reply = error_frame(ErrorCode::RateLimited, "too many messages; this one was dropped");
                        if !send_bounded(&mut self.ws, reply).await {
                            return Exit::Gone;
                        }
                        continue;
                    }
                    violations = 0;
                    if self.ctx.messages_global.check().is_err() {
                        // The whole server is over its ceiling: not this
                        // client's fault, so no violation is counted.
                        self.ctx.security.limited("ws", "messages_global");
                        self.ctx.metrics.error(ErrorCode::RateLimited);
                        let reply = error_frame(ErrorCode::RateLimited, "server busy; this message was dropped");
                        if !send_bounded(&mut self.ws, reply).await {
                            return Exit::Gone;
                        }
                        continue;
                    }
                    if self.ctx.hub.text(self.conn, text.as_str()).is_err() {
                        return Exit::Gone;
                    }
                }
                // After reading: a flooded socket still reads its client's
                // pings, whose pongs then go first.
                next = queue.next() => match next {
                    // Too slow only when a message cannot be written for
                    // the deadline: the client takes nothing while bytes wait.
                    Next::Message(text) => match tokio::time::timeout(cfg.slow_reader_timeout, self.ws.send(Message::text(text))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return Exit::Gone,
                        Err(_) => {
                            self.ctx.security.limited("ws", "slow_reader");
                            return Exit::Close(close_code::POLICY, "too slow");
                        }
                    },
                    Next::Close(code, reason) => return Exit::Close(code, reason),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::ping_schedule;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn pings_fall_on_slots_within_the_first_period() {
        let slot = 250 * MS;
        for random in [0.0, 0.1, 0.5, 0.999] {
            let opened = 12_345 * MS;
            let (first, period) = ping_schedule(opened, 20_000 * MS, slot, random);
            assert_eq!(period, 20_000 * MS);
            assert_eq!(first.as_nanos() % slot.as_nanos(), 0, "{first:?}");
            assert!(
                first >= opened && first < opened + period + slot,
                "{first:?}"
            );
        }
        // Sockets opened together spread over the period.
        let early = ping_schedule(Duration::ZERO, 20_000 * MS, slot, 0.1).0;
        let late = ping_schedule(Duration::ZERO, 20_000 * MS, slot, 0.9).0;
        assert!(late - early >= 15_000 * MS, "{early:?} {late:?}");
    }

    #[test]
    fn short_and_zero_periods_stay_valid() {
        // Idle timeout 1 s: pings every 333 ms become every 250 ms.
        let (first, period) = ping_schedule(100 * MS, 333 * MS, 250 * MS, 0.5);
        assert_eq!((first, period), (250 * MS, 250 * MS));
        // Shorter than a slot: the slot shrinks to the period.
        let (_, period) = ping_schedule(Duration::ZERO, 100 * MS, 250 * MS, 0.5);
        assert_eq!(period, 100 * MS);
        let (_, period) = ping_schedule(5 * MS, Duration::ZERO, 250 * MS, 0.5);
        assert_eq!(period, MS);
    }
}
