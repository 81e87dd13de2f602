//! Which relays a node knows, and how good each one is: seed 001's
//! `RelayDiscoveryManager`, sans-IO.
//!
//! Relays come from four sources ([`RelaySource`]): the configuration
//! (`bootstrap_relays`, never forgotten), the DHT (relays announce
//! themselves under a well-known Kademlia key; the manager asks the shell to
//! look them up every `dht_query_interval`), mDNS, and any connected peer
//! whose identify lists the relay hop protocol. The shell reports what it
//! measures (ping round trips, reservations and circuits that worked or
//! failed, authentication results) with the time it read, and the manager
//! ranks the relays by [`RelayInfo::score`].
//!
//! # The score
//!
//! A number in `0..=100`, recomputed on every input (the formula is also in
//! `docs/relays.md`):
//!
//! ```text
//! score = 100 × reliability² × (½ + ½·speed) × (½ + ½·freshness)
//! reliability = (successes + 1) / (successes + failures + 2)
//! speed       = 1 / (1 + rtt / 100 ms)          (½ while no rtt is known)
//! freshness   = 1 / (1 + since last answer / 5 min)   (½ if it never answered)
//! ```
//!
//! - Successes and failures (reservations made or refused, circuits opened
//!   or failed, dials) count with a 10-minute half-life: a relay that keeps
//!   failing sinks, one that comes back recovers as its old failures fade.
//!   Squaring the reliability makes a failing relay sink faster than a slow
//!   one: a relay that answers slowly still relays, one that refuses does
//!   not.
//! - The round-trip time is an exponentially weighted average of ping
//!   samples (weight ⅛ per sample, as TCP's SRTT).
//! - A relay that failed authentication at the required level scores 0 and
//!   is never among the best until it passes.
//!
//! Ties go to configured relays, then to the lower peer id, so the ranking
//! is deterministic.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    time::Duration,
};

use multiaddr::Multiaddr;
use web_time::Instant;

use crate::PeerId;

/// Half-life of counted successes and failures.
pub const OUTCOME_HALF_LIFE: Duration = Duration::from_secs(600);
/// The round-trip time at which [`RelayInfo::score`]'s speed factor is ½.
pub const RTT_REFERENCE: Duration = Duration::from_millis(100);
/// The silence after which the freshness factor is ½.
pub const FRESHNESS_REFERENCE: Duration = Duration::from_secs(300);

/// How relays are found and kept (seed 001's fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayDiscoveryConfig {
    /// Relays known from the start, never pruned.
    pub bootstrap_relays: Vec<(PeerId, Multiaddr)>,
    /// How often relays are looked up in the DHT. Default: 5 min.
    pub dht_query_interval: Duration,
    /// A discovered relay not heard of (rediscovered or answering) for this
    /// long is forgotten. Default: 1 h.
    pub relay_ttl: Duration,
    /// Relays known at most; beyond, the lowest-scored discovered ones are
    /// forgotten. Default: 100.
    pub max_relays: usize,
    /// Look relays up in the DHT. Default: on.
    pub enable_dht_discovery: bool,
    /// Take relays that mDNS finds on the local network. Default: on.
    pub enable_mdns_discovery: bool,
}

impl Default for RelayDiscoveryConfig {
    fn default() -> Self {
        RelayDiscoveryConfig {
            bootstrap_relays: Vec::new(),
            dht_query_interval: Duration::from_secs(300),
            relay_ttl: Duration::from_secs(3600),
            max_relays: 100,
            enable_dht_discovery: true,
            enable_mdns_discovery: true,
        }
    }
}

/// Where a relay was learned of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RelaySource {
    /// The configuration.
    Configured,
    /// A DHT look-up.
    Dht,
    /// mDNS on the local network.
    Mdns,
    /// A connected peer whose identify lists the relay hop protocol.
    Identify,
}

impl RelaySource {
    /// Its name in APIs and logs: `configured`, `dht`, `mdns`, `identify`.
    pub fn as_str(self) -> &'static str {
        match self {
            RelaySource::Configured => "configured",
            RelaySource::Dht => "dht",
            RelaySource::Mdns => "mdns",
            RelaySource::Identify => "identify",
        }
    }
}

