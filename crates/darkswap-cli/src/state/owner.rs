//! The owner task: the thin glue between the node, the API's commands, the
//! [`Journal`] and the [`Store`]. One loop, one thing at a time: an event
//! from the node, a command from the API, or a save that fell due; then the
//! writes the journal queued.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use darkswap_p2p::{
    BannedPeer, NatStatus, Network, NetworkEvent, OrderbookCommandError, PeerId, core::Now,
};
use darkswap_proto::{Order, OrderId};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{
    Error,
    handle::{Command, Handle, OrderTerms, UpdateTerms},
    journal::{BOOK_SAVE_INTERVAL, Journal, Write},
};
use crate::{
    metrics::DaemonMetrics,
    store::{Store, StoreError, Stored},
    v1,
};

/// Events kept for a slow subscriber of `/v1/events` before it skips.
const EVENT_BUFFER: usize = 1024;

/// Both clocks, read once.
fn now() -> Now {
    Now::new(Instant::now(), SystemTime::now())
}

/// The one owner of the daemon's state. See the [module docs](super).
#[derive(Debug)]
pub struct Owner {
    network: Network,
    /// `None` only while a write runs on the blocking pool, or after one
    /// panicked there (then every later write fails).
    store: Option<Store>,
    journal: Journal,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<v1::Event>,
    nat: watch::Sender<String>,
    metrics: Arc<DaemonMetrics>,
    nonce: u64,
}

impl Owner {
    /// Takes `store` and `network`, gives the node back what `stored`
    /// holds (own orders, then the book with the tombstones) and forgets
    /// what is no longer valid. `order_ttl` is the TTL its book runs with.
    pub async fn start(
        network: Network,
        store: Store,
        stored: Stored,
        order_ttl: Duration,
        metrics: Arc<DaemonMetrics>,
    ) -> Result<(Self, Handle), Error> {
        let (handle, commands) = Handle::channel();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let mut owner = Owner {
            network,
            store: Some(store),
            journal: Journal::new(BOOK_SAVE_INTERVAL, order_ttl),
            commands,
            events,
            nat: watch::Sender::new("unknown".to_owned()),
            metrics,
            // Seeded with the wall clock in nanoseconds, so an order made
            // after a restart never repeats one (same terms, same second)
            // of an earlier life, which a tombstone may refuse.
            nonce: nonce_seed(now()),
        };
        owner.restore(stored).await?;
        Ok((owner, handle))
    }

    async fn restore(&mut self, stored: Stored) -> Result<(), Error> {
        let restore = self.journal.restore(
            stored.own_orders,
            stored.own_updates,
            stored.book,
            stored.tombstones,
            now(),
        );
        // Own orders from before a restart: back into the book and
        // re-announced; the ones that expired meanwhile are forgotten.
        let mut forget = restore.forget_own_orders;
        let results = self
            .network
            .orderbook()
            .restore(restore.own_orders.clone())
            .await?;
        for (signed, result) in restore.own_orders.iter().zip(results) {
            if let Err(e) = result {
                tracing::info!(order = %signed.id(), error = %e, "dropping stored order");
                forget.push(signed.id());
            }
        }
        let cancels = restore.book.cancels.len();
        // The rest of the book as it was, under the same rules as a peer's
        // snapshot: orders whose makers stopped re-announcing them stay out.
        // The own orders' stored updates come last in it, so each own order
        // is back as it was last answered, and its next update continues
        // the sequence.
        let (restored, refused) = self.network.orderbook().import(restore.book).await?;
        for error in &refused {
            self.metrics.order_rejected("store", error.reason());
        }
        tracing::info!(
            restored,
            cancels,
            refused = refused.len(),
            unreadable = stored.unreadable,
            "book loaded from the database"
        );
        let horizon = restore.forget_tombstones_before;
        self.with_store(move |s| {
            s.forget(&forget)?;
            s.forget_tombstones_before(horizon)
        })
        .await
    }

    /// What `/v1/events` subscribes to.
    pub fn events(&self) -> broadcast::Sender<v1::Event> {
        self.events.clone()
    }

    /// The node's reachability for `/v1/status`: `unknown`, `private` or
    /// `public <address>`.
    pub fn nat_status(&self) -> watch::Receiver<String> {
        self.nat.subscribe()
    }

    /// Runs until `stop` is cancelled or the node stops (then it cancels
    /// `stop` itself); then saves the book and the bans a last time and
    /// shuts the node down.
    pub async fn run(mut self, stop: CancellationToken) -> Result<(), Error> {
        loop {
            let due = self.journal.poll_timeout();
            tokio::select! {
                () = stop.cancelled() => break,
                event = self.network.next_event() => match event {
                    Some(event) => self.on_event(&event),
                    None => break,
                },
                Some(command) = self.commands.recv() => self.on_command(command).await,
                () = sleep_until(due) => self.journal.handle_timeout(now()),
            }
            self.write_queued().await;
        }
        tracing::info!("stopping");
        stop.cancel();
        self.journal.handle_shutdown(now());
        self.write_queued().await;
        self.network.shutdown().await?;
        Ok(())
    }

