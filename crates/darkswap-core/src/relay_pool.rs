//! Which relays a node holds reservations on: seed 001's
//! `RelayConnectionPool`, sans-IO.
//!
//! The pool owns a [`RelayDiscoveryManager`] (what relays exist and how good
//! each is) and decides which of them to hold a reservation on: between
//! `min_relay_connections` and `max_relay_connections` of the best. It says
//! [`RelayPoolOutput::Reserve`] and [`RelayPoolOutput::Release`]; the shell
//! makes and drops the reservations (through the relay keeper, which also
//! runs the authentication gate) and reports what happened.
//!
//! - **How many.** With `auto_connect` (auto-relay), the pool holds
//!   `max_relay_connections` while the node is not known to be publicly
//!   reachable (AutoNAT says private, or has not said yet), and only
//!   `min_relay_connections` once it is; it picks the relays itself, from
//!   every source. Without `auto_connect` it holds the configured relays
//!   only, all of them (the fixed list of `relay_peers`).
//! - **Failover.** A reservation refused, lost, or not made within
//!   `reservation_timeout` counts as a failure of that relay: the pool
//!   releases it, puts it on a cool-down (doubling from `retry_initial` up
//!   to `retry_max` with each failure in a row) and reserves on the next
//!   best relay at once. A relay whose cool-down ended is a candidate again:
//!   a relay that comes back is noticed at the latest `retry_max` after it
//!   failed.
//! - **Better relays.** Every `connection_check_interval` the pool swaps its
//!   worst held relay for an unheld one that scores at least
//!   [`UPGRADE_RATIO`] times better (the margin keeps it from flapping
//!   between two relays of about the same worth).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::Duration,
};

use multiaddr::{Multiaddr, Protocol};
use web_time::Instant;

use crate::{
    NatStatus, PeerId,
    relay_discovery::{
        RelayDiscoveryConfig, RelayDiscoveryManager, RelayDiscoveryOutput, RelayInfo, RelaySource,
    },
    relay_keeper::{RelayAuthStatus, RelayStatus},
};

/// How much better an unheld relay must score to replace a held one at a
/// check.
pub const UPGRADE_RATIO: f64 = 2.0;

/// How the pool chooses and keeps relays (seed 001's fields, and the
/// deadlines the seed leaves open).
#[derive(Debug, Clone, PartialEq)]
pub struct RelayConnectionPoolConfig {
    /// Reservations held at most. Default: 3.
    pub max_relay_connections: usize,
    /// Reservations held once the node is publicly reachable (auto-relay);
    /// the pool tries to hold at least this many. Default: 1.
    pub min_relay_connections: usize,
    /// How often the pool looks for better relays. Default: 30 s.
    pub connection_check_interval: Duration,
    /// Choose relays from every source and adapt to reachability
    /// (auto-relay); off: hold exactly the configured relays. Default: on.
    pub auto_connect: bool,
    /// A reservation not confirmed within this counts as a failure.
    /// Default: 10 s.
    pub reservation_timeout: Duration,
    /// The first cool-down of a failed relay; it doubles with each failure
    /// in a row. Default: 1 s.
    pub retry_initial: Duration,
    /// The longest cool-down. Default: 30 s.
    pub retry_max: Duration,
    /// Where relays come from and how long they are kept.
    pub discovery: RelayDiscoveryConfig,
}

impl Default for RelayConnectionPoolConfig {
    fn default() -> Self {
        RelayConnectionPoolConfig {
            max_relay_connections: 3,
            min_relay_connections: 1,
            connection_check_interval: Duration::from_secs(30),
            auto_connect: true,
            reservation_timeout: Duration::from_secs(10),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            discovery: RelayDiscoveryConfig::default(),
        }
    }
}

/// Where a held relay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldState {
    /// Asked for; not confirmed yet.
    Reserving {
        /// When it was asked for.
        since: Instant,
    },
    /// The relay accepted the reservation.
    Reserved,
}

