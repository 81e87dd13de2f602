//! Trades in the daemon's database: each trade's record (state, deadline,
//! the UTXOs it committed, its finished transaction) and every message it
//! sent and received, so a restart, even a `kill -9`, brings it back as a
//! recovered trade that signs nothing more (see
//! `darkswap_trade::negotiation::TradeRecord`).
//!
//! The node's swarm task writes here before each message a trade sends,
//! through [`TradeStore`]: on its own SQLite connection to the same file
//! (WAL mode allows it), so the state owner's writes and the trades' never
//! wait on one handle. Each record is one transaction, `synchronous=FULL`.

use std::{path::Path, sync::Mutex};

use darkswap_p2p::{
    PeerId, TradeStore,
    core::trade::Role,
    darkswap_trade::{
        bitcoin::{OutPoint, Transaction, consensus},
        negotiation::TradeRecord,
    },
};
use darkswap_proto::{Message, OrderId, decode, encode};
use rusqlite::{Connection, params};

use super::{FILE_NAME, StoreError};

/// Ended trades are kept this long past their deadline (for
/// `GET /v1/trades`), then forgotten at the next start.
const KEEP_ENDED_SECS: u64 = 30 * 24 * 3600;

/// The trades' connection to the database. See the module docs.
#[derive(Debug)]
pub struct TradeDb {
    conn: Mutex<Connection>,
}

impl TradeDb {
    /// Opens the database in `dir` (made by [`super::Store::open`]) and its
    /// trade tables.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(dir.join(FILE_NAME))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // The owner's connection may be writing: wait for it rather than
        // fail.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS trades (
                id TEXT PRIMARY KEY,
                order_id TEXT NOT NULL,
                role TEXT NOT NULL,
                peer TEXT NOT NULL,
                state TEXT NOT NULL,
                signed INTEGER NOT NULL,
                deadline INTEGER NOT NULL,
                amount TEXT NOT NULL,
                outpoints TEXT NOT NULL,
                final_tx BLOB
            );
            CREATE TABLE IF NOT EXISTS trade_messages (
                trade_id TEXT NOT NULL,
                sent INTEGER NOT NULL,
                step INTEGER NOT NULL,
                bytes BLOB NOT NULL,
                PRIMARY KEY (trade_id, sent, step)
            );",
        )?;
        Ok(TradeDb {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A connection whose holder panicked is still a connection: every
        // write is one transaction.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `record`, replacing the trade's earlier one, in one
    /// transaction.
    pub fn put(&self, record: &TradeRecord) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let id = record.id.to_string();
        let state =
            serde_json::to_string(&record.state).map_err(|e| StoreError::Encode(e.to_string()))?;
        let outpoints: Vec<String> = record
            .own_outpoints
            .iter()
            .map(ToString::to_string)
            .collect();
        tx.execute(
            "INSERT OR REPLACE INTO trades
                (id, order_id, role, peer, state, signed, deadline, amount, outpoints, final_tx)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                id,
                record.order_id.to_string(),
                darkswap_p2p::json::role_name(record.role),
                record.peer.to_string(),
                state,
                record.signed,
                i64::try_from(record.deadline_unix).unwrap_or(i64::MAX),
                record.amount.to_string(),
                outpoints.join(","),
                record.final_tx.as_ref().map(consensus::encode::serialize),
            ],
        )?;
        {
            let mut put = tx.prepare(
                "INSERT OR IGNORE INTO trade_messages (trade_id, sent, step, bytes)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (step, body) in &record.received {
                put.execute(params![id, false, step, body])?;
            }
            for (step, message) in &record.sent {
                let bytes = encode(&Message::SignedTrade(message.clone()));
                put.execute(params![id, true, step, bytes])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every stored trade, and how many rows no longer read (skipped).
    /// Trades that ended more than 30 days before `unix_now` are forgotten.
    pub fn load(&self, unix_now: u64) -> Result<(Vec<TradeRecord>, usize), StoreError> {
        let conn = self.conn();
        let rows: Vec<TradeRow> = {
            let mut stmt = conn.prepare(
                "SELECT id, order_id, role, peer, state, signed, deadline, amount, outpoints, final_tx
                 FROM trades ORDER BY deadline",
            )?;
            stmt.query_map([], |r| {
                Ok(TradeRow {
                    id: r.get(0)?,
                    order_id: r.get(1)?,
                    role: r.get(2)?,
                    peer: r.get(3)?,
                    state: r.get(4)?,
                    signed: r.get(5)?,
                    deadline: r.get(6)?,
                    amount: r.get(7)?,
                    outpoints: r.get(8)?,
                    final_tx: r.get(9)?,
                })
            })?
            .collect::<Result<_, _>>()?
        };
        let (mut records, mut unreadable, mut forget) = (Vec::new(), 0, Vec::new());
        for row in rows {
            let Some(mut record) = row.parse() else {
                unreadable += 1;
                continue;
            };
            if record.state.is_final()
                && record.deadline_unix.saturating_add(KEEP_ENDED_SECS) < unix_now
            {
                forget.push(row.id);
                continue;
            }
            let mut stmt = conn.prepare(
                "SELECT sent, step, bytes FROM trade_messages WHERE trade_id = ?1 ORDER BY step",
            )?;
            let messages = stmt.query_map(params![row.id], |r| {
                Ok((
                    r.get::<_, bool>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?;
            for message in messages {
                let (sent, step, bytes) = message?;
                if !sent {
                    record.received.insert(step, bytes);
                } else if let Ok(Message::SignedTrade(m)) = decode(&bytes) {
                    record.sent.insert(step, m);
                } else {
                    unreadable += 1;
                }
            }
            records.push(record);
        }
        for id in forget {
            conn.execute("DELETE FROM trades WHERE id = ?1", params![id])?;
            conn.execute(
                "DELETE FROM trade_messages WHERE trade_id = ?1",
                params![id],
            )?;
        }
        Ok((records, unreadable))
    }
}

impl TradeStore for TradeDb {
    fn save(&self, record: &TradeRecord) -> Result<(), String> {
        self.put(record).map_err(|e| e.to_string())
    }
}

struct TradeRow {
    id: String,
    order_id: String,
    role: String,
    peer: String,
    state: String,
    signed: bool,
    deadline: i64,
    amount: String,
    outpoints: String,
    final_tx: Option<Vec<u8>>,
}

impl TradeRow {
    /// The record without its messages; `None` if a field does not read.
    fn parse(&self) -> Option<TradeRecord> {
        let role = match self.role.as_str() {
            "maker" => Role::Maker,
            "taker" => Role::Taker,
            _ => return None,
        };
        let own_outpoints = self
            .outpoints
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<OutPoint>().ok())
            .collect::<Option<Vec<_>>>()?;
        let final_tx = match &self.final_tx {
            Some(bytes) => Some(consensus::encode::deserialize::<Transaction>(bytes).ok()?),
            None => None,
        };
        Some(TradeRecord {
            id: self.id.parse().ok()?,
            order_id: self.order_id.parse::<OrderId>().ok()?,
            role,
            peer: self.peer.parse::<PeerId>().ok()?,
            state: serde_json::from_str(&self.state).ok()?,
            signed: self.signed,
            deadline_unix: u64::try_from(self.deadline).ok()?,
            amount: self.amount.parse().ok()?,
            own_outpoints,
            received: Default::default(),
            sent: Default::default(),
            final_tx,
        })
    }
}
