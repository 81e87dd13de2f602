//! The task of one `/signaling` socket: checks the token it showed, hands
//! the socket to the hub, then reads frames (size, per-socket and global
//! message rates, idle pings) into the hub and writes what the hub sends it,
//! until either side closes, the server stops or an admin revokes the token.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use darkswap_proto::signaling::{ErrorCode, close_code};
use futures::StreamExt;
use governor::{Quota, RateLimiter};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{
    Context,
    hub::{Access, ConnId},
    hub_task::{Ctl, HubInput, SocketHandle},
    upgrade::Credentials,
    websocket::{Exit, Ws, close, error_frame, read_error, send_bounded},
};
use crate::{
    defaults::{queues, timeouts},
    token::Claims,
};

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
        let (ctl_tx, mut ctl) = mpsc::channel(queues::SOCKET);
        let kill = CancellationToken::new();
        let handle = SocketHandle {
            ctl: ctl_tx,
            kill: kill.clone(),
        };
        let conn = self.conn;
        if self
            .ctx
            .hub
            .send(HubInput::Signaling {
                conn,
                handle,
                access,
            })
            .await
            .is_err()
        {
            return;
        }
        match self.serve(&mut ctl, &kill, claims).await {
            Exit::Close(code, reason) => close(&mut self.ws, &self.ctx.metrics, code, reason).await,
            // Completes the handshake if the client closed first (its reply
            // is queued in tungstenite); fails fast if the socket is dead.
            Exit::Gone => {
                let _ = tokio::time::timeout(timeouts::CLOSE_SEND, self.ws.close(None)).await;
            }
        }
        let _ = self.ctx.hub.send(HubInput::Closed { conn }).await;
    }

    async fn serve(
        &mut self,
        ctl: &mut mpsc::Receiver<Ctl>,
        kill: &CancellationToken,
        claims: Option<Claims>,
    ) -> Exit {
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
        // A zero idle timeout (a library user's config) must not panic the interval.
        let mut pings = tokio::time::interval((idle / 3).max(Duration::from_millis(1)));
        pings.tick().await;
        let mut violations = 0u32;
        loop {
            tokio::select! {
                biased;
                _ = self.ctx.cancel.cancelled() => return Exit::Close(close_code::GOING_AWAY, "server shutting down"),
                _ = kill.cancelled() => return Exit::Close(close_code::POLICY, "too slow"),
                Ok(()) = revocations.changed(), if claims.is_some() => {
                    if let Some(claims) = &claims
                        && self.ctx.authority.revoked_by_admin(claims)
                    {
                        return Exit::Close(close_code::UNAUTHORIZED, "token revoked");
                    }
                }
                ctl = ctl.recv() => match ctl {
                    Some(Ctl::Send(text)) => {
                        if !send_bounded(&mut self.ws, Message::text(text)).await {
                            return Exit::Gone;
                        }
                    }
                    Some(Ctl::Close(code, reason)) => return Exit::Close(code, reason),
                    Some(Ctl::Open(_)) => {}
                    // The hub stopped: the server is shutting down.
                    None => return Exit::Close(close_code::GOING_AWAY, "server shutting down"),
                },
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
                    let input = HubInput::Text { conn: self.conn, text: text.as_str().to_owned() };
                    if self.ctx.hub.send(input).await.is_err() {
                        return Exit::Gone;
                    }
                }
            }
        }
    }
}
