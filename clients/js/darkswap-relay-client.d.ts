// Type declarations for darkswap-relay-client.js (docs/signaling.md).

/** Transport of a connection. */
export type ConnectionPath = 'direct' | 'relayed';
/** Lifecycle of a connection: `connecting` → `open` → `closed` (or `connecting` → `closed`). */
export type ConnectionState = 'connecting' | 'open' | 'closed';
/** State of the signaling socket; `open` means registered. */
export type SignalingState = 'connecting' | 'open' | 'closed';

/**
 * Errors raised by the client carry a machine-readable `code`: a server error
 * code (`bad_signature`, `already_registered`, `server_full`, `circuit_limit`,
 * `unknown_peer`, ...) or one of the client's own (`closed`,
 * `signaling_unavailable`, `invalid_peer`, `ice_timeout`, `ice_failed`,
 * `channel_closed`, `webrtc_error`, `circuit_rejected`, `circuit_timeout`,
 * `circuit_closed`, `relay_closed`, `relay_unavailable`, `peer_left`,
 * `signaling_closed`, `replaced`, `not_open`, `message_too_large`,
 * `send_queue_full`), a token service error (`unauthorized`, `bad_proof`,
 * `unknown_challenge`, `expired`, `revoked`, `rate_limited`, `auth_unavailable`,
 * `auth_protocol_error`, ...; see {@link RelayTokenError}), or an end-to-end encryption failure on a relayed circuit,
 * which closes that connection (`e2e_bad_signature`, `e2e_authentication_failed`,
 * `e2e_replay`, `e2e_too_old`, `e2e_protocol_error`, ...; see darkswap-e2e.d.ts).
 */
export interface DarkSwapError extends Error {
  code: string;
}

export interface ManagerOptions {
  /** `ws(s)://host:port/signaling`. */
  signalingUrl: string;
  /** `/relay` endpoint; default: `signalingUrl` with `/signaling` replaced by `/relay`. */
  relayUrl?: string;
  /** WebCrypto Ed25519 key pair to use instead of the persisted one. */
  identity?: CryptoKeyPair;
  /** IndexedDB key of the persisted identity (default `'darkswap-identity'`); `null` = ephemeral. */
  storageKey?: string | null;
  /** Passed to every `RTCPeerConnection` (default `{ iceServers: [] }`). */
  rtcConfig?: RTCConfiguration;
  /** Time a WebRTC attempt may take before falling back to a relayed circuit, in ms (default 5000). */
  iceTimeoutMs?: number;
  /** Whether to accept an incoming relayed circuit from a peer (default: accept all). */
  acceptRelayed?: (peerId: string) => boolean;
  /** Reconnect the signaling socket and lost connections automatically (default true). */
  autoReconnect?: boolean;
  /** Keep-alive interval on `/signaling` and on relayed circuits, in ms (default 20000). */
  pingIntervalMs?: number;
  /**
   * How the `/signaling` socket is authorised (docs/signaling.md, Tokens):
   * - `'none'` (default): no token, for open relays;
   * - `'auto'`: earn a token with the identity key (`fetchRelayToken`) before
   *   connecting, refresh it after 3/4 of its lifetime (the relay then closes the
   *   socket that showed the old one, and the manager reconnects at once with the
   *   new one), and earn a new one if it expired anyway;
   * - a function: called for the token to show before every new socket.
   * A socket closed with 4004 for any other reason (no token on a closed relay, a
   * role that may not register, a token for another peer, revoked by an admin)
   * is not retried: `init()` rejects, or an `error` event says `unauthorized`.
   */
  auth?: 'none' | 'auto' | TokenProvider;
  /** Base of the token service; default: `signalingUrl` with `ws(s):` → `http(s):` and `/signaling` → `/auth`. */
  authUrl?: string;
}

/** Supplies the token a new `/signaling` socket shows (e.g. one minted with `darkswap-relay token issue`). */
export type TokenProvider = (request: { peerId: string }) => string | Promise<string>;

/** A token of the relay's token service. `token` is a bearer credential: keep it out of logs and URLs. */
export interface RelayToken {
  /** The JWT. */
  token: string;
  /** `'guest'`, `'user'` or `'admin'`. */
  role: string;
  /** Unix seconds (the relay's clock) after which the relay refuses it. */
  expiresAt: number;
}

/** Error of `fetchRelayToken`/`refreshRelayToken`. */
export interface RelayTokenError extends DarkSwapError {
  /** HTTP status; 0 when the service did not answer (`auth_unavailable`). */
  status: number;
  /** With `rate_limited` (429): the relay's `Retry-After`, in ms. */
  retryAfterMs?: number;
}

/** Result of {@link WebRtcConnection.getQuality}. */
export interface ConnectionQuality {
  path: ConnectionPath;
  /** Round-trip time in milliseconds, `null` if unknown. */
  rtt: number | null;
}

