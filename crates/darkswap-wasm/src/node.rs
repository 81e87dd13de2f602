//! [`DarkSwapWasm`]: the node a page runs, and what JavaScript calls on it.

use std::{
    cell::RefCell,
    rc::{Rc, Weak},
};

use darkswap_p2p::{
    Keypair, Multiaddr, Network, NetworkHandle, PeerId,
    core::own_orders::OrderChanges,
    json,
    proto::{Asset, NewOrder, OrderId, Side},
};
use futures::{FutureExt, channel::oneshot};
use js_sys::{Function, Promise};
use multiaddr::Protocol;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use web_time::{SystemTime, UNIX_EPOCH};

use crate::{config::WasmConfig, key_store, trading::TradingParts};

/// A DarkSwap node in the page: the SDK's libp2p node (WebSocket and
/// WebRTC-direct transports, gossipsub orderbook, Kademlia client, relay
/// client) with its identity kept in IndexedDB.
///
/// ```js
/// const node = new DarkSwapWasm({ network: "regtest", relays: [relayAddr] });
/// node.on_event((e) => console.log(e.type, e));
/// const peerId = await node.start();
/// const order = await node.create_order({
///   side: "sell", base: "rune:840000:3", quote: "BTC",
///   amount: 1000, price: 100000000, expires_in: 600,
/// });
/// const book = await node.orderbook("rune:840000:3", "BTC");
/// await node.stop();
/// ```
///
/// Every method that talks to the node returns a promise that rejects with
/// an `Error` saying why; orders, peers and events are the same JSON
/// objects the daemon's `/v1` API serves.
#[wasm_bindgen]
pub struct DarkSwapWasm {
    pub(crate) inner: Rc<Inner>,
}

impl std::fmt::Debug for DarkSwapWasm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DarkSwapWasm")
            .field("network", &self.inner.config.network)
            .field("peer_id", &self.peer_id())
            .finish()
    }
}

pub(crate) struct Inner {
    config: WasmConfig,
    state: RefCell<State>,
    listeners: RefCell<Vec<Function>>,
}

enum State {
    Stopped,
    Starting,
    Running {
        handle: NetworkHandle,
        /// The wallet and its chain services, with trading on.
        trading: Option<TradingParts>,
        /// Tells the event pump to shut the node down; it answers when done.
        stop: oneshot::Sender<oneshot::Sender<()>>,
    },
}

pub(crate) fn error(message: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&message.to_string()).into()
}

/// Plain JS objects and numbers, as JSON would give them.
pub(crate) fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(error)
}

/// `value` read as JSON: serde_json, not serde-wasm-bindgen, because the
/// latter never sees the keys a struct does not name, and a misspelt field
/// must be refused, not ignored.
fn from_js<T: for<'de> Deserialize<'de>>(what: &str, value: JsValue) -> Result<T, JsValue> {
    let text = js_sys::JSON::stringify(&value)
        .ok()
        .and_then(|t| t.as_string())
        .ok_or_else(|| error(format!("{what}: not a JSON object")))?;
    serde_json::from_str(&text).map_err(|e| error(format!("{what}: {e}")))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn parse<T: std::str::FromStr>(field: &str, value: &str) -> Result<T, JsValue>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| error(format!("{field}: {value:?}: {e}")))
}

fn parse_order_id(id: &str) -> Result<OrderId, JsValue> {
    id.parse()
        .map_err(|_| error(format!("id: {id:?} is not 64 hex characters")))
}

/// `create_order(terms)`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderTerms {
    side: String,
    base: String,
    quote: String,
    amount: u64,
    price: u64,
    /// Seconds until it expires.
    expires_in: u64,
}

/// `update_order(id, changes)`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateTerms {
    amount: Option<u64>,
    price: Option<u64>,
    expires_in: Option<u64>,
}

/// `orderbook(base, quote)`.
#[derive(Debug, Serialize)]
struct BookView {
    base: String,
    quote: String,
    bids: Vec<json::Order>,
    asks: Vec<json::Order>,
}

