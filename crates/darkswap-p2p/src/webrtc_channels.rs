//! WebRTC data channels of a node (native only): registered with the node's
//! identity on each configured relay's signaling server (a
//! `darkswap_webrtc::RelayManager` per relay, connected again with backoff
//! until it takes), one open channel per peer, made on demand or accepted
//! from the peer, WebRTC first and an end-to-end encrypted circuit when
//! WebRTC cannot connect.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock, Weak},
    time::Duration,
};

use darkswap_webrtc::{
    ConnectionPath, ConnectionState, PoolStats, RelayManager, RelayUrls, SignalingOptions,
    WebRtcConfig, WebRtcConnection, WebRtcError,
};
use libp2p::{PeerId, identity::Keypair};
use tokio::sync::{Notify, watch};
use tokio_util::task::AbortOnDropHandle;

use crate::{config::NetworkConfig, error::WebRtcCommandError};

/// First and longest wait before registering again on a relay that refused
/// or could not be reached.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// One relay's signaling plane, once registered.
struct Slot {
    urls: RelayUrls,
    manager: OnceLock<Arc<RelayManager>>,
}

/// The node's WebRTC channels.
pub(crate) struct WebRtcChannels {
    slots: Vec<Arc<Slot>>,
    channels: Mutex<HashMap<PeerId, WebRtcConnection>>,
    /// Woken when a channel is added.
    added: Notify,
    /// Relays registered on.
    registered: watch::Sender<usize>,
    tasks: Mutex<Vec<AbortOnDropHandle<()>>>,
}

impl std::fmt::Debug for WebRtcChannels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcChannels")
            .field(
                "relays",
                &self
                    .slots
                    .iter()
                    .map(|s| &s.urls.signaling)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The signaling relays `config` names: its explicit public ports, then
/// (unless turned off) each relay peer's host at the signaling port.
pub(crate) fn signaling_relays(config: &NetworkConfig) -> Vec<RelayUrls> {
    let w = &config.webrtc_signaling;
    let mut urls: Vec<RelayUrls> = Vec::new();
    let explicit = w.relays.iter().map(RelayUrls::from_multiaddr);
    let derived = config
        .relay_peers
        .iter()
        .filter(|_| w.from_relay_peers)
        .map(|a| RelayUrls::for_libp2p_relay(a, w.port));
    for found in explicit.chain(derived) {
        match found {
            Ok(u) if !urls.iter().any(|k| k.signaling == u.signaling) => urls.push(u),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "signaling relay skipped"),
        }
    }
    urls
}