impl std::fmt::Display for RelaySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the manager knows of one relay.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayInfo {
    /// The relay.
    pub peer_id: PeerId,
    /// Where it can be dialled, newest first.
    pub addrs: Vec<Multiaddr>,
    /// Where it was learned of.
    pub sources: BTreeSet<RelaySource>,
    /// Smoothed ping round-trip time, once measured.
    pub rtt: Option<Duration>,
    /// Successes counted, decayed (see the module docs).
    pub successes: f64,
    /// Failures counted, decayed.
    pub failures: f64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// When it last answered (a ping, a reservation, a circuit).
    pub last_answer: Option<Instant>,
    /// When it was last discovered or answered: what the TTL counts from.
    pub last_heard: Instant,
    /// Whether it authenticated at the required level: `None` while not
    /// asked (or not required).
    pub authenticated: Option<bool>,
    score: f64,
    /// When `successes` and `failures` were last decayed.
    decayed_at: Instant,
}

impl RelayInfo {
    fn new(peer_id: PeerId, now: Instant) -> Self {
        RelayInfo {
            peer_id,
            addrs: Vec::new(),
            sources: BTreeSet::new(),
            rtt: None,
            successes: 0.0,
            failures: 0.0,
            consecutive_failures: 0,
            last_answer: None,
            last_heard: now,
            authenticated: None,
            score: 0.0,
            decayed_at: now,
        }
    }

    /// Its score in `0..=100` as of the manager's last input (the formula
    /// is in the module docs).
    pub fn score(&self) -> f64 {
        self.score
    }

    /// Whether it came from the configuration.
    pub fn is_configured(&self) -> bool {
        self.sources.contains(&RelaySource::Configured)
    }

    fn decay(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.decayed_at);
        let factor = 0.5f64.powf(elapsed.as_secs_f64() / OUTCOME_HALF_LIFE.as_secs_f64());
        self.successes *= factor;
        self.failures *= factor;
        self.decayed_at = now;
    }

    fn rescore(&mut self, now: Instant) {
        self.decay(now);
        if self.authenticated == Some(false) {
            self.score = 0.0;
            return;
        }
        let reliability = (self.successes + 1.0) / (self.successes + self.failures + 2.0);
        let speed = self.rtt.map_or(0.5, |rtt| {
            1.0 / (1.0 + rtt.as_secs_f64() / RTT_REFERENCE.as_secs_f64())
        });
        let freshness = self.last_answer.map_or(0.5, |at| {
            let since = now.saturating_duration_since(at).as_secs_f64();
            1.0 / (1.0 + since / FRESHNESS_REFERENCE.as_secs_f64())
        });
        self.score =
            100.0 * reliability * reliability * (0.5 + 0.5 * speed) * (0.5 + 0.5 * freshness);
    }

    fn add_addrs(&mut self, addrs: impl IntoIterator<Item = Multiaddr>) {
        for addr in addrs {
            self.addrs.retain(|a| *a != addr);
            self.addrs.insert(0, addr);
        }
        // Enough to reach it; a relay advertising hundreds is not kept whole.
        self.addrs.truncate(MAX_ADDRS_PER_RELAY);
    }
}

/// Addresses kept per relay.
const MAX_ADDRS_PER_RELAY: usize = 8;

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayDiscoveryOutput {
    /// Look up the relays announced in the DHT and report each with
    /// [`RelayDiscoveryManager::handle_discovered`] (source
    /// [`RelaySource::Dht`]).
    QueryDht,
    /// A relay was learned of.
    Discovered {
        /// The relay.
        peer_id: PeerId,
        /// How.
        source: RelaySource,
    },
    /// A relay was forgotten (not heard of within the TTL, or beyond
    /// `max_relays`).
    Forgotten {
        /// The relay.
        peer_id: PeerId,
    },
}

/// See the module docs.
#[derive(Debug)]
pub struct RelayDiscoveryManager {
    config: RelayDiscoveryConfig,
    relays: HashMap<PeerId, RelayInfo>,
    next_dht_query: Option<Instant>,
    out: VecDeque<RelayDiscoveryOutput>,
}