/// `get_webrtc_relay_metrics()`.
#[derive(Debug, Serialize)]
struct RelayMetrics {
    /// Peers connected now.
    active_connections: usize,
    /// Of those, peers reached only through a relay circuit.
    relayed_connections: usize,
    /// Relays holding a reservation for this node.
    reservations: usize,
    /// Bytes received since start, over every connection.
    bytes_in: u64,
    /// Bytes sent since start.
    bytes_out: u64,
    /// Of `bytes_in`, received over relay circuits.
    relayed_bytes_in: u64,
    /// Of `bytes_out`, sent over relay circuits.
    relayed_bytes_out: u64,
    /// Relays known to the node, with their state.
    relays: Vec<RelayView>,
}

#[derive(Debug, Serialize)]
struct RelayView {
    relay_peer_id: String,
    circuit_address: String,
    reserved: bool,
    score: f64,
    rtt_ms: Option<u64>,
}

#[wasm_bindgen]
impl DarkSwapWasm {
    /// A node with `config` (see the package README for its fields); it
    /// does nothing until [`start`](Self::start).
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "NodeConfig | undefined")] config: JsValue,
    ) -> Result<DarkSwapWasm, JsValue> {
        let config: WasmConfig = if config.is_undefined() || config.is_null() {
            WasmConfig::default()
        } else {
            from_js("config", config)?
        };
        config.validate().map_err(error)?;
        Ok(DarkSwapWasm::with_config(config))
    }

    /// A node with the defaults for a Bitcoin network (`"regtest"`,
    /// `"signet"`, `"testnet"`, `"testnet4"` or `"bitcoin"`), as seed 003
    /// names it.
    pub fn new_with_defaults(network: &str) -> Result<DarkSwapWasm, JsValue> {
        let config = WasmConfig::for_network(network);
        config.validate().map_err(error)?;
        Ok(DarkSwapWasm::with_config(config))
    }

    fn with_config(config: WasmConfig) -> DarkSwapWasm {
        DarkSwapWasm {
            inner: Rc::new(Inner {
                config,
                state: RefCell::new(State::Stopped),
                listeners: RefCell::new(Vec::new()),
            }),
        }
    }

    /// The Bitcoin network this node trades on.
    #[wasm_bindgen(getter)]
    pub fn network(&self) -> String {
        self.inner.config.network.clone()
    }

    /// Starts the node: loads (or makes) its identity, builds the libp2p
    /// node, dials the relays and bootstrap peers and reserves on the
    /// relays. Resolves to the peer id.
    #[wasm_bindgen(unchecked_return_type = "Promise<string>")]
    pub fn start(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            {
                let mut state = inner.state.borrow_mut();
                if !matches!(*state, State::Stopped) {
                    return Err(error("the node is already started"));
                }
                *state = State::Starting;
            }
            match Inner::launch(&inner).await {
                Ok(peer) => Ok(JsValue::from_str(&peer.to_string())),
                Err(e) => {
                    *inner.state.borrow_mut() = State::Stopped;
                    Err(e)
                }
            }
        })
    }

    /// Stops the node: says goodbye to the market (its orders leave the
    /// other books at once), closes every connection and ends its tasks.
    /// It can be started again.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn stop(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let state = std::mem::replace(&mut *inner.state.borrow_mut(), State::Stopped);
            match state {
                State::Running { stop, .. } => {
                    let (done, stopped) = oneshot::channel();
                    if stop.send(done).is_ok() {
                        let _ = stopped.await;
                    }
                    Ok(JsValue::UNDEFINED)
                }
                State::Starting => {
                    *inner.state.borrow_mut() = State::Starting;
                    Err(error("the node is still starting"))
                }
                State::Stopped => Ok(JsValue::UNDEFINED),
            }
        })
    }

    /// Whether the node runs.
    #[wasm_bindgen(getter)]
    pub fn running(&self) -> bool {
        matches!(*self.inner.state.borrow(), State::Running { .. })
    }

    /// The node's peer id once started, else `undefined`.
    #[wasm_bindgen(getter)]
    pub fn peer_id(&self) -> Option<String> {
        match &*self.inner.state.borrow() {
            State::Running { handle, .. } => Some(handle.local_peer_id().to_string()),
            _ => None,
        }
    }

    /// Calls `callback` with every event of the node, as a plain object
    /// whose `type` names it (`order_added`, `order_cancelled`,
    /// `orders_expired`, `peer_connected`, `relay_reserved`, …: the
    /// daemon's `/v1/events`).
    pub fn on_event(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(event: NodeEvent) => void")] callback: Function,
    ) {
        self.inner.listeners.borrow_mut().push(callback);
    }

    /// Dials `addr` (ending in `/p2p/<peer id>`); resolves to the peer id
    /// once connected.
    #[wasm_bindgen(unchecked_return_type = "Promise<string>")]
    pub fn connect(&self, addr: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let addr: Multiaddr = parse("addr", &addr)?;
            let peer = inner.handle()?.dial(addr).await.map_err(error)?;
            Ok(JsValue::from_str(&peer.to_string()))
        })
    }

    /// The connected peers, each with its path (`direct` or `relayed`).
    #[wasm_bindgen(unchecked_return_type = "Promise<Peer[]>")]
    pub fn peers(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let peers = inner.handle()?.peers().await.map_err(error)?;
            to_js(&peers.iter().map(json::Peer::from).collect::<Vec<_>>())
        })
    }

    /// The bids and asks of a pair, best first.
    #[wasm_bindgen(unchecked_return_type = "Promise<Book>")]
    pub fn orderbook(&self, base: String, quote: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let (b, q): (Asset, Asset) = (parse("base", &base)?, parse("quote", &quote)?);
            let book = inner
                .handle()?
                .orderbook()
                .book(b, q)
                .await
                .map_err(error)?;
            to_js(&BookView {
                base: b.to_string(),
                quote: q.to_string(),
                bids: book.bids.iter().map(json::Order::from).collect(),
                asks: book.asks.iter().map(json::Order::from).collect(),
            })
        })
    }

    /// This node's own open orders, oldest first.
    #[wasm_bindgen(unchecked_return_type = "Promise<Order[]>")]
    pub fn own_orders(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let orders = inner
                .handle()?
                .orderbook()
                .own_orders()
                .await
                .map_err(error)?;
            to_js(
                &orders
                    .iter()
                    .map(|(o, _)| json::Order::from(o))
                    .collect::<Vec<_>>(),
            )
        })
    }

    /// Signs an order with the node's key and publishes it: `{side, base,
    /// quote, amount, price, expires_in}` (seconds). Resolves to the order.
    #[wasm_bindgen(unchecked_return_type = "Promise<Order>")]
    pub fn create_order(
        &self,
        #[wasm_bindgen(unchecked_param_type = "OrderTerms")] terms: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let t: OrderTerms = from_js("order", terms)?;
            if t.expires_in == 0 {
                return Err(error("expires_in: must be greater than zero"));
            }
            let now = unix_now();
            let order = NewOrder {
                side: parse::<Side>("side", &t.side)?,
                base: parse("base", &t.base)?,
                quote: parse("quote", &t.quote)?,
                amount: t.amount,
                price: t.price,
                created_at: now,
                expires_at: now.saturating_add(t.expires_in),
                nonce: rand::random(),
            };
            let (order, _) = inner
                .handle()?
                .orderbook()
                .create(order)
                .await
                .map_err(error)?;
            to_js(&json::Order::from(&order))
        })
    }

    /// Changes one of the node's own orders: `{amount?, price?,
    /// expires_in?}`. Resolves to the order as it now stands.
    #[wasm_bindgen(unchecked_return_type = "Promise<Order>")]
    pub fn update_order(
        &self,
        id: String,
        #[wasm_bindgen(unchecked_param_type = "OrderChanges")] changes: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let id = parse_order_id(&id)?;
            let u: UpdateTerms = from_js("changes", changes)?;
            if u.amount.is_none() && u.price.is_none() && u.expires_in.is_none() {
                return Err(error(
                    "nothing to change: give amount, price and/or expires_in",
                ));
            }
            let changes = OrderChanges {
                amount: u.amount,
                price: u.price,
                expires_at: u.expires_in.map(|s| unix_now().saturating_add(s)),
            };
            let (order, _) = inner
                .handle()?
                .orderbook()
                .update(id, changes)
                .await
                .map_err(error)?;
            to_js(&json::Order::from(&order))
        })
    }

    /// Cancels one of the node's own orders and publishes the signed
    /// cancel.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn cancel_order(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let id = parse_order_id(&id)?;
            inner
                .handle()?
                .orderbook()
                .cancel(id)
                .await
                .map_err(error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Makes the page reachable through the relay `relay_peer_id` (which
    /// the node must be connected to: one of its `relays`, or one dialled
    /// with `connect`). Resolves to the circuit address other nodes dial.
    #[wasm_bindgen(unchecked_return_type = "Promise<string>")]
    pub fn make_webrtc_relay_reservation(&self, relay_peer_id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let relay: PeerId = parse("relay_peer_id", &relay_peer_id)?;
            let handle = inner.handle()?;
            let held = handle
                .relay_status()
                .await
                .map_err(error)?
                .into_iter()
                .find(|s| s.relay_peer_id == relay && s.reserved);
            let circuit = match held {
                Some(status) => status.circuit_addr,
                None => {
                    let base = relay_address(&handle, relay).await?;
                    handle
                        .listen_on(base.with(Protocol::P2pCircuit))
                        .await
                        .map_err(error)?
                }
            };
            Ok(JsValue::from_str(&circuit.to_string()))
        })
    }

    /// Reaches `target_peer_id` through a circuit of the relay
    /// `relay_peer_id` (connected, as for the reservation), where the
    /// target holds a reservation: another page, or a node behind a NAT.
    /// Resolves to the target's peer id once connected.
    #[wasm_bindgen(unchecked_return_type = "Promise<string>")]
    pub fn connect_through_webrtc_relay(
        &self,
        relay_peer_id: String,
        target_peer_id: String,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let relay: PeerId = parse("relay_peer_id", &relay_peer_id)?;
            let target: PeerId = parse("target_peer_id", &target_peer_id)?;
            let handle = inner.handle()?;
            let addr = relay_address(&handle, relay)
                .await?
                .with(Protocol::P2pCircuit)
                .with(Protocol::P2p(target));
            let peer = handle.dial(addr).await.map_err(error)?;
            Ok(JsValue::from_str(&peer.to_string()))
        })
    }

    /// Connections, relayed connections and reservations now, bytes moved
    /// since start (over relay circuits apart), and the relays the node
    /// knows with their state.
    #[wasm_bindgen(unchecked_return_type = "Promise<RelayMetrics>")]
    pub fn get_webrtc_relay_metrics(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let handle = inner.handle()?;
            let peers = handle.peers().await.map_err(error)?;
            let relays = handle.relay_status().await.map_err(error)?;
            let bytes = handle.bandwidth().await.map_err(error)?;
            to_js(&RelayMetrics {
                active_connections: peers.len(),
                relayed_connections: peers.iter().filter(|p| p.relayed).count(),
                reservations: relays.iter().filter(|r| r.reserved).count(),
                bytes_in: bytes.inbound,
                bytes_out: bytes.outbound,
                relayed_bytes_in: bytes.relayed_inbound,
                relayed_bytes_out: bytes.relayed_outbound,
                relays: relays
                    .iter()
                    .map(|r| RelayView {
                        relay_peer_id: r.relay_peer_id.to_string(),
                        circuit_address: r.circuit_addr.to_string(),
                        reserved: r.reserved,
                        score: r.score,
                        rtt_ms: r
                            .rtt
                            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    })
                    .collect(),
            })
        })
    }
}

