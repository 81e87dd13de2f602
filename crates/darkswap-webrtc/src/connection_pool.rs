//! A pool of open connections keyed by peer: reuse instead of
//! re-establishing, bounded in size, with idle (`ttl`) and absolute
//! (`max_age`) expiry. Generic over the connection type; the WebRTC
//! connection manager keeps its data channels in one.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use libp2p_identity::PeerId;

/// What a pooled connection must tell and do.
pub trait PooledConnection: Clone {
    /// Whether it can still carry data.
    fn is_alive(&self) -> bool;
    /// Closes it; called when the pool drops it.
    fn close(&self);
}

/// Pool policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPoolConfig {
    /// Connections kept at most. When full, the least recently used idle
    /// connection makes room; if none is idle, adding fails. Default: 100.
    pub max_connections: usize,
    /// An idle connection (not in use) older than this since its last use
    /// is closed by [`ConnectionPool::prune`]. Default: 5 min.
    pub ttl: Duration,
    /// Any connection older than this is closed by `prune` once idle, and
    /// never handed out again. Default: 1 h.
    pub max_age: Duration,
    /// Hand out pooled connections again; when off, every `get` misses and
    /// released connections close. Default: on.
    pub enable_reuse: bool,
}

impl Default for ConnectionPoolConfig {
    fn default() -> Self {
        ConnectionPoolConfig {
            max_connections: 100,
            ttl: Duration::from_secs(300),
            max_age: Duration::from_secs(3600),
            enable_reuse: true,
        }
    }
}

/// Counts of what the pool holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// All connections.
    pub total_connections: usize,
    /// Connections handed out and not released.
    pub in_use_connections: usize,
    /// Connections waiting for reuse.
    pub idle_connections: usize,
}

/// Why a connection could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// Every slot holds a connection in use.
    #[error("connection pool full: {0} connections, all in use")]
    Full(usize),
}

#[derive(Debug)]
struct Entry<C> {
    conn: C,
    created: Instant,
    last_used: Instant,
    users: usize,
}

/// See the module docs. All methods take `&self`; the pool locks inside.
#[derive(Debug)]
pub struct ConnectionPool<C> {
    config: ConnectionPoolConfig,
    entries: Mutex<HashMap<PeerId, Entry<C>>>,
}

