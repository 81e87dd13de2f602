//! The relay pool (seed 001's `RelayConnectionPool`) for NAT traversal.
//!
//! With no arguments it runs a self-contained demo on 127.0.0.1: two nodes
//! that serve as relays, and a node that listens nowhere (as if behind a
//! NAT) told of both with room for one reservation. It reserves on one,
//! shows the pool, loses that relay and fails over to the other, and a
//! fourth node then reaches it through the relay with `connect_via_relay`.
//! It fails (exit code 1) if a step does not happen within its deadline:
//! `scripts/test.sh` runs it.
//!
//! With `--relay` it runs a node whose pool knows these relays (and any it
//! discovers), and prints what the pool does:
//!
//! ```text
//! cargo run -p darkswap-p2p --example relay_connection_example
//! cargo run -p darkswap-p2p --example relay_connection_example -- \
//!     --relay /ip4/203.0.113.7/tcp/9000/p2p/12D3Koo...
//! ```

use std::time::Duration;

use clap::Parser;
use darkswap_p2p::{KadMode, Multiaddr, Network, NetworkConfig, NetworkEvent, PeerId};

#[derive(Parser)]
struct Args {
    /// Relay the pool always knows (repeatable).
    #[arg(long)]
    relay: Vec<Multiaddr>,
}

type Error = Box<dyn std::error::Error>;

/// The bound on each step of the demo.
const STEP: Duration = Duration::from_secs(20);

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    if args.relay.is_empty() {
        return demo().await;
    }
    let mut node = Network::new(NetworkConfig::default().with_relay_peers(args.relay)).await?;
    println!("node {}", node.local_peer_id());
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = node.next_event() => match event {
                Some(event) => print_pool_event(&event),
                None => break,
            },
        }
    }
    node.shutdown().await?;
    Ok(())
}

fn print_pool_event(event: &NetworkEvent) {
    match event {
        NetworkEvent::RelayDiscovered {
            relay_peer_id,
            source,
        } => println!("discovered relay {relay_peer_id} ({source})"),
        NetworkEvent::RelayReserved { relay_peer_id, .. } => {
            println!("reserved on {relay_peer_id}")
        }
        NetworkEvent::RelayReservationLost { relay_peer_id } => {
            println!("lost the reservation on {relay_peer_id}")
        }
        NetworkEvent::RelayReservationFailed {
            relay_peer_id,
            reason,
        } => println!("reservation on {relay_peer_id} failed: {reason}"),
        NetworkEvent::RelayReplaced { old, new } => println!("replaced {old} with {new}"),
        NetworkEvent::RelayRankChanged {
            relay_peer_id,
            previous,
            rank,
            score,
        } => println!("{relay_peer_id} moved from rank {previous} to {rank} (score {score:.1})"),
        _ => {}
    }
}

/// Nodes for the demo: loopback only, no mDNS, DHT servers.
fn local() -> NetworkConfig {
    NetworkConfig::default()
        .with_mdns(false)
        .with_kad_mode(KadMode::Server)
        .with_connection_timeout(STEP)
}

/// A node that serves as a relay on 127.0.0.1, with its address.
async fn relay() -> Result<(Network, Multiaddr), Error> {
    let node = Network::new(local().with_relay_hop(true)).await?;
    let addr = node.listen_on("/ip4/127.0.0.1/tcp/0").await?;
    // A relay serves reservations on a confirmed address only.
    node.add_external_address(addr.clone()).await?;
    let full = addr.with(darkswap_p2p::core::multiaddr::Protocol::P2p(
        node.local_peer_id(),
    ));
    Ok((node, full))
}

/// Waits for the first event `pick` maps to `Some`, within [`STEP`].
async fn expect<T>(
    node: &mut Network,
    what: &str,
    mut pick: impl FnMut(&NetworkEvent) -> Option<T>,
) -> Result<T, Error> {
    let wait = async {
        while let Some(event) = node.next_event().await {
            print_pool_event(&event);
            if let Some(found) = pick(&event) {
                return Ok(found);
            }
        }
        Err(Error::from(format!("the node stopped before {what}")))
    };
    tokio::time::timeout(STEP, wait)
        .await
        .map_err(|_| format!("no {what} within {STEP:?}"))?
}

async fn demo() -> Result<(), Error> {
    let (relay_a, addr_a) = relay().await?;
    let (relay_b, addr_b) = relay().await?;
    let mut config = local().with_relay_peers([addr_a, addr_b.clone()]);
    config.relay.pool.max_relay_connections = 1;
    let mut private = Network::new(config).await?;
    let private_id = private.local_peer_id();
    println!("private node {private_id}, listening nowhere");

    let held = expect(&mut private, "reservation", |e| match e {
        NetworkEvent::RelayReserved { relay_peer_id, .. } => Some(*relay_peer_id),
        _ => None,
    })
    .await?;
    for s in private.relays().status().await? {
        println!(
            "pool: {} reserved={} score={:.1} sources={:?}",
            s.relay_peer_id, s.reserved, s.score, s.sources
        );
    }
    let (gone, kept): (Network, Network) = if held == relay_a.local_peer_id() {
        (relay_a, relay_b)
    } else {
        (relay_b, relay_a)
    };
    let kept_id = kept.local_peer_id();
    println!("stopping relay {held}");
    gone.shutdown().await?;
    let (old, new) = expect(&mut private, "failover", |e| match e {
        NetworkEvent::RelayReplaced { old, new } => Some((*old, *new)),
        _ => None,
    })
    .await?;
    if (old, new) != (held, kept_id) {
        return Err(format!("replaced {old} with {new}, expected {held} with {kept_id}").into());
    }
    expect(&mut private, "reservation on the other relay", |e| {
        matches!(e, NetworkEvent::RelayReserved { relay_peer_id, .. } if *relay_peer_id == kept_id)
            .then_some(())
    })
    .await?;

    // Someone who only knows the remaining relay reaches the private node
    // through it: the DHT gives the private node's circuit address.
    let kept_addr = kept.listen_addrs().await?;
    let kept_full = kept_addr
        .first()
        .ok_or("the relay listens nowhere")?
        .clone()
        .with(darkswap_p2p::core::multiaddr::Protocol::P2p(kept_id));
    let mut visitor = Network::new(
        local()
            .with_auto_relay(false)
            .with_bootstrap_peers([kept_full]),
    )
    .await?;
    expect(&mut visitor, "a connection to the relay", |e| {
        matches!(e, NetworkEvent::PeerConnected(p) if *p == kept_id).then_some(())
    })
    .await?;
    let path = reach(&mut visitor, private_id).await?;
    println!("visitor reached {private_id} through {path}");

    for node in [visitor, private, kept] {
        node.shutdown().await?;
    }
    println!("relay pool demo passed");
    Ok(())
}

/// `connect_via_relay`, tried again each time the visitor's routing table
/// changes (the private node's circuit address may not be there yet).
async fn reach(visitor: &mut Network, peer: PeerId) -> Result<Multiaddr, Error> {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match visitor.relays().connect_via_relay(peer).await {
            Ok(path) => return Ok(path),
            Err(error) if tokio::time::Instant::now() < deadline => {
                println!("not yet: {error}");
                expect(visitor, "a routing table update", |e| {
                    matches!(e, NetworkEvent::RoutingUpdated { .. }).then_some(())
                })
                .await?;
            }
            Err(error) => return Err(error.into()),
        }
    }
}
