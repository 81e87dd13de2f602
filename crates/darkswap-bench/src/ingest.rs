//! `ingest`: how fast a node takes in orders, against how fast the same
//! Ed25519 library verifies signatures. In process and single-threaded, on
//! the sans-IO core the node runs: no network, so the figures are the
//! node's own cost per order.
//!
//! Per round, with `--orders` signed order creates by `--makers` makers:
//! - raw: one signature per order over a message of the same length, by a
//!   key of its own decoded beforehand, verified one by one with
//!   `ed25519-zebra` (the library order signatures are verified with: the
//!   reference of the ratios) and with `libp2p-identity` (for comparison);
//! - gossip path: each create as gossip carries it (the encoded envelope)
//!   through the node's validator into a fresh book: decode, every check,
//!   one verification, apply;
//! - sync path: the creates merged into a fresh book in batches of the
//!   node's fetch size, as a reconciliation's fetches bring them (signatures verified as a batch,
//!   single-threaded here; the node spreads the batches over its cores).

use std::time::{Duration, Instant};

use darkswap_core::{
    PeerId,
    gossip::{Acceptance, GossipMessage, GossipValidator},
    orderbook::{Orderbook, OrderbookConfig},
    protocols::ORDERBOOK_TOPIC,
    sync::SyncConfig,
};
use darkswap_proto::{MAX_MESSAGE_SIZE, Message, OrderCreate, OrderbookResponse};
use libp2p_identity::{Keypair, PublicKey};

use crate::report::{Conditions, Figures, Report};

/// What to measure.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub(crate) struct IngestArgs {
    /// Orders per round.
    #[arg(long, default_value_t = 20_000)]
    orders: usize,
    /// Makers signing them (each holds at most 1,000 by default policy; the
    /// measure lifts the limits).
    #[arg(long, default_value_t = 20)]
    makers: usize,
    /// Rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// Runs the measure.
pub(crate) fn run(args: IngestArgs, quick: bool) -> anyhow::Result<Report> {
    let args = if quick {
        IngestArgs {
            orders: args.orders.min(1_000),
            rounds: 1,
            ..args
        }
    } else {
        args
    };
    let conditions = Conditions::now();
    let mut figures = Figures::default();
    for round in 0..args.rounds {
        eprintln!(
            "ingest: round {}/{}, {} orders",
            round + 1,
            args.rounds,
            args.orders
        );
        one_round(&args, &mut figures)?;
    }
    Report::new("ingest", conditions, &args, figures)
}

fn one_round(args: &IngestArgs, figures: &mut Figures) -> anyhow::Result<()> {
    let per_maker = args.orders.div_ceil(args.makers.max(1)).max(1);
    let creates = darkswap_testkit::signed_creates(args.orders, per_maker);
    let n = creates.len() as f64;
    let (raw, raw_libp2p) = raw_verify(&creates)?;
    let gossip = gossip_path(&creates)?;
    let sync = sync_path(&creates)?;
    let rate = |d: Duration| n / d.as_secs_f64();
    figures.add(
        "raw Ed25519 verifications (ed25519-zebra)",
        "1/s",
        rate(raw),
    );
    figures.add(
        "raw Ed25519 verifications (libp2p-identity)",
        "1/s",
        rate(raw_libp2p),
    );
    figures.add_versus(
        "gossip path: orders applied",
        "1/s",
        "raw Ed25519 verify (ed25519-zebra)",
        Some(">= 0.5"),
        rate(gossip),
        rate(raw),
    );
    figures.add_versus(
        "sync path: orders applied",
        "1/s",
        "raw Ed25519 verify (ed25519-zebra)",
        Some(">= 0.5"),
        rate(sync),
        rate(raw),
    );
    Ok(())
}

/// One signature verification per order, over a message as long as the
/// order's signed body, with the key already decoded: with `ed25519-zebra`,
/// then with `libp2p-identity`.
fn raw_verify(creates: &[OrderCreate]) -> anyhow::Result<(Duration, Duration)> {
    let keys: Vec<(PublicKey, Vec<u8>, Vec<u8>)> = creates
        .iter()
        .map(|c| {
            let signed = c.order.as_ref().expect("signed above");
            let key = Keypair::generate_ed25519();
            let message = vec![7u8; signed.body.len()];
            let signature = key.sign(&message)?;
            Ok((key.public(), message, signature))
        })
        .collect::<anyhow::Result<_>>()?;
    let zebra: Vec<(ed25519_zebra::VerificationKey, ed25519_zebra::Signature)> = keys
        .iter()
        .map(|(key, _, signature)| {
            let raw = key.clone().try_into_ed25519()?.to_bytes();
            Ok((
                ed25519_zebra::VerificationKey::try_from(raw)?,
                ed25519_zebra::Signature::from_slice(signature)?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let start = Instant::now();
    for ((key, signature), (_, message, _)) in zebra.iter().zip(&keys) {
        key.verify(signature, message)?;
    }
    let zebra_took = start.elapsed();
    let start = Instant::now();
    for (key, message, signature) in &keys {
        anyhow::ensure!(key.verify(message, signature), "a signature did not verify");
    }
    Ok((zebra_took, start.elapsed()))
}

/// A book that takes every order of the measure.
fn book() -> Orderbook {
    Orderbook::new(OrderbookConfig {
        max_orders: usize::MAX,
        max_orders_per_maker: usize::MAX,
        ..OrderbookConfig::default()
    })
}

fn gossip_path(creates: &[OrderCreate]) -> anyhow::Result<Duration> {
    let payloads: Vec<Vec<u8>> = creates
        .iter()
        .map(|c| darkswap_proto::encode(&Message::OrderCreate(c.clone())))
        .collect();
    let validator = GossipValidator::new(MAX_MESSAGE_SIZE);
    let mut book = book();
    let forwarder = PeerId::random();
    let now = unix_now();
    let start = Instant::now();
    for data in &payloads {
        let verdict = validator.handle_message(
            &mut book,
            GossipMessage {
                topic: ORDERBOOK_TOPIC,
                data,
                author: Some(forwarder),
                forwarder,
            },
            now,
        );
        anyhow::ensure!(
            verdict.acceptance == Acceptance::Accept,
            "an order was refused: {:?}",
            verdict.events
        );
    }
    let took = start.elapsed();
    anyhow::ensure!(book.len() == creates.len(), "orders missing from the book");
    Ok(took)
}

fn sync_path(creates: &[OrderCreate]) -> anyhow::Result<Duration> {
    let batches: Vec<OrderbookResponse> = creates
        .chunks(SyncConfig::default().fetch_batch)
        .map(|chunk| OrderbookResponse {
            orders: chunk.to_vec(),
            ..Default::default()
        })
        .collect();
    let mut book = book();
    let now = unix_now();
    let start = Instant::now();
    for batch in &batches {
        let (_, rejected) = book.merge(batch, now);
        anyhow::ensure!(rejected.is_empty(), "refused: {rejected:?}");
    }
    let took = start.elapsed();
    anyhow::ensure!(book.len() == creates.len(), "orders missing from the book");
    Ok(took)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
