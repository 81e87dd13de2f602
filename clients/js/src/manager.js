// @ts-check
/**
 * {@link WebRtcConnectionManager}: registers with a `darkswap-relay`
 * signaling server (./signaling.js) and keeps one {@link WebRtcConnection}
 * per remote peer, WebRTC first and a relayed circuit as fallback. It routes
 * what the signaling socket brings to the connection it is for, answers
 * incoming offers and circuits, settles glare (both sides offer, or both ask
 * for a circuit: the side with the smaller peer id yields), and reconnects
 * to peers it had connected to when they (or we) come back.
 *
 * Presence is on demand (docs/signaling.md, *Peers*): the manager knows the
 * first page of peers the server gives on registration (and again on
 * {@link WebRtcConnectionManager#refreshPeers}), and watches every peer it
 * connects to or that connects to it, so it hears when those leave and come
 * back; the server announces nobody else.
 * @module
 */

import { WebRtcConnection } from './connection.js';
import { deferred } from './deferred.js';
import { describe, makeError, report } from './errors.js';
import { DEFAULT_STORAGE_KEY, generateIdentity, loadOrCreateIdentity } from './identity.js';
import { isNonEmptyString, isObject } from './json.js';
import { ed25519PublicKeyProtobuf, peerIdFromPublicKey } from './peer-id.js';
import { Presence } from './presence.js';
import { SignalingClient } from './signaling.js';
import { TokenKeeper, fetchIceServers, fetchRelayToken } from './tokens.js';

/**
 * @import { RelayedCircuit } from './circuit.js'
 * @import { ConnectionContext, ConnectionPath, ConnectionState, StateChange } from './connection.js'
 * @import { Deferred } from './deferred.js'
 * @import { DarkSwapError } from './errors.js'
 * @import { ConnectionLifecycleState, PeerPage, SignalingState } from './signaling.js'
 * @import { TokenProvider } from './tokens.js'
 * @import { WebRtcConnectionManagerEventMap } from './events.js'
 */

const MAX_PENDING_CIRCUIT_REQUESTS = 32;
/** A lost connection followed within this window by `peer_left` counts as lost with the peer. */
const LOST_GRACE_MS = 15_000;
/** Peers whose lost connection is remembered at most. */
const MAX_LOST = 1024;

/**
 * Options of {@link WebRtcConnectionManager}.
 * @typedef {object} ManagerOptions
 * @property {string} signalingUrl `ws(s)://host:port/signaling`.
 * @property {string} [relayUrl] `/relay` endpoint; default: `signalingUrl` with `/signaling` replaced by `/relay`.
 * @property {CryptoKeyPair} [identity] WebCrypto Ed25519 key pair to use instead of the persisted one.
 * @property {string | null} [storageKey] IndexedDB key of the persisted identity (default `'darkswap-identity'`); `null` = ephemeral identity.
 * @property {RTCConfiguration} [rtcConfig] Passed to every `RTCPeerConnection` (default `{ iceServers: [] }`).
 * @property {number} [iceTimeoutMs] Time a WebRTC attempt may take before falling back to a relayed circuit, in ms (default 5000).
 * @property {(peerId: string) => boolean} [acceptRelayed] Whether to accept an incoming relayed circuit from a peer (default: accept all).
 * @property {boolean} [autoReconnect] Reconnect the signaling socket and lost connections automatically (default true).
 * @property {number} [pingIntervalMs] Keep-alive interval on `/signaling` and on relayed circuits, in ms (default 20000).
 * @property {'none' | 'auto' | TokenProvider} [auth] How the `/signaling` socket is authorised (docs/signaling.md, Tokens):
 *   `'none'` (default) shows no token, for open relays; `'auto'` earns a token with the identity key
 *   ({@link fetchRelayToken}) before connecting, refreshes it after 3/4 of its lifetime (the relay then
 *   closes the socket that showed the old one, and the manager reconnects at once with the new one),
 *   and earns a new one if it expired anyway; a function is called for the token to show before every
 *   new socket. A socket closed with 4004 for any other reason (no token on a closed relay, a role that
 *   may not register, a token for another peer, revoked by an admin) is not retried: `init()` rejects,
 *   or an `error` event says `unauthorized`.
 * @property {boolean} [relayIceServers] Use the relay's own STUN and TURN servers: after each registration,
 *   fetch them (`POST /auth/ice-servers`, with a token earned by the identity key; TURN credentials are
 *   short-lived and minted for this peer), add them to `rtcConfig.iceServers`, and fetch them again after
 *   3/4 of their lifetime (default false; the relay must have `[turn] enabled`).
 * @property {string} [authUrl] Base of the token service; default: `signalingUrl` with `ws(s):` → `http(s):` and `/signaling` → `/auth`.
 */