/// Where this node reaches `relay` directly now, with its peer id.
async fn relay_address(handle: &NetworkHandle, relay: PeerId) -> Result<Multiaddr, JsValue> {
    let peers = handle.peers().await.map_err(error)?;
    let mut base = peers
        .into_iter()
        .find(|p| p.peer_id == relay)
        .and_then(|p| p.connections.into_iter().find(|c| !c.relayed))
        .map(|c| c.address)
        .ok_or_else(|| {
            error(format!(
                "not connected to relay {relay}: name it in `relays` or `connect` to it first"
            ))
        })?;
    if matches!(base.iter().last(), Some(Protocol::P2p(_))) {
        base.pop();
    }
    Ok(base.with(Protocol::P2p(relay)))
}

impl Inner {
    pub(crate) fn handle(&self) -> Result<NetworkHandle, JsValue> {
        match &*self.state.borrow() {
            State::Running { handle, .. } => Ok(handle.clone()),
            _ => Err(error("the node is not started")),
        }
    }

    /// The wallet and its services; an error when the node is stopped or
    /// trades nothing.
    pub(crate) fn trading(&self) -> Result<TradingParts, JsValue> {
        match &*self.state.borrow() {
            State::Running {
                trading: Some(parts),
                ..
            } => Ok(parts.clone()),
            State::Running { trading: None, .. } => Err(error(
                "trading is off: give the node a `trading` config (esplora_url, ord_url)",
            )),
            _ => Err(error("the node is not started")),
        }
    }