/** A connection to one remote peer. Created by {@link WebRtcConnectionManager}. */
export class WebRtcConnection {
  private constructor();
  /** Remote peer id. */
  readonly peerId: string;
  /** Transport in use (or being tried while `connecting`). */
  readonly path: ConnectionPath;
  readonly state: ConnectionState;
  /** True if this side started the connection (sent the offer or circuit request that made it). */
  readonly initiator: boolean;
  /** Last measured round-trip time in milliseconds, or `null`. */
  readonly rtt: number | null;
  /** Sends one message: bytes (`Uint8Array`, `ArrayBuffer`, typed arrays) as binary, anything else as JSON. */
  send(message: unknown): Promise<void>;
  /** Direct: RTT of the selected ICE candidate pair; relayed: ping/pong over the circuit. Updates `rtt`. */
  getQuality(): Promise<ConnectionQuality>;
  /** Closes the connection on purpose (relayed: `circuit_close`). */
  close(): Promise<void>;
}

export interface WebRtcConnectionManagerEventMap {
  registered: CustomEvent<{ peerId: string; peers: string[] }>;
  'peer-joined': CustomEvent<{ peerId: string }>;
  'peer-left': CustomEvent<{ peerId: string }>;
  connection: CustomEvent<{ connection: WebRtcConnection }>;
  /** `code` says why, when a connection closed other than by `close()`/`closeConnection()`. */
  'connection-state': CustomEvent<{ peerId: string; state: ConnectionState; path: ConnectionPath; code?: string }>;
  /** `message` is a JSON value, or a `Uint8Array` for binary payloads. */
  message: CustomEvent<{ peerId: string; message: unknown }>;
  'signaling-state': CustomEvent<{ state: SignalingState }>;
  /** `auth: 'auto'` earned (`challenge`) or refreshed (`refresh`) a token; the token itself is not in the event. */
  token: CustomEvent<{ role: string; expiresAt: number; via: 'challenge' | 'refresh' }>;
  error: CustomEvent<{ code: string; message: string }>;
}

/**
 * Registers with a darkswap-relay signaling server and keeps one connection per
 * remote peer: WebRTC data channel first, relayed circuit as fallback.
 */
export class WebRtcConnectionManager extends EventTarget {
  constructor(options: ManagerOptions);
  /** This peer's id (`12D3KooW...`), known once `init()` has loaded the identity. */
  readonly peerId: string | null;
  /** Other registered peers, as last reported by the server. */
  readonly peers: string[];
  /** State of the signaling socket (`open` = registered). */
  readonly signalingState: SignalingState;
  /**
   * Loads or creates the identity, connects and registers. Rejects with a
   * {@link DarkSwapError} carrying the server's code; `already_registered` is
   * retried with backoff while `autoReconnect` is on.
   */
  init(): Promise<void>;
  /** Connects to a registered peer (WebRTC, then relayed circuit); resolves when the connection is open. */
  connect(peerId: string): Promise<WebRtcConnection>;
  /** Sends a message, connecting first if needed. */
  sendMessage(peerId: string, message: unknown): Promise<void>;
  /** Calls `handler(peerId, message)` for every received message; returns an unsubscribe function. */
  onMessage(handler: (peerId: string, message: unknown) => void): () => void;
  /** The current (connecting or open) connection with a peer. */
  getConnection(peerId: string): WebRtcConnection | undefined;
  /** Closes the connection with a peer on purpose; it is not reconnected automatically. */
  closeConnection(peerId: string): Promise<void>;
  /** Closes everything; the manager cannot be used afterwards. */
  close(): Promise<void>;

  addEventListener<K extends keyof WebRtcConnectionManagerEventMap>(
    type: K,
    listener: (this: WebRtcConnectionManager, event: WebRtcConnectionManagerEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof WebRtcConnectionManagerEventMap>(
    type: K,
    listener: (this: WebRtcConnectionManager, event: WebRtcConnectionManagerEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

/**
 * Earns a token: `POST /auth/challenge`, an Ed25519 signature by `identity` over
 * `"darkswap-relay/v1/auth-token" || relay peer id bytes || challenge`, `POST /auth/token`.
 * Rejects with a {@link RelayTokenError}. Never logs the token.
 */
export function fetchRelayToken(options: { signalingUrl?: string; authUrl?: string; identity: CryptoKeyPair }): Promise<RelayToken>;

/** Trades a valid token for a fresh one (`POST /auth/refresh`); the relay revokes the old one. */
export function refreshRelayToken(options: { signalingUrl?: string; authUrl?: string; token: string }): Promise<RelayToken>;

/** libp2p peer id (`12D3KooW...`) of a raw 32-byte Ed25519 public key. */
export function peerIdFromPublicKey(rawEd25519PublicKey: Uint8Array): string;

/**
 * Loads the Ed25519 key pair stored in IndexedDB under `storageKey` (default
 * `'darkswap-identity'`), or creates and stores one; `null` returns an ephemeral key pair.
 */
export function loadOrCreateIdentity(storageKey?: string | null): Promise<CryptoKeyPair>;
