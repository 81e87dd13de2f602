// @ts-check
/**
 * Browser client for the `darkswap-relay` WebSocket plane (docs/signaling.md):
 * proves a libp2p peer id on `/signaling`, connects to other registered peers
 * over WebRTC data channels, and falls back to relayed circuits on `/relay`
 * when WebRTC cannot connect.
 *
 * No build step, no dependencies: import it as an ES module.
 *
 * ```js
 * import { WebRtcConnectionManager } from './darkswap-relay-client.js';
 * const manager = new WebRtcConnectionManager({ signalingUrl: 'wss://relay.example/signaling' });
 * manager.onMessage((peerId, message) => console.log(peerId, message));
 * await manager.init();
 * await manager.sendMessage(manager.peers[0], { hello: 'world' });
 * ```
 *
 * Connection state machine (one {@link WebRtcConnection} per remote peer at a time):
 *
 * ```
 *             offer sent / offer answered               data channel open
 *  connecting(direct) ────────────────────────────────────────────────────▶ open(direct)
 *        │ ICE timeout, ICE failed or no local candidate (offering side)
 *        ▼
 *  connecting(relayed): circuit_request → circuit_pending → circuit_ready
 *        │                → /relay attach → open                          ─▶ open(relayed)
 *        │ rejection, timeout, peer left, signaling lost
 *        ▼
 *      closed  ◀──────────────── transport closed / closeConnection() / close()
 * ```
 *
 * The answering side of a WebRTC attempt times out too (after `iceTimeoutMs`
 * plus a grace period); an incoming circuit for a peer replaces any pending
 * WebRTC attempt with it; an incoming offer or circuit for a peer we consider
 * connected replaces that connection (the other side evidently lost it).
 *
 * Relayed circuits are end-to-end encrypted (./darkswap-e2e.js,
 * docs/security-encryption.md): once the server says `open`, each side sends a
 * handshake frame with an X25519 key signed by its Ed25519 identity for the
 * other peer id, and the connection opens only when the other side's
 * handshake verifies; every later frame is AES-256-GCM ciphertext, so the
 * relay sees nothing but handshakes and ciphertext. Direct data channels are
 * DTLS-encrypted end to end by WebRTC itself.
 *
 * On relays that require a token (docs/signaling.md, Tokens), `auth: 'auto'`
 * earns one with the identity key ({@link fetchRelayToken}), shows it as the
 * `darkswap-token.<jwt>` subprotocol, refreshes it before it expires and
 * reconnects with the new one when the relay closes the socket (4004) that
 * showed the retired or expired token. Any other 4004 is final: it is
 * reported as `unauthorized` and not retried. Tokens are never logged.
 *
 * @module darkswap-relay-client
 */

import { E2eError, E2eHandshake, FRAME_OVERHEAD } from './darkswap-e2e.js';

/** Tag signed before the challenge nonce (docs/signaling.md, Registration). */
const REGISTER_TAG = 'darkswap-signaling/v1/register';
/** Label of the data channel the offering side creates. */
const DATA_CHANNEL_LABEL = 'darkswap';
/** Default IndexedDB key of the persisted identity. */
const DEFAULT_STORAGE_KEY = 'darkswap-identity';
const IDB_NAME = 'darkswap-relay-client';
const IDB_STORE = 'identity';

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10_000;
/** Client-side bound for challenge → registered (the server's own is 10 s). */
const REGISTER_TIMEOUT_MS = 15_000;
/** Extra time the answering side gives a WebRTC attempt beyond `iceTimeoutMs`. */
const ANSWERER_GRACE_MS = 2_000;
/** Bound for circuit_request/accept → `open` (the server's accept timeout is 15 s). */
const CIRCUIT_TIMEOUT_MS = 20_000;
/** How long a relayed ping waits for its pong. */
const RELAY_PING_TIMEOUT_MS = 5_000;
/** A lost connection followed within this window by `peer_left` counts as lost with the peer. */
const LOST_GRACE_MS = 15_000;

const MAX_PENDING_CANDIDATES = 64;
const MAX_PENDING_CIRCUIT_REQUESTS = 32;
const MAX_OUTSTANDING_PINGS = 8;
const MAX_SIGNALING_FRAME = 64 * 1024;
/** `ws_relay.max_frame_size` default; the outer kind byte and the encryption overhead come off it. */
const MAX_RELAY_FRAME = 256 * 1024;
const SEND_HIGH_WATER = 1024 * 1024;
const SEND_LOW_WATER = 256 * 1024;
/** Messages that may wait for buffer space on one connection. */
const MAX_QUEUED_SENDS = 1024;
const DRAIN_POLL_MS = 20;

/**
 * Relayed frame kinds (first byte of every binary frame on `/relay`): on the
 * wire only HANDSHAKE and SEALED; the others are kinds of the plaintext inside
 * a SEALED frame.
 */
const KIND_JSON = 0;
const KIND_BINARY = 1;
const KIND_PING = 2;
const KIND_PONG = 3;
const KIND_HANDSHAKE = 4;
const KIND_SEALED = 5;
/** Largest plaintext (kind byte included) a SEALED frame can carry. */
const MAX_SEALED_PLAINTEXT = MAX_RELAY_FRAME - 1 - FRAME_OVERHEAD;

/** Server error codes that refuse a registration (the socket is then closed with 4003). */
const REGISTER_REFUSALS = new Set(['bad_signature', 'already_registered', 'server_full']);

/** Tag signed before the relay's peer id and the token challenge (docs/signaling.md, Tokens). */
const AUTH_TAG = 'darkswap-relay/v1/auth-token';
/** Subprotocol offered on `/signaling` beside the token, and the one the server selects. */
const WS_PROTOCOL = 'darkswap.v1';
/** A token travels as the subprotocol `darkswap-token.<jwt>`: browsers cannot set headers on a WebSocket. */
const WS_TOKEN_PROTOCOL_PREFIX = 'darkswap-token.';
/** Close code: invalid, expired or revoked token, or a role that may not register. */
const CLOSE_UNAUTHORIZED = 4004;
/** Close code: refused by a connection limit; retry later. */
const CLOSE_TRY_AGAIN_LATER = 1013;
/** Bound of one `/auth/*` request. */
const AUTH_TIMEOUT_MS = 15_000;
/** Share of a token's lifetime after which `auth: 'auto'` refreshes it. */
const TOKEN_REFRESH_AT = 0.75;
/** Backoff of a refresh that failed for a transient reason (network, 429, 5xx). */
const TOKEN_RETRY_MIN_MS = 1_000;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Guards the WebRtcConnection constructor: connections are made by the manager only. */
const INTERNAL = Symbol('darkswap-relay-client.internal');

// ───────────────────────────── types ─────────────────────────────

/**
 * Error raised by this module: a standard `Error` with a machine-readable `code`
 * (a server error code from docs/signaling.md such as `bad_signature`, or one of
 * this client's: `closed`, `signaling_unavailable`, `unknown_peer`, `invalid_peer`,
 * `ice_timeout`, `ice_failed`, `channel_closed`, `webrtc_error`, `circuit_rejected`,
 * `circuit_timeout`, `circuit_closed`, `relay_closed`, `relay_unavailable`,
 * `peer_left`, `signaling_closed`, `replaced`, `not_open`, `message_too_large`,
 * `send_queue_full`), or, on a relayed circuit, an end-to-end encryption failure
 * (`e2e_bad_signature`, `e2e_authentication_failed`, `e2e_replay`,
 * `e2e_protocol_error`, ... see ./darkswap-e2e.js), which closes the connection.
 * @typedef {Error & { code: string }} DarkSwapError
 */

/**
 * Options of {@link WebRtcConnectionManager}.
 * @typedef {object} ManagerOptions
 * @property {string} signalingUrl `ws(s)://host:port/signaling`.
 * @property {string} [relayUrl] `/relay` endpoint; default: `signalingUrl` with `/signaling` replaced by `/relay`.
 * @property {CryptoKeyPair} [identity] WebCrypto Ed25519 key pair to use instead of the stored one.
 * @property {string | null} [storageKey] IndexedDB key of the persisted identity (default `'darkswap-identity'`); `null` = ephemeral identity.
 * @property {RTCConfiguration} [rtcConfig] Passed to every `RTCPeerConnection` (default `{ iceServers: [] }`).
 * @property {number} [iceTimeoutMs] How long a WebRTC attempt may take before falling back to a relayed circuit (default 5000).
 * @property {(peerId: string) => boolean} [acceptRelayed] Whether to accept an incoming relayed circuit from that peer (default: accept all).
 * @property {boolean} [autoReconnect] Reconnect the signaling socket and lost connections automatically (default true).
 * @property {number} [pingIntervalMs] Keep-alive interval on `/signaling` and on relayed circuits (default 20000).
 * @property {'none' | 'auto' | TokenProvider} [auth] How the `/signaling` socket is authorised (docs/signaling.md, Tokens):
 *   `'none'` (default) shows no token, as on an open relay; `'auto'` earns a token from the relay's token
 *   service with the identity key before connecting, refreshes it before it expires and earns a new one
 *   when it has expired; a function is called for the token to show before every new socket.
 * @property {string} [authUrl] Base of the token service; default: `signalingUrl` with `ws(s):` → `http(s):` and `/signaling` → `/auth`.
 */

/**
 * Supplies the token a new `/signaling` socket shows (for tokens obtained
 * elsewhere, e.g. minted with `darkswap-relay token issue`). Called before
 * every socket; a token the relay refuses right away is not asked for again.
 * @callback TokenProvider
 * @param {{ peerId: string }} request
 * @returns {string | Promise<string>}
 */

/**
 * A token held by the manager, with when to replace it (`performance.now()` ms).
 * @typedef {RelayToken & { refreshAt: number, deadline: number }} HeldToken
 */

/**
 * Result of {@link WebRtcConnection#getQuality}.
 * @typedef {object} ConnectionQuality
 * @property {'direct' | 'relayed'} path
 * @property {number | null} rtt Round-trip time in milliseconds, `null` if unknown.
 */

/**
 * @typedef {'connecting' | 'open' | 'closed'} ConnectionState
 * @typedef {'direct' | 'relayed'} ConnectionPath
 * @typedef {'connecting' | 'open' | 'closed'} SignalingState
 */

/**
 * Internal: what a connection needs from its manager.
 * @typedef {object} ConnectionContext
 * @property {() => string} localPeerId
 * @property {() => CryptoKeyPair | null} identity
 * @property {RTCConfiguration} rtcConfig
 * @property {number} iceTimeoutMs
 * @property {number} pingIntervalMs
 * @property {string} relayUrl
 * @property {(message: Record<string, unknown>) => boolean} sendSignal
 * @property {(conn: WebRtcConnection, relay: RelayAttempt) => boolean} requestCircuit
 * @property {(circuitId: string, conn: WebRtcConnection) => void} bindCircuit
 * @property {(circuitId: string, conn: WebRtcConnection) => void} unbindCircuit
 * @property {(conn: WebRtcConnection, change: StateChange) => void} stateChanged
 * @property {(conn: WebRtcConnection, message: unknown) => void} deliver
 * @property {(code: string, message: string) => void} error
 */

/**
 * @typedef {object} StateChange
 * @property {boolean} wasOpen
 * @property {boolean} intentional the connection was closed on purpose by this side
 * @property {string} [code]
 */

/**
 * @typedef {object} DirectAttempt
 * @property {RTCPeerConnection} pc
 * @property {RTCDataChannel | null} dc
 * @property {string | undefined} session
 * @property {boolean} offerer
 * @property {boolean} remoteSet remote description applied
 * @property {boolean} localSent offer/answer sent (local candidates may follow)
 * @property {RTCIceCandidateInit[]} remoteCandidates received before `remoteSet`
 * @property {(RTCIceCandidateInit | null)[]} localCandidates gathered before `localSent`
 * @property {number} gathered local candidates gathered so far
 * @property {ReturnType<typeof setTimeout> | null} timer
 */

/**
 * @typedef {object} RelayAttempt
 * @property {boolean} requester this side sent the circuit_request
 * @property {string | null} circuitId
 * @property {WebSocket | null} ws
 * @property {ReturnType<typeof setTimeout> | null} timer
 * @property {Promise<E2eHandshake> | null} handshake ours, made when the server says `open`
 * @property {import('./darkswap-e2e.js').E2eSession | null} session once the peer's handshake verified
 * @property {Promise<void>} inbound binary frames are handled one after the other, in order
 */

