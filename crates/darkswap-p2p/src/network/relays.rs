//! The relay facet of the handle: seed 001's `RelayConnectionPool` methods.

use darkswap_core::{relay_keeper::RelayStatus, relay_pool::RelayPoolStats};
use libp2p::{Multiaddr, PeerId};

use crate::{command::RelayCommand, error::Error, network::NetworkHandle};

/// The relay pool: what [`NetworkHandle::relays`] returns. The pool runs by
/// itself (it starts with the node); these methods look at it and nudge it.
#[derive(Debug, Clone, Copy)]
pub struct RelaysHandle<'a> {
    pub(super) handle: &'a NetworkHandle,
}

impl RelaysHandle<'_> {
    /// Every relay known, best first: reservation state, score, round-trip
    /// time, where it was learned of.
    pub async fn status(&self) -> Result<Vec<RelayStatus>, Error> {
        Ok(self
            .handle
            .ask(|reply| RelayCommand::Status { reply })
            .await?)
    }

    /// What is known of `relay`, if it is known.
    pub async fn get_relay_status(&self, relay: PeerId) -> Result<Option<RelayStatus>, Error> {
        Ok(self
            .status()
            .await?
            .into_iter()
            .find(|s| s.relay_peer_id == relay))
    }

    /// Counts of the pool: relays known, reservations held and being
    /// made, relays cooling down, and how many it aims to hold.
    pub async fn get_connection_stats(&self) -> Result<RelayPoolStats, Error> {
        Ok(self
            .handle
            .ask(|reply| RelayCommand::Stats { reply })
            .await?)
    }

    /// Reservations held now.
    pub async fn connected_relay_count(&self) -> Result<usize, Error> {
        Ok(self.get_connection_stats().await?.reserved)
    }

    /// Reserves on the best relay not held yet, beyond the pool's target;
    /// the relay chosen, or `None` if no relay is free to take.
    pub async fn connect_to_best_relay(&self) -> Result<Option<PeerId>, Error> {
        Ok(self
            .handle
            .ask(|reply| RelayCommand::ConnectToBest { reply })
            .await?)
    }

    /// Runs the pool's check now rather than at its interval: fails
    /// reservations overdue, fills the pool to its target.
    pub async fn check_connections(&self) -> Result<(), Error> {
        Ok(self
            .handle
            .ask(|reply| RelayCommand::Check { reply })
            .await?)
    }

    /// Reaches `peer` through a relay: dials its circuit addresses (those
    /// the routing table holds, else a DHT look-up's), best relay first,
    /// until one connects. Returns the circuit address that did;
    /// [`Error::NoRelayPath`] when none is known or none connects.
    pub async fn connect_via_relay(&self, peer: PeerId) -> Result<Multiaddr, Error> {
        let circuits = |found: Vec<Multiaddr>| {
            self.handle
                .ask(move |reply| RelayCommand::CircuitsOf { peer, found, reply })
        };
        let mut ranked = circuits(Vec::new()).await?;
        if ranked.is_empty() {
            let found = match self.handle.find_peer(peer).await {
                Ok(found) => found,
                Err(Error::PeerNotFound(_)) => return Err(Error::NoRelayPath(peer)),
                Err(e) => return Err(e),
            };
            ranked = circuits(found).await?;
        }
        for mut addr in ranked {
            if !matches!(
                addr.iter().last(),
                Some(libp2p::multiaddr::Protocol::P2p(_))
            ) {
                addr.push(libp2p::multiaddr::Protocol::P2p(peer));
            }
            match self.handle.dial(addr.clone()).await {
                Ok(_) => return Ok(addr),
                Err(error) => tracing::debug!(%addr, %error, "relay path failed"),
            }
        }
        Err(Error::NoRelayPath(peer))
    }
}