/// What the pool says of one relay (`get_relay_status`).
#[derive(Debug, Clone, PartialEq)]
pub struct RelayPoolStatus {
    /// The relay.
    pub peer_id: PeerId,
    /// Its score (see [`RelayInfo::score`]).
    pub score: f64,
    /// Its smoothed round-trip time, if measured.
    pub rtt: Option<Duration>,
    /// Whether the pool holds (or is making) a reservation on it.
    pub held: Option<HeldState>,
    /// Until when it is not tried again after failing.
    pub cooling_until: Option<Instant>,
}

/// Counts for `get_connection_stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayPoolStats {
    /// Relays known.
    pub known: usize,
    /// Reservations being made.
    pub reserving: usize,
    /// Reservations held.
    pub reserved: usize,
    /// Relays cooling down after failing.
    pub cooling: usize,
    /// The number of reservations the pool currently aims to hold.
    pub target: usize,
}

/// What happened, for events and logs.
#[derive(Debug, Clone, PartialEq)]
pub enum RelayPoolEvent {
    /// A relay was learned of.
    Discovered {
        /// The relay.
        peer_id: PeerId,
        /// How.
        source: RelaySource,
    },
    /// A relay was forgotten.
    Forgotten {
        /// The relay.
        peer_id: PeerId,
    },
    /// A relay moved in the ranking (0 is the best) since the last check.
    RankChanged {
        /// The relay.
        peer_id: PeerId,
        /// Its rank at the last check.
        previous: usize,
        /// Its rank now.
        rank: usize,
        /// Its score now.
        score: f64,
    },
    /// A reservation is held on `relay`.
    Reserved {
        /// The relay.
        relay: PeerId,
    },
    /// `relay` failed (refused, lost, too slow) and was let go.
    Lost {
        /// The relay.
        relay: PeerId,
    },
    /// `new` is reserved on in place of `old` (which failed, or scores
    /// [`UPGRADE_RATIO`] times worse).
    Replaced {
        /// The relay let go.
        old: PeerId,
        /// The relay chosen instead.
        new: PeerId,
    },
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum RelayPoolOutput {
    /// Make a reservation on `relay` (at one of `addrs`) and report it with
    /// [`RelayConnectionPool::handle_reserved`] or
    /// [`RelayConnectionPool::handle_failed`].
    Reserve {
        /// The relay.
        relay: PeerId,
        /// Where to reach it, best known first.
        addrs: Vec<Multiaddr>,
    },
    /// Drop the reservation on `relay` (or stop making it).
    Release {
        /// The relay.
        relay: PeerId,
    },
    /// Look relays up in the DHT (see [`RelayDiscoveryOutput::QueryDht`]).
    QueryDht,
    /// Report this.
    Event(RelayPoolEvent),
}

/// A relay that failed. The count of failures in a row stays until the
/// relay is reserved on again, so the next failure waits twice as long.
#[derive(Debug, Clone, Copy)]
struct Cooling {
    until: Instant,
    failures: u32,
}

/// See the module docs.
#[derive(Debug)]
pub struct RelayConnectionPool {
    config: RelayConnectionPoolConfig,
    discovery: RelayDiscoveryManager,
    held: BTreeMap<PeerId, HeldState>,
    cooling: HashMap<PeerId, Cooling>,
    reachable: bool,
    next_check: Instant,
    /// Each relay's rank at the last check, to report moves.
    ranks: HashMap<PeerId, usize>,
    /// The latest time an input carried: cool-downs that ended before it
    /// were acted on and are not waited for again.
    now: Instant,
    out: VecDeque<RelayPoolOutput>,
}

impl RelayConnectionPool {
    /// A pool that starts at `now` (seed 001's `new` and `start` in one):
    /// it asks for reservations on the best relays it knows at once.
    pub fn new(config: RelayConnectionPoolConfig, now: Instant) -> Self {
        let discovery = RelayDiscoveryManager::new(config.discovery.clone(), now);
        let mut pool = RelayConnectionPool {
            next_check: now + config.connection_check_interval,
            config,
            discovery,
            held: BTreeMap::new(),
            cooling: HashMap::new(),
            reachable: false,
            ranks: HashMap::new(),
            now,
            out: VecDeque::new(),
        };
        pool.fill(now);
        pool
    }

