//! `perf-peer` (a hidden subcommand): one end of a `/perf/1.0.0` run as a
//! process of its own, so that each end can run in its own network
//! namespace. Two stacks:
//!
//! - `ours`: a DarkSwap SDK node (`darkswap_p2p::Network`, the transport
//!   and settings the daemon runs), as the client; the server side of ours
//!   is the `darkswap` daemon itself with `--perf`;
//! - `default`: the reference, a rust-libp2p swarm of the same libp2p
//!   version built with `SwarmBuilder` and every transport setting left at
//!   its default (`tcp::Config::default()`, `noise::Config::new`,
//!   `yamux::Config::default`, `quic::Config::new`), with nothing but
//!   `libp2p-stream` on top, as client and as server.
//!
//! Both stacks run the very same perf code (`darkswap_p2p::perf_client`
//! and `serve_perf`), so only the stacks differ. A server prints
//! `LISTEN <addr>/p2p/<id>` lines and runs until killed; a client dials,
//! downloads `--bytes` and prints `RESULT <json>`.

use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm, SwarmBuilder, multiaddr::Protocol, noise, swarm::SwarmEvent, tcp,
    yamux,
};
use serde::{Deserialize, Serialize};

/// Bound on dialling the server.
const DIAL_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on one transfer (64 MiB at 10 Mbit/s would take 54 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Which stack a perf peer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub(crate) enum Stack {
    /// The DarkSwap SDK node.
    Ours,
    /// rust-libp2p with default transport settings.
    Default,
}

/// One end of a perf run.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PerfPeerArgs {
    #[arg(long, value_enum)]
    stack: Stack,
    /// Serve on these addresses (a server; `default` stack only: ours is
    /// the daemon).
    #[arg(long)]
    listen: Vec<Multiaddr>,
    /// Dial this address and download (a client).
    #[arg(long)]
    dial: Option<Multiaddr>,
    /// Bytes to download.
    #[arg(long, default_value_t = 64 << 20)]
    bytes: u64,
}

/// What a client prints after `RESULT `.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct PerfResult {
    pub(crate) bytes: u64,
    /// From the request to the last byte received.
    pub(crate) secs: f64,
}

impl PerfResult {
    pub(crate) fn mbit_per_sec(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.secs.max(1e-9) / 1e6
    }
}

/// Runs the peer (until killed, for a server).
pub(crate) async fn run(args: PerfPeerArgs) -> anyhow::Result<()> {
    match (&args.dial, args.stack) {
        (Some(addr), Stack::Ours) => {
            let result = tokio::time::timeout(RUN_TIMEOUT, ours_client(addr.clone(), args.bytes))
                .await
                .context("the perf run timed out")??;
            println!("RESULT {}", serde_json::to_string(&result)?);
            Ok(())
        }
        (Some(addr), Stack::Default) => {
            let result =
                tokio::time::timeout(RUN_TIMEOUT, default_client(addr.clone(), args.bytes))
                    .await
                    .context("the perf run timed out")??;
            println!("RESULT {}", serde_json::to_string(&result)?);
            Ok(())
        }
        (None, Stack::Default) => default_server(&args.listen).await,
        (None, Stack::Ours) => bail!("the server of ours is `darkswap daemon --perf`"),
    }
}

async fn ours_client(addr: Multiaddr, bytes: u64) -> anyhow::Result<PerfResult> {
    let config = darkswap_p2p::NetworkConfig::default()
        .with_mdns(false)
        .with_perf(true)
        .with_connection_timeout(DIAL_TIMEOUT);
    let network = darkswap_p2p::Network::new(config).await?;
    let peer = network.dial(addr).await?;
    let report = network.perf(peer, 0, bytes).await?;
    network.shutdown().await?;
    Ok(PerfResult {
        bytes: report.downloaded,
        secs: report.download_time.as_secs_f64(),
    })
}

/// The reference swarm: defaults throughout.
fn default_swarm() -> anyhow::Result<Swarm<libp2p_stream::Behaviour>> {
    Ok(SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())?
        // The perf stream keeps the connection busy; idle ones may close.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build())
}

async fn default_client(addr: Multiaddr, bytes: u64) -> anyhow::Result<PerfResult> {
    let mut swarm = default_swarm()?;
    let control = swarm.behaviour().new_control();
    swarm.dial(addr)?;
    let peer = tokio::time::timeout(DIAL_TIMEOUT, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => return Ok(peer_id),
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    return Err(anyhow::anyhow!("dial: {error}"));
                }
                _ => {}
            }
        }
    })
    .await
    .context("dial timed out")??;
    // The swarm must keep running while the stream transfers.
    let driver = tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    let report = darkswap_p2p::perf_client(control, peer, 0, bytes).await;
    driver.abort();
    let report = report?;
    Ok(PerfResult {
        bytes: report.downloaded,
        secs: report.download_time.as_secs_f64(),
    })
}

async fn default_server(listen: &[Multiaddr]) -> anyhow::Result<()> {
    let mut swarm = default_swarm()?;
    let incoming = swarm
        .behaviour()
        .new_control()
        .accept(darkswap_p2p::PERF_PROTOCOL)?;
    tokio::spawn(darkswap_p2p::serve_perf(incoming));
    for addr in listen {
        swarm.listen_on(addr.clone())?;
    }
    let id: PeerId = *swarm.local_peer_id();
    loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            println!("LISTEN {}", address.with(Protocol::P2p(id)));
        }
    }
}