/**
 * @template T
 * @typedef {{ promise: Promise<T>, resolve: (value: T) => void, reject: (error: Error) => void }} Deferred
 */

// ───────────────────────────── helpers ─────────────────────────────

/**
 * @param {string} code
 * @param {string} message
 * @returns {DarkSwapError}
 */
function makeError(code, message) {
  const error = /** @type {DarkSwapError} */ (new Error(message));
  error.code = code;
  return error;
}

/**
 * A deferred whose rejection is never reported as unhandled (callers that
 * await `promise` still see it).
 * @template T
 * @returns {Deferred<T>}
 */
function deferred() {
  /** @type {(value: T) => void} */ let resolve = () => {};
  /** @type {(error: Error) => void} */ let reject = () => {};
  /** @type {Promise<T>} */
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** @param {unknown} error */
function report(error) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(error);
  else console.error(error);
}

/** @param {unknown} error */
function describe(error) {
  return error instanceof Error ? error.message : String(error);
}

/** @param {Uint8Array[]} parts */
function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) { out.set(part, offset); offset += part.length; }
  return out;
}

/** @param {Uint8Array} bytes */
function base64Encode(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** @param {string} text @returns {Uint8Array} */
function base64Decode(text) {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

const BASE58_ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

/** Bitcoin-alphabet base58 (libp2p's `base58btc`, without multibase prefix). @param {Uint8Array} bytes */
function base58btcEncode(bytes) {
  /** @type {number[]} little-endian base-58 digits */
  const digits = [];
  for (const byte of bytes) {
    let carry = byte;
    for (let i = 0; i < digits.length; i++) {
      carry += digits[i] << 8;
      digits[i] = carry % 58;
      carry = (carry / 58) | 0;
    }
    while (carry > 0) { digits.push(carry % 58); carry = (carry / 58) | 0; }
  }
  let out = '';
  for (let i = 0; i < bytes.length && bytes[i] === 0; i++) out += '1';
  for (let i = digits.length - 1; i >= 0; i--) out += BASE58_ALPHABET[digits[i]];
  return out;
}

/**
 * Decodes bitcoin-alphabet base58; `null` if `text` is not base58.
 * @param {string} text
 * @returns {Uint8Array | null}
 */
function base58btcDecode(text) {
  /** @type {number[]} little-endian bytes */
  const bytes = [];
  for (const char of text) {
    let carry = BASE58_ALPHABET.indexOf(char);
    if (carry < 0) return null;
    for (let i = 0; i < bytes.length; i++) {
      carry += bytes[i] * 58;
      bytes[i] = carry & 0xff;
      carry >>= 8;
    }
    while (carry > 0) { bytes.push(carry & 0xff); carry >>= 8; }
  }
  let zeros = 0;
  while (zeros < text.length && text[zeros] === '1') zeros++;
  return Uint8Array.from([...new Array(zeros).fill(0), ...bytes.reverse()]);
}

/**
 * The bytes of a libp2p peer id (its multihash), as the relay signs them
 * into a token challenge; `null` if `peerId` is not one.
 * @param {unknown} peerId
 * @returns {Uint8Array | null}
 */
function peerIdBytes(peerId) {
  if (typeof peerId !== 'string' || peerId.length === 0 || peerId.length > 128) return null;
  const bytes = base58btcDecode(peerId);
  // A multihash: code, then digest length, then the digest (identity 0x00 or sha2-256 0x12).
  if (!bytes || bytes.length < 3 || (bytes[0] !== 0x00 && bytes[0] !== 0x12) || bytes[1] !== bytes.length - 2) return null;
  return bytes;
}

/** libp2p protobuf encoding of an Ed25519 public key: `08 01 12 20 || key`. @param {Uint8Array} raw */
function ed25519PublicKeyProtobuf(raw) {
  if (!(raw instanceof Uint8Array) || raw.length !== 32) {
    throw new TypeError('an Ed25519 public key is 32 raw bytes');
  }
  return concatBytes(Uint8Array.of(0x08, 0x01, 0x12, 0x20), raw);
}

/** A random URL-safe id (16 bytes of entropy). */
function randomId() {
  return base64Encode(crypto.getRandomValues(new Uint8Array(16)))
    .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** @param {unknown} value @returns {value is Record<string, unknown>} */
function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** @param {unknown} value @returns {value is string} */
function isNonEmptyString(value) {
  return typeof value === 'string' && value.length > 0;
}

/** @param {unknown} value @returns {string[]} */
function peerList(value) {
  return Array.isArray(value) ? value.filter(isNonEmptyString) : [];
}

/**
 * Encodes an outgoing message: bytes stay bytes, anything else becomes JSON text.
 * @param {unknown} message
 * @returns {{ text: string } | { bytes: Uint8Array }}
 */
function encodeMessage(message) {
  if (message instanceof Uint8Array) return { bytes: message };
  if (message instanceof ArrayBuffer) return { bytes: new Uint8Array(message) };
  if (ArrayBuffer.isView(message)) {
    return { bytes: new Uint8Array(message.buffer, message.byteOffset, message.byteLength) };
  }
  const text = JSON.stringify(message);
  if (typeof text !== 'string') throw new TypeError('message is not JSON-serialisable');
  return { text };
}

// ───────────────────────────── identity ─────────────────────────────

/**
 * Derives the libp2p peer id (`12D3KooW...`) of an Ed25519 public key: base58btc
 * of the identity multihash (`00 24`) of the key's protobuf encoding (`08 01 12 20 || key`).
 * @param {Uint8Array} rawEd25519PublicKey the 32 raw public key bytes
 * @returns {string}
 */
export function peerIdFromPublicKey(rawEd25519PublicKey) {
  const protobuf = ed25519PublicKeyProtobuf(rawEd25519PublicKey);
  return base58btcEncode(concatBytes(Uint8Array.of(0x00, protobuf.length), protobuf));
}

/** @returns {Promise<CryptoKeyPair>} */
async function generateIdentity() {
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  return /** @type {CryptoKeyPair} */ (pair);
}

/** @param {unknown} value @returns {value is CryptoKeyPair} */
function isKeyPair(value) {
  return isObject(value) && value.privateKey instanceof CryptoKey && value.publicKey instanceof CryptoKey
    && value.privateKey.algorithm.name === 'Ed25519';
}

/** @returns {Promise<IDBDatabase>} */
function openIdentityDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(IDB_NAME, 1);
    request.onupgradeneeded = () => { request.result.createObjectStore(IDB_STORE); };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB open failed'));
    request.onblocked = () => reject(new Error('IndexedDB open blocked'));
  });
}

/**
 * Loads the Ed25519 identity stored in IndexedDB under `storageKey`, or creates,
 * stores and returns a new one (non-extractable private key). Two tabs racing on
 * the same key end up with the same identity: the store is read and written in
 * one transaction. `storageKey === null` returns a fresh ephemeral identity.
 * @param {string | null} [storageKey] default `'darkswap-identity'`
 * @returns {Promise<CryptoKeyPair>}
 */
export async function loadOrCreateIdentity(storageKey = DEFAULT_STORAGE_KEY) {
  if (storageKey === null) return generateIdentity();
  const db = await openIdentityDb();
  try {
    const stored = await new Promise((resolve, reject) => {
      const request = db.transaction(IDB_STORE, 'readonly').objectStore(IDB_STORE).get(storageKey);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    if (isKeyPair(stored)) return stored;
    const fresh = await generateIdentity();
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(IDB_STORE, 'readwrite');
      const store = tx.objectStore(IDB_STORE);
      /** @type {CryptoKeyPair} */
      let result = fresh;
      const get = store.get(storageKey);
      get.onsuccess = () => {
        if (isKeyPair(get.result)) result = get.result;
        else store.put({ privateKey: fresh.privateKey, publicKey: fresh.publicKey }, storageKey);
      };
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error ?? new Error('IndexedDB write failed'));
      tx.onabort = () => reject(tx.error ?? new Error('IndexedDB write aborted'));
    });
  } finally {
    db.close();
  }
}

// ───────────────────────────── relay tokens ─────────────────────────────

/**
 * A token of the relay's token service (docs/signaling.md, Tokens). `token`
 * is a bearer credential: whoever holds it may register as its peer (with
 * that peer's key) until it expires, so keep it out of logs and URLs.
 * @typedef {object} RelayToken
 * @property {string} token the JWT
 * @property {string} role `'guest'`, `'user'` or `'admin'`
 * @property {number} expiresAt unix seconds (the relay's clock) after which the relay refuses it
 */

/**
 * Where the token service is: `authUrl` if given, else `signalingUrl` with
 * `ws(s):` → `http(s):` and `/signaling` → `/auth` (query and fragment dropped).
 * @param {{ signalingUrl?: string, authUrl?: string }} options
 * @returns {string} without a trailing slash
 */
function resolveAuthUrl({ signalingUrl, authUrl }) {
  if (isNonEmptyString(authUrl)) return authUrl.replace(/\/+$/, '');
  if (!isNonEmptyString(signalingUrl)) throw new TypeError('give signalingUrl or authUrl');
  const url = new URL(signalingUrl);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  else if (url.protocol === 'wss:') url.protocol = 'https:';
  url.pathname = `${url.pathname.replace(/\/signaling\/?$/, '').replace(/\/+$/, '')}/auth`;
  url.search = '';
  url.hash = '';
  return url.toString();
}

/**
 * @param {string} code
 * @param {string} message
 * @param {number} status HTTP status, 0 if there was no answer
 * @param {number} [retryAfterMs]
 * @returns {DarkSwapError & { status: number, retryAfterMs?: number }}
 */
function authError(code, message, status, retryAfterMs) {
  const error = /** @type {DarkSwapError & { status: number, retryAfterMs?: number }} */ (makeError(code, message));
  error.status = status;
  if (retryAfterMs !== undefined) error.retryAfterMs = retryAfterMs;
  return error;
}

/**
 * A failure worth retrying later: no answer, rate limited, or a server error.
 * @param {unknown} error
 */
function isTransientAuthError(error) {
  const e = /** @type {{ code?: unknown, status?: unknown }} */ (error);
  return e?.code === 'auth_unavailable' || e?.code === 'rate_limited'
    || (typeof e?.status === 'number' && e.status >= 500);
}

/**
 * One `POST` to the token service. Errors carry the service's code
 * (`bad_proof`, `unknown_challenge`, `expired`, `revoked`, `rate_limited`, ...),
 * `auth_unavailable` when there is no answer, or `auth_protocol_error`.
 * @param {string} base
 * @param {'challenge' | 'token' | 'refresh'} endpoint
 * @param {Record<string, unknown> | null} body
 * @param {string} [bearer]
 * @returns {Promise<Record<string, unknown>>}
 */
async function authRequest(base, endpoint, body, bearer) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (body !== null) headers['content-type'] = 'application/json';
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), AUTH_TIMEOUT_MS);
  /** @type {Response} */
  let response;
  /** @type {string} */
  let text;
  try {
    // No cookies or other ambient credentials: a token is earned by signature only.
    response = await fetch(`${base}/${endpoint}`, {
      method: 'POST', headers, body: body === null ? undefined : JSON.stringify(body),
      signal: controller.signal, credentials: 'omit', referrerPolicy: 'no-referrer',
    });
    text = await response.text();
  } catch (error) {
    const why = controller.signal.aborted ? `no answer within ${AUTH_TIMEOUT_MS} ms` : describe(error);
    throw authError('auth_unavailable', `/auth/${endpoint}: ${why}`, 0);
  } finally {
    clearTimeout(timer);
  }
  /** @type {unknown} */
  let json = null;
  try { json = JSON.parse(text); } catch { /* reported below */ }
  if (!response.ok) {
    const detail = isObject(json) && isObject(json.error) ? json.error : {};
    const code = isNonEmptyString(detail.code) ? detail.code : `http_${response.status}`;
    const message = typeof detail.message === 'string' ? detail.message : `HTTP ${response.status}`;
    const seconds = Number(response.headers.get('retry-after'));
    const retryAfterMs = Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 3600) * 1000 : undefined;
    throw authError(code, `/auth/${endpoint}: ${message}`, response.status, retryAfterMs);
  }
  if (!isObject(json)) throw authError('auth_protocol_error', `/auth/${endpoint}: the answer is not a JSON object`, response.status);
  return json;
}