/**
 * Registers with a `darkswap-relay` signaling server and manages one
 * connection per remote peer: WebRTC first, relayed circuit as fallback.
 * Events: see {@link WebRtcConnectionManagerEventMap}.
 */
export class WebRtcConnectionManager extends EventTarget {
  // options
  /** @type {string} */ #relayUrl;
  /** @type {RTCConfiguration} */ #rtcConfig;
  /** @type {number} */ #iceTimeoutMs;
  /** @type {(peerId: string) => boolean} */ #acceptRelayed;
  /** @type {boolean} */ #autoReconnect;
  /** @type {number} */ #pingIntervalMs;
  /** @type {string | null} */ #storageKey;
  /** @type {string} */ #signalingUrl;
  /** @type {string | undefined} */ #authUrl;
  /** @type {boolean} */ #relayIceServers;
  /** @type {RTCIceServer[]} the configured ones, before the relay's are added */ #baseIceServers;
  /** @type {ReturnType<typeof setTimeout> | null} */ #iceTimer = null;

  // identity
  /** @type {CryptoKeyPair | null} */ #identity;
  /** @type {Uint8Array | null} */ #publicKeyProtobuf = null;
  /** @type {string | null} */ #peerId = null;

  // signaling
  /** @type {SignalingClient} */ #signaling;
  #closed = false;
  /** @type {Promise<void> | null} */ #initPromise = null;
  /** @type {Deferred<void> | null} */ #initDeferred = null;
  /** @type {Presence} */ #peers;

