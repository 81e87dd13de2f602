//! `/v1/events`: server-sent events, a `hello` snapshot first, then every
//! [`v1::Event`] the state owner publishes, until the daemon stops.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    response::sse::{Event as Sse, KeepAlive},
};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::ApiState;
use crate::v1::{self, HelloRelay};

/// One event as an SSE frame; its `data` is the event's JSON, keys sorted
/// as in every answer of the API.
fn frame(event: &v1::Event) -> Result<Sse, Infallible> {
    // Strings, numbers and lists only: serializing cannot fail.
    let json = serde_json::to_value(event)
        .map(|v| v.to_string())
        .unwrap_or_default();
    Ok(Sse::default().data(json))
}

pub(super) async fn stream(
    State(s): State<ApiState>,
) -> axum::response::Sse<impl Stream<Item = Result<Sse, Infallible>>> {
    // Subscribe first, then take the snapshot: nothing falls in between.
    let rx = s.events.subscribe();
    let relays = s
        .network
        .relay_status()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| HelloRelay {
            peer_id: r.relay_peer_id.to_string(),
            reserved: r.reserved,
        })
        .collect();
    let hello = v1::Event::Hello {
        peer_id: s.network.local_peer_id().to_string(),
        relays,
    };
    let first = futures::stream::once(async move { frame(&hello) });
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(event) => return Some((frame(&event), rx)),
                // A slow reader skips what it missed rather than stalling the daemon.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let stop = s.stop.clone().cancelled_owned();
    axum::response::Sse::new(first.chain(rest).take_until(stop))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
