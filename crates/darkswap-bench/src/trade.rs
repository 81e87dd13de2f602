//! `trade` (issue 18, P9): the time from a taker's proposal to a finalized
//! swap PSBT between two real SDK nodes, at 0 ms and at `--rtt-ms` round
//! trip, in milliseconds and in round trips, and the time the two wallets
//! spend signing, measured apart (the goal is "4 RTT plus signing").
//!
//! Both nodes run in this process on a runtime inside a network namespace
//! of the bench's own; for the delayed case its loopback delays every
//! packet by half the RTT with netem (a packet crosses `lo` once per
//! direction). Each trade has fresh nodes and fresh regtest wallets funded
//! with made-up UTXOs that an in-memory asset index knows (the fixtures of
//! the p2p crate's trade tests): the maker sells 1,000 of a rune, the
//! taker takes 500. Real PSBTs, real signatures and Bitcoin Core's script
//! check on both sides; the broadcaster records the transaction. The
//! wallets are wrapped to time `sign_inputs`, and a trade store records
//! every message each side sends, which is how the messages are counted.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use darkswap_p2p::{
    KadMode, Network, NetworkConfig, NetworkEvent, OrderbookChange, TradeStore, Trading,
    core::trade::{Role, TradeState},
    darkswap_trade::{
        InMemoryIndex, KeyWallet, Offer, OfferRequest, Wallet, WalletError,
        bitcoin::{OutPoint, Psbt},
        negotiation::TradeRecord,
    },
};
use darkswap_testkit::trade::{RecordingBroadcaster, funded_wallet, rune_sale};

use crate::{
    netns::Namespace,
    report::{Conditions, Figures, Report},
};

/// Bound on connecting two nodes and showing the taker the order.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one trade, proposal to completion.
const TRADE_TIMEOUT: Duration = Duration::from_secs(60);
/// Steps of `docs/trade.md`: the taker holds the finalized PSBT once it
/// has step 4 (the maker's signatures), the maker once it has step 5.
const TAKER_FINALIZES_AT: u32 = 4;
const MAKER_FINALIZES_AT: u32 = 5;

/// What to measure.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub(crate) struct TradeArgs {
    /// The round trip of the delayed case, ms (netem on the namespace's
    /// lo delays each packet by half of it).
    #[arg(long, default_value_t = 63)]
    rtt_ms: u64,
    /// Rounds; each runs one trade at 0 ms and one at `--rtt-ms`,
    /// alternating which goes first.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Worker threads of the nodes' runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// Runs the measure.