    async fn launch(this: &Rc<Inner>) -> Result<PeerId, JsValue> {
        let key = if this.config.ephemeral {
            Keypair::generate_ed25519()
        } else {
            key_store::load_or_create(&this.config.identity_store())
                .await
                .map_err(error)?
        };
        let mut config = this.config.network_config(key).map_err(error)?;
        let trading = match &this.config.trading {
            Some(settings) => {
                let (parts, trading) = TradingParts::set_up(&this.config, settings).await?;
                config = config.with_trading(trading);
                Some(parts)
            }
            None => None,
        };
        let network = Network::new(config).await.map_err(error)?;
        let handle = network.handle();
        let peer = handle.local_peer_id();
        let (stop, stop_rx) = oneshot::channel();
        *this.state.borrow_mut() = State::Running {
            handle,
            trading,
            stop,
        };
        wasm_bindgen_futures::spawn_local(pump(Rc::downgrade(this), network, stop_rx));
        Ok(peer)
    }

    /// Hands `event` to every listener. A listener that throws is logged
    /// and kept; one added by a listener hears the next event.
    fn dispatch(&self, event: &darkswap_p2p::NetworkEvent) {
        let listeners = self.listeners.borrow().clone();
        if listeners.is_empty() {
            return;
        }
        let value = match to_js(&json::Event::from(event)) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = ?e, "event not convertible");
                return;
            }
        };
        for f in listeners {
            if let Err(e) = f.call1(&JsValue::NULL, &value) {
                tracing::warn!(error = ?e, "an event listener threw");
            }
        }
    }
}

/// Reads the node's events until it stops: when asked to (`stop`), when
/// the `DarkSwapWasm` is freed, or when the node ends by itself.
async fn pump(
    inner: Weak<Inner>,
    mut network: Network,
    stop: oneshot::Receiver<oneshot::Sender<()>>,
) {
    let mut stop = stop.fuse();
    let done = loop {
        futures::select! {
            event = network.next_event().fuse() => match (event, inner.upgrade()) {
                (Some(event), Some(inner)) => inner.dispatch(&event),
                _ => break None,
            },
            asked = stop => break asked.ok(),
        }
    };
    if let Err(e) = network.shutdown().await {
        tracing::warn!(error = %e, "the node did not stop cleanly");
    }
    match done {
        Some(done) => {
            let _ = done.send(());
        }
        // Ended by itself: the page sees it stopped (and may start again).
        None => {
            if let Some(inner) = inner.upgrade() {
                *inner.state.borrow_mut() = State::Stopped;
            }
        }
    }
}