impl RelayDiscoveryManager {
    /// A manager knowing the configured relays, started at `now`; with DHT
    /// discovery on, its first look-up is due at once.
    pub fn new(config: RelayDiscoveryConfig, now: Instant) -> Self {
        let mut manager = RelayDiscoveryManager {
            next_dht_query: config.enable_dht_discovery.then_some(now),
            relays: HashMap::new(),
            out: VecDeque::new(),
            config,
        };
        for (peer, addr) in manager.config.bootstrap_relays.clone() {
            manager.add(peer, vec![addr], RelaySource::Configured, now);
        }
        manager
    }

    /// The configuration in force.
    pub fn config(&self) -> &RelayDiscoveryConfig {
        &self.config
    }

    /// Adds a relay named by the user (as [`RelaySource::Configured`]:
    /// never forgotten).
    pub fn add_relay(&mut self, peer_id: PeerId, addrs: Vec<Multiaddr>, now: Instant) {
        self.add(peer_id, addrs, RelaySource::Configured, now);
    }

    /// A relay found by `source`. mDNS and DHT finds are ignored when their
    /// discovery is off.
    pub fn handle_discovered(
        &mut self,
        peer_id: PeerId,
        addrs: Vec<Multiaddr>,
        source: RelaySource,
        now: Instant,
    ) {
        let enabled = match source {
            RelaySource::Dht => self.config.enable_dht_discovery,
            RelaySource::Mdns => self.config.enable_mdns_discovery,
            RelaySource::Configured | RelaySource::Identify => true,
        };
        if enabled {
            self.add(peer_id, addrs, source, now);
        }
    }

    fn add(&mut self, peer_id: PeerId, addrs: Vec<Multiaddr>, source: RelaySource, now: Instant) {
        let known = self.relays.contains_key(&peer_id);
        let relay = self
            .relays
            .entry(peer_id)
            .or_insert_with(|| RelayInfo::new(peer_id, now));
        relay.sources.insert(source);
        relay.add_addrs(addrs);
        relay.last_heard = relay.last_heard.max(now);
        relay.rescore(now);
        if !known {
            self.out
                .push_back(RelayDiscoveryOutput::Discovered { peer_id, source });
            self.enforce_max();
        }
    }

    /// The relay answered: a reservation made, a circuit opened, a dial
    /// that worked; `latency`, if measured, is a round-trip sample.
    pub fn record_success(&mut self, peer_id: &PeerId, latency: Option<Duration>, now: Instant) {
        let Some(relay) = self.relays.get_mut(peer_id) else {
            return;
        };
        relay.decay(now);
        relay.successes += 1.0;
        relay.consecutive_failures = 0;
        relay.last_answer = Some(now);
        relay.last_heard = now;
        if let Some(sample) = latency {
            relay.rtt = Some(smoothed(relay.rtt, sample));
        }
        relay.rescore(now);
    }

    /// A ping round trip: the relay is alive and this fast (not counted as
    /// a success: pings say nothing of whether it relays).
    pub fn record_rtt(&mut self, peer_id: &PeerId, rtt: Duration, now: Instant) {
        let Some(relay) = self.relays.get_mut(peer_id) else {
            return;
        };
        relay.rtt = Some(smoothed(relay.rtt, rtt));
        relay.last_answer = Some(now);
        relay.last_heard = now;
        relay.rescore(now);
    }

    /// The relay failed: a reservation refused or lost, a circuit that did
    /// not open, a dial that did not connect.
    pub fn record_failure(&mut self, peer_id: &PeerId, now: Instant) {
        let Some(relay) = self.relays.get_mut(peer_id) else {
            return;
        };
        relay.decay(now);
        relay.failures += 1.0;
        relay.consecutive_failures = relay.consecutive_failures.saturating_add(1);
        relay.rescore(now);
    }

    /// Whether the relay authenticated at the required level.
    pub fn record_auth(&mut self, peer_id: &PeerId, passed: bool, now: Instant) {
        let Some(relay) = self.relays.get_mut(peer_id) else {
            return;
        };
        relay.authenticated = Some(passed);
        relay.rescore(now);
    }

