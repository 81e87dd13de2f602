//! `darkswap daemon`: a DarkSwap node with a local HTTP API.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use darkswap_p2p::{
    Identity, Multiaddr, NatStatus, Network, NetworkConfig, NetworkEvent, NetworkHandle,
    OrderbookChange, OrderbookConfig, ReputationConfig,
};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::{
    api::{self, ApiError},
    metrics::DaemonMetrics,
    store::{Store, StoreError},
};

/// What `darkswap daemon` was asked to run.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Identity key and database.
    pub data_dir: PathBuf,
    /// API address (loopback by default).
    pub api: SocketAddr,
    /// libp2p listen addresses.
    pub listen: Vec<Multiaddr>,
    /// Relays to reserve on.
    pub relays: Vec<Multiaddr>,
    /// Bootstrap peers.
    pub bootstrap: Vec<Multiaddr>,
    /// mDNS on or off.
    pub mdns: bool,
    /// How often own open orders are re-announced.
    pub order_refresh: Duration,
    /// How long an order lives in the book without a re-announcement.
    pub order_ttl: Duration,
    /// Length of a first automatic ban; repeat offenders get longer ones.
    pub ban_duration: Duration,
    /// Longest automatic ban.
    pub max_ban_duration: Duration,
}

/// How often the book is written to the database when it changed.
const BOOK_SAVE_INTERVAL: Duration = Duration::from_secs(2);

/// State shared by the API handlers and the event loop.
#[derive(Debug)]
pub struct Shared {
    pub(crate) network: NetworkHandle,
    store: Mutex<Store>,
    pub(crate) events: broadcast::Sender<Value>,
    nat: Mutex<String>,
    pub(crate) metrics: DaemonMetrics,
    /// The book changed since it was last saved.
    book_dirty: AtomicBool,
    /// A ban began or ended: the ban list is to be saved.
    bans_changed: Notify,
    nonce: AtomicU64,
}

impl Shared {
    pub(crate) fn store<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, ApiError> {
        let mut store = self
            .store
            .lock()
            .map_err(|_| ApiError::internal("store lock poisoned"))?;
        f(&mut store).map_err(ApiError::from)
    }