    /// The configuration in force.
    pub fn config(&self) -> &RelayConnectionPoolConfig {
        &self.config
    }

    /// What the pool knows of relays.
    pub fn discovery(&self) -> &RelayDiscoveryManager {
        &self.discovery
    }

    /// The number of reservations it currently aims to hold.
    pub fn target(&self) -> usize {
        if !self.config.auto_connect {
            return self
                .discovery
                .relays()
                .filter(|r| r.is_configured())
                .count();
        }
        let target = if self.reachable {
            self.config.min_relay_connections
        } else {
            self.config.max_relay_connections
        };
        target.min(self.config.max_relay_connections)
    }

    /// Adds a relay named by the user.
    pub fn add_relay(&mut self, peer_id: PeerId, addrs: Vec<Multiaddr>, now: Instant) {
        self.discovery.add_relay(peer_id, addrs, now);
        self.fill(now);
    }

    /// A relay found by `source` (DHT, mDNS, identify).
    pub fn handle_discovered(
        &mut self,
        peer_id: PeerId,
        addrs: Vec<Multiaddr>,
        source: RelaySource,
        now: Instant,
    ) {
        self.discovery
            .handle_discovered(peer_id, addrs, source, now);
        self.fill(now);
    }

    /// The DHT has peers to ask now (it had none at start): look relays up
    /// at once rather than an interval later.
    pub fn handle_dht_ready(&mut self, now: Instant) {
        self.discovery.query_dht_now(now);
    }

    /// AutoNAT's verdict: publicly reachable nodes keep fewer relays.
    pub fn handle_nat_status(&mut self, status: &NatStatus, now: Instant) {
        self.reachable = matches!(status, NatStatus::Public(_));
        self.fill(now);
        self.trim();
    }

    /// A ping round trip to `relay`.
    pub fn handle_rtt(&mut self, relay: &PeerId, rtt: Duration, now: Instant) {
        self.discovery.record_rtt(relay, rtt, now);
    }

    /// Whether `relay` authenticated at the required level.
    pub fn handle_auth(&mut self, relay: &PeerId, passed: bool, now: Instant) {
        self.discovery.record_auth(relay, passed, now);
        if !passed {
            self.fail(*relay, now);
        }
    }

    /// `relay` accepted the reservation.
    pub fn handle_reserved(&mut self, relay: PeerId, now: Instant) {
        let Some(state) = self.held.get_mut(&relay) else {
            return;
        };
        let new = *state != HeldState::Reserved;
        *state = HeldState::Reserved;
        self.cooling.remove(&relay);
        self.discovery.record_success(&relay, None, now);
        if new {
            self.emit(RelayPoolEvent::Reserved { relay });
        }
    }

    /// A connection to `relay` opened. If it cools down after a failure,
    /// the cool-down ends now: it is demonstrably there, and the failure
    /// was most likely an attempt made while the node was still
    /// reconnecting to it (after a relay restart in the NAT lab, that cost
    /// 2 s of the 10 s budget). Its failure count stands, so a relay that
    /// keeps refusing still backs off.
    pub fn handle_connected(&mut self, relay: &PeerId, now: Instant) {
        self.now = self.now.max(now);
        if let Some(cooling) = self.cooling.get_mut(relay)
            && cooling.until > now
        {
            cooling.until = now;
            self.fill(now);
        }
    }

    /// The reservation on `relay` was refused, could not be asked for, or
    /// was lost: let it go and reserve on the next best at once.
    pub fn handle_failed(&mut self, relay: PeerId, now: Instant) {
        self.fail(relay, now);
    }