impl<C: PooledConnection> ConnectionPool<C> {
    /// An empty pool.
    pub fn new(config: ConnectionPoolConfig) -> Self {
        ConnectionPool {
            config,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The policy in force.
    pub fn config(&self) -> &ConnectionPoolConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Entry<C>>> {
        // A panic while holding the lock leaves plain data behind: keep going.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a new connection to `peer`, in use by the caller. A previous
    /// connection to the same peer is closed and replaced.
    pub fn insert(&self, peer: PeerId, conn: C) -> Result<(), PoolError> {
        self.insert_at(peer, conn, Instant::now())
    }

    pub(crate) fn insert_at(&self, peer: PeerId, conn: C, now: Instant) -> Result<(), PoolError> {
        let mut entries = self.lock();
        if let Some(old) = entries.remove(&peer) {
            old.conn.close();
        }
        if entries.len() >= self.config.max_connections {
            let victim = entries
                .iter()
                .filter(|(_, e)| e.users == 0)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(p, _)| *p);
            match victim.and_then(|p| entries.remove(&p)) {
                Some(e) => e.conn.close(),
                None => return Err(PoolError::Full(entries.len())),
            }
        }
        entries.insert(
            peer,
            Entry {
                conn,
                created: now,
                last_used: now,
                users: 1,
            },
        );
        Ok(())
    }

    /// A live pooled connection to `peer`, now in use by the caller
    /// (release it when done), if reuse is on and it is younger than `max_age`.
    pub fn get(&self, peer: &PeerId) -> Option<C> {
        self.get_at(peer, Instant::now())
    }

    pub(crate) fn get_at(&self, peer: &PeerId, now: Instant) -> Option<C> {
        if !self.config.enable_reuse {
            return None;
        }
        let mut entries = self.lock();
        let entry = entries.get_mut(peer)?;
        if !entry.conn.is_alive() || now.duration_since(entry.created) >= self.config.max_age {
            return None;
        }
        entry.users += 1;
        entry.last_used = now;
        Some(entry.conn.clone())
    }

    /// Gives back a connection got from [`get`](Self::get) or added with
    /// [`insert`](Self::insert). With reuse off, it closes when nobody uses it.
    pub fn release(&self, peer: &PeerId) {
        self.release_at(peer, Instant::now())
    }

    pub(crate) fn release_at(&self, peer: &PeerId, now: Instant) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(peer) else {
            return;
        };
        entry.users = entry.users.saturating_sub(1);
        entry.last_used = now;
        if entry.users == 0
            && !self.config.enable_reuse
            && let Some(e) = entries.remove(peer)
        {
            e.conn.close();
        }
    }

    /// Closes the connection to `peer` and forgets it, whoever uses it.
    pub fn close(&self, peer: &PeerId) -> bool {
        let removed = self.lock().remove(peer);
        removed.map(|e| e.conn.close()).is_some()
    }

    /// Closes and forgets dead connections, idle ones unused for `ttl`,
    /// and idle ones older than `max_age`. Returns how many went.
    pub fn prune(&self) -> usize {
        self.prune_at(Instant::now())
    }

    pub(crate) fn prune_at(&self, now: Instant) -> usize {
        let mut entries = self.lock();
        let gone: Vec<PeerId> = entries
            .iter()
            .filter(|(_, e)| {
                !e.conn.is_alive()
                    || (e.users == 0
                        && (now.duration_since(e.last_used) >= self.config.ttl
                            || now.duration_since(e.created) >= self.config.max_age))
            })
            .map(|(p, _)| *p)
            .collect();
        for p in &gone {
            if let Some(e) = entries.remove(p) {
                e.conn.close();
            }
        }
        gone.len()
    }

    /// What the pool holds now.
    pub fn stats(&self) -> PoolStats {
        let entries = self.lock();
        let in_use = entries.values().filter(|e| e.users > 0).count();
        PoolStats {
            total_connections: entries.len(),
            in_use_connections: in_use,
            idle_connections: entries.len() - in_use,
        }
    }

    /// Closes everything.
    pub fn close_all(&self) {
        let drained: Vec<Entry<C>> = self.lock().drain().map(|(_, e)| e).collect();
        for e in drained {
            e.conn.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    #[derive(Debug, Clone, Default)]
    struct Fake {
        closed: Arc<AtomicBool>,
        dead: Arc<AtomicBool>,
    }

    impl PooledConnection for Fake {
        fn is_alive(&self) -> bool {
            !self.dead.load(Ordering::Relaxed) && !self.closed.load(Ordering::Relaxed)
        }
        fn close(&self) {
            self.closed.store(true, Ordering::Relaxed);
        }
    }

    fn config() -> ConnectionPoolConfig {
        ConnectionPoolConfig {
            max_connections: 2,
            ttl: Duration::from_secs(10),
            max_age: Duration::from_secs(100),
            enable_reuse: true,
        }
    }

    #[test]
    fn get_release_reuse_and_stats() {
        let pool = ConnectionPool::new(config());
        let t0 = Instant::now();
        let (p, c) = (PeerId::random(), Fake::default());
        pool.insert_at(p, c.clone(), t0).unwrap();
        assert_eq!(
            pool.stats(),
            PoolStats {
                total_connections: 1,
                in_use_connections: 1,
                idle_connections: 0
            }
        );
        pool.release_at(&p, t0);
        assert_eq!(pool.stats().idle_connections, 1);
        let again = pool.get_at(&p, t0 + Duration::from_secs(1)).unwrap();
        assert!(Arc::ptr_eq(&again.closed, &c.closed), "the same connection");
        assert_eq!(pool.stats().in_use_connections, 1);
        assert!(pool.get_at(&PeerId::random(), t0).is_none());
    }

    #[test]
    fn prune_drops_idle_old_and_dead_but_not_busy() {
        let pool = ConnectionPool::new(config());
        let t0 = Instant::now();
        let (idle, busy) = (PeerId::random(), PeerId::random());
        let (ci, cb) = (Fake::default(), Fake::default());
        pool.insert_at(idle, ci.clone(), t0).unwrap();
        pool.insert_at(busy, cb.clone(), t0).unwrap();
        pool.release_at(&idle, t0);
        assert_eq!(pool.prune_at(t0 + Duration::from_secs(9)), 0);
        assert_eq!(pool.prune_at(t0 + Duration::from_secs(10)), 1);
        assert!(ci.closed.load(Ordering::Relaxed));
        // Past max_age but in use: kept until released, never handed out.
        assert_eq!(pool.prune_at(t0 + Duration::from_secs(200)), 0);
        assert!(pool.get_at(&busy, t0 + Duration::from_secs(200)).is_none());
        cb.dead.store(true, Ordering::Relaxed);
        assert_eq!(pool.prune_at(t0 + Duration::from_secs(201)), 1);
        assert_eq!(pool.stats(), PoolStats::default());
    }

    #[test]
    fn a_full_pool_evicts_the_least_recently_used_idle_one() {
        let pool = ConnectionPool::new(config());
        let t0 = Instant::now();
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let conns: Vec<Fake> = (0..3).map(|_| Fake::default()).collect();
        pool.insert_at(peers[0], conns[0].clone(), t0).unwrap();
        pool.insert_at(peers[1], conns[1].clone(), t0).unwrap();
        assert_eq!(
            pool.insert_at(peers[2], conns[2].clone(), t0),
            Err(PoolError::Full(2))
        );
        pool.release_at(&peers[1], t0 + Duration::from_secs(1));
        pool.release_at(&peers[0], t0 + Duration::from_secs(2));
        pool.insert_at(peers[2], conns[2].clone(), t0 + Duration::from_secs(3))
            .unwrap();
        assert!(conns[1].closed.load(Ordering::Relaxed), "LRU idle evicted");
        assert!(!conns[0].closed.load(Ordering::Relaxed));
        assert!(pool.close(&peers[0]));
        assert!(conns[0].closed.load(Ordering::Relaxed));
    }

    #[test]
    fn without_reuse_nothing_is_handed_out_twice() {
        let pool = ConnectionPool::new(ConnectionPoolConfig {
            enable_reuse: false,
            ..config()
        });
        let (p, c) = (PeerId::random(), Fake::default());
        pool.insert(p, c.clone()).unwrap();
        assert!(pool.get(&p).is_none());
        pool.release(&p);
        assert!(c.closed.load(Ordering::Relaxed));
        assert_eq!(pool.stats().total_connections, 0);
    }
}
