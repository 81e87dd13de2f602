//! The daemon's Prometheus metrics (`darkswap_*`), served at `GET /metrics`
//! on the API address.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use darkswap_p2p::{NetworkEvent, ORDERBOOK_TOPIC, OrderbookChange, core::trade::TradeId};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TradeOutcomeLabels {
    /// An ended trade's state: `completed`, `rejected`, `cancelled`,
    /// `timed_out` or `failed`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TradeStepLabels {
    /// The state the step reached (`accepted`, `psbt_created`, ...).
    step: &'static str,
}

/// Step durations from 10 ms to about 5.5 min (the default whole-trade
/// deadline is 5 min).
fn step_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrderRejectLabels {
    /// `gossip`, `sync` or `store`.
    source: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GossipRejectLabels {
    topic: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    /// `slow_peer`, `publish_failed` or `event_queue_full`.
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PenaltyLabels {
    reason: &'static str,
}

/// Counters fed from the node's events, gauges set at scrape time.
#[derive(Debug)]
pub struct DaemonMetrics {
    registry: Registry,
    orders_rejected: Family<OrderRejectLabels, Counter>,
    gossip_rejected: Family<GossipRejectLabels, Counter>,
    orderbook_changes: Family<ChangeLabels, Counter>,
    penalties: Family<PenaltyLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
    synced: Counter,
    sync_bytes: Counter,
    bans: Counter,
    /// Peers banned now, set when scraped.
    pub banned: Gauge,
    /// Connected peers, set when scraped.
    pub peers: Gauge,
    /// Own open orders, set when scraped.
    pub own_orders: Gauge,
    rejected: AtomicU64,
    trades: Family<TradeOutcomeLabels, Counter>,
    trade_steps: Family<TradeStepLabels, Histogram, fn() -> Histogram>,
    /// When each running trade reached its last state.
    trade_last_step: Mutex<HashMap<TradeId, Instant>>,
}

impl Default for DaemonMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = DaemonMetrics {
            registry: Registry::default(),
            orders_rejected: Family::default(),
            gossip_rejected: Family::default(),
            orderbook_changes: Family::default(),
            penalties: Family::default(),
            dropped: Family::default(),
            synced: Counter::default(),
            sync_bytes: Counter::default(),
            bans: Counter::default(),
            banned: Gauge::default(),
            peers: Gauge::default(),
            own_orders: Gauge::default(),
            rejected: AtomicU64::new(0),
            trades: Family::default(),
            trade_steps: Family::new_with_constructor(step_histogram),
            trade_last_step: Mutex::new(HashMap::new()),
        };
        let r = registry.sub_registry_with_prefix("darkswap");
        r.register(
            "orders_rejected",
            "Order creates, cancels and updates refused, by where they came from and why",
            m.orders_rejected.clone(),
        );
        r.register(
            "gossip_rejected",
            "Gossip messages that failed validation, by topic and reason",
            m.gossip_rejected.clone(),
        );
        r.register(
            "orderbook_changes",
            "Changes to the local orderbook replica, by kind",
            m.orderbook_changes.clone(),
        );
        r.register(
            "messages_dropped",
            "Gossip this node could not send (repaired later by anti-entropy) and node events the daemon could not take in time, by reason",
            m.dropped.clone(),
        );
        r.register(
            "orderbook_sync_changes",
            "Changes to the book that orderbook sync brought (what gossip had not)",
            m.synced.clone(),
        );
        r.register(
            "orderbook_sync_bytes",
            "Bytes orderbook sync exchanged, both directions",
            m.sync_bytes.clone(),
        );
        r.register("peers_connected", "Connected peers", m.peers.clone());
        r.register(
            "reputation_penalties",
            "Misbehaviour reports that cost a peer reputation, by reason",
            m.penalties.clone(),
        );
        r.register(
            "bans",
            "Peers banned, automatically or by hand",
            m.bans.clone(),
        );
        r.register("peers_banned", "Peers banned now", m.banned.clone());
        r.register(
            "own_orders",
            "This node's open orders",
            m.own_orders.clone(),
        );
        r.register(
            "trades",
            "Trades of this node that ended, by outcome",
            m.trades.clone(),
        );
        r.register(
            "trade_step_duration_seconds",
            "Time each trade step took, from the state before to the state it reached",
            m.trade_steps.clone(),
        );
        DaemonMetrics { registry, ..m }
    }
}

