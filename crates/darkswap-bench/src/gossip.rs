//! `gossip` (issue 18, P5): how fast a signed order reaches every node of
//! a gossipsub mesh of real SDK nodes with 20 ms links, against the time
//! the same nodes take to carry one across a 3-hop path, and how many
//! copies of each message a node receives.
//!
//! Every node runs in this process, on a tokio runtime inside a network
//! namespace of the bench's own whose loopback delays each packet by
//! `--link-delay-ms` with netem: a packet crosses `lo` once on its way from
//! one socket to another, so that is each link's one-way latency (the
//! round trip is twice it). The nodes meet as real ones do: each listens on
//! the namespace's 127.0.0.1, the first `--bootstrap` know each other, the
//! others are given two of them as bootstrap peers and find the rest with
//! Kademlia; gossipsub then forms its mesh over the connections that makes.
//! The reference is a chain A–B–C–D of four more nodes with Kademlia off,
//! each dialled only by its predecessor, measured in the same rounds.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use darkswap_p2p::{
    KadMode, Network, NetworkConfig, NetworkEvent, NetworkHandle, ORDERBOOK_TOPIC,
    proto::{Message, OrderCreate, OrderId},
};
use rand::seq::SliceRandom as _;
use tokio::sync::{mpsc, watch};

use crate::{
    netns::Namespace,
    report::{Conditions, Figures, Report, median, quantile},
};

/// How long every node may take to have a full mesh.
const MESH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one order may take to reach every node before the missing
/// deliveries are counted as such.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Mesh peers each node must have before measuring: gossipsub's `D_lo`.
const MESH_LOW: f64 = 5.0;
/// How long to wait for every node to reach [`MESH_LOW`] before measuring
/// with the mesh as it is.
const MESH_SETTLE: Duration = Duration::from_secs(30);

/// What to measure.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub(crate) struct GossipArgs {
    /// Nodes in the mesh.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// One-way latency of every link, ms (netem on the namespace's lo).
    #[arg(long, default_value_t = 20)]
    link_delay_ms: u64,
    /// Nodes the others bootstrap from (each new node is given two).
    #[arg(long, default_value_t = 3)]
    bootstrap: usize,
    /// Rounds; each publishes `--orders` orders into the mesh and as many
    /// along the chain, interleaved.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Orders per round, each from a random node.
    #[arg(long, default_value_t = 20)]
    orders: usize,
    /// Worker threads of the runtime all nodes share.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// One node's delivery of an order: which node, which order, when.
type Delivery = (usize, OrderId, Instant);

/// Runs the measure.
pub(crate) async fn run(args: GossipArgs, quick: bool) -> anyhow::Result<Report> {
    let args = if quick {
        GossipArgs {
            nodes: 12,
            rounds: 1,
            orders: 3,
            ..args
        }
    } else {
        args
    };
    anyhow::ensure!(
        args.nodes > args.bootstrap && args.bootstrap >= 2,
        "--nodes must exceed --bootstrap, which must be at least 2"
    );
    let conditions = Conditions::now();
    let ns = Namespace::create("gossip")?;
    ns.set_delay(Duration::from_millis(args.link_delay_ms))?;
    source_per_node(&ns, args.nodes + CHAIN)?;
    eprintln!(
        "gossip: {} nodes in namespace {}, {} ms one-way per link ({} ms RTT)",
        args.nodes,
        ns.name(),
        args.link_delay_ms,
        2 * args.link_delay_ms
    );
    let a = args.clone();
    let figures = ns.run(args.threads, move || measure(a)).await?;
    drop(ns);
    Report::new("gossip", conditions, &args, figures)
}