    pub(crate) fn nat_status(&self) -> String {
        self.nat.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub(crate) fn next_nonce(&self) -> u64 {
        self.nonce.fetch_add(1, Ordering::Relaxed)
    }
}

fn event_json(event: &NetworkEvent) -> Value {
    let order = |o: &darkswap_proto::Order| {
        serde_json::to_value(api::OrderJson::from(o)).unwrap_or(Value::Null)
    };
    match event {
        NetworkEvent::PeerConnected(p) => {
            json!({ "type": "peer_connected", "peer_id": p.to_string() })
        }
        NetworkEvent::PeerDisconnected(p) => {
            json!({ "type": "peer_disconnected", "peer_id": p.to_string() })
        }
        NetworkEvent::OrderbookChanged(OrderbookChange::Added(o)) => {
            json!({ "type": "order_added", "order": order(o) })
        }
        NetworkEvent::OrderbookChanged(OrderbookChange::Updated(o)) => {
            json!({ "type": "order_updated", "order": order(o) })
        }
        NetworkEvent::OrderbookChanged(OrderbookChange::Cancelled { order_id, maker }) => {
            json!({ "type": "order_cancelled", "id": order_id.to_string(), "maker": maker.to_string() })
        }
        NetworkEvent::OrderbookChanged(OrderbookChange::Expired(ids)) => {
            json!({ "type": "orders_expired", "ids": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>() })
        }
        NetworkEvent::RelayReserved {
            relay_peer_id,
            reservation_id,
        } => {
            json!({ "type": "relay_reserved", "relay_peer_id": relay_peer_id.to_string(), "reservation_id": reservation_id.to_string() })
        }
        NetworkEvent::InvalidMessage {
            peer_id,
            topic,
            error,
        } => {
            json!({ "type": "invalid_message", "peer_id": peer_id.to_string(), "topic": topic, "error": error.to_string() })
        }
        NetworkEvent::OrderbookRejected { peer_id, error } => {
            json!({ "type": "order_rejected", "peer_id": peer_id.to_string(), "error": error.to_string() })
        }
        NetworkEvent::PeerPenalized {
            peer_id,
            reason,
            score,
        } => {
            json!({ "type": "peer_penalized", "peer_id": peer_id.to_string(), "reason": reason.as_str(), "score": score })
        }
        NetworkEvent::PeerBanned {
            peer_id,
            until,
            reason,
        } => {
            json!({ "type": "peer_banned", "peer_id": peer_id.to_string(), "until": until.map(api::unix_secs), "reason": reason.as_str() })
        }
        NetworkEvent::PeerUnbanned { peer_id } => {
            json!({ "type": "peer_unbanned", "peer_id": peer_id.to_string() })
        }
        other => json!({ "type": "network", "event": format!("{other:?}") }),
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failed");
        ApiError::internal(e.to_string())
    }
}

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn run(opts: DaemonOptions) -> anyhow::Result<()> {
    if opts.order_ttl <= opts.order_refresh {
        anyhow::bail!(
            "--order-ttl ({:?}) must be longer than --order-refresh ({:?})",
            opts.order_ttl,
            opts.order_refresh
        );
    }
    let store = Store::open(&opts.data_dir)?;
    let saved = store.all()?;
    let (stored_book, unreadable) = store.load_book()?;
    // Bans from before a restart are in force before the first connection.
    let (stored_bans, unreadable_bans) = store.load_bans()?;
    tracing::info!(
        bans = stored_bans.len(),
        unreadable = unreadable_bans,
        "bans loaded from the database"
    );
    let mut network = Network::new(
        NetworkConfig::default()
            .with_identity(Identity::File(opts.data_dir.join("identity.key")))
            .with_listen_addresses(opts.listen.clone())
            .with_relay_peers(opts.relays.clone())
            .with_bootstrap_peers(opts.bootstrap.clone())
            .with_mdns(opts.mdns)
            .with_orderbook(OrderbookConfig {
                refresh_interval: opts.order_refresh,
                ttl: opts.order_ttl,
                ..OrderbookConfig::default()
            })
            .with_reputation(ReputationConfig {
                base_ban_duration: opts.ban_duration,
                max_ban_duration: opts.max_ban_duration,
                initial_bans: stored_bans,
                ..ReputationConfig::default()
            }),
    )
    .await?;
    let metrics = DaemonMetrics::default();
    // Own orders from before a restart: back into the book and re-announced;
    // the ones that expired meanwhile are dropped from storage.
    for (signed, result) in saved
        .iter()
        .zip(network.orderbook().restore(saved.clone()).await?)
    {
        if let Err(e) = result {
            tracing::info!(order = %signed.id(), error = %e, "dropping stored order");
            store.remove(&signed.id())?;
        }
    }
    // The rest of the book as it was, under the same rules as a peer's
    // snapshot: orders whose makers stopped re-announcing them stay out.
    let (restored, refused) = network.orderbook().import(stored_book).await?;
    for error in &refused {
        metrics.order_rejected("store", error.reason());
    }
    tracing::info!(
        restored,
        refused = refused.len(),
        unreadable,
        "book loaded from the database"
    );
    let (events, _) = broadcast::channel(1024);
    let shared = Arc::new(Shared {
        network: network.handle(),
        store: Mutex::new(store),
        events,
        nat: Mutex::new("unknown".to_owned()),
        metrics,
        book_dirty: AtomicBool::new(false),
        bans_changed: Notify::new(),
        // Time-seeded so orders made after a restart get fresh ids.
        nonce: AtomicU64::new(unix_now() << 16),
    });
    let listener = tokio::net::TcpListener::bind(opts.api)
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve the API on {}: {e}", opts.api))?;
    let api_addr = listener.local_addr()?;
    tracing::info!(peer_id = %network.local_peer_id(), api = %api_addr, "daemon started");
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn({
        let router = api::router(shared.clone());
        let stop = stop.clone();
        async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    });
    let saver = tokio::spawn(save_book_periodically(shared.clone(), stop.clone()));
    let ban_saver = tokio::spawn(save_bans_on_change(shared.clone(), stop.clone()));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            event = network.next_event() => {
                let Some(event) = event else { break };
                on_event(&shared, &event);
                let _ = shared.events.send(event_json(&event));
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    tracing::info!("stopping");
    stop.cancel();
    let _ = server.await;
    let _ = saver.await;
    let _ = ban_saver.await;
    save_book(&shared).await;
    save_bans(&shared).await;
    network.shutdown().await?;
    Ok(())
}

/// Writes the book to the database every [`BOOK_SAVE_INTERVAL`] if it
/// changed, and tells event subscribers (`book_saved`).
async fn save_book_periodically(shared: Arc<Shared>, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(BOOK_SAVE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                if shared.book_dirty.load(Ordering::Relaxed) {
                    save_book(&shared).await;
                }
            }
        }
    }
}

