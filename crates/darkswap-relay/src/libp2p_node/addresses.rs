//! Which addresses the relay hands out: its own, in every reservation
//! ([`announce`]), and its peers', through its Kademlia ([`DhtPeers`]).
//!
//! Two NAT lab findings: the relay put every identified peer's listen
//! addresses in its DHT, `127.0.0.1` included, so remote nodes were told to
//! dial themselves; and a peer's circuit address through this relay stayed
//! in the DHT after the peer was gone, so every new node's DHT walk dialled
//! the dead peers through the relay, was refused (`NoReservation`) and
//! used up its source address's circuit rate limit, until its real circuits
//! were refused too. Sans-IO: the node feeds identify results and
//! disconnections in and applies the addresses that come out.

use std::collections::HashMap;

use darkswap_p2p::core::relay_pool::{is_loopback, relay_of_circuit};
use libp2p::{Multiaddr, PeerId};

/// The circuit addresses through this relay of each connected peer.
#[derive(Debug)]
pub(crate) struct DhtPeers {
    local: PeerId,
    via_us: HashMap<PeerId, Vec<Multiaddr>>,
}

impl DhtPeers {
    /// For the relay whose peer id is `local`.
    pub(crate) fn new(local: PeerId) -> Self {
        DhtPeers {
            local,
            via_us: HashMap::new(),
        }
    }

    /// A connected peer identified itself with `listen_addrs`, and sees
    /// this relay at `observed` (loopback when it runs on this host): the
    /// addresses worth putting in the DHT for it. Its loopback addresses
    /// only if it is on this host; its circuit addresses through this
    /// relay are remembered, to be taken out when it goes.
    pub(crate) fn on_identified(
        &mut self,
        peer: PeerId,
        listen_addrs: Vec<Multiaddr>,
        observed: &Multiaddr,
    ) -> Vec<Multiaddr> {
        let same_host = is_loopback(observed);
        let keep: Vec<Multiaddr> = listen_addrs
            .into_iter()
            .filter(|a| same_host || !is_loopback(a))
            .collect();
        let via_us: Vec<Multiaddr> = keep
            .iter()
            .filter(|a| relay_of_circuit(a) == Some(self.local))
            .cloned()
            .collect();
        if !via_us.is_empty() {
            self.via_us.insert(peer, via_us);
        }
        keep
    }

    /// The peer's last connection to this relay closed, and its
    /// reservation with it: the addresses to take out of the DHT.
    pub(crate) fn on_disconnected(&mut self, peer: &PeerId) -> Vec<Multiaddr> {
        self.via_us.remove(peer).unwrap_or_default()
    }
}

/// Whether the relay should announce its listen address `addr`, given the
/// addresses it announces already (`announced`), and which of those it
/// should withdraw: a loopback address only while it has nothing else (a
/// relay on `127.0.0.1` for tests or a local node), and none once a
/// routable one is known.
pub(crate) fn announce<'a>(
    addr: &Multiaddr,
    announced: impl Iterator<Item = &'a Multiaddr>,
) -> (bool, Vec<Multiaddr>) {
    let announced: Vec<&Multiaddr> = announced.collect();
    if is_loopback(addr) {
        (announced.iter().all(|a| is_loopback(a)), Vec::new())
    } else {
        let withdraw = announced
            .into_iter()
            .filter(|a| is_loopback(a))
            .cloned()
            .collect();
        (true, withdraw)
    }
}

#[cfg(test)]
mod tests {
    use libp2p::multiaddr::Protocol;

    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_remote_peers_loopback_addresses_stay_out_of_the_dht() {
        let relay = PeerId::random();
        let mut dht = DhtPeers::new(relay);
        let peer = PeerId::random();
        let listen = vec![
            addr("/ip4/127.0.0.1/tcp/4001"),
            addr("/ip4/10.0.1.2/tcp/4001"),
            addr("/ip4/7.7.7.11/tcp/4001"),
        ];
        let remote = dht.on_identified(peer, listen.clone(), &addr("/ip4/7.7.7.1/tcp/4001"));
        assert_eq!(remote, listen[1..].to_vec());
        // A peer on this host keeps them: they are how it is reached.
        let local = dht.on_identified(peer, listen.clone(), &addr("/ip4/127.0.0.1/tcp/4001"));
        assert_eq!(local, listen);
    }

    #[test]
    fn circuit_addresses_through_this_relay_go_when_the_peer_does() {
        let relay = PeerId::random();
        let other_relay = PeerId::random();
        let mut dht = DhtPeers::new(relay);
        let peer = PeerId::random();
        let through = |r: PeerId| {
            addr("/ip4/7.7.7.1/tcp/4001")
                .with(Protocol::P2p(r))
                .with(Protocol::P2pCircuit)
        };
        let listen = vec![through(relay), through(other_relay)];
        let kept = dht.on_identified(peer, listen.clone(), &addr("/ip4/7.7.7.1/tcp/4001"));
        assert_eq!(kept, listen);
        assert_eq!(dht.on_disconnected(&peer), vec![through(relay)]);
        // Once: the entry is gone with the peer.
        assert!(dht.on_disconnected(&peer).is_empty());
        assert!(dht.on_disconnected(&PeerId::random()).is_empty());
    }

    #[test]
    fn loopback_is_announced_only_while_there_is_nothing_else() {
        let lo = addr("/ip4/127.0.0.1/tcp/4001");
        let lan = addr("/ip4/7.7.7.1/tcp/4001");
        assert_eq!(announce(&lo, [].iter()), (true, vec![]));
        assert_eq!(
            announce(&lan, [lo.clone()].iter()),
            (true, vec![lo.clone()])
        );
        assert_eq!(announce(&lo, [lan.clone()].iter()), (false, vec![]));
    }
}