impl DaemonMetrics {
    /// Counts what an event says about rejected messages and book changes.
    pub fn observe(&self, event: &NetworkEvent) {
        match event {
            NetworkEvent::InvalidMessage { topic, error, .. } => {
                self.gossip_rejected
                    .get_or_create(&GossipRejectLabels {
                        topic: topic.clone(),
                        reason: error.reason(),
                    })
                    .inc();
                if topic == ORDERBOOK_TOPIC {
                    self.order_rejected("gossip", error.reason());
                } else {
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                }
            }
            NetworkEvent::OrderbookRejected { error, .. } => {
                self.order_rejected("gossip", error.reason())
            }
            NetworkEvent::OrderbookSynced {
                rejected,
                changes,
                bytes,
                ..
            } => {
                self.synced.inc_by(*changes as u64);
                self.sync_bytes.inc_by(*bytes);
                for error in rejected {
                    self.order_rejected("sync", error.reason());
                }
            }
            NetworkEvent::PeerPenalized { reason, .. } => {
                self.penalties
                    .get_or_create(&PenaltyLabels {
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            NetworkEvent::GossipDropped {
                messages, reason, ..
            } => {
                self.dropped
                    .get_or_create(&DropLabels {
                        reason: reason.as_str(),
                    })
                    .inc_by(*messages);
            }
            NetworkEvent::EventsDropped { count } => {
                self.dropped
                    .get_or_create(&DropLabels {
                        reason: "event_queue_full",
                    })
                    .inc_by(*count);
            }
            NetworkEvent::PeerBanned { .. } => {
                self.bans.inc();
            }
            NetworkEvent::TradeUpdated {
                trade_id, state, ..
            } => self.observe_trade(*trade_id, state, Instant::now()),
            NetworkEvent::OrderbookChanged(change) => {
                let kind = match change {
                    OrderbookChange::Added(_) => "added",
                    OrderbookChange::Updated(_) => "updated",
                    OrderbookChange::Cancelled { .. } => "cancelled",
                    OrderbookChange::Expired(_) => "expired",
                    _ => "other",
                };
                let n = match change {
                    OrderbookChange::Expired(ids) => ids.len() as u64,
                    _ => 1,
                };
                self.orderbook_changes
                    .get_or_create(&ChangeLabels { kind })
                    .inc_by(n);
            }
            _ => {}
        }
    }

    /// A trade reached `state` at `now`: the step's duration since its
    /// last state, and its outcome once it ended.
    fn observe_trade(
        &self,
        trade: TradeId,
        state: &darkswap_p2p::core::trade::TradeState,
        now: Instant,
    ) {
        let mut last = self
            .trade_last_step
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(before) = last.insert(trade, now) {
            self.trade_steps
                .get_or_create(&TradeStepLabels { step: state.code() })
                .observe(now.saturating_duration_since(before).as_secs_f64());
        }
        if state.is_final() {
            last.remove(&trade);
            self.trades
                .get_or_create(&TradeOutcomeLabels {
                    outcome: state.code(),
                })
                .inc();
        }
    }

    /// Counts one refused order message.
    pub fn order_rejected(&self, source: &'static str, reason: &'static str) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.orders_rejected
            .get_or_create(&OrderRejectLabels { source, reason })
            .inc();
    }

    /// Messages refused so far, whatever the reason or topic.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut body = String::new();
        prometheus_client::encoding::text::encode(&mut body, &self.registry)?;
        Ok(body)
    }
}
