//! The daemon's embedded database: its own open orders and the latest
//! signed update of each, so a restart (even a kill -9) brings them back as
//! last answered; the signed cancels of the own orders it
//! cancelled (tombstones), so a restart never brings those back; its
//! replica of the book, so it has the book before any peer answers a sync;
//! and the bans in force, so a banned peer stays out across restarts.
//!
//! SQLite in WAL mode with `synchronous=FULL`: a write returns once it is on
//! disk, and every write is one transaction, so a crash never leaves half an
//! order, a cancel without its tombstone, half a book or half a ban list.
//! Only the state owner ([`crate::state`]) holds a [`Store`].

use std::{
    path::{Path, PathBuf},
    time::{Duration, UNIX_EPOCH},
};

use darkswap_p2p::{BannedPeer, PeerId};
use darkswap_proto::{
    Message, OrderCancel, OrderId, OrderUpdate, OrderbookResponse, SignedOrder, decode, encode,
};
use rusqlite::{Connection, params};

/// The database file in the data directory.
pub const FILE_NAME: &str = "orders.sqlite3";

/// Why the database could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("store: cannot create {dir}: {source}")]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite refused or failed.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A value could not be encoded for storage (a bug, not input).
    #[error("store: cannot encode: {0}")]
    Encode(String),
}

/// The signed cancel of an own order, kept so that no copy of the order
/// (in the stored book, or from a peer that missed the cancel) can bring
/// it back after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The cancelled order.
    pub id: OrderId,
    /// The cancel, signed by this node as the order's maker.
    pub cancel: OrderCancel,
    /// Unix seconds of the cancel: no announcement of the order is younger,
    /// so once the order TTL has passed since, nothing can revive it and
    /// the tombstone may go.
    pub cancelled_at: u64,
}

/// Everything stored, as read at start.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stored {
    /// Own open orders.
    pub own_orders: Vec<SignedOrder>,
    /// The latest update of each own order that has one.
    pub own_updates: Vec<OrderUpdate>,
    /// Cancelled own orders.
    pub tombstones: Vec<Tombstone>,
    /// The replica of the book.
    pub book: OrderbookResponse,
    /// The bans in force.
    pub bans: Vec<BannedPeer>,
    /// Rows that no longer decode, skipped: book, tombstone and ban rows.
    pub unreadable: usize,
}