    fn fail(&mut self, relay: PeerId, now: Instant) {
        self.discovery.record_failure(&relay, now);
        let failures = self.cooling.get(&relay).map_or(0, |c| c.failures) + 1;
        let backoff = self
            .config
            .retry_initial
            .saturating_mul(1u32 << (failures - 1).min(16))
            .min(self.config.retry_max);
        self.cooling.insert(
            relay,
            Cooling {
                until: now + backoff,
                failures,
            },
        );
        if self.held.remove(&relay).is_none() {
            return;
        }
        self.out.push_back(RelayPoolOutput::Release { relay });
        let picked = self.fill(now);
        match picked.first() {
            Some(&new) => self.emit(RelayPoolEvent::Replaced { old: relay, new }),
            None => self.emit(RelayPoolEvent::Lost { relay }),
        }
    }

    /// Reserves on the best relay not held yet, beyond the target if need
    /// be (a user asking for one more); which one, if any.
    pub fn connect_to_best_relay(&mut self, now: Instant) -> Option<PeerId> {
        let best = self.candidates(now).into_iter().next()?;
        self.reserve(best, now);
        Some(best)
    }

    /// Brings the pool to its target and, when the check interval is due,
    /// swaps a held relay for one [`UPGRADE_RATIO`] times better; also
    /// counts reservations not confirmed in time as failures.
    pub fn check_connections(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let overdue: Vec<PeerId> = self
            .held
            .iter()
            .filter(|(_, s)| {
                matches!(s, HeldState::Reserving { since }
                    if now.saturating_duration_since(*since) >= self.config.reservation_timeout)
            })
            .map(|(p, _)| *p)
            .collect();
        for relay in overdue {
            self.fail(relay, now);
        }
        self.fill(now);
        self.trim();
        if now >= self.next_check {
            self.next_check = now + self.config.connection_check_interval;
            self.report_ranks();
            self.upgrade(now);
        }
    }

    /// Reports the relays whose rank changed since the last check (a relay
    /// new since then only takes its place: it was reported discovered).
    fn report_ranks(&mut self) {
        let ranked: Vec<(PeerId, f64)> = self
            .discovery
            .get_best_relays(usize::MAX)
            .into_iter()
            .map(|r| (r.peer_id, r.score()))
            .collect();
        let mut ranks = HashMap::with_capacity(ranked.len());
        for (rank, (peer_id, score)) in ranked.into_iter().enumerate() {
            ranks.insert(peer_id, rank);
            match self.ranks.get(&peer_id) {
                Some(&previous) if previous != rank => self.emit(RelayPoolEvent::RankChanged {
                    peer_id,
                    previous,
                    rank,
                    score,
                }),
                _ => {}
            }
        }
        self.ranks = ranks;
    }

    /// Reservations held.
    pub fn connected_relay_count(&self) -> usize {
        self.held
            .values()
            .filter(|s| **s == HeldState::Reserved)
            .count()
    }

    /// What the pool says of `relay`, if it knows it.
    pub fn get_relay_status(&self, relay: &PeerId) -> Option<RelayPoolStatus> {
        let info = self.discovery.get(relay)?;
        Some(RelayPoolStatus {
            peer_id: *relay,
            score: info.score(),
            rtt: info.rtt,
            held: self.held.get(relay).copied(),
            cooling_until: self.cooling.get(relay).map(|c| c.until),
        })
    }

    /// Counts of the pool.
    pub fn get_connection_stats(&self, now: Instant) -> RelayPoolStats {
        RelayPoolStats {
            known: self.discovery.len(),
            reserving: self
                .held
                .values()
                .filter(|s| matches!(s, HeldState::Reserving { .. }))
                .count(),
            reserved: self.connected_relay_count(),
            cooling: self.cooling.values().filter(|c| c.until > now).count(),
            target: self.target(),
        }
    }