/**
 * @param {Record<string, unknown>} answer
 * @returns {RelayToken}
 */
function relayTokenFrom(answer) {
  const { token, role, expires_at: expiresAt } = answer;
  if (!isNonEmptyString(token) || !isNonEmptyString(role) || typeof expiresAt !== 'number') {
    throw authError('auth_protocol_error', 'the token answer lacks token, role or expires_at', 200);
  }
  return { token, role, expiresAt };
}

/**
 * Earns a token from the relay's token service: asks `/auth/challenge` for a
 * challenge, signs `"darkswap-relay/v1/auth-token" || relay peer id bytes ||
 * challenge` with the identity key, and trades the signature at `/auth/token`.
 * The token's role is whatever the relay's configuration gives this peer id.
 * Rejects with a {@link DarkSwapError} whose `code` is the service's
 * (`bad_proof`, `unknown_challenge`, `rate_limited` with `retryAfterMs`, ...)
 * or `auth_unavailable`. Never logs the token.
 * @param {{ signalingUrl?: string, authUrl?: string, identity: CryptoKeyPair }} options
 *   `identity` is the WebCrypto Ed25519 key pair the client registers with;
 *   `authUrl` defaults to `signalingUrl` with `ws(s):` → `http(s):` and `/signaling` → `/auth`.
 * @returns {Promise<RelayToken>}
 */
export async function fetchRelayToken(options) {
  if (!isObject(options) || !isKeyPair(options.identity)) {
    throw new TypeError('fetchRelayToken needs { signalingUrl or authUrl, identity: Ed25519 CryptoKeyPair }');
  }
  const base = resolveAuthUrl(options);
  const { identity } = options;
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', identity.publicKey));
  const peerId = peerIdFromPublicKey(raw);
  const issued = await authRequest(base, 'challenge', { peer_id: peerId });
  const relay = peerIdBytes(issued.relay_peer_id);
  /** @type {Uint8Array | null} */
  let challenge = null;
  try { challenge = typeof issued.challenge === 'string' ? base64Decode(issued.challenge) : null; } catch { /* below */ }
  if (!relay || !challenge || challenge.length === 0) {
    throw authError('auth_protocol_error', '/auth/challenge: the answer lacks a challenge or a relay peer id', 200);
  }
  const signed = concatBytes(textEncoder.encode(AUTH_TAG), relay, challenge);
  const signature = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, identity.privateKey, signed));
  return relayTokenFrom(await authRequest(base, 'token', {
    peer_id: peerId,
    public_key: base64Encode(ed25519PublicKeyProtobuf(raw)),
    challenge: issued.challenge,
    signature: base64Encode(signature),
  }));
}

/**
 * Trades a valid token for a fresh one (`POST /auth/refresh`); the relay
 * revokes the old one, which closes a `/signaling` socket that showed it.
 * Rejects like {@link fetchRelayToken} (`expired`, `revoked`, ... once the
 * old token is no longer valid: earn a new one then).
 * @param {{ signalingUrl?: string, authUrl?: string, token: string }} options
 * @returns {Promise<RelayToken>}
 */
export async function refreshRelayToken(options) {
  if (!isObject(options) || !isNonEmptyString(options.token)) {
    throw new TypeError('refreshRelayToken needs { signalingUrl or authUrl, token }');
  }
  return relayTokenFrom(await authRequest(resolveAuthUrl(options), 'refresh', null, options.token));
}

/**
 * Lifetime of a token in ms from its own claims (`exp - nbf`), so that
 * scheduling does not depend on this machine's clock agreeing with the
 * relay's; falls back to `expiresAt` against the local clock.
 * @param {RelayToken} relayToken
 */
function tokenLifetimeMs({ token, expiresAt }) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(textDecoder.decode(base64Decode(payload.padEnd(Math.ceil(payload.length / 4) * 4, '='))));
    if (typeof claims.exp === 'number' && typeof claims.nbf === 'number' && claims.exp >= claims.nbf) {
      return (claims.exp - claims.nbf) * 1000;
    }
  } catch { /* not a JWT we can read: use expiresAt */ }
  return Math.max(0, expiresAt * 1000 - Date.now());
}

/** Characters a WebSocket subprotocol may hold (an RFC 7230 token). */
const SUBPROTOCOL_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

// ───────────────────────────── connection ─────────────────────────────

/**
 * A connection to one remote peer, direct (WebRTC data channel) or relayed
 * (circuit through the relay's `/relay` endpoint). Created by
 * {@link WebRtcConnectionManager}; never construct it yourself.
 */
export class WebRtcConnection {
  /** Remote peer id. @readonly @type {string} */
  peerId;
  /** Transport currently in use (or being tried while `connecting`). @type {ConnectionPath} */
  path = 'direct';
  /** @type {ConnectionState} */
  state = 'connecting';
  /** True if this side started the connection (sent the offer or circuit request that made it). @type {boolean} */
  initiator;
  /** Last measured round-trip time in milliseconds, or `null`. @type {number | null} */
  rtt = null;

  /** @internal @type {ConnectionContext} */ _ctx;
  /** @internal @type {Deferred<WebRtcConnection>} */ _ready = deferred();
  /** @internal @type {DirectAttempt | null} */ _direct = null;
  /** @internal @type {RelayAttempt | null} */ _relay = null;
  /** @internal @type {ReturnType<typeof setInterval> | null} */ _keepAlive = null;
  /** @internal @type {Map<string, { sentAt: number, resolve: (rtt: number | null) => void, timer: ReturnType<typeof setTimeout> }>} */
  _pings = new Map();
  /** @internal @type {Promise<void>} tail of the send queue */ _sendQueue = Promise.resolve();
  /** @internal */ _queuedSends = 0;

  /**
   * @internal
   * @param {symbol} token
   * @param {string} peerId
   * @param {boolean} initiator
   * @param {ConnectionContext} ctx
   */
  constructor(token, peerId, initiator, ctx) {
    if (token !== INTERNAL) throw new TypeError('WebRtcConnection is created by WebRtcConnectionManager');
    this.peerId = peerId;
    this.initiator = initiator;
    this._ctx = ctx;
  }

  /**
   * Sends one message: a `Uint8Array`, `ArrayBuffer` or typed array as binary,
   * anything else as JSON. Waits while the transport's send buffer is full.
   * @param {unknown} message
   * @returns {Promise<void>}
   */
  send(message) {
    /** @type {ReturnType<typeof encodeMessage>} */
    let encoded;
    try { encoded = encodeMessage(message); } catch (error) { return Promise.reject(error); }
    if (this.state !== 'open') return Promise.reject(makeError('not_open', `connection to ${this.peerId} is ${this.state}`));
    if (this._queuedSends >= MAX_QUEUED_SENDS) {
      return Promise.reject(makeError('send_queue_full', `${MAX_QUEUED_SENDS} messages already wait to be sent`));
    }
    // One send at a time, so that messages waiting for buffer space keep their order.
    this._queuedSends++;
    const sent = this._sendQueue.then(() => this._sendNow(encoded));
    this._sendQueue = sent.then(() => { this._queuedSends--; }, () => { this._queuedSends--; });
    return sent;
  }

  /**
   * @internal
   * @param {ReturnType<typeof encodeMessage>} encoded
   */
  async _sendNow(encoded) {
    if (this.state !== 'open') throw makeError('not_open', `connection to ${this.peerId} is ${this.state}`);
    if (this._direct?.dc) {
      const dc = this._direct.dc;
      const size = 'bytes' in encoded ? encoded.bytes.byteLength : textEncoder.encode(encoded.text).byteLength;
      const limit = this._direct.pc.sctp?.maxMessageSize ?? 0;
      if (limit > 0 && size > limit) throw makeError('message_too_large', `${size} bytes exceed ${limit}`);
      await this._drainDataChannel(dc);
      if (this.state !== 'open' || dc.readyState !== 'open') throw makeError('not_open', 'connection closed');
      if ('bytes' in encoded) dc.send(/** @type {Uint8Array<ArrayBuffer>} */ (encoded.bytes));
      else dc.send(encoded.text);
      return;
    }
    const relay = this._relay;
    const ws = relay?.ws;
    if (!relay || !ws || !relay.session) throw makeError('not_open', 'connection closed');
    const inner = 'bytes' in encoded
      ? concatBytes(Uint8Array.of(KIND_BINARY), encoded.bytes)
      : concatBytes(Uint8Array.of(KIND_JSON), textEncoder.encode(encoded.text));
    if (inner.byteLength > MAX_SEALED_PLAINTEXT) {
      throw makeError('message_too_large', `${inner.byteLength} bytes exceed ${MAX_SEALED_PLAINTEXT}`);
    }
    await this._drainWebSocket(ws);
    if (this.state !== 'open' || ws.readyState !== WebSocket.OPEN) throw makeError('not_open', 'connection closed');
    const frame = await this._seal(relay, inner);
    if (this._relay !== relay || ws.readyState !== WebSocket.OPEN) throw makeError('not_open', 'connection closed');
    ws.send(frame);
  }

  /**
   * @internal Encrypts one plaintext frame (kind byte + body) for the circuit.
   * @param {RelayAttempt} relay
   * @param {Uint8Array} inner
   * @returns {Promise<Uint8Array>}
   */
  async _seal(relay, inner) {
    const session = relay.session;
    if (!session) throw makeError('not_open', 'no end-to-end session');
    return concatBytes(Uint8Array.of(KIND_SEALED), await session.encrypt(inner));
  }

  /**
   * @internal Encrypts and sends a control frame (ping, pong) if the circuit is still up.
   * @param {Uint8Array} inner
   */
  _sendSealed(inner) {
    const relay = this._relay;
    if (!relay?.session) return;
    this._seal(relay, inner).then((frame) => {
      if (this._relay === relay && relay.ws?.readyState === WebSocket.OPEN) relay.ws.send(frame);
    }, (error) => this._e2eFailed(relay, error));
  }

  /**
   * Measures the connection: for a direct connection the `currentRoundTripTime`
   * of the selected ICE candidate pair, for a relayed one a ping/pong over the
   * circuit. Updates {@link WebRtcConnection#rtt}.
   * @returns {Promise<ConnectionQuality>}
   */
  async getQuality() {
    if (this.state === 'open') {
      if (this._direct) {
        const rtt = await selectedPairRtt(this._direct.pc);
        if (rtt !== null) this.rtt = rtt;
      } else if (this._relay) {
        const rtt = await this._pingRelay();
        if (rtt !== null) this.rtt = rtt;
      }
    }
    return { path: this.path, rtt: this.rtt };
  }

  /**
   * Closes this connection on purpose (a relayed circuit is closed with
   * `circuit_close`). Same as `manager.closeConnection(peerId)`.
   * @returns {Promise<void>}
   */
  async close() {
    this._close({ intentional: true, code: 'closed', message: 'closed locally' });
  }

  // ── direct path ──

  /** @internal Starts a WebRTC attempt as the offering side. */
  async _startOffer() {
    this._teardownAttempt();
    this._setPath('direct');
    /** @type {DirectAttempt} */
    let attempt;
    try {
      attempt = this._newDirectAttempt(true, randomId());
      this._bindDataChannel(attempt, attempt.pc.createDataChannel(DATA_CHANNEL_LABEL));
    } catch {
      // No usable WebRTC here (disabled, invalid rtcConfig): go straight to a circuit.
      this._startCircuitRequest();
      return;
    }
    const { pc } = attempt;
    try {
      await pc.setLocalDescription(await pc.createOffer());
      if (this._direct !== attempt) return;
      this._sendDescription(attempt, 'offer');
    } catch (error) {
      if (this._direct === attempt) this._directFailed(attempt, 'webrtc_error', describe(error));
    }
  }