/// The open database. See the module docs.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (or creates) [`FILE_NAME`] in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
        let conn = Connection::open(dir.join(FILE_NAME))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS own_orders (
                id BLOB PRIMARY KEY,
                body BLOB NOT NULL,
                public_key BLOB NOT NULL,
                signature BLOB NOT NULL
            );
            CREATE TABLE IF NOT EXISTS own_order_updates (
                id BLOB PRIMARY KEY,
                message BLOB NOT NULL
            );
            CREATE TABLE IF NOT EXISTS cancelled_orders (
                id BLOB PRIMARY KEY,
                message BLOB NOT NULL,
                cancelled_at INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS book (
                seq INTEGER PRIMARY KEY,
                message BLOB NOT NULL
            );
            CREATE TABLE IF NOT EXISTS bans (
                peer_id TEXT PRIMARY KEY,
                until INTEGER,
                reason TEXT NOT NULL,
                bans INTEGER NOT NULL
            );",
        )?;
        Ok(Store { conn })
    }

    /// Everything stored.
    pub fn load(&self) -> Result<Stored, StoreError> {
        let (book, unreadable_book) = self.load_book()?;
        let (tombstones, unreadable_tombstones) = self.tombstones()?;
        let (bans, unreadable_bans) = self.load_bans()?;
        let (own_updates, unreadable_updates) = self.own_updates()?;
        Ok(Stored {
            own_orders: self.own_orders()?,
            own_updates,
            tombstones,
            book,
            bans,
            unreadable: unreadable_book
                + unreadable_tombstones
                + unreadable_bans
                + unreadable_updates,
        })
    }

    /// Saves an own order.
    pub fn put(&self, order: &SignedOrder) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO own_orders (id, body, public_key, signature) VALUES (?1, ?2, ?3, ?4)",
            params![order.id().as_bytes().to_vec(), order.body, order.public_key, order.signature],
        )?;
        Ok(())
    }

    /// Saves `update`, the latest update of own order `id`, replacing the
    /// one before (the state owner stores them in the order it signs them).
    pub fn put_update(&self, id: &OrderId, update: &OrderUpdate) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO own_order_updates (id, message) VALUES (?1, ?2)",
            params![
                id.as_bytes().to_vec(),
                encode(&Message::OrderUpdate(update.clone()))
            ],
        )?;
        Ok(())
    }

    /// The stored updates of own orders. Rows that no longer decode are
    /// skipped and counted (the second value).
    pub fn own_updates(&self) -> Result<(Vec<OrderUpdate>, usize), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT message FROM own_order_updates ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let (mut updates, mut unreadable) = (Vec::new(), 0);
        for row in rows {
            match decode(&row?) {
                Ok(Message::OrderUpdate(u)) => updates.push(u),
                _ => unreadable += 1,
            }
        }
        Ok((updates, unreadable))
    }

    /// Forgets own orders (expired, or refused at restore) and their
    /// updates.
    pub fn forget(&mut self, ids: &[OrderId]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut delete = tx.prepare("DELETE FROM own_orders WHERE id = ?1")?;
            let mut delete_update = tx.prepare("DELETE FROM own_order_updates WHERE id = ?1")?;
            for id in ids {
                delete.execute(params![id.as_bytes().to_vec()])?;
                delete_update.execute(params![id.as_bytes().to_vec()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Forgets a cancelled own order and keeps its tombstone, in one
    /// transaction: once this returns, no restart brings the order back.
    pub fn cancel(&mut self, tombstone: &Tombstone) -> Result<(), StoreError> {
        let id = tombstone.id.as_bytes().to_vec();
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM own_orders WHERE id = ?1", params![id])?;
        tx.execute("DELETE FROM own_order_updates WHERE id = ?1", params![id])?;
        tx.execute(
            "INSERT OR REPLACE INTO cancelled_orders (id, message, cancelled_at) VALUES (?1, ?2, ?3)",
            params![
                id,
                encode(&Message::OrderCancel(tombstone.cancel.clone())),
                i64::try_from(tombstone.cancelled_at).unwrap_or(i64::MAX)
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The stored tombstones. Rows that no longer decode are skipped and
    /// counted (the second value).
    pub fn tombstones(&self) -> Result<(Vec<Tombstone>, usize), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, message, cancelled_at FROM cancelled_orders ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let (mut tombstones, mut unreadable) = (Vec::new(), 0);
        for row in rows {
            let (id, message, cancelled_at) = row?;
            match (
                OrderId::from_bytes(&id),
                decode(&message),
                u64::try_from(cancelled_at),
            ) {
                (Ok(id), Ok(Message::OrderCancel(cancel)), Ok(cancelled_at)) => {
                    tombstones.push(Tombstone {
                        id,
                        cancel,
                        cancelled_at,
                    })
                }
                _ => unreadable += 1,
            }
        }
        Ok((tombstones, unreadable))
    }

    /// Forgets the tombstones of cancels made before `unix_secs`.
    pub fn forget_tombstones_before(&self, unix_secs: u64) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM cancelled_orders WHERE cancelled_at < ?1",
            params![i64::try_from(unix_secs).unwrap_or(i64::MAX)],
        )?;
        Ok(())
    }

    /// Replaces the stored book with `book`: each order, update and cancel
    /// is kept as the signed message its maker published.
    pub fn save_book(&mut self, book: &OrderbookResponse) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM book", [])?;
        {
            let mut insert = tx.prepare("INSERT INTO book (message) VALUES (?1)")?;
            let messages = book
                .cancels
                .iter()
                .map(|c| Message::OrderCancel(c.clone()))
                .chain(book.orders.iter().map(|o| Message::OrderCreate(o.clone())))
                .chain(book.updates.iter().map(|u| Message::OrderUpdate(u.clone())));
            for m in messages {
                insert.execute(params![encode(&m)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The stored book. Rows that no longer decode are skipped and counted
    /// (the second value), never fatal: peers resync what they held.
    pub fn load_book(&self) -> Result<(OrderbookResponse, usize), StoreError> {
        let mut stmt = self.conn.prepare("SELECT message FROM book ORDER BY seq")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut book = OrderbookResponse::default();
        let mut unreadable = 0;
        for row in rows {
            match decode(&row?) {
                Ok(Message::OrderCreate(o)) => book.orders.push(o),
                Ok(Message::OrderUpdate(u)) => book.updates.push(u),
                Ok(Message::OrderCancel(c)) => book.cancels.push(c),
                _ => unreadable += 1,
            }
        }
        Ok((book, unreadable))
    }

    /// Replaces the stored bans with `bans`. `until` is kept in unix
    /// seconds, rounded up so a restored ban never ends early; NULL is a ban
    /// until lifted.
    pub fn save_bans(&mut self, bans: &[BannedPeer]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM bans", [])?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO bans (peer_id, until, reason, bans) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for b in bans {
                let until = b.until.map(|t| {
                    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
                    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                    i64::try_from(secs).unwrap_or(i64::MAX)
                });
                insert.execute(params![
                    b.peer_id.to_string(),
                    until,
                    b.reason.as_str(),
                    b.bans
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The stored bans. Rows that no longer parse are skipped and counted
    /// (the second value), never fatal.
    pub fn load_bans(&self) -> Result<(Vec<BannedPeer>, usize), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT peer_id, until, reason, bans FROM bans ORDER BY peer_id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let (mut bans, mut unreadable) = (Vec::new(), 0);
        for row in rows {
            let (peer, until, reason, count) = row?;
            let parsed = (|| {
                Some(BannedPeer {
                    peer_id: peer.parse::<PeerId>().ok()?,
                    until: match until {
                        Some(s) => Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(s).ok()?)),
                        None => None,
                    },
                    reason: reason.parse().ok()?,
                    bans: u32::try_from(count).ok()?,
                })
            })();
            match parsed {
                Some(b) => bans.push(b),
                None => unreadable += 1,
            }
        }
        Ok((bans, unreadable))
    }

    /// Every stored own order.
    pub fn own_orders(&self) -> Result<Vec<SignedOrder>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT body, public_key, signature FROM own_orders")?;
        let rows = stmt.query_map([], |r| {
            Ok(SignedOrder {
                body: r.get(0)?,
                public_key: r.get(1)?,
                signature: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests;
mod trades;

pub use trades::TradeDb;
