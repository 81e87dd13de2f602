//! A bare rust-libp2p client of the relay's circuit relay v2 (TCP, Noise,
//! Yamux and the relay client, nothing else): it holds one reservation on
//! the relay and can dial another client through it. Hundreds run in the
//! benchmark process, each a swarm driven by a task of its own until the
//! client is dropped (which closes its connections).

use std::{collections::HashMap, time::Duration};

use anyhow::{Context as _, bail};
use futures::StreamExt;
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol, noise, relay, swarm::SwarmEvent, tcp, yamux};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

/// Connections stay open this long with nothing on them: longer than any
/// measure, so a circuit with no stream on it is kept alive.
const KEEP_ALIVE: Duration = Duration::from_secs(3600);

/// A client holding a reservation.
#[derive(Debug)]
pub(crate) struct HopClient {
    pub(crate) peer: PeerId,
    commands: mpsc::Sender<Dial>,
    _task: AbortOnDropHandle<()>,
}

/// Dial `target` at `addr` (a circuit address) and answer once connected.
#[derive(Debug)]
struct Dial {
    target: PeerId,
    addr: Multiaddr,
    done: oneshot::Sender<anyhow::Result<()>>,
}

impl HopClient {
    /// A fresh key connects to the relay at `relay_addr` (ending in
    /// `/p2p/<relay>`) and reserves, within `timeout`.
    pub(crate) async fn reserve(relay_addr: &Multiaddr, timeout: Duration) -> anyhow::Result<Self> {
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_relay_client(noise::Config::new, yamux::Config::default)?
            .with_behaviour(|_, relay| relay)?
            .with_swarm_config(|c| c.with_idle_connection_timeout(KEEP_ALIVE))
            .build();
        let peer = *swarm.local_peer_id();
        swarm.listen_on(relay_addr.clone().with(Protocol::P2pCircuit))?;
        let reserved = async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::Behaviour(relay::client::Event::ReservationReqAccepted {
                        ..
                    }) => return Ok(()),
                    SwarmEvent::ListenerClosed { reason: Err(e), .. } => {
                        bail!("reservation refused: {e}")
                    }
                    SwarmEvent::ListenerError { error, .. } => bail!("reservation: {error}"),
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        bail!("dial the relay: {error}")
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(timeout, reserved)
            .await
            .context("reservation timed out")??;
        let (commands, rx) = mpsc::channel(4);
        let task = tokio::spawn(drive(swarm, rx));
        Ok(HopClient {
            peer,
            commands,
            _task: AbortOnDropHandle::new(task),
        })
    }

    /// Opens a connection to `target` through the relay at `relay_addr`
    /// (`/p2p/RELAY/p2p-circuit/p2p/TARGET`), within `timeout`. The
    /// connection stays open until this client is dropped.
    pub(crate) async fn circuit_to(
        &self,
        relay_addr: &Multiaddr,
        target: PeerId,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let addr = relay_addr
            .clone()
            .with(Protocol::P2pCircuit)
            .with(Protocol::P2p(target));
        let (done, answer) = oneshot::channel();
        self.commands
            .send(Dial { target, addr, done })
            .await
            .context("the client stopped")?;
        tokio::time::timeout(timeout, answer)
            .await
            .context("circuit timed out")?
            .context("the client stopped")?
    }
}

/// Drives `swarm`: dials what it is told to and says when each connected.
async fn drive(
    mut swarm: libp2p::Swarm<relay::client::Behaviour>,
    mut dials: mpsc::Receiver<Dial>,
) {
    let mut pending: HashMap<PeerId, oneshot::Sender<anyhow::Result<()>>> = HashMap::new();
    loop {
        tokio::select! {
            dial = dials.recv() => match dial {
                Some(Dial { target, addr, done }) => match swarm.dial(addr) {
                    Ok(()) => { pending.insert(target, done); }
                    Err(e) => { let _ = done.send(Err(e.into())); }
                },
                // The client was dropped; the abort handle ends this task.
                None => std::future::pending::<()>().await,
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    if let Some(done) = pending.remove(&peer_id) {
                        let _ = done.send(Ok(()));
                    }
                }
                SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => {
                    if let Some(done) = pending.remove(&peer) {
                        let _ = done.send(Err(anyhow::anyhow!("circuit to {peer}: {error}")));
                    }
                }
                _ => {}
            },
        }
    }
}
