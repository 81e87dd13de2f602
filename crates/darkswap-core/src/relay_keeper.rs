//! Keeps circuit relay v2 reservations alive on the configured relays, and
//! with `require_relay_auth` lets a relay hold one only once it has proved
//! itself over `/darkswap/auth/1.0.0`.
//!
//! libp2p's relay client renews a reservation while its connection to the
//! relay lives, but when that connection drops (the relay restarts, the
//! network blips) the circuit listener closes and nothing re-makes it. This
//! state machine does: every configured relay is authenticating, being
//! listened on, reserved, or waiting for a retry with exponential backoff.
//!
//! Sans-IO: the shell reports listener and reservation events and
//! authentication answers, calls [`RelayKeeper::handle_timeout`] when
//! [`RelayKeeper::poll_timeout`] is due, and performs what
//! [`RelayKeeper::poll_output`] yields. `L` is the shell's listener id.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    time::Duration,
};

use multiaddr::{Multiaddr, Protocol};
use web_time::Instant;

use crate::{
    Now, PeerId,
    auth::{AuthError, AuthManager, AuthToken, AuthorizationLevel, Challenge},
    event::{NetworkEvent, ReservationId},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State<L> {
    /// No listener; try again at this instant.
    Waiting { retry_at: Instant },
    /// Authenticating the relay before asking for a reservation.
    Authenticating,
    /// A `/p2p-circuit` listener exists; no reservation confirmed yet.
    Listening { listener: L },
    /// The relay accepted the reservation.
    Reserved { listener: L },
    /// Let go on purpose ([`RelayKeeper::remove`]): no listener, no retry;
    /// what was learned of the relay (its authentication) stays.
    Released,
}

#[derive(Debug)]
struct Entry<L> {
    circuit_addr: Multiaddr,
    state: State<L>,
    backoff: Duration,
    auth: RelayAuthStatus,
}

/// Where a relay stands with `require_relay_auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayAuthStatus {
    /// The node does not require relays to authenticate.
    NotRequired,
    /// Not authenticated yet, or authenticating now.
    Pending,
    /// Authenticated at this level; reservations may be made.
    Authenticated(AuthorizationLevel),
    /// The last attempt failed for this reason; no reservation is asked
    /// for, and the attempt is retried with backoff.
    Refused(String),
}

/// What a node knows of one relay, for status reports: the reservation (the
/// keeper's part) and the rank (the relay pool's part).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RelayStatus {
    /// The relay.
    pub relay_peer_id: PeerId,
    /// The circuit address listened on through it (or that would be).
    pub circuit_addr: Multiaddr,
    /// Whether a reservation is currently held.
    pub reserved: bool,
    /// Whether the relay authenticated (with `require_relay_auth`).
    pub auth: RelayAuthStatus,
    /// Its score in `0..=100` (see `RelayInfo::score`); 0 for a relay the
    /// pool does not know (listened on by hand).
    pub score: f64,
    /// Its smoothed ping round-trip time, once measured.
    pub rtt: Option<Duration>,
    /// Where it was learned of.
    pub sources: Vec<crate::relay_discovery::RelaySource>,
    /// Whether the pool holds a reservation on it, or is making one.
    pub held: bool,
    /// Whether it is cooling down after a failure (not tried until then).
    pub cooling_down: bool,
}

impl RelayStatus {
    /// A relay as the keeper alone sees it.
    pub fn new(relay_peer_id: PeerId, circuit_addr: Multiaddr, auth: RelayAuthStatus) -> Self {
        RelayStatus {
            relay_peer_id,
            circuit_addr,
            reserved: false,
            auth,
            score: 0.0,
            rtt: None,
            sources: Vec::new(),
            held: false,
            cooling_down: false,
        }
    }
}

/// How a [`RelayKeeper`] retries and whom it trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayKeeperConfig {
    /// First delay before re-making a lost reservation; doubles on each
    /// failure up to `retry_max`.
    pub retry_initial: Duration,
    /// Longest delay between attempts.
    pub retry_max: Duration,
    /// Authenticate each relay before asking it for a reservation.
    pub require_auth: bool,
    /// The level a relay must reach when `require_auth` is on.
    pub min_auth_level: AuthorizationLevel,
}