  /**
   * @internal Answers an incoming offer, replacing whatever attempt is pending.
   * @param {string} sdp
   * @param {string | undefined} session
   */
  async _acceptOffer(sdp, session) {
    this._teardownAttempt();
    this.initiator = false;
    this._setPath('direct');
    /** @type {DirectAttempt} */
    let attempt;
    try {
      attempt = this._newDirectAttempt(false, session);
    } catch (error) {
      this._close({ intentional: false, code: 'webrtc_error', message: describe(error) });
      return;
    }
    const { pc } = attempt;
    pc.ondatachannel = (event) => {
      if (this._direct !== attempt || event.channel.label !== DATA_CHANNEL_LABEL || attempt.dc) {
        event.channel.close();
        return;
      }
      this._bindDataChannel(attempt, event.channel);
    };
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      if (this._direct !== attempt) return;
      attempt.remoteSet = true;
      await this._flushRemoteCandidates(attempt);
      if (this._direct !== attempt) return;
      await pc.setLocalDescription(await pc.createAnswer());
      if (this._direct !== attempt) return;
      this._sendDescription(attempt, 'answer');
    } catch (error) {
      if (this._direct === attempt) this._directFailed(attempt, 'webrtc_error', describe(error));
    }
  }

  /**
   * @internal
   * @param {string} sdp
   * @param {string | undefined} session
   */
  async _handleAnswer(sdp, session) {
    const attempt = this._direct;
    if (!attempt || !attempt.offerer || attempt.remoteSet || attempt.session !== session) return;
    if (attempt.pc.signalingState !== 'have-local-offer') return;
    try {
      attempt.remoteSet = true;
      await attempt.pc.setRemoteDescription({ type: 'answer', sdp });
      if (this._direct !== attempt) return;
      await this._flushRemoteCandidates(attempt);
    } catch (error) {
      if (this._direct === attempt) this._directFailed(attempt, 'webrtc_error', describe(error));
    }
  }

  /**
   * @internal
   * @param {unknown} candidate `RTCIceCandidateInit` or `null` (end of candidates)
   * @param {string | undefined} session
   */
  async _handleCandidate(candidate, session) {
    const attempt = this._direct;
    if (!attempt || attempt.session !== session || !isObject(candidate)) return;
    const init = /** @type {RTCIceCandidateInit} */ (candidate);
    if (!attempt.remoteSet) {
      if (attempt.remoteCandidates.length < MAX_PENDING_CANDIDATES) attempt.remoteCandidates.push(init);
      return;
    }
    try {
      await attempt.pc.addIceCandidate(init);
    } catch {
      // A candidate the browser cannot use (other address family, stale ufrag): skip it.
    }
  }

  /** @internal @param {DirectAttempt} attempt */
  async _flushRemoteCandidates(attempt) {
    while (attempt.remoteCandidates.length > 0 && this._direct === attempt) {
      const init = /** @type {RTCIceCandidateInit} */ (attempt.remoteCandidates.shift());
      try { await attempt.pc.addIceCandidate(init); } catch { /* skip unusable candidate */ }
    }
  }

  /**
   * @internal
   * @param {boolean} offerer
   * @param {string | undefined} session
   * @returns {DirectAttempt}
   */
  _newDirectAttempt(offerer, session) {
    const pc = new RTCPeerConnection(this._ctx.rtcConfig);
    /** @type {DirectAttempt} */
    const attempt = {
      pc, dc: null, session, offerer, remoteSet: false, localSent: false,
      remoteCandidates: [], localCandidates: [], gathered: 0, timer: null,
    };
    this._direct = attempt;
    const timeout = this._ctx.iceTimeoutMs + (offerer ? 0 : ANSWERER_GRACE_MS);
    attempt.timer = setTimeout(() => {
      attempt.timer = null;
      if (this._direct === attempt && this.state === 'connecting') {
        this._directFailed(attempt, 'ice_timeout', `no data channel within ${timeout} ms`);
      }
    }, timeout);
    pc.onicecandidate = (event) => {
      if (this._direct !== attempt) return;
      const candidate = event.candidate ? event.candidate.toJSON() : null;
      if (candidate) attempt.gathered++;
      if (attempt.localSent) this._sendCandidate(attempt, candidate);
      else if (attempt.localCandidates.length < MAX_PENDING_CANDIDATES) attempt.localCandidates.push(candidate);
    };
    pc.onicegatheringstatechange = () => {
      // With no local candidate at all (e.g. iceTransportPolicy 'relay' and no
      // TURN server) WebRTC cannot succeed: the offering side falls back now.
      if (this._direct === attempt && pc.iceGatheringState === 'complete' && attempt.gathered === 0
        && attempt.offerer && this.state === 'connecting') {
        this._directFailed(attempt, 'no_candidates', 'no local ICE candidate');
      }
    };
    pc.onconnectionstatechange = () => {
      if (this._direct !== attempt) return;
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') {
        this._directFailed(attempt, 'ice_failed', `peer connection ${pc.connectionState}`);
      }
    };
    return attempt;
  }

  /**
   * @internal
   * @param {DirectAttempt} attempt
   * @param {'offer' | 'answer'} type
   */
  _sendDescription(attempt, type) {
    const sdp = attempt.pc.localDescription?.sdp ?? '';
    /** @type {Record<string, unknown>} */
    const message = { type, to: this.peerId, sdp };
    if (attempt.session !== undefined) message.session = attempt.session;
    if (!this._ctx.sendSignal(message)) {
      this._directFailed(attempt, 'signaling_unavailable', `cannot send ${type}: signaling is not connected`);
      return;
    }
    attempt.localSent = true;
    for (const candidate of attempt.localCandidates.splice(0)) this._sendCandidate(attempt, candidate);
  }

  /**
   * @internal
   * @param {DirectAttempt} attempt
   * @param {RTCIceCandidateInit | null} candidate
   */
  _sendCandidate(attempt, candidate) {
    /** @type {Record<string, unknown>} */
    const message = { type: 'candidate', to: this.peerId, candidate };
    if (attempt.session !== undefined) message.session = attempt.session;
    this._ctx.sendSignal(message);
  }

  /**
   * @internal
   * @param {DirectAttempt} attempt
   * @param {RTCDataChannel} dc
   */
  _bindDataChannel(attempt, dc) {
    attempt.dc = dc;
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = SEND_LOW_WATER;
    dc.onopen = () => {
      if (this._direct === attempt && this.state === 'connecting') this._becomeOpen();
    };
    dc.onclose = () => {
      if (this._direct === attempt) this._directFailed(attempt, 'channel_closed', 'data channel closed');
    };
    dc.onmessage = (event) => {
      if (this._direct !== attempt || this.state !== 'open') return;
      if (typeof event.data === 'string') {
        let message;
        try { message = JSON.parse(event.data); } catch {
          this._ctx.error('invalid_payload', `non-JSON text from ${this.peerId}`);
          return;
        }
        this._ctx.deliver(this, message);
      } else if (event.data instanceof ArrayBuffer) {
        this._ctx.deliver(this, new Uint8Array(event.data));
      }
    };
    if (dc.readyState === 'open' && this.state === 'connecting') this._becomeOpen();
  }

  /**
   * @internal A WebRTC attempt could not (or can no longer) carry the connection.
   * @param {DirectAttempt} attempt
   * @param {string} code
   * @param {string} message
   */
  _directFailed(attempt, code, message) {
    if (this._direct !== attempt) return;
    if (this.state === 'open') {
      this._close({ intentional: false, code, message });
    } else if (this.state === 'connecting') {
      if (attempt.offerer && code !== 'signaling_unavailable') this._startCircuitRequest();
      else this._close({ intentional: false, code, message });
    }
  }

  /** @internal @param {RTCDataChannel} dc */
  async _drainDataChannel(dc) {
    if (dc.bufferedAmount <= SEND_HIGH_WATER) return;
    await new Promise((resolve) => {
      const done = () => {
        dc.removeEventListener('bufferedamountlow', done);
        dc.removeEventListener('close', done);
        resolve(undefined);
      };
      dc.addEventListener('bufferedamountlow', done);
      dc.addEventListener('close', done);
    });
  }

  // ── relayed path ──

  /** @internal Falls back to (or starts) a relayed circuit as the requesting side. */
  _startCircuitRequest() {
    this._teardownAttempt();
    /** @type {RelayAttempt} */
    const relay = newRelayAttempt(true, null);
    this._relay = relay;
    this._setPath('relayed');
    this._armCircuitTimer(relay);
    if (!this._ctx.requestCircuit(this, relay)) {
      this._close({ intentional: false, code: 'signaling_unavailable', message: 'cannot request a circuit' });
    }
  }

  /**
   * @internal The server acknowledged our circuit_request.
   * @param {RelayAttempt} relay
   * @param {string} circuitId
   * @returns {boolean} false if this attempt no longer wants the circuit
   */
  _circuitPending(relay, circuitId) {
    if (this._relay !== relay || relay.circuitId !== null || this.state !== 'connecting') return false;
    relay.circuitId = circuitId;
    this._ctx.bindCircuit(circuitId, this);
    return true;
  }

  /**
   * @internal Accepts an incoming circuit, replacing whatever attempt is pending.
   * @param {string} circuitId
   */
  _acceptCircuit(circuitId) {
    this._teardownAttempt();
    this.initiator = false;
    /** @type {RelayAttempt} */
    const relay = newRelayAttempt(false, circuitId);
    this._relay = relay;
    this._setPath('relayed');
    this._ctx.bindCircuit(circuitId, this);
    this._armCircuitTimer(relay);
    if (!this._ctx.sendSignal({ type: 'circuit_accept', circuit_id: circuitId })) {
      this._close({ intentional: false, code: 'signaling_unavailable', message: 'cannot accept the circuit' });
    }
  }

  /** @internal @param {RelayAttempt} relay */
  _armCircuitTimer(relay) {
    relay.timer = setTimeout(() => {
      relay.timer = null;
      if (this._relay === relay && this.state === 'connecting') {
        this._close({ intentional: false, code: 'circuit_timeout', message: `circuit not open within ${CIRCUIT_TIMEOUT_MS} ms` });
      }
    }, CIRCUIT_TIMEOUT_MS);
  }

  /**
   * @internal `circuit_ready`: attach to `/relay` with our token.
   * @param {string} circuitId
   * @param {string} token
   */
  _circuitReady(circuitId, token) {
    const relay = this._relay;
    if (!relay || relay.circuitId !== circuitId || relay.ws || this.state !== 'connecting') return;
    /** @type {WebSocket} */
    let ws;
    try {
      ws = new WebSocket(this._ctx.relayUrl);
    } catch (error) {
      this._close({ intentional: false, code: 'relay_unavailable', message: describe(error) });
      return;
    }
    relay.ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      if (this._relay === relay) ws.send(JSON.stringify({ type: 'attach', circuit_id: circuitId, token }));
    };
    ws.onmessage = (event) => {
      if (this._relay !== relay) return;
      if (typeof event.data === 'string') {
        this._onRelayControl(relay, event.data);
      } else if (event.data instanceof ArrayBuffer) {
        // The server forwards binary frames only once the circuit is open, so
        // a frame racing ahead of the `open` text still starts our handshake.
        if (!relay.handshake && this.state === 'connecting') this._startHandshake(relay);
        const frame = new Uint8Array(event.data);
        relay.inbound = relay.inbound.then(() => this._onRelayBinary(relay, frame));
      }
    };
    ws.onclose = (event) => {
      if (this._relay !== relay) return;
      relay.ws = null;
      const reason = event.reason || `close code ${event.code}`;
      this._close({ intentional: false, code: event.code === 4010 ? 'circuit_closed' : 'relay_closed', message: reason });
    };
    ws.onerror = () => { /* a close event follows */ };
  }

  /**
   * @internal Text frames on `/relay`: `attached`, `open`, `error`.
   * @param {RelayAttempt} relay
   * @param {string} text
   */
  _onRelayControl(relay, text) {
    let message;
    try { message = JSON.parse(text); } catch { return; }
    if (!isObject(message)) return;
    if (message.type === 'open' && this.state === 'connecting' && !relay.handshake) {
      this._startHandshake(relay);
    } else if (message.type === 'error') {
      this._ctx.error(String(message.code ?? 'relay_error'), String(message.message ?? 'relay error'));
    }
  }

  /**
   * @internal Both ends are attached: send our signed key. The connection opens
   * when the peer's verifies (`_onRelayBinary`).
   * @param {RelayAttempt} relay
   */
  _startHandshake(relay) {
    const identity = this._ctx.identity();
    if (!identity) {
      this._close({ intentional: false, code: 'e2e_unavailable', message: 'no identity key' });
      return;
    }
    relay.handshake = E2eHandshake.create({ identity, localPeerId: this._ctx.localPeerId(), remotePeerId: this.peerId });
    relay.handshake.then((handshake) => {
      const ws = relay.ws;
      if (this._relay === relay && ws?.readyState === WebSocket.OPEN) {
        ws.send(concatBytes(Uint8Array.of(KIND_HANDSHAKE), handshake.signedKey));
      }
    }, (error) => this._e2eFailed(relay, error));
  }

  /**
   * @internal One binary frame from the circuit: the peer's handshake first,
   * then only SEALED frames. Anything else means the relay (or the peer)
   * breaks the protocol, and closes the connection.
   * @param {RelayAttempt} relay
   * @param {Uint8Array} frame
   */
  async _onRelayBinary(relay, frame) {
    if (this._relay !== relay || !relay.handshake || frame.length === 0) return;
    const kind = frame[0];
    const body = frame.subarray(1);
    try {
      if (!relay.session) {
        if (kind !== KIND_HANDSHAKE) throw new E2eError('e2e_protocol_error', `frame kind ${kind} before the handshake`);
        const session = await (await relay.handshake).accept(body);
        if (this._relay !== relay) return;
        relay.session = session;
        if (this.state === 'connecting') this._becomeOpen();
        return;
      }
      if (kind !== KIND_SEALED) throw new E2eError('e2e_protocol_error', `unencrypted frame of kind ${kind}`);
      const inner = await relay.session.decrypt(body);
      if (this._relay === relay && this.state === 'open') this._onRelayFrame(inner);
    } catch (error) {
      this._e2eFailed(relay, error);
    }
  }

  /**
   * @internal End-to-end encryption failed on this circuit: report and close.
   * @param {RelayAttempt} relay
   * @param {unknown} error
   */
  _e2eFailed(relay, error) {
    if (this._relay !== relay) return;
    const code = error instanceof E2eError ? error.code : 'e2e_unavailable';
    const message = `end-to-end encryption with ${this.peerId}: ${describe(error)}`;
    this._ctx.error(code, message);
    this._close({ intentional: false, code, message });
  }

  /** @internal A decrypted frame: kind byte, then the payload. @param {Uint8Array} frame */
  _onRelayFrame(frame) {
    if (frame.length === 0) return;
    const kind = frame[0];
    const body = frame.subarray(1);
    if (kind === KIND_JSON) {
      let message;
      try { message = JSON.parse(textDecoder.decode(body)); } catch {
        this._ctx.error('invalid_payload', `malformed JSON frame from ${this.peerId}`);
        return;
      }
      this._ctx.deliver(this, message);
    } else if (kind === KIND_BINARY) {
      this._ctx.deliver(this, body.slice());
    } else if (kind === KIND_PING) {
      const ws = this._relay?.ws;
      if (ws && ws.readyState === WebSocket.OPEN && ws.bufferedAmount < SEND_HIGH_WATER) {
        this._sendSealed(concatBytes(Uint8Array.of(KIND_PONG), body.subarray(0, 8)));
      }
    } else if (kind === KIND_PONG) {
      const key = base64Encode(body.subarray(0, 8));
      const ping = this._pings.get(key);
      if (ping) {
        this._pings.delete(key);
        clearTimeout(ping.timer);
        ping.resolve(performance.now() - ping.sentAt);
      }
    }
    // Unknown kinds are ignored (forward compatibility).
  }

  /** @internal Sends a ping on the circuit; resolves with the RTT or `null` on timeout. @returns {Promise<number | null>} */
  _pingRelay() {
    const ws = this._relay?.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.state !== 'open') return Promise.resolve(null);
    if (this._pings.size >= MAX_OUTSTANDING_PINGS) {
      const [oldestKey, oldest] = this._pings.entries().next().value ?? [];
      if (oldestKey !== undefined && oldest) {
        this._pings.delete(oldestKey);
        clearTimeout(oldest.timer);
        oldest.resolve(null);
      }
    }
    const nonce = crypto.getRandomValues(new Uint8Array(8));
    const key = base64Encode(nonce);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this._pings.delete(key)) resolve(null);
      }, RELAY_PING_TIMEOUT_MS);
      this._pings.set(key, { sentAt: performance.now(), resolve, timer });
      this._sendSealed(concatBytes(Uint8Array.of(KIND_PING), nonce));
    });
  }

  /** @internal @param {WebSocket} ws */
  async _drainWebSocket(ws) {
    while (ws.bufferedAmount > SEND_HIGH_WATER && ws.readyState === WebSocket.OPEN && this.state === 'open') {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }
  }

  /**
   * @internal The server closed our circuit (`circuit_closed`).
   * @param {string} reason
   */
  _circuitClosedByServer(reason) {
    if (!this._relay) return;
    this._relay.circuitId = null; // nothing left to close on the server
    this._close({ intentional: false, code: reason === 'rejected' ? 'circuit_rejected' : 'circuit_closed', message: reason });
  }

  // ── lifecycle ──

  /** @internal @param {ConnectionPath} path */
  _setPath(path) {
    if (this.path === path) return;
    this.path = path;
    this._ctx.stateChanged(this, { wasOpen: false, intentional: false });
  }

  /** @internal */
  _becomeOpen() {
    if (this._direct?.timer) { clearTimeout(this._direct.timer); this._direct.timer = null; }
    if (this._relay?.timer) { clearTimeout(this._relay.timer); this._relay.timer = null; }
    this.state = 'open';
    if (this._relay) {
      this._keepAlive = setInterval(() => { this._pingRelay().then((rtt) => { if (rtt !== null) this.rtt = rtt; }); },
        this._ctx.pingIntervalMs);
    }
    this._ready.resolve(this);
    this._ctx.stateChanged(this, { wasOpen: false, intentional: false });
  }

  /** @internal Tears down the pending or current transport (a circuit we hold is closed on the server). */
  _teardownAttempt() {
    const direct = this._direct;
    if (direct) {
      this._direct = null;
      if (direct.timer) clearTimeout(direct.timer);
      direct.pc.onicecandidate = null;
      direct.pc.onicegatheringstatechange = null;
      direct.pc.onconnectionstatechange = null;
      direct.pc.ondatachannel = null;
      if (direct.dc) {
        direct.dc.onopen = direct.dc.onclose = direct.dc.onmessage = null;
        try { direct.dc.close(); } catch { /* already closed */ }
      }
      try { direct.pc.close(); } catch { /* already closed */ }
    }
    const relay = this._relay;
    if (relay) {
      this._relay = null;
      relay.session = null;
      if (relay.timer) clearTimeout(relay.timer);
      if (relay.circuitId !== null) {
        this._ctx.unbindCircuit(relay.circuitId, this);
        this._ctx.sendSignal({ type: 'circuit_close', circuit_id: relay.circuitId });
      }
      if (relay.ws) {
        relay.ws.onopen = relay.ws.onmessage = relay.ws.onclose = relay.ws.onerror = null;
        try { relay.ws.close(1000, 'closed'); } catch { /* already closed */ }
      }
    }
    if (this._keepAlive) { clearInterval(this._keepAlive); this._keepAlive = null; }
    for (const ping of this._pings.values()) { clearTimeout(ping.timer); ping.resolve(null); }
    this._pings.clear();
  }

  /**
   * @internal Moves to `closed` (idempotent).
   * @param {{ intentional: boolean, code: string, message: string }} how
   */
  _close({ intentional, code, message }) {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this._teardownAttempt();
    this.state = 'closed';
    if (!wasOpen) this._ready.reject(makeError(code, message));
    this._ctx.stateChanged(this, { wasOpen, intentional, code });
  }
}

