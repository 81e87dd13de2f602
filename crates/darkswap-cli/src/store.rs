//! The daemon's embedded database: its own open orders, so a restart (even
//! a kill -9) brings them back, its replica of the book, so it has the
//! book before any peer answers a sync, and the bans in force, so a banned
//! peer stays out across restarts. SQLite in WAL mode; every write is a
//! transaction, so a crash never leaves half an order, a book or a ban list.

use std::{
    path::Path,
    time::{Duration, UNIX_EPOCH},
};

use darkswap_p2p::{BannedPeer, PeerId};
use darkswap_proto::{Message, OrderId, OrderbookResponse, SignedOrder, decode, encode};
use rusqlite::{Connection, params};

/// Storage errors.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// Own open orders, keyed by order id.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (or creates) `orders.sqlite3` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError(e.to_string()))?;
        let conn = Connection::open(dir.join("orders.sqlite3"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS own_orders (
                id BLOB PRIMARY KEY,
                body BLOB NOT NULL,
                public_key BLOB NOT NULL,
                signature BLOB NOT NULL
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

    /// Saves an own order.
    pub fn put(&self, order: &SignedOrder) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO own_orders (id, body, public_key, signature) VALUES (?1, ?2, ?3, ?4)",
            params![order.id().as_bytes().to_vec(), order.body, order.public_key, order.signature],
        )?;
        Ok(())
    }

    /// Forgets an own order (cancelled or expired).
    pub fn remove(&self, id: &OrderId) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM own_orders WHERE id = ?1",
            params![id.as_bytes().to_vec()],
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
    pub fn all(&self) -> Result<Vec<SignedOrder>, StoreError> {
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
mod tests {
    use super::*;
    use darkswap_proto::{Asset, NewOrder, Side, identity::Keypair};

    #[test]
    fn orders_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let key = Keypair::generate_ed25519();
        let order = NewOrder {
            side: Side::Buy,
            base: Asset::Btc,
            quote: "rune:1:0".parse().unwrap(),
            amount: 1,
            price: 1,
            created_at: 10,
            expires_at: 20,
            nonce: 0,
        }
        .sign(&key)
        .unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.put(&order).unwrap();
            store.put(&order).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.all().unwrap(), vec![order.clone()]);
        store.remove(&order.id()).unwrap();
        assert!(store.all().unwrap().is_empty());
    }

    #[test]
    fn the_book_is_replaced_whole_and_bad_rows_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let key = Keypair::generate_ed25519();
        let order = |nonce| {
            NewOrder {
                side: Side::Sell,
                base: Asset::Btc,
                quote: "alkane:2:1".parse().unwrap(),
                amount: 5,
                price: 9,
                created_at: 10,
                expires_at: 20,
                nonce,
            }
            .sign(&key)
            .unwrap()
        };
        let (first, second) = (order(1), order(2));
        let cancel = darkswap_proto::OrderCancel::sign(first.id(), 11, &key).unwrap();
        let book = OrderbookResponse {
            orders: vec![darkswap_proto::OrderCreate::from_order(second.clone())],
            updates: vec![],
            cancels: vec![cancel],
        };
        {
            let mut store = Store::open(dir.path()).unwrap();
            store
                .save_book(&OrderbookResponse {
                    orders: vec![darkswap_proto::OrderCreate::from_order(first)],
                    ..Default::default()
                })
                .unwrap();
            store.save_book(&book).unwrap();
            store
                .conn
                .execute("INSERT INTO book (message) VALUES (x'ffff')", [])
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.load_book().unwrap(), (book, 1));
    }

    #[test]
    fn bans_are_replaced_whole_and_bad_rows_are_skipped() {
        use darkswap_p2p::{BanReason, PenaltyReason};
        let dir = tempfile::tempdir().unwrap();
        let timed = BannedPeer {
            peer_id: PeerId::random(),
            until: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            reason: BanReason::Misbehaviour(PenaltyReason::InvalidSignature),
            bans: 3,
        };
        let forever = BannedPeer {
            peer_id: PeerId::random(),
            until: None,
            reason: BanReason::Manual,
            bans: 0,
        };
        {
            let mut store = Store::open(dir.path()).unwrap();
            store.save_bans(std::slice::from_ref(&timed)).unwrap();
            store.save_bans(&[timed.clone(), forever.clone()]).unwrap();
            store
                .conn
                .execute(
                    "INSERT INTO bans (peer_id, until, reason, bans) VALUES ('nope', 1, 'manual', 0)",
                    [],
                )
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let (mut bans, unreadable) = store.load_bans().unwrap();
        bans.sort_by_key(|b| b.peer_id);
        let mut want = vec![timed.clone(), forever];
        want.sort_by_key(|b| b.peer_id);
        assert_eq!((bans, unreadable), (want, 1));
        // A sub-second expiry is rounded up, never down.
        let mut store = store;
        let t = UNIX_EPOCH + Duration::from_millis(1_800_000_000_001);
        store
            .save_bans(&[BannedPeer {
                until: Some(t),
                ..timed
            }])
            .unwrap();
        assert_eq!(
            store.load_bans().unwrap().0[0].until,
            Some(UNIX_EPOCH + Duration::from_secs(1_800_000_001))
        );
    }
}