/// Node `i`'s configuration: no mDNS (nodes meet through Kademlia),
/// Kademlia in server mode (loopback addresses are never confirmed
/// external), and an address of its own, `127.0.0.<i + 1>` (the whole of
/// 127/8 is the namespace's loopback). On one address, gossipsub's IP colocation penalty
/// (more than 10 peers from one IP) scores every peer below zero and no
/// mesh forms at all: a hundred machines have a hundred addresses.
///
/// Listening apart is not enough: libp2p-tcp's port reuse binds a dial to
/// `0.0.0.0:<listen port>`, and the kernel sources a connection to 127/8
/// from 127.0.0.1, so every inbound connection would come from one
/// address (at 100 nodes: ~500,000 colocation penalties in a round, gossip
/// ignored, nearly every delivery missing). So each node listens on a
/// port of its own too, and [`source_per_node`] rewrites the source of
/// what leaves that port to the node's address.
fn config(i: usize) -> NetworkConfig {
    let listen = format!("/ip4/{}/tcp/{}", node_ip(i), node_port(i));
    NetworkConfig::default()
        .with_mdns(false)
        .with_kad_mode(KadMode::Server)
        .with_listen_addresses([listen.parse().expect("a valid multiaddr")])
        .with_connection_timeout(Duration::from_secs(30))
}

/// The chain's nodes, after the mesh's.
const CHAIN: usize = 4;

/// Node `i`'s address: the namespace is the bench's own, so any of 127/8.
fn node_ip(i: usize) -> String {
    format!("127.0.{}.{}", i / 250, i % 250 + 1)
}

/// Node `i`'s TCP port: fixed, so that [`source_per_node`]'s rules exist
/// before the first dial (nothing else listens in the namespace).
fn node_port(i: usize) -> usize {
    20_000 + i
}

/// One SNAT rule per node in the namespace: a connection leaving node
/// `i`'s port (every dial of a listening libp2p-tcp node reuses it) comes
/// from `node_ip(i)`, as a connection from its own machine would.
fn source_per_node(ns: &Namespace, nodes: usize) -> anyhow::Result<()> {
    use std::io::Write as _;
    crate::tool_install::ensure_apt("iptables", &["iptables-legacy"])?;
    let mut rules = String::from("*nat\n");
    for i in 0..nodes {
        rules += &format!(
            "-A POSTROUTING -o lo -p tcp --sport {} -j SNAT --to-source {}\n",
            node_port(i),
            node_ip(i)
        );
    }
    rules += "COMMIT\n";
    let mut child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "iptables-legacy-restore",
            "--noflush",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("run iptables-legacy-restore")?;
    child
        .stdin
        .take()
        .context("iptables-legacy-restore's stdin")?
        .write_all(rules.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "iptables-legacy-restore: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// The nodes, their event readers and the channel of their deliveries.
struct Nodes {
    handles: Vec<NetworkHandle>,
    stop: watch::Sender<bool>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Nodes {
    /// Reads `net`'s events until told to stop, reporting each order it
    /// receives as node `index`; then shuts it down.
    fn adopt(&mut self, index: usize, mut net: Network, deliveries: mpsc::Sender<Delivery>) {
        self.handles.push(net.handle());
        let mut stop = self.stop.subscribe();
        self.readers.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    event = net.next_event() => match event {
                        Some(NetworkEvent::MessageReceived { topic, message, .. })
                            if topic == ORDERBOOK_TOPIC =>
                        {
                            if let Some(id) = order_id(&message) {
                                // Stamped before the send: a full channel
                                // delays the reader, not the figure.
                                let at = Instant::now();
                                let _ = deliveries.send((index, id, at)).await;
                            }
                        }
                        Some(_) => {}
                        None => break,
                    },
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), net.shutdown()).await;
        }));
    }

    async fn shutdown(self) {
        let _ = self.stop.send(true);
        for r in self.readers {
            let _ = r.await;
        }
    }
}

fn order_id(message: &Message) -> Option<OrderId> {
    match message {
        Message::OrderCreate(OrderCreate {
            order: Some(order), ..
        }) => Some(order.id()),
        _ => None,
    }
}

async fn spawn(config: NetworkConfig) -> anyhow::Result<(Network, darkswap_p2p::core::Multiaddr)> {
    let net = Network::new(config).await?;
    let addr = net
        .listen_addrs()
        .await?
        .into_iter()
        .next()
        .context("a node without a listen address")?;
    let id = net.local_peer_id();
    Ok((
        net,
        addr.with(darkswap_p2p::core::multiaddr::Protocol::P2p(id)),
    ))
}

