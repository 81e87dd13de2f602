// darkswap-wasm: the DarkSwap node that runs in a page (crates/darkswap-wasm
// compiled to WebAssembly, pkg/ is its wasm-bindgen output), with a small
// wrapper: the module is loaded once, events reach callbacks by type, and
// `waitFor` resolves on the first matching event or rejects at its deadline.
import init, { DarkSwapWasm, init_logging } from './pkg/darkswap_wasm.js';

let loading = null;

/**
 * Loads and instantiates the WebAssembly module; once per page, later calls
 * share the first. `wasmUrl` overrides where the .wasm file is fetched from.
 * @param {string | URL} [wasmUrl]
 * @returns {Promise<void>}
 */
export function load(wasmUrl) {
  loading ??= init(wasmUrl ? { module_or_path: wasmUrl } : undefined).then(() => undefined);
  return loading;
}

/**
 * Sends the node's logs at `level` and above to the console.
 * @param {'error' | 'warn' | 'info' | 'debug' | 'trace'} level
 */
export async function enableLogging(level) {
  await load();
  init_logging(level);
}

/** A DarkSwap node in the page. */
export class DarkSwapNode {
  /** @type {DarkSwapWasm} */ #node;
  /** @type {Map<string, Set<(event: any) => void>>} */ #listeners = new Map();

  /**
   * A node with `config` (see the README); it does nothing until `start()`.
   * @param {import('./index.js').NodeConfig} [config]
   * @returns {Promise<DarkSwapNode>}
   */
  static async create(config = {}) {
    await load();
    return new DarkSwapNode(new DarkSwapWasm(config));
  }

  /**
   * A node with the defaults of a Bitcoin network (`regtest`, `signet`,
   * `testnet`, `testnet4`, `bitcoin`).
   * @param {string} network
   * @returns {Promise<DarkSwapNode>}
   */
  static async withDefaults(network) {
    await load();
    return new DarkSwapNode(DarkSwapWasm.new_with_defaults(network));
  }

  /** @param {DarkSwapWasm} node */
  constructor(node) {
    this.#node = node;
    node.on_event((event) => this.#dispatch(event));
  }

  /** The bindings themselves, for what the wrapper does not cover. */
  get wasm() { return this.#node; }
  /** The peer id once started, else `undefined`. */
  get peerId() { return this.#node.peer_id; }
  /** Whether the node runs. */
  get running() { return this.#node.running; }
  /** The Bitcoin network it trades on. */
  get network() { return this.#node.network; }

  /** @param {any} event */
  #dispatch(event) {
    for (const key of [event.type, '*']) {
      for (const callback of this.#listeners.get(key) ?? []) {
        try { callback(event); } catch (error) { console.error('darkswap event listener threw', error); }
      }
    }
  }

  /**
   * Calls `callback` with every event of `type` (`'*'`: every event).
   * Returns a function that removes it.
   * @param {string} type
   * @param {(event: any) => void} callback
   * @returns {() => void}
   */
  on(type, callback) {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, set = new Set());
    set.add(callback);
    return () => set.delete(callback);
  }

  /**
   * The first event of `type` that `predicate` accepts, from now on.
   * Rejects after `timeoutMs`.
   * @param {string} type
   * @param {(event: any) => boolean} [predicate]
   * @param {number} [timeoutMs]
   * @returns {Promise<any>}
   */
  waitFor(type, predicate = () => true, timeoutMs = 10_000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { off(); reject(new Error(`no ${type} event within ${timeoutMs} ms`)); }, timeoutMs);
      const off = this.on(type, (event) => {
        if (!predicate(event)) return;
        clearTimeout(timer);
        off();
        resolve(event);
      });
    });
  }

  /** Starts the node; resolves to its peer id. */
  start() { return this.#node.start(); }
  /** Says goodbye to the market and stops. */
  stop() { return this.#node.stop(); }
  /** @param {string} addr a multiaddr ending in /p2p/<peer id> */
  connect(addr) { return this.#node.connect(addr); }
  peers() { return this.#node.peers(); }
  /** @param {string} base @param {string} quote */
  orderbook(base, quote) { return this.#node.orderbook(base, quote); }
  ownOrders() { return this.#node.own_orders(); }
  /** @param {import('./index.js').OrderTerms} terms */
  createOrder(terms) { return this.#node.create_order(terms); }
  /** @param {string} id @param {import('./index.js').OrderChanges} changes */
  updateOrder(id, changes) { return this.#node.update_order(id, changes); }
  /** @param {string} id */
  cancelOrder(id) { return this.#node.cancel_order(id); }
  /** @param {string} relayPeerId */
  makeRelayReservation(relayPeerId) { return this.#node.make_webrtc_relay_reservation(relayPeerId); }
  /** @param {string} relayPeerId @param {string} targetPeerId */
  connectThroughRelay(relayPeerId, targetPeerId) { return this.#node.connect_through_webrtc_relay(relayPeerId, targetPeerId); }
  relayMetrics() { return this.#node.get_webrtc_relay_metrics(); }
  /** The trading wallet as of its last sync (needs `config.trading`). */
  wallet() { return this.#node.wallet(); }
  /** Asks the chain services for the wallet's coins; resolves to the wallet. */
  syncWallet() { return this.#node.sync_wallet(); }
  /** @param {string} orderId @param {number} amount base units to take */
  takeOrder(orderId, amount) { return this.#node.take_order(orderId, amount); }
  trades() { return this.#node.trades(); }
  /** @param {string} tradeId */
  cancelTrade(tradeId) { return this.#node.cancel_trade(tradeId); }
}

export { DarkSwapWasm };