/**
 * @param {boolean} requester
 * @param {string | null} circuitId
 * @returns {RelayAttempt}
 */
function newRelayAttempt(requester, circuitId) {
  return { requester, circuitId, ws: null, timer: null, handshake: null, session: null, inbound: Promise.resolve() };
}

/**
 * `currentRoundTripTime` (ms) of the selected candidate pair of `pc`, or `null`.
 * @param {RTCPeerConnection} pc
 * @returns {Promise<number | null>}
 */
async function selectedPairRtt(pc) {
  /** @type {RTCStatsReport} */
  let stats;
  try { stats = await pc.getStats(); } catch { return null; }
  /** @type {any} */
  let pair = null;
  stats.forEach((report) => {
    if (report.type === 'transport' && report.selectedCandidatePairId && !pair) {
      pair = stats.get(report.selectedCandidatePairId) ?? null;
    }
  });
  if (!pair) {
    stats.forEach((report) => {
      if (report.type === 'candidate-pair' && !pair && (report.selected || (report.nominated && report.state === 'succeeded'))) {
        pair = report;
      }
    });
  }
  return pair && typeof pair.currentRoundTripTime === 'number' ? pair.currentRoundTripTime * 1000 : null;
}

// ───────────────────────────── manager ─────────────────────────────

/**
 * Registers with a `darkswap-relay` signaling server and manages one
 * connection per remote peer: WebRTC first, relayed circuit as fallback.
 *
 * Events (all `CustomEvent`s; read `event.detail`):
 * - `registered` `{ peerId, peers }` after every (re-)registration
 * - `peer-joined` `{ peerId }`, `peer-left` `{ peerId }`
 * - `connection` `{ connection }` when any connection opens, incoming or outgoing
 * - `connection-state` `{ peerId, state, path }` on every state or path change
 * - `message` `{ peerId, message }`
 * - `signaling-state` `{ state }`: `'connecting' | 'open' | 'closed'` (`open` = registered)
 * - `error` `{ code, message }`: server errors and local failures that have no caller to reject
 */
export class WebRtcConnectionManager extends EventTarget {
  // options
  /** @type {string} */ #signalingUrl;
  /** @type {string} */ #relayUrl;
  /** @type {RTCConfiguration} */ #rtcConfig;
  /** @type {number} */ #iceTimeoutMs;
  /** @type {(peerId: string) => boolean} */ #acceptRelayed;
  /** @type {boolean} */ #autoReconnect;
  /** @type {number} */ #pingIntervalMs;
  /** @type {string | null} */ #storageKey;
  /** @type {'none' | 'auto' | 'provider'} */ #authMode;
  /** @type {TokenProvider | null} */ #tokenProvider = null;
  /** @type {string | null} token service base, resolved on first use */ #authUrl;

  // identity
  /** @type {CryptoKeyPair | null} */ #identity;
  /** @type {Uint8Array | null} */ #publicKeyProtobuf = null;
  /** @type {string | null} */ #peerId = null;

  // signaling
  /** @type {WebSocket | null} */ #ws = null;
  #wsRegistered = false;
  /** @type {string | null} registration refusal received on the current socket */ #wsRefusal = null;
  /** @type {SignalingState} */ #signalingState = 'closed';
  #closed = false;
  #everRegistered = false;
  /** @type {Promise<void> | null} */ #initPromise = null;
  /** @type {Deferred<void> | null} */ #initDeferred = null;
  #reconnectAttempt = 0;
  /** @type {ReturnType<typeof setTimeout> | null} */ #reconnectTimer = null;
  /** @type {ReturnType<typeof setTimeout> | null} */ #registerTimer = null;
  /** @type {ReturnType<typeof setInterval> | null} */ #pingTimer = null;
  #pingCounter = 0;
  #awaitingPong = false;
  /** @type {Set<string>} */ #peers = new Set();
  /** @type {Deferred<void> | null} pending list_peers */ #peersRefresh = null;

  // tokens
  /** @type {HeldToken | null} the token `auth: 'auto'` shows */ #token = null;
  /** @type {Promise<HeldToken> | null} a refresh or challenge under way */ #tokenTask = null;
  /** @type {string | null} the token a refresh under way retires */ #refreshing = null;
  /** @type {string | null} the last token our own refresh retired */ #retiredToken = null;
  /** @type {ReturnType<typeof setTimeout> | null} */ #refreshTimer = null;
  #refreshFailures = 0;
  /** waiting for a token before opening a socket */ #opening = false;
  /** @type {string | null} the token the current socket showed */ #wsToken = null;
  /** the current socket's token was earned (or supplied) for it, not reused */ #wsTokenFresh = false;
  /** @type {string | null} why the server refused the current socket's token or role */ #wsAuthMessage = null;

  // connections
  /** @type {Map<string, WebRtcConnection>} */ #connections = new Map();
  /** @type {Map<string, WebRtcConnection>} */ #circuits = new Map();
  /** @type {{ peerId: string, conn: WebRtcConnection, relay: RelayAttempt }[]} FIFO: circuit_request awaiting circuit_pending or error */
  #circuitRequests = [];
  /** @type {Set<string>} peers to reconnect to when they (re)appear */ #resume = new Set();
  /** @type {Map<string, number>} peer → when a connection we initiated was lost */ #lost = new Map();
  /** @type {Set<(peerId: string, message: unknown) => void>} */ #handlers = new Set();
  /** @type {ConnectionContext} */ #ctx;