/// A relay address does not end in `/p2p/<relay peer id>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("relay address {0} must end in /p2p/<peer id>")]
pub struct MissingPeerId(pub Multiaddr);

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum RelayKeeperOutput {
    /// Listen on this circuit address, which asks the relay for a
    /// reservation; report the listener with
    /// [`RelayKeeper::handle_listening`] or the failure with
    /// [`RelayKeeper::handle_listen_failed`].
    Listen {
        /// The relay.
        relay: PeerId,
        /// `<relay address>/p2p-circuit`.
        circuit_addr: Multiaddr,
    },
    /// Send this challenge to the relay (dialling these addresses if need
    /// be) and feed what it proves to [`RelayKeeper::handle_auth_result`].
    SendChallenge {
        /// The relay.
        relay: PeerId,
        /// Where it can be reached.
        addresses: Vec<Multiaddr>,
        /// The challenge.
        challenge: Challenge,
    },
    /// Report this.
    Event(NetworkEvent),
}

/// See the module docs.
pub struct RelayKeeper<L> {
    config: RelayKeeperConfig,
    relays: HashMap<PeerId, Entry<L>>,
    next_reservation: u64,
    out: VecDeque<RelayKeeperOutput>,
}

impl<L: fmt::Debug> fmt::Debug for RelayKeeper<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayKeeper")
            .field("config", &self.config)
            .field("relays", &self.relays)
            .finish_non_exhaustive()
    }
}

/// Splits `/…/p2p/<id>` into the peer id and the address without it.
pub fn split_peer_id(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut base = addr.clone();
    match base.pop() {
        Some(Protocol::P2p(peer)) => Some((peer, base)),
        _ => None,
    }
}

impl<L: Copy + Eq> RelayKeeper<L> {
    /// A keeper with no relays yet.
    pub fn new(mut config: RelayKeeperConfig) -> Self {
        config.retry_max = config.retry_max.max(config.retry_initial);
        RelayKeeper {
            config,
            relays: HashMap::new(),
            next_reservation: 0,
            out: VecDeque::new(),
        }
    }

    /// Keeps a reservation on the relay at `addr` (ending in
    /// `/p2p/<relay peer id>`); the first attempt is due at `now`. A relay
    /// kept already stays as it is; one released is taken up again, at
    /// `addr`.
    pub fn add(&mut self, addr: &Multiaddr, now: Instant) -> Result<PeerId, MissingPeerId> {
        let (relay, _) = split_peer_id(addr).ok_or_else(|| MissingPeerId(addr.clone()))?;
        let circuit_addr = addr.clone().with(Protocol::P2pCircuit);
        let auth = self.unasked_auth();
        let entry = self.relays.entry(relay).or_insert(Entry {
            circuit_addr: circuit_addr.clone(),
            state: State::Released,
            backoff: self.config.retry_initial,
            auth,
        });
        if entry.state == State::Released {
            entry.circuit_addr = circuit_addr;
            entry.state = State::Waiting { retry_at: now };
            entry.backoff = self.config.retry_initial;
        }
        Ok(relay)
    }

    /// The authentication status of a relay not asked yet.
    pub fn unasked_auth(&self) -> RelayAuthStatus {
        if self.config.require_auth {
            RelayAuthStatus::Pending
        } else {
            RelayAuthStatus::NotRequired
        }
    }