    /// Every relay the pool or the keeper knows, best first: the keeper's
    /// reservation states (`kept`) completed with the pool's ranking;
    /// relays only the keeper has (listened on by hand) come last.
    pub fn status(
        &self,
        kept: Vec<RelayStatus>,
        unasked: RelayAuthStatus,
        now: Instant,
    ) -> Vec<RelayStatus> {
        let mut kept: HashMap<PeerId, RelayStatus> =
            kept.into_iter().map(|s| (s.relay_peer_id, s)).collect();
        let mut out = Vec::with_capacity(self.discovery.len() + kept.len());
        for info in self.discovery.get_best_relays(usize::MAX) {
            let peer_id = info.peer_id;
            let mut status = kept.remove(&peer_id).unwrap_or_else(|| {
                let base = info.addrs.first().cloned().unwrap_or_else(Multiaddr::empty);
                let circuit = base.with(Protocol::P2p(peer_id)).with(Protocol::P2pCircuit);
                RelayStatus::new(peer_id, circuit, unasked.clone())
            });
            status.score = info.score();
            status.rtt = info.rtt;
            status.sources = info.sources.iter().copied().collect();
            status.held = self.held.contains_key(&peer_id);
            status.cooling_down = self.cooling.get(&peer_id).is_some_and(|c| c.until > now);
            out.push(status);
        }
        let mut rest: Vec<RelayStatus> = kept.into_values().collect();
        rest.sort_by_key(|s| s.relay_peer_id);
        out.extend(rest);
        out
    }

    /// `addrs` (a peer's addresses) with its circuit addresses ordered by
    /// their relay's rank, best first, and every other address left out:
    /// what `connect_via_relay` dials, in order.
    pub fn rank_circuit_addrs(&self, addrs: &[Multiaddr]) -> Vec<Multiaddr> {
        let mut ranked: Vec<(f64, &Multiaddr)> = addrs
            .iter()
            .filter_map(|a| {
                let relay = relay_of_circuit(a)?;
                let score = self.discovery.get(&relay).map_or(0.0, RelayInfo::score);
                Some((score, a))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked.into_iter().map(|(_, a)| a.clone()).collect()
    }

    /// When [`RelayConnectionPool::check_connections`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        let reserving = self.held.values().filter_map(|s| match s {
            HeldState::Reserving { since } => Some(*since + self.config.reservation_timeout),
            HeldState::Reserved => None,
        });
        let cooled = self
            .cooling
            .values()
            .map(|c| c.until)
            .filter(|until| *until > self.now);
        reserving
            .chain(cooled)
            .chain(self.discovery.poll_timeout())
            .chain([self.next_check])
            .min()
            .unwrap_or(self.next_check)
    }