  /**
   * @param {ManagerOptions} options
   */
  constructor(options) {
    super();
    if (!isObject(options) || !isNonEmptyString(options.signalingUrl)) {
      throw new TypeError('WebRtcConnectionManager needs { signalingUrl }');
    }
    this.#signalingUrl = options.signalingUrl;
    this.#relayUrl = options.relayUrl ?? defaultRelayUrl(options.signalingUrl);
    this.#rtcConfig = options.rtcConfig ?? { iceServers: [] };
    this.#iceTimeoutMs = options.iceTimeoutMs ?? 5000;
    this.#acceptRelayed = options.acceptRelayed ?? (() => true);
    this.#autoReconnect = options.autoReconnect ?? true;
    this.#pingIntervalMs = options.pingIntervalMs ?? 20_000;
    this.#storageKey = options.storageKey === undefined ? DEFAULT_STORAGE_KEY : options.storageKey;
    this.#identity = options.identity ?? null;
    const auth = options.auth ?? 'none';
    if (typeof auth === 'function') {
      this.#authMode = 'provider';
      this.#tokenProvider = auth;
    } else if (auth === 'auto' || auth === 'none') {
      this.#authMode = auth;
    } else {
      throw new TypeError("auth must be 'none', 'auto' or a function returning a token");
    }
    this.#authUrl = options.authUrl ?? null;
    const self = this;
    this.#ctx = {
      localPeerId: () => self.#peerId ?? '',
      identity: () => self.#identity,
      rtcConfig: this.#rtcConfig,
      iceTimeoutMs: this.#iceTimeoutMs,
      pingIntervalMs: this.#pingIntervalMs,
      relayUrl: this.#relayUrl,
      sendSignal: (message) => self.#send(message),
      requestCircuit: (conn, relay) => self.#requestCircuit(conn, relay),
      bindCircuit: (circuitId, conn) => { self.#circuits.set(circuitId, conn); },
      unbindCircuit: (circuitId, conn) => {
        if (self.#circuits.get(circuitId) === conn) self.#circuits.delete(circuitId);
      },
      stateChanged: (conn, change) => self.#connectionStateChanged(conn, change),
      deliver: (conn, message) => self.#deliver(conn.peerId, message),
      error: (code, message) => self.#emit('error', { code, message }),
    };
  }

  /** This peer's id (`12D3KooW...`), known once `init()` has loaded the identity. @returns {string | null} */
  get peerId() { return this.#peerId; }

  /** Other registered peers, as last reported by the server. @returns {string[]} */
  get peers() { return [...this.#peers]; }

  /** State of the signaling socket (`open` = registered). @returns {SignalingState} */
  get signalingState() { return this.#signalingState; }

  /**
   * Loads (or creates) the identity, opens the signaling socket and registers.
   * Resolves once registered; rejects with a {@link DarkSwapError} carrying the
   * server's `code` (`bad_signature`, `server_full`, ...) or `signaling_unavailable`.
   * An `already_registered` refusal (e.g. a reloaded page whose old socket the
   * server has not dropped yet) is retried with backoff when `autoReconnect` is on.
   * Calling it again while pending returns the same promise; after a rejection it can be retried.
   * @returns {Promise<void>}
   */
  init() {
    if (this.#closed) return Promise.reject(makeError('closed', 'manager is closed'));
    if (!this.#initPromise) {
      this.#initPromise = this.#init().catch((error) => {
        this.#initPromise = null;
        throw error;
      });
    }
    return this.#initPromise;
  }

  async #init() {
    if (!this.#identity) {
      try {
        this.#identity = await loadOrCreateIdentity(this.#storageKey);
      } catch (error) {
        this.#emit('error', { code: 'identity_storage', message: `using an ephemeral identity: ${describe(error)}` });
        this.#identity = await generateIdentity();
      }
    }
    if (!this.#peerId) {
      const raw = new Uint8Array(await crypto.subtle.exportKey('raw', this.#identity.publicKey));
      this.#publicKeyProtobuf = ed25519PublicKeyProtobuf(raw);
      this.#peerId = peerIdFromPublicKey(raw);
    }
    if (this.#closed) throw makeError('closed', 'manager is closed');
    if (this.#wsRegistered) return;
    /** @type {Deferred<void>} */
    const ready = deferred();
    this.#initDeferred = ready;
    if (!this.#reconnectTimer) this.#connectSocket();
    return ready.promise;
  }

  /**
   * Connects to a registered peer: WebRTC first, then a relayed circuit if the
   * data channel is not open within `iceTimeoutMs`. Resolves with the open
   * connection (an existing one if there is one).
   * @param {string} peerId
   * @returns {Promise<WebRtcConnection>}
   */
  async connect(peerId) {
    if (this.#closed) throw makeError('closed', 'manager is closed');
    if (!isNonEmptyString(peerId)) throw new TypeError('peerId must be a non-empty string');
    if (peerId === this.#peerId) throw makeError('invalid_peer', 'cannot connect to ourselves');
    const existing = this.#connections.get(peerId);
    if (existing) return existing._ready.promise;
    if (!this.#wsRegistered) throw makeError('signaling_unavailable', 'not registered with the signaling server');
    // A peer that registered a moment ago may not have been announced to us yet: ask.
    if (!this.#peers.has(peerId)) await this.#refreshPeers();
    if (!this.#peers.has(peerId)) throw makeError('unknown_peer', `${peerId} is not registered`);
    const raced = this.#connections.get(peerId); // it may have connected to us meanwhile
    if (raced) return raced._ready.promise;
    const conn = this.#createConnection(peerId, true);
    conn._startOffer();
    return conn._ready.promise;
  }

  /**
   * Sends a message to a peer, connecting first if needed. `Uint8Array`,
   * `ArrayBuffer` and typed arrays go as binary, anything else as JSON.
   * @param {string} peerId
   * @param {unknown} message
   * @returns {Promise<void>}
   */
  async sendMessage(peerId, message) {
    const current = this.#connections.get(peerId);
    const conn = current?.state === 'open' ? current : await this.connect(peerId);
    await conn.send(message);
  }

  /**
   * Registers a message handler, called as `handler(peerId, message)` for every
   * message from any peer (JSON value, or `Uint8Array` for binary).
   * @param {(peerId: string, message: unknown) => void} handler
   * @returns {() => void} unsubscribe
   */
  onMessage(handler) {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    this.#handlers.add(handler);
    return () => { this.#handlers.delete(handler); };
  }

  /**
   * The current (connecting or open) connection with a peer.
   * @param {string} peerId
   * @returns {WebRtcConnection | undefined}
   */
  getConnection(peerId) {
    return this.#connections.get(peerId);
  }

  /**
   * Closes the connection with a peer on purpose (a relayed circuit with
   * `circuit_close`); it is not reconnected automatically.
   * @param {string} peerId
   * @returns {Promise<void>}
   */
  async closeConnection(peerId) {
    this.#resume.delete(peerId);
    this.#lost.delete(peerId);
    this.#connections.get(peerId)?._close({ intentional: true, code: 'closed', message: 'closed locally' });
  }

  /**
   * Closes every connection and the signaling socket, and stops all timers.
   * The manager cannot be used afterwards.
   * @returns {Promise<void>}
   */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#resume.clear();
    this.#lost.clear();
    for (const conn of [...this.#connections.values()]) {
      conn._close({ intentional: true, code: 'closed', message: 'manager closed' });
    }
    this.#connections.clear();
    this.#circuits.clear();
    this.#circuitRequests = [];
    if (this.#reconnectTimer) { clearTimeout(this.#reconnectTimer); this.#reconnectTimer = null; }
    this.#stopRefreshing();
    this.#token = null;
    const ws = this.#ws;
    this.#detachSocket();
    if (ws) {
      try { ws.close(1000, 'client closed'); } catch { /* already closed */ }
    }
    this.#setSignalingState('closed');
    this.#initDeferred?.reject(makeError('closed', 'manager closed'));
    this.#initDeferred = null;
    this.#handlers.clear();
  }

  // ── signaling socket ──

  /** Opens the signaling socket, with a token first unless `auth` is `'none'`. */
  #connectSocket() {
    if (this.#closed || this.#ws || this.#opening) return;
    if (this.#authMode === 'none') {
      this.#openSocket(null, false);
      return;
    }
    this.#opening = true;
    this.#setSignalingState('connecting');
    this.#tokenForSocket().then(({ token, fresh }) => {
      this.#opening = false;
      if (!this.#closed && !this.#ws && !this.#reconnectTimer) this.#openSocket(token, fresh);
    }, (error) => {
      this.#opening = false;
      if (!this.#closed) this.#onNoToken(error);
    });
  }

  /**
   * @param {string | null} token shown as the `darkswap-token.<jwt>` subprotocol
   * @param {boolean} fresh the token was earned or supplied for this socket
   */
  #openSocket(token, fresh) {
    this.#setSignalingState('connecting');
    /** @type {WebSocket} */
    let ws;
    try {
      ws = token === null
        ? new WebSocket(this.#signalingUrl)
        : new WebSocket(this.#signalingUrl, [WS_PROTOCOL, `${WS_TOKEN_PROTOCOL_PREFIX}${token}`]);
    } catch (error) {
      this.#onSocketGone(null, 0, describe(error));
      return;
    }
    this.#ws = ws;
    this.#wsRegistered = false;
    this.#wsRefusal = null;
    this.#wsToken = token;
    this.#wsTokenFresh = fresh;
    this.#wsAuthMessage = null;
    ws.onmessage = (event) => {
      try { this.#onSignalingFrame(ws, event.data); } catch (error) { report(error); }
    };
    ws.onclose = (event) => this.#onSocketGone(ws, event.code, event.reason);
    ws.onerror = () => { /* a close event follows */ };
    this.#registerTimer = setTimeout(() => {
      this.#registerTimer = null;
      if (this.#ws === ws && !this.#wsRegistered) this.#dropSocket(ws, 'registration timed out');
    }, REGISTER_TIMEOUT_MS);
  }

  /** Stops listening to the current socket and clears its timers. */
  #detachSocket() {
    this.#peersRefresh?.resolve();
    this.#peersRefresh = null;
    const ws = this.#ws;
    if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    this.#ws = null;
    if (this.#registerTimer) { clearTimeout(this.#registerTimer); this.#registerTimer = null; }
    if (this.#pingTimer) { clearInterval(this.#pingTimer); this.#pingTimer = null; }
    this.#awaitingPong = false;
  }

  /**
   * Abandons a socket we consider dead without waiting for its close handshake.
   * @param {WebSocket} ws
   * @param {string} reason
   */
  #dropSocket(ws, reason) {
    try { ws.close(4000, reason); } catch { /* already closed */ }
    this.#onSocketGone(ws, 4000, reason);
  }

  /**
   * @param {WebSocket | null} ws
   * @param {number} code
   * @param {string} reason
   */
  #onSocketGone(ws, code, reason) {
    if (ws !== null && ws !== this.#ws) return;
    const wasRegistered = this.#wsRegistered;
    const refusal = this.#wsRefusal;
    const token = this.#wsToken;
    const fresh = this.#wsTokenFresh;
    const authMessage = this.#wsAuthMessage;
    this.#detachSocket();
    this.#wsRegistered = false;
    this.#wsRefusal = null;
    this.#wsToken = null;
    this.#wsAuthMessage = null;
    this.#circuitRequests = [];
    if (wasRegistered) this.#onSignalingLost();
    this.#setSignalingState('closed');
    if (this.#closed) return;

    const initializing = !this.#everRegistered;
    if (code === CLOSE_UNAUTHORIZED) {
      if (token !== null && this.#renewable(token, fresh, reason, authMessage)) {
        // Our token ran out, our own refresh retired it, or a reused one went
        // stale: connect again with a new one.
        if (this.#token?.token === token) this.#token = null;
        if (this.#autoReconnect || initializing) {
          this.#reconnectAttempt = 0;
          this.#scheduleReconnect();
        }
        return;
      }
      // Refused for who we are (no token on a closed relay, a role below
      // signaling_role, a token for another peer, revoked by an admin):
      // retrying cannot help, so do not.
      this.#stopRefreshing();
      this.#authFailed(makeError('unauthorized', authMessage ?? (reason || 'unauthorized')));
      return;
    }
    if (code === CLOSE_TRY_AGAIN_LATER && this.#autoReconnect) {
      // A connection limit: back off for at least a second or so.
      this.#reconnectAttempt = Math.max(this.#reconnectAttempt, 2);
      this.#scheduleReconnect();
      return;
    }

    const retry = this.#autoReconnect && (!initializing || refusal === 'already_registered');
    if (retry) {
      this.#scheduleReconnect();
      return;
    }
    this.#initPromise = null; // init() may be called again to reconnect by hand
    if (this.#initDeferred) {
      const error = refusal
        ? makeError(refusal, `registration refused: ${refusal}`)
        : makeError('signaling_unavailable', `signaling socket closed (${code}${reason ? ` ${reason}` : ''})`);
      this.#initDeferred.reject(error);
      this.#initDeferred = null;
    }
  }

  /** @param {number} [minDelayMs] e.g. a `Retry-After` */
  #scheduleReconnect(minDelayMs = 0) {
    if (this.#reconnectTimer || this.#closed) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.#reconnectAttempt);
    this.#reconnectAttempt = Math.min(this.#reconnectAttempt + 1, 16);
    const delay = Math.max(minDelayMs, base / 2 + Math.random() * base / 2);
    this.#setSignalingState('connecting');
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (!this.#closed && !this.#ws) this.#connectSocket();
    }, delay);
  }

  /**
   * Gives up on signaling until `init()` is called again: rejects a pending
   * `init()` with `error`, or else reports it as an `error` event.
   * @param {DarkSwapError} error
   */
  #authFailed(error) {
    this.#setSignalingState('closed');
    this.#initPromise = null;
    if (this.#initDeferred) {
      this.#initDeferred.reject(error);
      this.#initDeferred = null;
    } else {
      this.#emit('error', { code: error.code, message: error.message });
    }
  }

  // ── tokens ──

  /**
   * Whether a socket closed with 4004 failed for a reason a new token cures.
   * @param {string} token the token the socket showed
   * @param {boolean} fresh it was earned or supplied for that socket
   * @param {string} reason close reason
   * @param {string | null} authMessage the server's `unauthorized` error, if it sent one
   */
  #renewable(token, fresh, reason, authMessage) {
    if (reason === 'token expired') return true; // accepted, then ran out (older relays)
    if (this.#authMode !== 'auto') return false;
    if (reason === 'token revoked') return token === this.#retiredToken || token === this.#refreshing;
    // Refused at once: a token we had kept went stale meanwhile (expired while
    // asleep, the relay's key changed). Not a revocation, and never twice.
    return reason === 'invalid token' && !fresh && authMessage !== 'token revoked';
  }

  /**
   * The token for a new socket.
   * @returns {Promise<{ token: string, fresh: boolean }>}
   */
  async #tokenForSocket() {
    if (this.#authMode === 'provider') {
      const provider = /** @type {TokenProvider} */ (this.#tokenProvider);
      const token = await provider({ peerId: /** @type {string} */ (this.#peerId) });
      if (!isNonEmptyString(token) || !SUBPROTOCOL_TOKEN.test(token)) {
        throw makeError('unauthorized', 'the auth callback returned no usable token');
      }
      return { token, fresh: true };
    }
    const held = this.#token;
    if (held && performance.now() < held.refreshAt) return { token: held.token, fresh: false };
    try {
      return { token: (await this.#renewToken()).token, fresh: true };
    } catch (error) {
      // The token service is unreachable at the moment; the token we hold still works.
      if (held && this.#token === held && isTransientAuthError(error) && performance.now() < held.deadline) {
        return { token: held.token, fresh: false };
      }
      throw error;
    }
  }

  /**
   * Refreshes the token we hold while it is valid, otherwise (or if the relay
   * refuses the refresh) earns a new one with a challenge. One at a time.
   * @returns {Promise<HeldToken>}
   */
  #renewToken() {
    if (!this.#tokenTask) {
      const task = this.#earnToken();
      this.#tokenTask = task;
      task.finally(() => { if (this.#tokenTask === task) this.#tokenTask = null; }).catch(() => {});
    }
    return this.#tokenTask;
  }

  /** @returns {Promise<HeldToken>} */
  async #earnToken() {
    const authUrl = this.#authUrl ?? resolveAuthUrl({ signalingUrl: this.#signalingUrl });
    this.#authUrl = authUrl;
    const held = this.#token;
    /** @type {RelayToken | null} */
    let next = null;
    let via = 'challenge';
    if (held && performance.now() < held.deadline) {
      this.#refreshing = held.token;
      try {
        next = await refreshRelayToken({ authUrl, token: held.token });
        this.#retiredToken = held.token;
        via = 'refresh';
      } catch (error) {
        if (isTransientAuthError(error)) throw error;
        // expired, revoked, ...: earn a new one below.
      } finally {
        this.#refreshing = null;
      }
    }
    if (!next) {
      const identity = this.#identity;
      if (!identity) throw makeError('unauthorized', 'no identity key to earn a token with');
      next = await fetchRelayToken({ authUrl, identity });
    }
    if (this.#closed) throw makeError('closed', 'manager is closed');
    const now = performance.now();
    const lifetime = tokenLifetimeMs(next);
    /** @type {HeldToken} */
    const token = { ...next, refreshAt: now + lifetime * TOKEN_REFRESH_AT, deadline: now + lifetime };
    this.#token = token;
    this.#refreshFailures = 0;
    this.#scheduleRefresh(token.refreshAt - now);
    this.#emit('token', { role: token.role, expiresAt: token.expiresAt, via });
    return token;
  }

  /** @param {number} delayMs */
  #scheduleRefresh(delayMs) {
    if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
    if (this.#closed || this.#authMode !== 'auto') return;
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = null;
      if (this.#closed || !this.#token) return;
      const held = this.#token;
      this.#renewToken().catch((error) => {
        if (this.#closed || this.#token !== held) return;
        this.#emit('error', { code: error?.code ?? 'auth_unavailable', message: `refreshing the relay token: ${describe(error)}` });
        // Retry transient failures while the token lasts; after that the
        // next connection finds it expired and earns a new one.
        const left = held.deadline - performance.now();
        if (!isTransientAuthError(error) || left <= 0) return;
        const backoff = Math.min(BACKOFF_MAX_MS, TOKEN_RETRY_MIN_MS * 2 ** this.#refreshFailures++);
        this.#scheduleRefresh(Math.min(left / 2, Math.max(backoff, error?.retryAfterMs ?? 0)));
      });
    }, Math.max(0, delayMs));
  }

  #stopRefreshing() {
    if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
  }

  /**
   * No token for a new socket. Transient failures after we have been
   * registered are retried with backoff; anything else ends the attempt.
   * @param {unknown} error
   */
  #onNoToken(error) {
    const failure = /** @type {DarkSwapError & { retryAfterMs?: number }} */ (
      error instanceof Error && 'code' in error ? error : makeError('auth_unavailable', describe(error)));
    if (isTransientAuthError(failure) && this.#autoReconnect && this.#everRegistered) {
      this.#setSignalingState('closed');
      this.#emit('error', { code: failure.code, message: failure.message });
      this.#scheduleReconnect(failure.retryAfterMs ?? 0);
      return;
    }
    this.#stopRefreshing();
    this.#authFailed(failure);
  }

  /**
   * @param {WebSocket} ws
   * @param {unknown} data
   */
  #onSignalingFrame(ws, data) {
    if (ws !== this.#ws || typeof data !== 'string') return;
    this.#awaitingPong = false; // any message proves the socket alive
    let message;
    try { message = JSON.parse(data); } catch { return; }
    if (!isObject(message) || typeof message.type !== 'string') return;
    switch (message.type) {
      case 'challenge': this.#onChallenge(ws, message); break;
      case 'registered': this.#onRegistered(ws, message); break;
      case 'peer_joined': if (isNonEmptyString(message.peer_id)) this.#peerJoined(message.peer_id); break;
      case 'peer_left': if (isNonEmptyString(message.peer_id)) this.#peerLeft(message.peer_id); break;
      case 'peers':
        this.#replacePeers(peerList(message.peers));
        this.#peersRefresh?.resolve();
        this.#peersRefresh = null;
        break;
      case 'pong': break;
      case 'offer': this.#onOffer(message); break;
      case 'answer': this.#onAnswer(message); break;
      case 'candidate': this.#onCandidate(message); break;
      case 'circuit_pending': this.#onCircuitPending(message); break;
      case 'circuit_request': this.#onCircuitRequest(message); break;
      case 'circuit_ready': this.#onCircuitReady(message); break;
      case 'circuit_rejected': this.#onCircuitRejected(message); break;
      case 'circuit_closed': this.#onCircuitClosed(message); break;
      case 'error': this.#onServerError(message); break;
      default: break; // unknown types are ignored
    }
  }

  /**
   * @param {WebSocket} ws
   * @param {Record<string, unknown>} message
   */
  #onChallenge(ws, message) {
    if (this.#wsRegistered || typeof message.nonce !== 'string') return;
    const identity = this.#identity;
    const protobuf = this.#publicKeyProtobuf;
    if (!identity || !protobuf) return;
    /** @type {Uint8Array} */
    let nonce;
    try { nonce = base64Decode(message.nonce); } catch { return; }
    const data = concatBytes(textEncoder.encode(REGISTER_TAG), nonce);
    crypto.subtle.sign({ name: 'Ed25519' }, identity.privateKey, data).then((signature) => {
      if (ws !== this.#ws || this.#wsRegistered) return;
      this.#send({
        type: 'register',
        peer_id: this.#peerId,
        public_key: base64Encode(protobuf),
        signature: base64Encode(new Uint8Array(signature)),
      });
    }, (error) => {
      this.#emit('error', { code: 'signing_failed', message: describe(error) });
      if (ws === this.#ws) this.#dropSocket(ws, 'signing failed');
    });
  }

  /**
   * @param {WebSocket} ws
   * @param {Record<string, unknown>} message
   */
  #onRegistered(ws, message) {
    if (this.#wsRegistered) return;
    this.#wsRegistered = true;
    this.#everRegistered = true;
    this.#reconnectAttempt = 0;
    if (this.#registerTimer) { clearTimeout(this.#registerTimer); this.#registerTimer = null; }
    this.#awaitingPong = false;
    this.#pingTimer = setInterval(() => {
      if (ws !== this.#ws) return;
      if (this.#awaitingPong) { this.#dropSocket(ws, 'keep-alive timed out'); return; }
      this.#awaitingPong = true;
      this.#send({ type: 'ping', id: ++this.#pingCounter });
    }, this.#pingIntervalMs);
    this.#replacePeers(peerList(message.peers));
    this.#setSignalingState('open');
    this.#emit('registered', { peerId: this.#peerId, peers: this.peers });
    this.#initDeferred?.resolve();
    this.#initDeferred = null;
    // Connections we initiated and lost while we were away: restore them.
    for (const peerId of [...this.#resume]) {
      if (!this.#peers.has(peerId)) continue;
      if (this.#connections.get(peerId)?.state === 'open') this.#resume.delete(peerId);
      else this.#reconnect(peerId);
    }
  }

  /**
   * Our signaling socket is gone: pending attempts fail and circuits die with it
   * (the server closes them). Connections we initiated that are lost now, or were
   * lost just before (a dying server closes `/relay` sockets too), are restored
   * once we are registered again.
   */
  #onSignalingLost() {
    const now = Date.now();
    for (const [peerId, lostAt] of this.#lost) if (now - lostAt < LOST_GRACE_MS) this.#resume.add(peerId);
    for (const conn of [...this.#connections.values()]) {
      if (conn.state === 'open' && conn.initiator) this.#resume.add(conn.peerId);
      if (conn.state === 'connecting' || conn.path === 'relayed') {
        conn._close({ intentional: false, code: 'signaling_closed', message: 'signaling connection lost' });
      }
    }
  }

  /**
   * @param {Record<string, unknown>} message
   * @returns {boolean}
   */
  #send(message) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    if (message.type !== 'register' && message.type !== 'ping' && !this.#wsRegistered) return false;
    const text = JSON.stringify(message);
    if (text.length > MAX_SIGNALING_FRAME) {
      this.#emit('error', { code: 'message_too_large', message: `${message.type} exceeds the signaling frame limit` });
      return false;
    }
    ws.send(text);
    return true;
  }

  /** @param {SignalingState} state */
  #setSignalingState(state) {
    if (this.#signalingState === state) return;
    this.#signalingState = state;
    this.#emit('signaling-state', { state });
  }

  // ── peers ──

  /**
   * Asks the server for the peer list (`list_peers`); resolves when it arrives,
   * after `REGISTER_TIMEOUT_MS` or when the socket goes, whichever comes first.
   * @returns {Promise<void>}
   */
  #refreshPeers() {
    if (!this.#peersRefresh) {
      if (!this.#send({ type: 'list_peers' })) return Promise.resolve();
      /** @type {Deferred<void>} */
      const refresh = deferred();
      this.#peersRefresh = refresh;
      const timer = setTimeout(() => refresh.resolve(), REGISTER_TIMEOUT_MS);
      refresh.promise.finally(() => {
        clearTimeout(timer);
        if (this.#peersRefresh === refresh) this.#peersRefresh = null;
      }).catch(() => {});
    }
    return this.#peersRefresh.promise;
  }

  /** @param {string[]} list */
  #replacePeers(list) {
    const next = new Set(list.filter((id) => id !== this.#peerId));
    for (const peerId of [...this.#peers]) if (!next.has(peerId)) this.#peerLeft(peerId);
    for (const peerId of next) if (!this.#peers.has(peerId)) this.#peerJoined(peerId);
  }

  /** @param {string} peerId */
  #peerJoined(peerId) {
    if (peerId === this.#peerId || this.#peers.has(peerId)) return;
    this.#peers.add(peerId);
    this.#emit('peer-joined', { peerId });
    if (this.#resume.has(peerId) && this.#wsRegistered) this.#reconnect(peerId);
  }

  /** @param {string} peerId */
  #peerLeft(peerId) {
    if (!this.#peers.delete(peerId)) return;
    const conn = this.#connections.get(peerId);
    const lostAt = this.#lost.get(peerId);
    this.#lost.delete(peerId);
    if ((conn?.state === 'open' && conn.initiator) || (lostAt !== undefined && Date.now() - lostAt < LOST_GRACE_MS)) {
      this.#resume.add(peerId);
    }
    if (conn && (conn.state === 'connecting' || conn.path === 'relayed')) {
      conn._close({ intentional: false, code: 'peer_left', message: `${peerId} left` });
    }
    this.#emit('peer-left', { peerId });
  }

  /**
   * Reconnects to a peer we had initiated a connection with. A connection
   * still open with it belongs to its previous session: replace it.
   * @param {string} peerId
   */
  #reconnect(peerId) {
    this.#resume.delete(peerId);
    if (!this.#autoReconnect) return;
    const existing = this.#connections.get(peerId);
    if (existing?.state === 'connecting') return;
    existing?._close({ intentional: true, code: 'replaced', message: 'peer rejoined' });
    this.connect(peerId).catch((error) => {
      this.#emit('error', { code: error?.code ?? 'reconnect_failed', message: `reconnecting to ${peerId}: ${describe(error)}` });
    });
  }

  // ── connections ──

  /**
   * @param {string} peerId
   * @param {boolean} initiator
   */
  #createConnection(peerId, initiator) {
    const conn = new WebRtcConnection(INTERNAL, peerId, initiator, this.#ctx);
    this.#connections.set(peerId, conn);
    this.#emit('connection-state', { peerId, state: conn.state, path: conn.path });
    return conn;
  }

  /**
   * The connection to use for an incoming offer or circuit from `peerId`: the
   * pending one, or a new one (an open connection is replaced: the peer
   * evidently lost it).
   * @param {string} peerId
   */
  #incomingConnection(peerId) {
    const existing = this.#connections.get(peerId);
    if (existing?.state === 'connecting') return existing;
    existing?._close({ intentional: true, code: 'replaced', message: 'peer started a new connection' });
    return this.#createConnection(peerId, false);
  }

  /**
   * @param {WebRtcConnection} conn
   * @param {StateChange} change
   */
  #connectionStateChanged(conn, change) {
    const { peerId } = conn;
    if (conn.state === 'open') {
      this.#resume.delete(peerId);
      this.#lost.delete(peerId);
    } else if (conn.state === 'closed') {
      if (this.#connections.get(peerId) === conn) this.#connections.delete(peerId);
      if (change.intentional) {
        this.#resume.delete(peerId);
        this.#lost.delete(peerId);
      } else if (change.wasOpen && conn.initiator && !this.#closed) {
        this.#lost.set(peerId, Date.now());
        if (this.#lost.size > 1024) this.#lost.delete(/** @type {string} */ (this.#lost.keys().next().value));
      }
    }
    this.#emit('connection-state', conn.state === 'closed' && change.code
      ? { peerId, state: conn.state, path: conn.path, code: change.code }
      : { peerId, state: conn.state, path: conn.path });
    if (conn.state === 'open') this.#emit('connection', { connection: conn });
  }

  /**
   * @param {string} peerId
   * @param {unknown} message
   */
  #deliver(peerId, message) {
    for (const handler of [...this.#handlers]) {
      try { handler(peerId, message); } catch (error) { report(error); }
    }
    this.#emit('message', { peerId, message });
  }

  /** @param {Record<string, unknown>} message */
  #onOffer(message) {
    const { from, sdp } = message;
    if (!isNonEmptyString(from) || typeof sdp !== 'string' || from === this.#peerId) return;
    const session = typeof message.session === 'string' ? message.session : undefined;
    const existing = this.#connections.get(from);
    if (existing?.state === 'connecting') {
      const direct = existing._direct;
      if (direct && direct.session === session) return; // duplicate
      // Glare: both sides offered. The lexicographically smaller peer id yields.
      if (direct?.offerer && /** @type {string} */ (this.#peerId) > from) return;
      // Our own pending circuit request wins over a late offer; the peer accepts it.
      if (existing._relay?.requester) return;
    }
    this.#incomingConnection(from)._acceptOffer(sdp, session);
  }

  /** @param {Record<string, unknown>} message */
  #onAnswer(message) {
    if (!isNonEmptyString(message.from) || typeof message.sdp !== 'string') return;
    const session = typeof message.session === 'string' ? message.session : undefined;
    this.#connections.get(message.from)?._handleAnswer(message.sdp, session);
  }

  /** @param {Record<string, unknown>} message */
  #onCandidate(message) {
    if (!isNonEmptyString(message.from)) return;
    const session = typeof message.session === 'string' ? message.session : undefined;
    this.#connections.get(message.from)?._handleCandidate(message.candidate, session);
  }

  /**
   * @param {WebRtcConnection} conn
   * @param {RelayAttempt} relay
   * @returns {boolean}
   */
  #requestCircuit(conn, relay) {
    if (this.#circuitRequests.length >= MAX_PENDING_CIRCUIT_REQUESTS) return false;
    if (!this.#send({ type: 'circuit_request', to: conn.peerId })) return false;
    this.#circuitRequests.push({ peerId: conn.peerId, conn, relay });
    return true;
  }

  /** @param {Record<string, unknown>} message */
  #onCircuitPending(message) {
    const { circuit_id: circuitId, peer } = message;
    if (!isNonEmptyString(circuitId) || !isNonEmptyString(peer)) return;
    const index = this.#circuitRequests.findIndex((request) => request.peerId === peer);
    const request = index >= 0 ? this.#circuitRequests.splice(index, 1)[0] : undefined;
    if (!request || !request.conn._circuitPending(request.relay, circuitId)) {
      this.#send({ type: 'circuit_close', circuit_id: circuitId }); // nobody wants it any more
    }
  }

  /** @param {Record<string, unknown>} message */
  #onCircuitRequest(message) {
    const { circuit_id: circuitId, from } = message;
    if (!isNonEmptyString(circuitId) || !isNonEmptyString(from) || from === this.#peerId) return;
    let accept = false;
    try { accept = this.#acceptRelayed(from) === true; } catch (error) { report(error); }
    const existing = this.#connections.get(from);
    if (!accept) {
      this.#send({ type: 'circuit_reject', circuit_id: circuitId, reason: 'not accepted' });
      // The peer asks for a circuit because it gave up on WebRTC: so do we.
      if (existing?.state === 'connecting' && existing._direct && !existing._direct.offerer) {
        existing._close({ intentional: false, code: 'circuit_rejected', message: 'relayed circuit not accepted' });
      }
      return;
    }
    // Both sides asked for a circuit: the lexicographically smaller peer id yields.
    if (existing?.state === 'connecting' && existing._relay?.requester && /** @type {string} */ (this.#peerId) > from) {
      this.#send({ type: 'circuit_reject', circuit_id: circuitId, reason: 'glare' });
      return;
    }
    this.#incomingConnection(from)._acceptCircuit(circuitId);
  }

  /** @param {Record<string, unknown>} message */
  #onCircuitReady(message) {
    const { circuit_id: circuitId, token } = message;
    if (!isNonEmptyString(circuitId) || !isNonEmptyString(token)) return;
    const conn = this.#circuits.get(circuitId);
    if (conn) conn._circuitReady(circuitId, token);
    else this.#send({ type: 'circuit_close', circuit_id: circuitId });
  }

  /** @param {Record<string, unknown>} message */
  #onCircuitRejected(message) {
    if (!isNonEmptyString(message.circuit_id)) return;
    const conn = this.#circuits.get(message.circuit_id);
    if (!conn) return;
    this.#circuits.delete(message.circuit_id);
    if (conn._relay) conn._relay.circuitId = null;
    conn._close({ intentional: false, code: 'circuit_rejected', message: String(message.reason ?? 'rejected') });
  }

  /** @param {Record<string, unknown>} message */
  #onCircuitClosed(message) {
    if (!isNonEmptyString(message.circuit_id)) return;
    const conn = this.#circuits.get(message.circuit_id);
    if (!conn) return;
    this.#circuits.delete(message.circuit_id);
    conn._circuitClosedByServer(String(message.reason ?? 'closed'));
  }

  /** @param {Record<string, unknown>} message */
  #onServerError(message) {
    const code = typeof message.code === 'string' ? message.code : 'unknown_error';
    const text = typeof message.message === 'string' ? message.message : code;
    if (!this.#wsRegistered && code === 'unauthorized') {
      // The server closes the socket with 4004 next, which decides whether to
      // renew the token (silently) or to give up (reported then).
      this.#wsRefusal = code;
      this.#wsAuthMessage = text;
      return;
    }
    if (!this.#wsRegistered && (message.in_reply_to === 'register' || REGISTER_REFUSALS.has(code))) {
      this.#wsRefusal = code; // the server closes the socket (4003) next
    } else if (message.in_reply_to === 'circuit_accept' && code === 'forbidden') {
      // Our role may not accept circuits: none we were about to accept will open.
      for (const conn of new Set(this.#circuits.values())) {
        if (conn.state === 'connecting' && conn._relay && !conn._relay.requester && !conn._relay.ws) {
          conn._close({ intentional: false, code, message: `circuit accept refused: ${text}` });
        }
      }
    } else if (message.in_reply_to === 'circuit_request' && this.#circuitRequests.length > 0) {
      const request = /** @type {{ conn: WebRtcConnection, relay: RelayAttempt }} */ (this.#circuitRequests.shift());
      if (request.conn._relay === request.relay && request.conn.state === 'connecting') {
        request.conn._close({ intentional: false, code, message: `circuit request refused: ${text}` });
      }
    }
    this.#emit('error', { code, message: text });
  }

  /**
   * @param {string} type
   * @param {unknown} detail
   */
  #emit(type, detail) {
    try { this.dispatchEvent(new CustomEvent(type, { detail })); } catch (error) { report(error); }
  }
}

/**
 * `ws://host/signaling` → `ws://host/relay` (query and fragment dropped).
 * @param {string} signalingUrl
 */
function defaultRelayUrl(signalingUrl) {
  const url = new URL(signalingUrl);
  url.pathname = url.pathname.replace(/\/signaling\/?$/, '/relay');
  if (!url.pathname.endsWith('/relay')) url.pathname = `${url.pathname.replace(/\/$/, '')}/relay`;
  url.search = '';
  url.hash = '';
  return url.toString();
}