    /// The `n` best relays, best first; relays that failed authentication
    /// are left out.
    pub fn get_best_relays(&self, n: usize) -> Vec<&RelayInfo> {
        let mut ranked: Vec<&RelayInfo> = self
            .relays
            .values()
            .filter(|r| r.authenticated != Some(false))
            .collect();
        ranked.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.is_configured().cmp(&a.is_configured()))
                .then(a.peer_id.cmp(&b.peer_id))
        });
        ranked.truncate(n);
        ranked
    }

    /// What is known of `peer_id`, if it is a known relay.
    pub fn get(&self, peer_id: &PeerId) -> Option<&RelayInfo> {
        self.relays.get(peer_id)
    }

    /// Every known relay, in no order.
    pub fn relays(&self) -> impl Iterator<Item = &RelayInfo> {
        self.relays.values()
    }

    /// Relays known.
    pub fn len(&self) -> usize {
        self.relays.len()
    }

    /// Whether no relay is known.
    pub fn is_empty(&self) -> bool {
        self.relays.is_empty()
    }

    /// Forgets discovered relays not heard of within `relay_ttl`, and the
    /// lowest-scored beyond `max_relays`; configured relays stay. Scores
    /// are brought up to `now`. Returns the relays forgotten.
    pub fn prune_relays(&mut self, now: Instant) -> Vec<PeerId> {
        let ttl = self.config.relay_ttl;
        for relay in self.relays.values_mut() {
            relay.rescore(now);
        }
        let mut gone: Vec<PeerId> = self
            .relays
            .values()
            .filter(|r| !r.is_configured() && now.saturating_duration_since(r.last_heard) >= ttl)
            .map(|r| r.peer_id)
            .collect();
        for peer_id in &gone {
            self.forget(*peer_id);
        }
        gone.extend(self.enforce_max());
        gone
    }

    /// Forgets the lowest-scored discovered relays beyond `max_relays`.
    fn enforce_max(&mut self) -> Vec<PeerId> {
        let excess = self.relays.len().saturating_sub(self.config.max_relays);
        if excess == 0 {
            return Vec::new();
        }
        let mut discovered: Vec<&RelayInfo> = self
            .relays
            .values()
            .filter(|r| !r.is_configured())
            .collect();
        discovered.sort_by(|a, b| a.score.total_cmp(&b.score).then(b.peer_id.cmp(&a.peer_id)));
        let gone: Vec<PeerId> = discovered.iter().take(excess).map(|r| r.peer_id).collect();
        for peer_id in &gone {
            self.forget(*peer_id);
        }
        gone
    }

    fn forget(&mut self, peer_id: PeerId) {
        if self.relays.remove(&peer_id).is_some() {
            self.out
                .push_back(RelayDiscoveryOutput::Forgotten { peer_id });
        }
    }

    /// When [`RelayDiscoveryManager::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_dht_query
    }

    /// Asks for a DHT look-up at once (with DHT discovery on), and the next
    /// one an interval later: when the DHT first has peers to ask, the
    /// look-up at start found nobody to ask.
    pub fn query_dht_now(&mut self, now: Instant) {
        if self.next_dht_query.is_some() {
            self.out.push_back(RelayDiscoveryOutput::QueryDht);
            self.next_dht_query = Some(now + self.config.dht_query_interval);
        }
    }

    /// Asks for the DHT look-up when it is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(due) = self.next_dht_query
            && now >= due
        {
            self.out.push_back(RelayDiscoveryOutput::QueryDht);
            self.next_dht_query = Some(now + self.config.dht_query_interval);
        }
    }

    /// The next thing to do or report.
    pub fn poll_output(&mut self) -> Option<RelayDiscoveryOutput> {
        self.out.pop_front()
    }
}

/// SRTT: ⅞ of the old estimate and ⅛ of the sample (the first sample is
/// taken whole).
fn smoothed(old: Option<Duration>, sample: Duration) -> Duration {
    match old {
        Some(old) => (old * 7 + sample) / 8,
        None => sample,
    }
}

#[cfg(test)]
mod tests;