    /// Runs what is due: the DHT look-up, expired cool-downs, the check,
    /// pruning of forgotten relays.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.discovery.handle_timeout(now);
        self.discovery.prune_relays(now);
        self.check_connections(now);
    }

    /// The next thing to do or report.
    pub fn poll_output(&mut self) -> Option<RelayPoolOutput> {
        while let Some(d) = self.discovery.poll_output() {
            let output = match d {
                RelayDiscoveryOutput::QueryDht => RelayPoolOutput::QueryDht,
                RelayDiscoveryOutput::Discovered { peer_id, source } => {
                    RelayPoolOutput::Event(RelayPoolEvent::Discovered { peer_id, source })
                }
                RelayDiscoveryOutput::Forgotten { peer_id } => {
                    self.cooling.remove(&peer_id);
                    // A forgotten relay is not held any more.
                    if self.held.remove(&peer_id).is_some() {
                        self.out
                            .push_back(RelayPoolOutput::Release { relay: peer_id });
                    }
                    RelayPoolOutput::Event(RelayPoolEvent::Forgotten { peer_id })
                }
            };
            self.out.push_back(output);
        }
        self.out.pop_front()
    }

    /// Relays worth reserving on now, best first: known, not held, not
    /// cooling down, not refused authentication; only configured ones
    /// without `auto_connect`.
    fn candidates(&self, now: Instant) -> Vec<PeerId> {
        self.discovery
            .get_best_relays(usize::MAX)
            .into_iter()
            .filter(|r| self.config.auto_connect || r.is_configured())
            .filter(|r| !self.held.contains_key(&r.peer_id))
            .filter(|r| self.cooling.get(&r.peer_id).is_none_or(|c| c.until <= now))
            .map(|r| r.peer_id)
            .collect()
    }

    /// Reserves on the best candidates until the target is held; the relays
    /// picked.
    fn fill(&mut self, now: Instant) -> Vec<PeerId> {
        let missing = self.target().saturating_sub(self.held.len());
        let picked: Vec<PeerId> = self.candidates(now).into_iter().take(missing).collect();
        for relay in &picked {
            self.reserve(*relay, now);
        }
        picked
    }

    /// Lets the worst relays go beyond the target (the node became
    /// reachable), keeping confirmed reservations before pending ones.
    fn trim(&mut self) {
        let target = self.target();
        if self.held.len() <= target {
            return;
        }
        let mut held: Vec<(bool, f64, PeerId)> = self
            .held
            .iter()
            .map(|(p, s)| {
                let score = self.discovery.get(p).map_or(0.0, RelayInfo::score);
                (*s == HeldState::Reserved, score, *p)
            })
            .collect();
        // Worst first: pending before confirmed, then by score.
        held.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let excess = held.len() - target;
        for (_, _, relay) in held.into_iter().take(excess) {
            self.held.remove(&relay);
            self.out.push_back(RelayPoolOutput::Release { relay });
        }
    }

    /// Swaps the worst confirmed relay for a candidate that scores
    /// [`UPGRADE_RATIO`] times better.
    fn upgrade(&mut self, now: Instant) {
        if !self.config.auto_connect {
            return;
        }
        let score = |p: &PeerId| self.discovery.get(p).map_or(0.0, RelayInfo::score);
        let Some(worst) = self
            .held
            .iter()
            .filter(|(_, s)| **s == HeldState::Reserved)
            .map(|(p, _)| *p)
            .min_by(|a, b| score(a).total_cmp(&score(b)))
        else {
            return;
        };
        let Some(best) = self.candidates(now).into_iter().next() else {
            return;
        };
        if score(&best) >= UPGRADE_RATIO * score(&worst) {
            self.held.remove(&worst);
            self.out
                .push_back(RelayPoolOutput::Release { relay: worst });
            self.reserve(best, now);
            self.emit(RelayPoolEvent::Replaced {
                old: worst,
                new: best,
            });
        }
    }

    fn reserve(&mut self, relay: PeerId, now: Instant) {
        let addrs = self
            .discovery
            .get(&relay)
            .map(|r| r.addrs.clone())
            .unwrap_or_default();
        self.held.insert(relay, HeldState::Reserving { since: now });
        self.out
            .push_back(RelayPoolOutput::Reserve { relay, addrs });
    }

    fn emit(&mut self, event: RelayPoolEvent) {
        self.out.push_back(RelayPoolOutput::Event(event));
    }
}

/// The relay of a circuit address `/…/p2p/<relay>/p2p-circuit[/p2p/<peer>]`.
pub fn relay_of_circuit(addr: &Multiaddr) -> Option<PeerId> {
    let mut relay = None;
    for p in addr.iter() {
        match p {
            Protocol::P2p(peer) => relay = Some(peer),
            Protocol::P2pCircuit => return relay,
            _ => {}
        }
    }
    None
}

/// Whether `addr` has a loopback IP, which names a different host for
/// every peer that is not on this one: never announced to, nor dialled
/// for, a peer reached over the network.
pub fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

#[cfg(test)]
mod tests;