pub(crate) async fn run(args: TradeArgs, quick: bool) -> anyhow::Result<Report> {
    let args = if quick {
        TradeArgs { rounds: 1, ..args }
    } else {
        args
    };
    anyhow::ensure!(args.rtt_ms > 0, "--rtt-ms must be above 0");
    anyhow::ensure!(args.rounds <= 60, "at most 60 rounds (wallet seeds)");
    let conditions = Conditions::now();
    let ns = Namespace::create("trade")?;
    let rtt = Duration::from_millis(args.rtt_ms);
    let mut figures = Figures::default();
    for round in 0..args.rounds {
        let mut zero = None;
        let mut delayed = None;
        for leg in 0..2 {
            let delay_first = round % 2 == 1;
            let with_delay = (leg == 0) == delay_first;
            ns.set_delay(if with_delay { rtt / 2 } else { Duration::ZERO })?;
            // Seeds of the four keys of two wallets, fresh each trade.
            let seed = 1 + 4 * (2 * round + leg) as u8;
            let t = ns.run(args.threads, move || one_trade(seed)).await?;
            eprintln!(
                "trade round {}/{} at {} ms RTT (ping {:.1} ms): both finalized {:.1} ms, signing {:.2} ms, completed {:.1} ms",
                round + 1,
                args.rounds,
                if with_delay { args.rtt_ms } else { 0 },
                ms(t.ping),
                ms(t.both_finalized),
                ms(t.signing),
                ms(t.completed)
            );
            if with_delay {
                delayed = Some(t);
            } else {
                zero = Some(t);
            }
        }
        let (zero, delayed) = (
            zero.context("no trade at 0 ms")?,
            delayed.context("no delayed trade")?,
        );
        let r = ms(rtt);
        let at = args.rtt_ms;
        figures.add_with_goal(
            &format!("(proposal → both hold the finalized PSBT − signing) ÷ RTT at {at} ms"),
            "RTT",
            Some("<= 4"),
            ms(delayed.both_finalized.saturating_sub(delayed.signing)) / r,
        );
        figures.add(
            &format!("proposal → both hold the finalized PSBT at {at} ms"),
            "ms",
            ms(delayed.both_finalized),
        );
        figures.add(
            &format!("the same in round trips at {at} ms"),
            "RTT",
            ms(delayed.both_finalized) / r,
        );
        figures.add(
            "proposal → both hold the finalized PSBT at 0 ms",
            "ms",
            ms(zero.both_finalized),
        );
        figures.add(
            &format!("network round trips: (time at {at} ms − time at 0 ms) ÷ RTT"),
            "RTT",
            (ms(delayed.both_finalized) - ms(zero.both_finalized)) / r,
        );
        figures.add(
            &format!("proposal → the taker's finalized PSBT at {at} ms"),
            "RTT",
            ms(delayed.taker_finalized) / r,
        );
        figures.add(
            &format!("signing (both wallets) at {at} ms"),
            "ms",
            ms(delayed.signing),
        );
        figures.add("signing (both wallets) at 0 ms", "ms", ms(zero.signing));
        figures.add(
            &format!("proposal → completed (broadcast, receipt) at {at} ms"),
            "RTT",
            ms(delayed.completed) / r,
        );
        figures.add(
            &format!("libp2p ping RTT in the namespace at {at} ms"),
            "ms",
            ms(delayed.ping),
        );
        figures.add(
            "messages until the taker's finalized PSBT",
            "messages",
            delayed.messages.to_taker_finalized as f64,
        );
        figures.add(
            "messages until both hold the finalized PSBT",
            "messages",
            delayed.messages.to_both_finalized as f64,
        );
        figures.add(
            "messages of the whole trade",
            "messages",
            delayed.messages.total as f64,
        );
    }
    drop(ns);
    Report::new("trade", conditions, &args, figures)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What one trade took.
#[derive(Debug, Clone, Copy)]
struct TradeTimes {
    taker_finalized: Duration,
    both_finalized: Duration,
    completed: Duration,
    /// Time inside both wallets' `sign_inputs`.
    signing: Duration,
    /// libp2p ping's RTT between the two nodes.
    ping: Duration,
    messages: Messages,
}

/// Trade messages (requests of `/darkswap/trade/1.0.0`, each answered by
/// an empty receipt) the two sides sent.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Messages {
    to_taker_finalized: usize,
    to_both_finalized: usize,
    total: usize,
}

/// Counts the distinct steps the two sides sent, from every record their
/// stores got (a record holds each message its side sent, by step).
fn count_messages(records: &[TradeRecord]) -> Messages {
    let steps: std::collections::BTreeSet<u32> = records
        .iter()
        .flat_map(|r| r.sent.keys().copied())
        .collect();
    Messages {
        to_taker_finalized: steps.range(..=TAKER_FINALIZES_AT).count(),
        to_both_finalized: steps.range(..=MAKER_FINALIZES_AT).count(),
        total: steps.len(),
    }
}

/// A wallet that adds the time each `sign_inputs` takes to `spent`.
struct TimedWallet {
    inner: KeyWallet,
    spent: Arc<Mutex<Duration>>,
}

impl Wallet for TimedWallet {
    fn offer(&mut self, request: &OfferRequest) -> Result<Offer, WalletError> {
        self.inner.offer(request)
    }