  // connections
  /** @type {Map<string, WebRtcConnection>} */ #connections = new Map();
  /** @type {Map<string, WebRtcConnection>} */ #circuits = new Map();
  /** @type {{ peerId: string, conn: WebRtcConnection, relay: RelayedCircuit }[]} FIFO: circuit_request awaiting circuit_pending or error */
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
    const signalingUrl = options.signalingUrl;
    this.#relayUrl = options.relayUrl ?? defaultRelayUrl(signalingUrl);
    this.#rtcConfig = options.rtcConfig ?? { iceServers: [] };
    this.#signalingUrl = signalingUrl;
    this.#authUrl = options.authUrl;
    this.#relayIceServers = options.relayIceServers === true;
    this.#baseIceServers = [...(this.#rtcConfig.iceServers ?? [])];
    this.#iceTimeoutMs = options.iceTimeoutMs ?? 5000;
    this.#acceptRelayed = options.acceptRelayed ?? (() => true);
    this.#autoReconnect = options.autoReconnect ?? true;
    this.#pingIntervalMs = options.pingIntervalMs ?? 20_000;
    this.#storageKey = options.storageKey === undefined ? DEFAULT_STORAGE_KEY : options.storageKey;
    this.#identity = options.identity ?? null;
    const auth = options.auth ?? 'none';
    if (typeof auth !== 'function' && auth !== 'auto' && auth !== 'none') {
      throw new TypeError("auth must be 'none', 'auto' or a function returning a token");
    }
    const self = this;
    const tokens = auth === 'none' ? null : new TokenKeeper({
      auth,
      signalingUrl,
      authUrl: options.authUrl ?? null,
      identity: () => self.#identity,
      onToken: (detail) => self.#emit('token', detail),
      onError: (code, message) => self.#emit('error', { code, message }),
    });
    this.#signaling = new SignalingClient({
      url: signalingUrl,
      autoReconnect: this.#autoReconnect,
      pingIntervalMs: this.#pingIntervalMs,
      tokens,
      events: {
        state: (state) => self.#emit('signaling-state', { state }),
        lifecycle: (state) => self.#emit('state', { state }),
        peers: (peers) => self.#peers.replaceListed(peers),
        presence: (online, offline) => self.#peers.update(online, offline),
        registered: () => self.#onRegistered(),
        peerJoined: (peerId) => self.#peers.update([peerId], []),
        peerLeft: (peerId) => self.#peers.update([], [peerId]),
        message: (message) => self.#onSignal(message),
        serverError: (code, message, inReplyTo) => self.#onServerError(code, message, inReplyTo),
        socketGone: (wasRegistered) => {
          self.#circuitRequests = [];
          if (wasRegistered) self.#onSignalingLost();
        },
        stopped: (error, reportIfNoCaller) => self.#onSignalingStopped(error, reportIfNoCaller),
        error: (code, message) => self.#emit('error', { code, message }),
      },
    });
    this.#peers = new Presence({
      signaling: this.#signaling,
      self: () => self.#peerId,
      appeared: (peerId) => self.#peerJoined(peerId),
      gone: (peerId) => self.#peerLeft(peerId),
    });
    this.#ctx = {
      localPeerId: () => self.#peerId ?? '',
      identity: () => self.#identity,
      rtcConfig: this.#rtcConfig,
      iceTimeoutMs: this.#iceTimeoutMs,
      pingIntervalMs: this.#pingIntervalMs,
      relayUrl: this.#relayUrl,
      sendSignal: (message) => self.#signaling.send(message),
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

  /**
   * Other registered peers as far as the server told: the first page it gave
   * (on registration and {@link WebRtcConnectionManager#refreshPeers}) and the
   * watched peers (those connected with) that are registered.
   * @returns {string[]}
   */
  get peers() { return this.#peers.peers; }

  /**
   * Asks the server for the first page of registered peers again; resolves
   * with `peers` once it is updated (`peer-joined` and `peer-left` events
   * tell what changed).
   * @returns {Promise<string[]>}
   */
  async refreshPeers() {
    await this.#signaling.listPeers();
    return this.peers;
  }

  /**
   * Asks the server for one page of registered peers: the first, or the one
   * after `after` (the previous page's `next`), of at most `limit` (the server
   * caps it at its page size, 100 by default). The page becomes the listed
   * part of `peers` (the watched peers stay). Resolves with the page, or
   * `null` if the server did not answer (not registered, refused, timed out).
   * @param {{ after?: string, limit?: number }} [options]
   * @returns {Promise<PeerPage | null>}
   */
  listPeers(options = {}) {
    return this.#signaling.listPeers(options);
  }

  /** State of the signaling socket (`open` = registered). @returns {SignalingState} */
  get signalingState() { return this.#signaling.state; }

  /**
   * Lifecycle of the connection to the relay (seed 000's states: `new`,
   * `connecting`, `connected`, `disconnected`, `failed`, `closed`); every
   * change is a `state` event, in order.
   * @returns {ConnectionLifecycleState}
   */
  get state() { return this.#signaling.lifecycle; }

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
    const identity = this.#identity;
    if (!this.#peerId || !this.#publicKeyProtobuf) {
      const raw = new Uint8Array(await crypto.subtle.exportKey('raw', identity.publicKey));
      this.#publicKeyProtobuf = ed25519PublicKeyProtobuf(raw);
      this.#peerId = peerIdFromPublicKey(raw);
    }
    if (this.#closed) throw makeError('closed', 'manager is closed');
    if (this.#signaling.registered) return;
    /** @type {Deferred<void>} */
    const ready = deferred();
    this.#initDeferred = ready;
    this.#signaling.start({ identity, publicKeyProtobuf: this.#publicKeyProtobuf, peerId: this.#peerId });
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
    if (!this.#signaling.registered) throw makeError('signaling_unavailable', 'not registered with the signaling server');
    // A peer that is not on our page may still be registered: watching it
    // asks, and tells us if it leaves or comes back.
    if (this.#peers.has(peerId)) this.#peers.watch(peerId);
    else await this.#peers.watch(peerId, true);
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
  /**
   * The ICE servers connections use now: the configured ones and, with
   * `relayIceServers`, the relay's (TURN credentials included).
   * @returns {RTCIceServer[]}
   */
  get iceServers() { return [...(this.#rtcConfig.iceServers ?? [])]; }

  /** Fetches the relay's STUN/TURN servers into `rtcConfig`, and schedules the next fetch. */
  async #refreshIceServers() {
    if (this.#iceTimer) { clearTimeout(this.#iceTimer); this.#iceTimer = null; }
    const identity = this.#identity;
    if (this.#closed || !identity) return;
    /** @type {number} */
    let nextMs;
    try {
      const where = { signalingUrl: this.#signalingUrl, authUrl: this.#authUrl };
      const { token } = await fetchRelayToken({ ...where, identity });
      const { iceServers, expiresAt } = await fetchIceServers({ ...where, token });
      if (this.#closed) return;
      // In place: connections read this object when they make an RTCPeerConnection.
      this.#rtcConfig.iceServers = [...this.#baseIceServers, ...iceServers];
      nextMs = Math.max(10_000, (expiresAt * 1000 - Date.now()) * 0.75);
    } catch (error) {
      const code = isObject(error) && isNonEmptyString(error.code) ? error.code : 'ice_servers_unavailable';
      this.#emit('error', { code, message: `the relay's ICE servers: ${describe(error)}` });
      nextMs = 30_000;
    }
    if (!this.#closed) this.#iceTimer = setTimeout(() => { this.#iceTimer = null; this.#refreshIceServers(); }, nextMs);
  }

  async close() {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#iceTimer) { clearTimeout(this.#iceTimer); this.#iceTimer = null; }
    this.#resume.clear();
    this.#lost.clear();
    this.#peers.clear();
    for (const conn of [...this.#connections.values()]) {
      conn._close({ intentional: true, code: 'closed', message: 'manager closed' });
    }
    this.#connections.clear();
    this.#circuits.clear();
    this.#circuitRequests = [];
    this.#signaling.close();
    this.#initDeferred?.reject(makeError('closed', 'manager closed'));
    this.#initDeferred = null;
    this.#handlers.clear();
  }

  /**
   * Listens to one of the manager's events (see {@link WebRtcConnectionManagerEventMap}).
   * @template {keyof WebRtcConnectionManagerEventMap} K
   * @overload
   * @param {K} type
   * @param {(this: WebRtcConnectionManager, event: WebRtcConnectionManagerEventMap[K]) => void} listener
   * @param {boolean | AddEventListenerOptions} [options]
   * @returns {void}
   */
  /**
   * @overload
   * @param {string} type
   * @param {EventListenerOrEventListenerObject | null} listener
   * @param {boolean | AddEventListenerOptions} [options]
   * @returns {void}
   */
  /**
   * @param {string} type
   * @param {EventListenerOrEventListenerObject | null} listener
   * @param {boolean | AddEventListenerOptions} [options]
   */
  addEventListener(type, listener, options) {
    super.addEventListener(type, listener, options);
  }

  /**
   * @template {keyof WebRtcConnectionManagerEventMap} K
   * @overload
   * @param {K} type
   * @param {(this: WebRtcConnectionManager, event: WebRtcConnectionManagerEventMap[K]) => void} listener
   * @param {boolean | EventListenerOptions} [options]
   * @returns {void}
   */
  /**
   * @overload
   * @param {string} type
   * @param {EventListenerOrEventListenerObject | null} listener
   * @param {boolean | EventListenerOptions} [options]
   * @returns {void}
   */
  /**
   * @param {string} type
   * @param {EventListenerOrEventListenerObject | null} listener
   * @param {boolean | EventListenerOptions} [options]
   */
  removeEventListener(type, listener, options) {
    super.removeEventListener(type, listener, options);
  }

  // ── signaling ──

  /** Registered (again): announce it, settle `init()`, and restore the connections we lost while away. */
  #onRegistered() {
    // The server forgets watches with the socket: watch again on this one.
    this.#peers.rewatch();
    if (this.#relayIceServers && !this.#iceTimer) this.#refreshIceServers();
    this.#emit('registered', { peerId: /** @type {string} */ (this.#peerId), peers: this.peers });
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
   * Signaling gave up until `init()` is called again: a pending `init()`
   * rejects with `error`; without one, `error` is reported as an event if
   * `reportIfNoCaller`.
   * @param {DarkSwapError} error
   * @param {boolean} reportIfNoCaller
   */
  #onSignalingStopped(error, reportIfNoCaller) {
    this.#initPromise = null; // init() may be called again to reconnect by hand
    if (this.#initDeferred) {
      this.#initDeferred.reject(error);
      this.#initDeferred = null;
    } else if (reportIfNoCaller) {
      this.#emit('error', { code: error.code, message: error.message });
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
   * Offers, answers, candidates and circuit messages from the signaling socket.
   * @param {Record<string, unknown>} message
   */
  #onSignal(message) {
    switch (message.type) {
      case 'offer': this.#onOffer(message); break;
      case 'answer': this.#onAnswer(message); break;
      case 'candidate': this.#onCandidate(message); break;
      case 'circuit_pending': this.#onCircuitPending(message); break;
      case 'circuit_request': this.#onCircuitRequest(message); break;
      case 'circuit_ready': this.#onCircuitReady(message); break;
      case 'circuit_rejected': this.#onCircuitRejected(message); break;
      case 'circuit_closed': this.#onCircuitClosed(message); break;
      default: break;
    }
  }

  // ── peers ──

  /** @param {string} peerId */
  #peerJoined(peerId) {
    this.#emit('peer-joined', { peerId });
    if (this.#resume.has(peerId) && this.#signaling.registered) this.#reconnect(peerId);
  }

  /** @param {string} peerId */
  #peerLeft(peerId) {
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
    this.#peers.watch(peerId);
    const conn = WebRtcConnection._create(peerId, initiator, this.#ctx);
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
        if (this.#lost.size > MAX_LOST) this.#lost.delete(/** @type {string} */ (this.#lost.keys().next().value));
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
   * @param {RelayedCircuit} relay
   * @returns {boolean}
   */
  #requestCircuit(conn, relay) {
    if (this.#circuitRequests.length >= MAX_PENDING_CIRCUIT_REQUESTS) return false;
    if (!this.#signaling.send({ type: 'circuit_request', to: conn.peerId })) return false;
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
      this.#signaling.send({ type: 'circuit_close', circuit_id: circuitId }); // nobody wants it any more
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
      this.#signaling.send({ type: 'circuit_reject', circuit_id: circuitId, reason: 'not accepted' });
      // The peer asks for a circuit because it gave up on WebRTC: so do we.
      if (existing?.state === 'connecting' && existing._direct && !existing._direct.offerer) {
        existing._close({ intentional: false, code: 'circuit_rejected', message: 'relayed circuit not accepted' });
      }
      return;
    }
    // Both sides asked for a circuit: the lexicographically smaller peer id yields.
    if (existing?.state === 'connecting' && existing._relay?.requester && /** @type {string} */ (this.#peerId) > from) {
      this.#signaling.send({ type: 'circuit_reject', circuit_id: circuitId, reason: 'glare' });
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
    else this.#signaling.send({ type: 'circuit_close', circuit_id: circuitId });
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

  /**
   * A server `error` that is not about our registration: a refused
   * `circuit_accept` or `circuit_request` fails the connections waiting on it.
   * @param {string} code
   * @param {string} text
   * @param {unknown} inReplyTo
   */
  #onServerError(code, text, inReplyTo) {
    if (inReplyTo === 'circuit_accept' && code === 'forbidden') {
      // Our role may not accept circuits: none we were about to accept will open.
      for (const conn of new Set(this.#circuits.values())) {
        if (conn.state === 'connecting' && conn._relay && !conn._relay.requester && !conn._relay.ws) {
          conn._close({ intentional: false, code, message: `circuit accept refused: ${text}` });
        }
      }
    } else if (inReplyTo === 'circuit_request' && this.#circuitRequests.length > 0) {
      const request = /** @type {{ conn: WebRtcConnection, relay: RelayedCircuit }} */ (this.#circuitRequests.shift());
      if (request.conn._relay === request.relay && request.conn.state === 'connecting') {
        request.conn._close({ intentional: false, code, message: `circuit request refused: ${text}` });
      }
    }
    this.#emit('error', { code, message: text });
  }

  /**
   * @template {keyof WebRtcConnectionManagerEventMap} K
   * @param {K} type
   * @param {WebRtcConnectionManagerEventMap[K]['detail']} detail
   */
  #emit(type, detail) {
    try { this.dispatchEvent(new CustomEvent(type, { detail })); } catch (error) { report(error); }
  }
}

/**
 * `ws://host/signaling` → `ws://host/relay` (query and fragment dropped).
 * @param {string} signalingUrl
 * @returns {string}
 */
function defaultRelayUrl(signalingUrl) {
  const url = new URL(signalingUrl);
  url.pathname = url.pathname.replace(/\/signaling\/?$/, '/relay');
  if (!url.pathname.endsWith('/relay')) url.pathname = `${url.pathname.replace(/\/$/, '')}/relay`;
  url.search = '';
  url.hash = '';
  return url.toString();
}