    /// When [`RelayKeeper::handle_timeout`] is next due, if any relay waits.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.relays
            .values()
            .filter_map(|e| match e.state {
                State::Waiting { retry_at } => Some(retry_at),
                _ => None,
            })
            .min()
    }

    /// Starts the attempts that are due: a listen, or first an
    /// authentication when relays must prove themselves (an earlier
    /// authentication that still holds is enough; trusted relays pass at
    /// once).
    pub fn handle_timeout(&mut self, auth: &mut AuthManager, now: Now) {
        let mut due: Vec<PeerId> = self
            .relays
            .iter()
            .filter(
                |(_, e)| matches!(e.state, State::Waiting { retry_at } if retry_at <= now.instant),
            )
            .map(|(p, _)| *p)
            .collect();
        due.sort();
        for relay in due {
            if !self.config.require_auth {
                self.listen(relay);
            } else if let Some(level) = self.session_level(auth, &relay, now) {
                // Still authenticated from before: no new proof, no event.
                if let Some(e) = self.relays.get_mut(&relay) {
                    e.auth = RelayAuthStatus::Authenticated(level);
                }
                self.listen(relay);
            } else {
                self.start_auth(auth, relay, now);
            }
        }
    }

    /// The shell listens on `relay`'s circuit address with `listener`.
    pub fn handle_listening(&mut self, relay: &PeerId, listener: L) {
        if let Some(e) = self.relays.get_mut(relay) {
            e.state = State::Listening { listener };
        }
    }

    /// Stops keeping a reservation on `relay`; the listener to close, if
    /// one is open. Nothing is reported: the caller let it go on purpose.
    /// The relay stays in the status with what was learned of it, until
    /// [`RelayKeeper::forget`].
    pub fn remove(&mut self, relay: &PeerId) -> Option<L> {
        let entry = self.relays.get_mut(relay)?;
        let state = std::mem::replace(&mut entry.state, State::Released);
        match state {
            State::Listening { listener } | State::Reserved { listener } => Some(listener),
            State::Waiting { .. } | State::Authenticating | State::Released => None,
        }
    }

    /// Forgets `relay` altogether; the listener to close, if one is open.
    pub fn forget(&mut self, relay: &PeerId) -> Option<L> {
        let listener = self.remove(relay);
        self.relays.remove(relay);
        listener
    }

    /// Listening on `relay`'s circuit address failed: report it, retry
    /// with backoff.
    pub fn handle_listen_failed(&mut self, relay: &PeerId, reason: String, now: Instant) {
        if let Some(e) = self.relays.get_mut(relay) {
            schedule_retry(e, now, self.config.retry_max);
            self.out.push_back(RelayKeeperOutput::Event(
                NetworkEvent::RelayReservationFailed {
                    relay_peer_id: *relay,
                    reason,
                },
            ));
        }
    }

    /// A listener closed (for `reason`, when it failed). If it was a
    /// relay's circuit listener, the reservation is gone: retry with
    /// backoff, and report the loss of a held reservation, or the failure
    /// of one not yet accepted (the relay refused it, or could not be
    /// reached).
    pub fn handle_listener_closed(&mut self, listener: L, reason: Option<String>, now: Instant) {
        let Some((relay, entry)) = self.relays.iter_mut().find(|(_, e)| {
            matches!(e.state, State::Listening { listener: l } | State::Reserved { listener: l } if l == listener)
        }) else {
            return;
        };
        let was_reserved = matches!(entry.state, State::Reserved { .. });
        schedule_retry(entry, now, self.config.retry_max);
        let relay_peer_id = *relay;
        tracing::info!(%relay_peer_id, ?reason, "relay reservation ended; will re-reserve");
        let event = if was_reserved {
            NetworkEvent::RelayReservationLost { relay_peer_id }
        } else {
            NetworkEvent::RelayReservationFailed {
                relay_peer_id,
                reason: reason.unwrap_or_else(|| "the circuit listener closed".into()),
            }
        };
        self.out.push_back(RelayKeeperOutput::Event(event));
    }

    /// A connection to `relay` is open: a reservation waiting out its
    /// back-off is asked for now. An attempt made while the node was still
    /// (re)connecting to the relay fails at once (the relay client does not
    /// join a dial already under way) and would otherwise wait its back-off
    /// with the relay right there: 2 s of a relay restart in the NAT lab.
    pub fn handle_connected(&mut self, relay: &PeerId, now: Instant) {
        if let Some(entry) = self.relays.get_mut(relay)
            && let State::Waiting { retry_at } = &mut entry.state
            && *retry_at > now
        {
            *retry_at = now;
        }
    }

    /// `relay` accepted a reservation (`renewal` as libp2p reports it).
    /// Each new reservation is reported once: a kept relay's renewals are
    /// not new; for relays listened on by hand, libp2p's flag decides.
    pub fn handle_reservation_accepted(&mut self, relay: PeerId, renewal: bool) {
        let new = match self.relays.get_mut(&relay) {
            Some(e) => match e.state {
                State::Listening { listener } => {
                    e.state = State::Reserved { listener };
                    e.backoff = self.config.retry_initial;
                    true
                }
                State::Reserved { .. }
                | State::Waiting { .. }
                | State::Authenticating
                | State::Released => false,
            },
            None => !renewal,
        };
        if new {
            self.next_reservation += 1;
            let reservation_id = ReservationId(self.next_reservation);
            tracing::info!(%relay, %reservation_id, "relay reservation accepted");
            self.out
                .push_back(RelayKeeperOutput::Event(NetworkEvent::RelayReserved {
                    relay_peer_id: relay,
                    reservation_id,
                }));
        }
    }

    /// What `relay` proved in answer to a challenge from
    /// [`RelayKeeperOutput::SendChallenge`] (the shell checks the answer
    /// with [`AuthManager::check_answer`]). Enough, and the reservation is
    /// asked for; not, and the relay is refused and retried with backoff.
    pub fn handle_auth_result(
        &mut self,
        relay: PeerId,
        result: Result<AuthToken, AuthError>,
        now: Instant,
    ) {
        match result {
            Ok(token) => self.authenticated(relay, token.level, now),
            Err(error) => self.auth_failed(relay, error, now),
        }
    }

    /// Checks a level a relay reached through the manual API against the
    /// minimum for relays.
    pub fn check_level(&self, level: AuthorizationLevel) -> Result<AuthorizationLevel, AuthError> {
        if level < self.config.min_auth_level {
            return Err(AuthError::InsufficientLevel {
                have: level,
                need: self.config.min_auth_level,
            });
        }
        Ok(level)
    }

    /// Whether `peer` is a relay this keeper keeps a reservation on.
    pub fn is_kept(&self, peer: &PeerId) -> bool {
        self.relays
            .get(peer)
            .is_some_and(|e| e.state != State::Released)
    }

    /// Every kept relay's state, sorted by peer id.
    pub fn status(&self) -> Vec<RelayStatus> {
        let mut out: Vec<_> = self
            .relays
            .iter()
            .map(|(p, e)| RelayStatus {
                reserved: matches!(e.state, State::Reserved { .. }),
                ..RelayStatus::new(*p, e.circuit_addr.clone(), e.auth.clone())
            })
            .collect();
        out.sort_by_key(|s| s.relay_peer_id);
        out
    }

    /// The next thing the shell must do.
    pub fn poll_output(&mut self) -> Option<RelayKeeperOutput> {
        self.out.pop_front()
    }

    /// An earlier authentication (challenge or token) still holds at the
    /// level relays need.
    fn session_level(
        &self,
        auth: &AuthManager,
        relay: &PeerId,
        now: Now,
    ) -> Option<AuthorizationLevel> {
        let level = auth.authorization_level(relay, now.wall);
        (auth.is_authenticated(relay, now.wall) && level >= self.config.min_auth_level)
            .then_some(level)
    }

    fn listen(&mut self, relay: PeerId) {
        if let Some(e) = self.relays.get(&relay) {
            tracing::debug!(%relay, circuit_addr = %e.circuit_addr, "requesting relay reservation");
            self.out.push_back(RelayKeeperOutput::Listen {
                relay,
                circuit_addr: e.circuit_addr.clone(),
            });
        }
    }

    fn start_auth(&mut self, auth: &mut AuthManager, relay: PeerId, now: Now) {
        let Some(entry) = self.relays.get_mut(&relay) else {
            return;
        };
        entry.state = State::Authenticating;
        match auth.authenticate_trusted(relay, now.wall) {
            Err(e) => return self.auth_failed(relay, e, now.instant),
            Ok(Some(token)) => return self.authenticated(relay, token.level, now.instant),
            Ok(None) => {}
        }
        match auth.generate_challenge(relay, now.wall) {
            Ok(challenge) => {
                // <relay addr>/p2p/<id>/p2p-circuit → <relay addr>
                let mut addr = entry.circuit_addr.clone();
                addr.pop();
                let addresses = split_peer_id(&addr).map(|(_, base)| base).into_iter();
                self.out.push_back(RelayKeeperOutput::SendChallenge {
                    relay,
                    addresses: addresses.collect(),
                    challenge,
                });
            }
            Err(e) => self.auth_failed(relay, e, now.instant),
        }
    }

    /// The relay proved `level`: if that is enough, report it and listen.
    fn authenticated(&mut self, relay: PeerId, level: AuthorizationLevel, now: Instant) {
        if let Err(e) = self.check_level(level) {
            return self.auth_failed(relay, e, now);
        }
        let mut waiting = false;
        if let Some(e) = self.relays.get_mut(&relay) {
            e.auth = RelayAuthStatus::Authenticated(level);
            waiting = e.state == State::Authenticating;
        }
        tracing::info!(%relay, %level, "relay authenticated");
        self.out
            .push_back(RelayKeeperOutput::Event(NetworkEvent::RelayAuthenticated {
                relay_peer_id: relay,
                level,
            }));
        // A relay released meanwhile is not listened on.
        if waiting {
            self.listen(relay);
        }
    }

    /// No reservation on `relay` until a later attempt passes: report why,
    /// retry with backoff.
    fn auth_failed(&mut self, relay: PeerId, error: AuthError, now: Instant) {
        tracing::warn!(%relay, %error, "relay refused: authentication failed");
        if let Some(e) = self.relays.get_mut(&relay) {
            e.auth = RelayAuthStatus::Refused(error.to_string());
            if e.state == State::Authenticating {
                schedule_retry(e, now, self.config.retry_max);
            }
        }
        self.out
            .push_back(RelayKeeperOutput::Event(NetworkEvent::RelayAuthFailed {
                relay_peer_id: relay,
                error,
            }));
    }
}

fn schedule_retry<L>(e: &mut Entry<L>, now: Instant, max: Duration) {
    e.state = State::Waiting {
        retry_at: now + e.backoff,
    };
    e.backoff = (e.backoff * 2).min(max);
}

#[cfg(test)]
mod tests;