    fn sign_inputs(&self, psbt: &mut Psbt, inputs: &[usize]) -> Result<(), WalletError> {
        let start = Instant::now();
        let result = self.inner.sign_inputs(psbt, inputs);
        let took = start.elapsed();
        *self.spent.lock().unwrap_or_else(|p| p.into_inner()) += took;
        result
    }

    fn release(&mut self, outpoints: &[OutPoint]) {
        self.inner.release(outpoints);
    }

    fn spent(&mut self, outpoints: &[OutPoint]) {
        self.inner.spent(outpoints);
    }

    fn commit(&mut self, outpoints: &[OutPoint]) {
        self.inner.commit(outpoints);
    }
}

/// A trade store that keeps every record in memory.
#[derive(Default)]
struct RecordingStore {
    records: Mutex<Vec<TradeRecord>>,
}

impl TradeStore for RecordingStore {
    fn save(&self, record: &TradeRecord) -> Result<(), String> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record.clone());
        Ok(())
    }
}

fn node_config(
    wallet: KeyWallet,
    index: &InMemoryIndex,
    broadcaster: &RecordingBroadcaster,
    signing: &Arc<Mutex<Duration>>,
    store: &Arc<RecordingStore>,
) -> NetworkConfig {
    let wallet = TimedWallet {
        inner: wallet,
        spent: signing.clone(),
    };
    let trading = Trading::new(
        Arc::new(Mutex::new(wallet)),
        Arc::new(index.clone()),
        Arc::new(broadcaster.clone()),
    )
    .with_store(store.clone(), vec![]);
    NetworkConfig::default()
        .with_mdns(false)
        .with_kad_mode(KadMode::Server)
        .with_listen_addresses(["/ip4/127.0.0.1/tcp/0".parse().expect("a valid multiaddr")])
        .with_trading(trading)
}