impl WebRtcChannels {
    /// Registers `key`'s peer id on every relay of `relays`, in the background.
    pub(crate) fn start(
        key: Keypair,
        relays: Vec<RelayUrls>,
        options: SignalingOptions,
    ) -> Arc<Self> {
        let channels = Arc::new(WebRtcChannels {
            slots: relays
                .into_iter()
                .map(|urls| {
                    Arc::new(Slot {
                        urls,
                        manager: OnceLock::new(),
                    })
                })
                .collect(),
            channels: Mutex::new(HashMap::new()),
            added: Notify::new(),
            registered: watch::Sender::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        let tasks = channels
            .slots
            .iter()
            .map(|slot| {
                AbortOnDropHandle::new(tokio::spawn(serve(
                    Arc::downgrade(&channels),
                    slot.clone(),
                    key.clone(),
                    options.clone(),
                )))
            })
            .collect();
        *lock(&channels.tasks) = tasks;
        channels
    }

    /// The open channel to `peer`; a closed one stays until it is read to
    /// the end or a new one replaces it.
    fn live(&self, peer: &PeerId) -> Option<WebRtcConnection> {
        lock(&self.channels)
            .get(peer)
            .filter(|c| c.is_alive())
            .cloned()
    }

    /// A channel opened (by either side): the newest one per peer is used.
    fn adopt(&self, conn: WebRtcConnection) {
        let peer = conn.peer_id();
        tracing::debug!(%peer, path = %conn.path(), "WebRTC channel open");
        lock(&self.channels).insert(peer, conn);
        self.added.notify_waiters();
    }

    /// Waits until at least one relay took our registration.
    pub(crate) async fn registered(&self, timeout: Duration) -> Result<(), WebRtcCommandError> {
        let mut registered = self.registered.subscribe();
        tokio::time::timeout(timeout, registered.wait_for(|n| *n > 0))
            .await
            .map_err(|_| WebRtcCommandError::NotRegistered)?
            .map_err(|_| WebRtcCommandError::NotRegistered)?;
        Ok(())
    }

    /// The open channel to `peer`, or a new one through the first relay
    /// that knows it.
    pub(crate) async fn open(
        &self,
        peer: PeerId,
        timeout: Duration,
    ) -> Result<WebRtcConnection, WebRtcCommandError> {
        if let Some(conn) = self.live(&peer) {
            return Ok(conn);
        }
        self.registered(timeout).await?;
        let mut last = WebRtcCommandError::UnknownPeer(peer);
        for slot in &self.slots {
            let Some(manager) = slot.manager.get() else {
                continue;
            };
            match tokio::time::timeout(timeout, manager.connect_peer(&peer)).await {
                Ok(Ok(conn)) => {
                    self.adopt(conn.clone());
                    return Ok(conn);
                }
                Ok(Err(WebRtcError::UnknownPeer(_))) => {}
                Ok(Err(e)) => last = e.into(),
                Err(_) => last = WebRtcError::Timeout(peer).into(),
            }
        }
        Err(last)
    }

    /// The channel to `peer` once there is one (opened by either side),
    /// waiting until `deadline`; `None` if none came. A channel the peer
    /// closed is returned too, so what it sent before closing is still read.
    pub(crate) async fn wait(
        &self,
        peer: PeerId,
        deadline: tokio::time::Instant,
    ) -> Option<WebRtcConnection> {
        loop {
            let added = self.added.notified();
            if let Some(conn) = lock(&self.channels).get(&peer) {
                return Some(conn.clone());
            }
            tokio::time::timeout_at(deadline, added).await.ok()?;
        }
    }

    /// Forgets the channel to `peer` once it is closed and read to the end
    /// (a newer, live one stays).
    pub(crate) fn forget_closed(&self, peer: &PeerId) {
        let mut channels = lock(&self.channels);
        if channels.get(peer).is_some_and(|c| !c.is_alive()) {
            channels.remove(peer);
        }
    }

    /// Closes the channel to `peer`; `true` if there was one.
    pub(crate) fn close(&self, peer: &PeerId) -> bool {
        match lock(&self.channels).remove(peer) {
            Some(conn) => {
                conn.close();
                true
            }
            None => false,
        }
    }

    /// The peers with an open channel, and its path.
    pub(crate) fn peers(&self) -> Vec<(PeerId, ConnectionPath)> {
        lock(&self.channels)
            .iter()
            .filter(|(_, c)| c.is_alive())
            .map(|(p, c)| (*p, c.path()))
            .collect()
    }

    /// Each signaling relay's URL and the state of our registration there
    /// (`Connecting` until it first takes).
    pub(crate) fn relays(&self) -> Vec<(String, ConnectionState)> {
        self.slots
            .iter()
            .map(|slot| {
                let state = slot
                    .manager
                    .get()
                    .map_or(ConnectionState::Connecting, |m| m.signaling().state());
                (slot.urls.signaling.clone(), state)
            })
            .collect()
    }

    /// The connection pools of every signaling relay, summed.
    pub(crate) fn pool_stats(&self) -> PoolStats {
        self.slots
            .iter()
            .filter_map(|slot| slot.manager.get())
            .map(|m| m.connections().get_connection_stats())
            .fold(PoolStats::default(), |sum, s| PoolStats {
                total_connections: sum.total_connections + s.total_connections,
                in_use_connections: sum.in_use_connections + s.in_use_connections,
                idle_connections: sum.idle_connections + s.idle_connections,
            })
    }

    /// Closes every channel and leaves the relays.
    pub(crate) fn shutdown(&self) {
        for (_, conn) in lock(&self.channels).drain() {
            conn.close();
        }
        lock(&self.tasks).clear();
    }
}

/// Registers on one relay (again and again until it takes), then accepts
/// the channels peers open to us through it.
async fn serve(
    channels: Weak<WebRtcChannels>,
    slot: Arc<Slot>,
    key: Keypair,
    options: SignalingOptions,
) {
    let mut wait = RETRY_MIN;
    let manager = loop {
        match RelayManager::connect_with(
            key.clone(),
            slot.urls.clone(),
            WebRtcConfig::default(),
            options.clone(),
        )
        .await
        {
            Ok(manager) => break Arc::new(manager),
            Err(e) => {
                tracing::warn!(relay = %slot.urls.signaling, error = %e, "WebRTC signaling registration failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    };
    let _ = slot.manager.set(manager.clone());
    match channels.upgrade() {
        Some(c) => c.registered.send_modify(|n| *n += 1),
        None => return,
    }
    tracing::info!(relay = %slot.urls.signaling, "registered for WebRTC data channels");
    while let Some(conn) = manager.accept().await {
        match channels.upgrade() {
            Some(c) => c.adopt(conn),
            None => return,
        }
    }
}