async fn save_book(shared: &Arc<Shared>) {
    shared.book_dirty.store(false, Ordering::Relaxed);
    let book = match shared.network.orderbook().export().await {
        Ok(book) => book,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the book to save it");
            return;
        }
    };
    let orders = book.orders.len();
    let shared2 = shared.clone();
    let saved = tokio::task::spawn_blocking(move || shared2.store(|s| s.save_book(&book))).await;
    match saved {
        Ok(Ok(())) => {
            let _ = shared
                .events
                .send(json!({ "type": "book_saved", "orders": orders }));
        }
        Ok(Err(e)) => {
            tracing::error!(error = ?e, "cannot save the book");
            shared.book_dirty.store(true, Ordering::Relaxed);
        }
        Err(e) => tracing::error!(error = %e, "book save task failed"),
    }
}

/// Writes the ban list to the database each time a ban begins or ends, so
/// a ban survives even a kill -9 right after it, and tells event
/// subscribers (`bans_saved`).
async fn save_bans_on_change(shared: Arc<Shared>, stop: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            () = shared.bans_changed.notified() => save_bans(&shared).await,
        }
    }
}

async fn save_bans(shared: &Arc<Shared>) {
    let bans = match shared.network.reputation().banned().await {
        Ok(bans) => bans,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the ban list to save it");
            return;
        }
    };
    let count = bans.len();
    let shared2 = shared.clone();
    let saved = tokio::task::spawn_blocking(move || shared2.store(|s| s.save_bans(&bans))).await;
    match saved {
        Ok(Ok(())) => {
            let _ = shared
                .events
                .send(json!({ "type": "bans_saved", "bans": count }));
        }
        // The next ban change, or the shutdown, tries again.
        Ok(Err(e)) => tracing::error!(error = ?e, "cannot save the ban list"),
        Err(e) => tracing::error!(error = %e, "ban save task failed"),
    }
}

fn on_event(shared: &Shared, event: &NetworkEvent) {
    shared.metrics.observe(event);
    match event {
        NetworkEvent::NatStatusChanged { status } => {
            if let Ok(mut nat) = shared.nat.lock() {
                *nat = match status {
                    NatStatus::Public(addr) => format!("public {addr}"),
                    NatStatus::Private => "private".to_owned(),
                    _ => "unknown".to_owned(),
                };
            }
        }
        NetworkEvent::PeerBanned { .. } | NetworkEvent::PeerUnbanned { .. } => {
            shared.bans_changed.notify_one();
        }
        NetworkEvent::OrderbookChanged(change) => {
            shared.book_dirty.store(true, Ordering::Relaxed);
            if let OrderbookChange::Expired(ids) = change {
                for id in ids {
                    let _ = shared.store(|s| s.remove(id));
                }
            }
        }
        _ => {}
    }
}

/// The wall clock in unix seconds, the time base of order terms.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