    fn on_event(&mut self, event: &NetworkEvent) {
        self.metrics.observe(event);
        if let NetworkEvent::NatStatusChanged { status } = event {
            self.nat.send_replace(match status {
                NatStatus::Public(addr) => format!("public {addr}"),
                NatStatus::Private => "private".to_owned(),
                _ => "unknown".to_owned(),
            });
        }
        self.journal.handle_event(event, now());
        let _ = self.events.send(v1::Event::from(event));
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::CreateOrder { terms, reply } => {
                let _ = reply.send(self.create_order(terms).await);
            }
            Command::UpdateOrder { id, terms, reply } => {
                let _ = reply.send(self.update_order(id, terms).await);
            }
            Command::CancelOrder { id, reply } => {
                let _ = reply.send(self.cancel_order(id).await);
            }
            Command::Ban {
                peer,
                duration,
                reply,
            } => {
                let _ = reply.send(self.ban(peer, duration).await);
            }
            Command::Unban { peer, reply } => {
                let _ = reply.send(self.unban(peer).await);
            }
        }
    }

    async fn create_order(&mut self, terms: OrderTerms) -> Result<Order, Error> {
        self.nonce = self.nonce.wrapping_add(1);
        let order = terms.at(now().unix_secs(), self.nonce);
        let (order, signed) = match self.network.orderbook().create(order).await {
            Ok(created) => created,
            Err(e) => {
                if let OrderbookCommandError::Refused(refused) = &e {
                    self.metrics.order_rejected("api", refused.reason());
                }
                return Err(e.into());
            }
        };
        let write = self.journal.handle_created(signed);
        self.write(write).await?;
        Ok(order)
    }

    async fn update_order(&mut self, id: OrderId, terms: UpdateTerms) -> Result<Order, Error> {
        let changes = terms.at(now().unix_secs());
        let (order, update) = match self.network.orderbook().update(id, changes).await {
            Ok(updated) => updated,
            Err(e) => {
                if let OrderbookCommandError::Refused(refused) = &e {
                    self.metrics.order_rejected("api", refused.reason());
                }
                return Err(e.into());
            }
        };
        let write = self.journal.handle_updated(id, update);
        self.write(write).await?;
        Ok(order)
    }

    async fn cancel_order(&mut self, id: OrderId) -> Result<(), Error> {
        let cancel = self.network.orderbook().cancel(id).await?;
        let write = self.journal.handle_cancelled(cancel)?;
        self.write(write).await
    }

    async fn ban(&mut self, peer: PeerId, duration: Option<Duration>) -> Result<BannedPeer, Error> {
        let ban = self.network.reputation().ban(peer, duration).await?;
        let write = self.journal.handle_bans_changed();
        self.write(write).await?;
        Ok(ban)
    }

    async fn unban(&mut self, peer: PeerId) -> Result<bool, Error> {
        let was_banned = self.network.reputation().unban(peer).await?;
        if was_banned {
            let write = self.journal.handle_bans_changed();
            self.write(write).await?;
        }
        Ok(was_banned)
    }

    /// Performs what the journal queued, in order.
    async fn write_queued(&mut self) {
        while let Some(write) = self.journal.poll_write() {
            if let Err(e) = self.write(write).await {
                tracing::error!(error = %e, "cannot write to the database");
            }
        }
    }

    /// Performs `write` and tells the journal how it went.
    async fn write(&mut self, write: Write) -> Result<(), Error> {
        let result = self.perform(&write).await;
        self.journal.handle_written(&write, result.is_ok(), now());
        result
    }

    async fn perform(&mut self, write: &Write) -> Result<(), Error> {
        match write.clone() {
            Write::PutOwnOrder(signed) => self.with_store(move |s| s.put(&signed)).await,
            Write::PutOwnUpdate { id, update } => {
                self.with_store(move |s| s.put_update(&id, &update)).await
            }
            Write::Cancel(tombstone) => self.with_store(move |s| s.cancel(&tombstone)).await,
            Write::ForgetOwnOrders(ids) => self.with_store(move |s| s.forget(&ids)).await,
            Write::SaveBook {
                forget_tombstones_before,
            } => {
                let book = self.network.orderbook().export().await?;
                let orders = book.orders.len();
                self.with_store(move |s| {
                    s.save_book(&book)?;
                    s.forget_tombstones_before(forget_tombstones_before)
                })
                .await?;
                let _ = self.events.send(v1::Event::BookSaved { orders });
                Ok(())
            }
            Write::SaveBans => {
                let bans = self.network.reputation().banned().await?;
                let count = bans.len();
                self.with_store(move |s| s.save_bans(&bans)).await?;
                let _ = self.events.send(v1::Event::BansSaved { bans: count });
                Ok(())
            }
        }
    }

    /// Runs `f` on the store on tokio's blocking pool (SQLite waits for the
    /// disk), keeping the loop's thread free.
    async fn with_store<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Error> {
        let mut store = self.store.take().ok_or(Error::StoreLost)?;
        let (store, result) = tokio::task::spawn_blocking(move || {
            let result = f(&mut store);
            (store, result)
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "a database write panicked");
            Error::StoreLost
        })?;
        self.store = Some(store);
        Ok(result?)
    }
}

/// The first nonce of this life: nanoseconds since 1970.
fn nonce_seed(now: Now) -> u64 {
    now.wall
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Sleeps until `due`, or forever without one.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due.into()).await,
        None => std::future::pending().await,
    }
}
