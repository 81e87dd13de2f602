// The data types DarkSwapWasm takes and returns, appended to the
// wasm-bindgen output (pkg/darkswap_wasm.d.ts) by a typescript_custom_section
// in types.rs, so the raw bindings and the wrapper (clients/wasm/index.d.ts)
// name one set of types. Field names are the JSON the daemon's /v1 API uses.

/** `new DarkSwapWasm(config)`: every field optional, unknown ones refused. */
export interface NodeConfig {
  /** `bitcoin`, `testnet`, `testnet4`, `signet` or `regtest` (default). */
  network?: string;
  /** Relays to reserve on and learn the market from: multiaddrs over /ws, /wss or /webrtc-direct, ending in /p2p/<peer id>. */
  relays?: string[];
  /** Other peers dialled at start, e.g. daemons listening on /webrtc-direct. */
  bootstrap?: string[];
  /** IndexedDB database of the identity key (default `darkswap-<network>`). */
  identity_store?: string;
  /** A new identity at every start, nothing stored (default false). */
  ephemeral?: boolean;
  /** Deadline of every command and dial in ms (default 30000). */
  timeout_ms?: number;
  /** Trading on: where the wallet learns its coins and broadcasts. Both must allow the page's origin (CORS). */
  trading?: TradingConfig;
}

export interface TradingConfig {
  /** Esplora's root (`…/api`): coins and broadcasts. */
  esplora_url: string;
  /** `ord server`'s root: the runes each coin holds. */
  ord_url: string;
  /** Trades at once (default 16). */
  max_trades?: number;
}

export interface Coin {
  /** `txid:vout`. */
  outpoint: string;
  /** Satoshis. */
  value: number;
  /** Asset (`rune:<block>:<tx>`) to amount, as a decimal string. */
  holdings: Record<string, string>;
  /** Held by a running trade. */
  committed: boolean;
}

export interface Wallet {
  network: string;
  /** The first receives runes and coins, the last takes change. */
  addresses: string[];
  coins: Coin[];
}

export type TradeState =
  | 'proposed' | 'accepted' | 'psbt_created' | 'maker_signed' | 'finalized' | 'broadcast'
  | 'completed' | 'rejected' | 'cancelled' | 'timed_out' | 'failed';

export interface Trade {
  id: string;
  order_id: string;
  /** The counterparty. */
  peer_id: string;
  role: 'maker' | 'taker';
  state: TradeState;
  /** What ended it, when it ended early. */
  detail?: string;
  /** The swap transaction's id, once final. */
  txid?: string;
}

/** An order, as the daemon's /v1 API shows it too. */
export interface Order {
  id: string;
  maker: string;
  side: 'buy' | 'sell';
  base: string;
  quote: string;
  /** Base amount, smallest unit. */
  amount: number;
  /** Quote units per 10^8 base units. */
  price: number;
  created_at: number;
  expires_at: number;
}

export interface Book {
  base: string;
  quote: string;
  /** Best first. */
  bids: Order[];
  /** Best first. */
  asks: Order[];
}

export interface OrderTerms {
  side: 'buy' | 'sell';
  base: string;
  quote: string;
  amount: number;
  price: number;
  /** Seconds until it expires. */
  expires_in: number;
}

export interface OrderChanges {
  amount?: number;
  price?: number;
  expires_in?: number;
}

export interface Peer {
  peer_id: string;
  address: string;
  /** `direct`, or `relayed` when every connection runs through a relay. */
  path: 'direct' | 'relayed';
  latency_ms: number | null;
  connections: { address: string; path: 'direct' | 'relayed' }[];
}

export interface RelayMetrics {
  active_connections: number;
  relayed_connections: number;
  reservations: number;
  /** Bytes received and sent since start, over every connection. */
  bytes_in: number;
  bytes_out: number;
  /** Of those, over relay circuits. */
  relayed_bytes_in: number;
  relayed_bytes_out: number;
  relays: { relay_peer_id: string; circuit_address: string; reserved: boolean; score: number; rtt_ms: number | null }[];
}

/** A node event; `type` names it (the daemon's /v1/events). */
export type KnownNodeEvent =
  | { type: 'peer_connected' | 'peer_disconnected'; peer_id: string }
  | { type: 'peer_subscribed'; peer_id: string; topic: string }
  | { type: 'order_added' | 'order_updated'; order: Order }
  | { type: 'order_cancelled'; id: string; maker: string }
  | { type: 'orders_expired'; ids: string[] }
  | { type: 'relay_reserved'; relay_peer_id: string; reservation_id: string }
  | { type: 'trade_updated'; trade_id: string; order_id: string; peer_id: string; role: 'maker' | 'taker'; state: TradeState; detail?: string }
  | { type: 'order_filled'; order_id: string; amount: number; remaining: number };

/** The types `KnownNodeEvent` spells out. */
export type KnownEventType = KnownNodeEvent['type'];
/** The event of known type `T`. */
export type EventOf<T extends KnownEventType> = Extract<KnownNodeEvent, { type: T }>;
/** Any event: the known ones, and the rest by their `type`. */
export type NodeEvent = KnownNodeEvent | { type: string; [field: string]: unknown };