/// Everything inside the namespace: the nodes, the mesh, the rounds.
async fn measure(args: GossipArgs) -> anyhow::Result<Figures> {
    // Every delivery of a round fits (nodes × orders), so readers never wait.
    let (tx, mut rx) = mpsc::channel(1 << 16);
    let mut nodes = Nodes {
        handles: vec![],
        stop: watch::channel(false).0,
        readers: vec![],
    };
    let result = async {
        let started = Instant::now();
        let mut boot = Vec::new();
        for i in 0..args.nodes {
            let peers: Vec<_> = if i < args.bootstrap {
                boot.clone()
            } else {
                boot.choose_multiple(&mut rand::thread_rng(), 2).cloned().collect()
            };
            let (net, addr) = spawn(config(i).with_bootstrap_peers(peers)).await?;
            if i < args.bootstrap {
                boot.push(addr);
            }
            nodes.adopt(i, net, tx.clone());
        }
        // The chain: Kademlia off, so that nobody learns of a node beyond
        // its neighbours.
        let mut chain_addrs = Vec::new();
        for i in 0..CHAIN {
            let (net, addr) = spawn(config(args.nodes + i).with_kad(false)).await?;
            nodes.adopt(args.nodes + i, net, tx.clone());
            chain_addrs.push(addr);
        }
        for i in 0..CHAIN - 1 {
            nodes.handles[args.nodes + i]
                .dial(chain_addrs[i + 1].clone())
                .await
                .context("chain dial")?;
        }
        eprintln!(
            "gossip: {} nodes started in {:.1} s; waiting for the mesh",
            args.nodes + CHAIN,
            started.elapsed().as_secs_f64()
        );
        let (mesh, subscribed, short) =
            wait_mesh(&nodes.handles[..args.nodes], &nodes.handles[args.nodes..]).await?;
        let min = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
        eprintln!(
            "gossip: mesh formed after {:.1} s: mesh peers per node median {} (min {}), connected peers median {} (min {})",
            started.elapsed().as_secs_f64(),
            median(&mesh),
            min(&mesh),
            median(&subscribed),
            min(&subscribed)
        );
        if short > 0 {
            eprintln!("gossip: {short} nodes have fewer than {MESH_LOW} mesh peers");
        }
        let total_orders = args.rounds * args.orders * 2 + 4;
        let creates = darkswap_testkit::signed_creates(total_orders, 1);
        let mut creates = creates.into_iter();
        let mut next = move || creates.next().context("out of orders");
        // Warm-up: a message each way primes connections and streams.
        for _ in 0..2 {
            publish_and_wait(&nodes.handles, 0..args.nodes, 0, next()?, &mut rx).await?;
            publish_and_wait(&nodes.handles, args.nodes..args.nodes + CHAIN, args.nodes, next()?, &mut rx)
                .await?;
        }
        let mut figures = Figures::default();
        for round in 0..args.rounds {
            let before = counters(&nodes.handles[..args.nodes])?;
            let (mut mesh_times, mut chain_times, mut missing) = (vec![], vec![], 0usize);
            for k in 0..args.orders {
                let from = rand::Rng::gen_range(&mut rand::thread_rng(), 0..args.nodes);
                // Alternate which goes first, so drift hits both alike.
                let mesh_first = (round + k) % 2 == 0;
                for leg in 0..2 {
                    if (leg == 0) == mesh_first {
                        let got = publish_and_wait(&nodes.handles, 0..args.nodes, from, next()?, &mut rx)
                            .await?;
                        missing += args.nodes - 1 - got.len();
                        mesh_times.extend(got);
                    } else {
                        let got = publish_and_wait(
                            &nodes.handles,
                            args.nodes..args.nodes + CHAIN,
                            args.nodes,
                            next()?,
                            &mut rx,
                        )
                        .await?;
                        // The time to D, the far end of the chain.
                                                anyhow::ensure!(got.len() == 3, "the chain lost a delivery");
                        chain_times.push(got.iter().copied().fold(0.0, f64::max));
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let after = counters(&nodes.handles[..args.nodes])?;
            if missing > 0 {
                print_refusals(&nodes.handles[..args.nodes])?;
            }
            let dup = duplicates(&before, &after);
            let p99 = quantile(&mesh_times, 0.99);
            let chain = median(&chain_times);
            eprintln!(
                "gossip round {}/{}: p50 {:.1} ms, p99 {:.1} ms, 3-hop {:.1} ms, duplicates {:.2}, missing {missing}",
                round + 1,
                args.rounds,
                quantile(&mesh_times, 0.5),
                p99,
                chain,
                dup.per_node_mean
            );
            figures.add_versus(
                "order delivery p99 (all nodes)",
                "ms",
                "3-hop path A–B–C–D",
                Some("<= 1.5"),
                p99,
                chain,
            );
            figures.add("order delivery p50 (all nodes)", "ms", quantile(&mesh_times, 0.5));
            figures.add(
                "order delivery max",
                "ms",
                mesh_times.iter().copied().fold(0.0, f64::max),
            );
            figures.add("3-hop path time (median)", "ms", chain);
            figures.add_with_goal(
                "duplicates per message (mean over nodes)",
                "copies",
                Some("<= 2"),
                dup.per_node_mean,
            );
            figures.add("duplicates per message (all nodes)", "copies", dup.overall);
            figures.add("deliveries missing", "count", missing as f64);
        }
        figures.add("mesh peers per node (median)", "peers", median(&mesh));
        figures.add("nodes with a short mesh at the start", "nodes", short as f64);
        figures.add(
            "connected peers per node (median)",
            "peers",
            median(&subscribed),
        );
        Ok(figures)
    }
    .await;
    nodes.shutdown().await;
    result
}

/// Publishes `create` from node `from` and collects its delivery time at
/// every other node of `group` until all have it or [`DELIVERY_TIMEOUT`];
/// the times, ms, in the order they came.
async fn publish_and_wait(
    handles: &[NetworkHandle],
    group: std::ops::Range<usize>,
    from: usize,
    create: OrderCreate,
    rx: &mut mpsc::Receiver<Delivery>,
) -> anyhow::Result<Vec<f64>> {
    let id = create
        .order
        .as_ref()
        .map(|o| o.id())
        .context("a create without its order")?;
    let expected = group.len() - 1;
    // Late deliveries of an earlier order are no longer waited for.
    while rx.try_recv().is_ok() {}
    let t0 = Instant::now();
    handles[from]
        .publish(ORDERBOOK_TOPIC, &Message::OrderCreate(create))
        .await
        .context("publish")?;
    let deadline = tokio::time::Instant::from_std(t0 + DELIVERY_TIMEOUT);
    let mut seen = vec![false; handles.len()];
    let mut times = Vec::with_capacity(expected);
    while times.len() < expected {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((node, got, at))) => {
                if got == id && group.contains(&node) && node != from && !seen[node] {
                    seen[node] = true;
                    times.push(at.duration_since(t0).as_secs_f64() * 1e3);
                }
            }
            Ok(None) => bail!("the nodes' event readers stopped"),
            Err(_) => break,
        }
    }
    Ok(times)
}

/// Waits until every mesh node has grafted as many peers into its
/// orderbook mesh as gossipsub aims for ([`MESH_LOW`], or every peer it is
/// connected to if it has fewer) and each chain node its
/// neighbours; the mesh nodes' mesh sizes and subscribed peers.
async fn wait_mesh(
    mesh: &[NetworkHandle],
    chain: &[NetworkHandle],
) -> anyhow::Result<(Vec<f64>, Vec<f64>, usize)> {
    let start = Instant::now();
    let deadline = start + MESH_TIMEOUT;
    loop {
        let (mut sizes, mut peers, mut short) = (vec![], vec![], 0);
        for h in mesh {
            let size = topic_sample(h, "libp2p_gossipsub_mesh_peer_counts")?;
            // Every node subscribes to the topic: its connected peers are
            // the peers it could graft.
            let subscribed = h.connected_peers().await?.len() as f64;
            if subscribed < 1.0 || size < subscribed.min(MESH_LOW) {
                short += 1;
            }
            sizes.push(size);
            peers.push(subscribed);
        }
        let mut chain_ok = true;
        for (i, h) in chain.iter().enumerate() {
            let want = if i == 0 || i == chain.len() - 1 {
                1.0
            } else {
                2.0
            };
            chain_ok &= topic_sample(h, "libp2p_gossipsub_mesh_peer_counts")? >= want;
        }
        // A few nodes may keep a short mesh for long (peers pruned on
        // their score, `BadScore` churn): after [`MESH_SETTLE`] the mesh is
        // measured as it is, and the short ones are reported.
        let settled = start.elapsed() > MESH_SETTLE;
        if (short == 0 || settled) && chain_ok {
            return Ok((sizes, peers, short));
        }
        if Instant::now() > deadline {
            let names: Vec<String> = mesh[0]
                .metrics_registry()
                .get_metrics()?
                .into_iter()
                .filter(|s| s.name.contains("gossipsub_mesh"))
                .map(|s| format!("{}{{{}}}", s.name, s.labels))
                .collect();
            eprintln!("node 0's gossipsub series: {names:?}");
            bail!(
                "after {MESH_TIMEOUT:?}, {short} of {} nodes have a short mesh (chain complete: {chain_ok}; mesh sizes {sizes:?}, connected peers {peers:?})",
                mesh.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The sum of `name`'s samples on the orderbook topic at node `h`.
fn topic_sample(h: &NetworkHandle, name: &str) -> anyhow::Result<f64> {
    let label = format!("\"{ORDERBOOK_TOPIC}\"");
    Ok(h.metrics_registry()
        .get_metrics()?
        .into_iter()
        .filter(|s| s.name == name && s.labels.contains(&label))
        .map(|s| s.value)
        .sum())
}

/// When deliveries go missing: gossipsub's own counts of what the nodes
/// refused, ignored or could not send, summed over the nodes, to tell a
/// validation or scoring problem from a slow mesh.
fn print_refusals(handles: &[NetworkHandle]) -> anyhow::Result<()> {
    let mut sums = std::collections::BTreeMap::<String, f64>::new();
    for h in handles {
        for s in h.metrics_registry().get_metrics()? {
            let telling = [
                "invalid", "reject", "ignore", "fail", "drop", "graylist", "penal",
            ]
            .iter()
            .any(|w| s.name.contains(w));
            if s.name.starts_with("libp2p_gossipsub") && telling {
                *sums
                    .entry(format!("{}{{{}}}", s.name, s.labels))
                    .or_default() += s.value;
            }
        }
    }
    for (series, sum) in sums.iter().filter(|(_, v)| **v > 0.0) {
        eprintln!("gossip: all nodes' {series} = {sum}");
    }
    Ok(())
}

/// Gossip messages a node received on the orderbook topic: all of them
/// (`unfiltered`, duplicates included) and the unique ones.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Received {
    unfiltered: f64,
    unique: f64,
}

fn counters(handles: &[NetworkHandle]) -> anyhow::Result<Vec<Received>> {
    handles
        .iter()
        .map(|h| {
            Ok(Received {
                unfiltered: topic_sample(
                    h,
                    "libp2p_gossipsub_topic_msg_recv_counts_unfiltered_total",
                )?,
                unique: topic_sample(h, "libp2p_gossipsub_topic_msg_recv_counts_total")?,
            })
        })
        .collect()
}

/// Duplicates per message between two readings of every node's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Duplicates {
    /// Mean over nodes of received ÷ unique − 1.
    per_node_mean: f64,
    /// All nodes' received ÷ all nodes' unique − 1.
    overall: f64,
}

fn duplicates(before: &[Received], after: &[Received]) -> Duplicates {
    let (mut ratios, mut all, mut unique) = (vec![], 0.0, 0.0);
    for (b, a) in before.iter().zip(after) {
        let (got, new) = (a.unfiltered - b.unfiltered, a.unique - b.unique);
        if new > 0.0 {
            ratios.push(got / new - 1.0);
            all += got;
            unique += new;
        }
    }
    Duplicates {
        per_node_mean: if ratios.is_empty() {
            f64::NAN
        } else {
            ratios.iter().sum::<f64>() / ratios.len() as f64
        },
        overall: if unique > 0.0 {
            all / unique - 1.0
        } else {
            f64::NAN
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_received_over_unique_minus_one_per_node_then_averaged() {
        let r = |unfiltered, unique| Received { unfiltered, unique };
        let before = [r(10.0, 5.0), r(0.0, 0.0), r(3.0, 3.0)];
        // Node 0: 30 received, 10 new: 2 duplicates each. Node 1: 8 and 8:
        // none. Node 2 got nothing new: left out.
        let after = [r(40.0, 15.0), r(8.0, 8.0), r(3.0, 3.0)];
        let d = duplicates(&before, &after);
        assert_eq!(d.per_node_mean, 1.0);
        assert_eq!(d.overall, 38.0 / 18.0 - 1.0);
    }
}
