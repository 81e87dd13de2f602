//! The task behind a connected client: opens and registers sockets, carries
//! them, keeps the relay token fresh, and reconnects as the [`Lifecycle`]
//! says until it stops or the client disconnects.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use darkswap_proto::signaling::ClientToServer;
use libp2p_identity::PeerId;
use rand::Rng;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{
    CONNECT_TIMEOUT, Inner, RelayAuth, SEND_BUFFER, SignalingError, SignalingEvent,
    lifecycle::{ConnectionState, Lifecycle, Loss, Next},
    lock,
    socket::{self, Carry, Failure},
};
use crate::relay_token::{RelayToken, TokenClient, http_base_of};

/// Runs the client's connection to `url` until it stops for good. `first`
/// learns how the first registration went.
pub(super) async fn supervise(
    inner: Arc<Inner>,
    url: String,
    first: oneshot::Sender<Result<Vec<PeerId>, SignalingError>>,
    cancel: CancellationToken,
) {
    let mut life = Lifecycle::new(inner.options.reconnect.clone());
    let mut first = Some(first);
    let tokens = match &inner.options.auth {
        RelayAuth::None => None,
        _ => match http_base_of(&url).and_then(|base| TokenClient::new(base, &inner.options.tls)) {
            Ok(client) => Some(client),
            Err(e) => {
                inner.set_state(ConnectionState::Failed);
                if let Some(first) = first.take() {
                    let _ = first.send(Err(e));
                }
                return;
            }
        },
    };
    let mut new_token = false;
    loop {
        inner.set_state(life.connecting());
        let opened = tokio::select! {
            _ = cancel.cancelled() => break,
            opened = attempt(&inner, &url, tokens.as_ref(), new_token) => opened,
        };
        let (loss, error) = match opened {
            Ok((ws, peers)) => {
                let end = carry(
                    &inner,
                    &url,
                    ws,
                    peers,
                    &mut first,
                    &mut life,
                    tokens.as_ref(),
                    &cancel,
                )
                .await;
                if end.cancelled {
                    break;
                }
                let code = end.code;
                (
                    Loss::Closed { code },
                    SignalingError::Connection(format!("socket closed ({code:?})")),
                )
            }
            Err(Failure { error, loss }) => (loss, error),
        };
        let jitter = rand::thread_rng().gen_range(0.0..1.0);
        match life.lost(&loss, jitter) {
            Next::Reconnect {
                after,
                new_token: renew,
            } => {
                tracing::debug!(%url, ?loss, ?after, "signaling lost: reconnecting");
                inner.set_state(life.state());
                new_token = renew;
                if renew {
                    inner.token.send_replace(None);
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(after) => {}
                }
            }
            Next::Stop(state) => {
                tracing::debug!(%url, ?loss, %error, "signaling stopped");
                inner.set_state(state);
                if let Some(first) = first.take() {
                    let _ = first.send(Err(error));
                }
                return;
            }
        }
    }
    inner.set_state(life.closed());
}

/// One attempt: a token if the relay needs one, then the socket.
async fn attempt(
    inner: &Inner,
    url: &str,
    tokens: Option<&TokenClient>,
    new_token: bool,
) -> Result<(socket::Ws, Vec<PeerId>), Failure> {
    let work = async {
        let token =
            match tokens {
                None => None,
                Some(client) => Some(token_for(inner, client, new_token).await.map_err(
                    |error| Failure {
                        error,
                        loss: Loss::Closed { code: None },
                    },
                )?),
            };
        socket::open(url, &inner.keypair, token.as_ref(), &inner.options.tls).await
    };
    tokio::time::timeout(CONNECT_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| {
            Err(Failure {
                error: SignalingError::Timeout("connect and register"),
                loss: Loss::Closed { code: None },
            })
        })
}

/// The token to show: the one kept, unless it is about to expire or a new
/// one is needed, else a refreshed or newly earned one.
async fn token_for(
    inner: &Inner,
    client: &TokenClient,
    renew: bool,
) -> Result<RelayToken, SignalingError> {
    let kept = inner.token.borrow().clone();
    if let Some(token) = kept.filter(|_| !renew) {
        if !token.refresh_in(SystemTime::now()).is_zero() {
            return Ok(token);
        }
        if let Ok(fresh) = client.refresh(&token).await {
            inner.token.send_replace(Some(fresh.clone()));
            return Ok(fresh);
        }
    }
    let earned = client.earn(&inner.keypair).await?;
    inner.token.send_replace(Some(earned.clone()));
    Ok(earned)
}

/// Carries a registered socket until it ends; refreshes the token on time.
#[allow(clippy::too_many_arguments)]
async fn carry(
    inner: &Arc<Inner>,
    url: &str,
    ws: socket::Ws,
    peers: Vec<PeerId>,
    first: &mut Option<oneshot::Sender<Result<Vec<PeerId>, SignalingError>>>,
    life: &mut Lifecycle,
    tokens: Option<&TokenClient>,
    cancel: &CancellationToken,
) -> socket::SocketEnd {
    inner.peers.send_replace(peers.clone());
    *lock(&inner.url) = Some(url.to_owned());
    let (outgoing_tx, outgoing) = mpsc::channel(SEND_BUFFER);
    // The server forgot what we watched with the old socket: watch again.
    let watched: Vec<String> = lock(&inner.watched).iter().map(PeerId::to_string).collect();
    if !watched.is_empty() {
        let _ = outgoing_tx.try_send(ClientToServer::Watch { peers: watched });
    }
    *lock(&inner.outgoing) = Some(outgoing_tx);
    inner.set_state(life.registered());
    if let Some(first) = first.take() {
        let _ = first.send(Ok(peers));
    }
    let run = socket::run(
        ws,
        Carry {
            outgoing,
            events: inner.events.clone(),
            peers: inner.peers.clone(),
            replies: inner.replies.clone(),
            cancel: cancel.clone(),
        },
    );
    let end = tokio::select! {
        end = run => end,
        never = refresh_tokens(inner, tokens) => match never {},
    };
    lock(&inner.outgoing).take();
    // Callers waiting for answers on this socket will get none.
    inner.replies_lost();
    let _ = inner.events.try_send(SignalingEvent::Disconnected);
    end
}

/// Refreshes the kept token after 3/4 of its lifetime, for as long as it is
/// polled; a failed refresh drops it (a new one is earned to reconnect).
async fn refresh_tokens(inner: &Inner, tokens: Option<&TokenClient>) -> std::convert::Infallible {
    loop {
        let due = match (tokens, inner.token.borrow().clone()) {
            (Some(client), Some(token)) => Some((client, token)),
            _ => None,
        };
        let Some((client, token)) = due else {
            std::future::pending::<()>().await;
            continue;
        };
        tokio::time::sleep(
            token
                .refresh_in(SystemTime::now())
                .max(Duration::from_secs(1)),
        )
        .await;
        match client.refresh(&token).await {
            Ok(fresh) => {
                inner.token.send_replace(Some(fresh));
            }
            Err(e) => {
                tracing::warn!(error = %e, "relay token refresh failed: a new one will be earned");
                inner.token.send_replace(None);
            }
        }
    }
}