/// One trade between fresh nodes, inside the namespace.
async fn one_trade(seed: u8) -> anyhow::Result<TradeTimes> {
    let mut index = InMemoryIndex::new();
    let broadcaster = RecordingBroadcaster::default();
    let maker_wallet = funded_wallet(seed, 1_000, 20_000, &mut index);
    let taker_wallet = funded_wallet(seed + 2, 0, 200_000, &mut index);
    let signing = Arc::new(Mutex::new(Duration::ZERO));
    let store = Arc::new(RecordingStore::default());
    let mut maker = Network::new(node_config(
        maker_wallet,
        &index,
        &broadcaster,
        &signing,
        &store,
    ))
    .await?;
    let mut taker = Network::new(node_config(
        taker_wallet,
        &index,
        &broadcaster,
        &signing,
        &store,
    ))
    .await?;
    let result = async {
        let maker_id = maker.local_peer_id();
        let addr = maker
            .listen_addrs()
            .await?
            .into_iter()
            .next()
            .context("the maker has no listen address")?;
        let order = tokio::time::timeout(SETUP_TIMEOUT, async {
            taker
                .dial(addr.with(darkswap_p2p::core::multiaddr::Protocol::P2p(maker_id)))
                .await?;
            darkswap_testkit::wait_subscribed(&mut taker, maker_id).await;
            let (order, _) = maker.orderbook().create(rune_sale()).await?;
            loop {
                match taker.next_event().await {
                    Some(NetworkEvent::OrderbookChanged(OrderbookChange::Added(o)))
                        if o.id == order.id =>
                    {
                        break;
                    }
                    Some(_) => {}
                    None => bail!("the taker stopped"),
                }
            }
            anyhow::Ok(order)
        })
        .await
        .context("setting up the trade timed out")??;
        // libp2p ping's RTT of the connection: the network the trade runs on.
        let ping = tokio::time::timeout(SETUP_TIMEOUT, async {
            loop {
                let peers = taker.peers().await?;
                if let Some(rtt) = peers
                    .iter()
                    .find(|p| p.peer_id == maker_id)
                    .and_then(|p| p.rtt)
                {
                    return anyhow::Ok(rtt);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .context("no ping RTT to the maker")??;
        // From here on, both nodes' trade steps, with the time they came.
        *signing.lock().unwrap_or_else(|p| p.into_inner()) = Duration::ZERO;
        let start = Instant::now();
        let trade = taker.trades().take(order.id, 500).await?;
        let (mut taker_fin, mut maker_fin, mut taker_done, mut maker_done) =
            (None, None, None, None);
        let wait = async {
            loop {
                let step = tokio::select! {
                    e = taker.next_event() => trade_step(e)?,
                    e = maker.next_event() => trade_step(e)?,
                };
                let Some((role, id, state)) = step else {
                    continue;
                };
                if id != trade {
                    continue;
                }
                let since = start.elapsed();
                match (role, &state) {
                    (Role::Taker, TradeState::Finalized) => taker_fin = Some(since),
                    (Role::Maker, TradeState::Finalized) => maker_fin = Some(since),
                    (Role::Taker, TradeState::Completed) => taker_done = Some(since),
                    (Role::Maker, TradeState::Completed) => maker_done = Some(since),
                    (_, s) if s.is_final() => bail!("the trade ended as {s:?} at the {role:?}"),
                    _ => {}
                }
                if taker_done.is_some() && maker_done.is_some() {
                    return anyhow::Ok(());
                }
            }
        };
        tokio::time::timeout(TRADE_TIMEOUT, wait)
            .await
            .context("the trade timed out")??;
        let taker_finalized = taker_fin.context("the taker never reported Finalized")?;
        let maker_finalized = maker_fin.context("the maker never reported Finalized")?;
        let records = store
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        anyhow::ensure!(
            broadcaster
                .got
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len()
                == 1,
            "the trade was not broadcast once"
        );
        Ok(TradeTimes {
            taker_finalized,
            both_finalized: taker_finalized.max(maker_finalized),
            completed: taker_done
                .unwrap_or_default()
                .max(maker_done.unwrap_or_default()),
            signing: *signing.lock().unwrap_or_else(|p| p.into_inner()),
            ping,
            messages: count_messages(&records),
        })
    }
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(5), taker.shutdown()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), maker.shutdown()).await;
    result
}

/// The trade step `event` reports, if it is one.
fn trade_step(
    event: Option<NetworkEvent>,
) -> anyhow::Result<Option<(Role, darkswap_p2p::core::trade::TradeId, TradeState)>> {
    match event {
        Some(NetworkEvent::TradeUpdated {
            trade_id,
            role,
            state,
            ..
        }) => Ok(Some((role, trade_id, state))),
        Some(_) => Ok(None),
        None => bail!("a node stopped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_the_distinct_steps_sent_counted_up_to_each_finalization() {
        use darkswap_p2p::{
            core::trade::TradeId,
            proto::{OrderId, SignedTradeMessage},
        };
        let record = |role, steps: &[u32]| TradeRecord {
            id: TradeId::new([1; 32]),
            order_id: OrderId::from_bytes(&[2; 32]).expect("32 bytes"),
            role,
            peer: darkswap_p2p::PeerId::random(),
            state: TradeState::Completed,
            signed: true,
            deadline_unix: 0,
            amount: 1,
            own_outpoints: vec![],
            received: Default::default(),
            sent: steps
                .iter()
                .map(|&s| (s, SignedTradeMessage::default()))
                .collect(),
            final_tx: None,
        };
        // Records are cumulative: an earlier one repeats steps.
        let records = [
            record(Role::Taker, &[1]),
            record(Role::Maker, &[2]),
            record(Role::Taker, &[1, 3]),
            record(Role::Maker, &[2, 4]),
            record(Role::Taker, &[1, 3, 5]),
            record(Role::Taker, &[1, 3, 5, 6]),
            record(Role::Maker, &[2, 4, 7]),
        ];
        assert_eq!(
            count_messages(&records),
            Messages {
                to_taker_finalized: 4,
                to_both_finalized: 5,
                total: 7
            }
        );
    }
}
