// @ts-check
/**
 * A connection to one remote peer: the state machine that tries the direct
 * path (./webrtc.js) first and falls back to a relayed circuit
 * (./circuit.js), and what the application sees of it.
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
 * WebRTC attempt with it.
 * @module
 */

import { RelayedCircuit } from './circuit.js';
import { deferred } from './deferred.js';
import { describe, makeError } from './errors.js';
import { encodeMessage } from './message.js';
import { DirectAttempt, randomId } from './webrtc.js';

/**
 * @import { Deferred } from './deferred.js'
 * @import { EncodedMessage } from './message.js'
 * @import { CircuitOwner } from './circuit.js'
 * @import { DirectOwner } from './webrtc.js'
 * @import { WebRtcConnectionManager } from './manager.js'
 */

/** Guards the WebRtcConnection constructor: connections are made by the manager only. */
const INTERNAL = Symbol('darkswap-relay-client.internal');
/** Messages that may wait for buffer space on one connection. */
const MAX_QUEUED_SENDS = 1024;

/**
 * Lifecycle of a connection: `connecting` → `open` → `closed` (or `connecting` → `closed`).
 * @typedef {'connecting' | 'open' | 'closed'} ConnectionState
 */

/**
 * Transport of a connection: a WebRTC data channel, or a circuit through the relay.
 * @typedef {'direct' | 'relayed'} ConnectionPath
 */

/**
 * Result of {@link WebRtcConnection#getQuality}.
 * @typedef {object} ConnectionQuality
 * @property {ConnectionPath} path
 * @property {number | null} rtt Round-trip time in milliseconds, `null` if unknown.
 */

/**
 * What a connection needs from its manager.
 * @typedef {object} ConnectionContext
 * @property {() => string} localPeerId
 * @property {() => CryptoKeyPair | null} identity
 * @property {RTCConfiguration} rtcConfig
 * @property {number} iceTimeoutMs
 * @property {number} pingIntervalMs
 * @property {string} relayUrl
 * @property {(message: Record<string, unknown>) => boolean} sendSignal
 * @property {(conn: WebRtcConnection, relay: RelayedCircuit) => boolean} requestCircuit
 * @property {(circuitId: string, conn: WebRtcConnection) => void} bindCircuit
 * @property {(circuitId: string, conn: WebRtcConnection) => void} unbindCircuit
 * @property {(conn: WebRtcConnection, change: StateChange) => void} stateChanged
 * @property {(conn: WebRtcConnection, message: unknown) => void} deliver
 * @property {(code: string, message: string) => void} error
 */

/**
 * What changed, as the manager is told with every state or path change.
 * @typedef {object} StateChange
 * @property {boolean} wasOpen
 * @property {boolean} intentional the connection was closed on purpose by this side
 * @property {string} [code]
 */

/**
 * A connection to one remote peer, direct (WebRTC data channel) or relayed
 * (circuit through the relay's `/relay` endpoint). Created by
 * {@link WebRtcConnectionManager}; never construct it yourself.
 */
export class WebRtcConnection {
  /** Remote peer id. @readonly @type {string} */
  peerId;
  /** @type {ConnectionPath} */ #path = 'direct';
  /** @type {ConnectionState} */ #state = 'connecting';
  /** @type {boolean} */ #initiator;
  /** @type {number | null} */ #rtt = null;

  /** @internal @type {ConnectionContext} */ _ctx;
  /** @internal @type {Deferred<WebRtcConnection>} */ _ready = deferred();
  /** @internal The WebRTC attempt, while it is tried or carries the connection. @type {DirectAttempt | null} */ _direct = null;
  /** @internal The relayed circuit, while it is tried or carries the connection. @type {RelayedCircuit | null} */ _relay = null;
  /** @internal @type {Promise<void>} tail of the send queue */ _sendQueue = Promise.resolve();
  /** @internal */ _queuedSends = 0;
  /** @type {DirectOwner} */ #directOwner;
  /** @type {CircuitOwner} */ #circuitOwner;

  /**
   * @private
   * @param {symbol} token
   * @param {string} peerId
   * @param {boolean} initiator
   * @param {ConnectionContext} ctx
   */
  constructor(token, peerId, initiator, ctx) {
    if (token !== INTERNAL) throw new TypeError('WebRtcConnection is created by WebRtcConnectionManager');
    this.peerId = peerId;
    this.#initiator = initiator;
    this._ctx = ctx;
    const state = () => this.#state;
    const deliver = (/** @type {unknown} */ message) => ctx.deliver(this, message);
    this.#directOwner = {
      peerId,
      rtcConfig: ctx.rtcConfig,
      iceTimeoutMs: ctx.iceTimeoutMs,
      state,
      sendSignal: ctx.sendSignal,
      open: () => this._becomeOpen(),
      failed: (attempt, code, message) => this._directFailed(attempt, code, message),
      deliver,
      error: ctx.error,
    };
    this.#circuitOwner = {
      peerId,
      localPeerId: ctx.localPeerId,
      identity: ctx.identity,
      relayUrl: ctx.relayUrl,
      state,
      sendSignal: ctx.sendSignal,
      requestCircuit: (circuit) => ctx.requestCircuit(this, circuit),
      bind: (circuitId) => ctx.bindCircuit(circuitId, this),
      unbind: (circuitId) => ctx.unbindCircuit(circuitId, this),
      open: () => this._becomeOpen(),
      close: (code, message) => this._close({ intentional: false, code, message }),
      deliver,
      error: ctx.error,
    };
  }

  /**
   * @internal Makes a connection (the constructor refuses callers without the module's token).
   * @param {string} peerId
   * @param {boolean} initiator
   * @param {ConnectionContext} ctx
   * @returns {WebRtcConnection}
   */
  static _create(peerId, initiator, ctx) {
    return new WebRtcConnection(INTERNAL, peerId, initiator, ctx);
  }

  /** Transport currently in use (or being tried while `connecting`). @returns {ConnectionPath} */
  get path() { return this.#path; }

  /** @returns {ConnectionState} */
  get state() { return this.#state; }

  /** True if this side started the connection (sent the offer or circuit request that made it). @returns {boolean} */
  get initiator() { return this.#initiator; }

  /** Last measured round-trip time in milliseconds, or `null`. @returns {number | null} */
  get rtt() { return this.#rtt; }

  /**
   * Sends one message: a `Uint8Array`, `ArrayBuffer` or typed array as binary,
   * anything else as JSON. Waits while the transport's send buffer is full.
   * @param {unknown} message
   * @returns {Promise<void>}
   */
  send(message) {
    /** @type {EncodedMessage} */
    let encoded;
    try { encoded = encodeMessage(message); } catch (error) { return Promise.reject(error); }
    if (this.#state !== 'open') return Promise.reject(makeError('not_open', `connection to ${this.peerId} is ${this.#state}`));
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
   * @param {EncodedMessage} encoded
   */
  async _sendNow(encoded) {
    if (this.#state !== 'open') throw makeError('not_open', `connection to ${this.peerId} is ${this.#state}`);
    if (this._direct?.dc) {
      await this._direct.send(encoded);
      return;
    }
    if (!this._relay) throw makeError('not_open', 'connection closed');
    await this._relay.send(encoded);
  }

  /**
   * Measures the connection: for a direct connection the `currentRoundTripTime`
   * of the selected ICE candidate pair, for a relayed one a ping/pong over the
   * circuit. Updates {@link WebRtcConnection#rtt}.
   * @returns {Promise<ConnectionQuality>}
   */
  async getQuality() {
    if (this.#state === 'open') {
      if (this._direct) {
        const rtt = await this._direct.rtt();
        if (rtt !== null) this.#rtt = rtt;
      } else if (this._relay) {
        const rtt = await this._relay.ping();
        if (rtt !== null) this.#rtt = rtt;
      }
    }
    return { path: this.#path, rtt: this.#rtt };
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
      attempt = new DirectAttempt(this.#directOwner, true, randomId());
      this._direct = attempt;
      attempt.createDataChannel();
    } catch {
      // No usable WebRTC here (disabled, invalid rtcConfig): go straight to a circuit.
      this._startCircuitRequest();
      return;
    }
    await attempt.offer();
  }

  /**
   * @internal Answers an incoming offer, replacing whatever attempt is pending.
   * @param {string} sdp
   * @param {string | undefined} session
   */
  async _acceptOffer(sdp, session) {
    this._teardownAttempt();
    this.#initiator = false;
    this._setPath('direct');
    /** @type {DirectAttempt} */
    let attempt;
    try {
      attempt = new DirectAttempt(this.#directOwner, false, session);
    } catch (error) {
      this._close({ intentional: false, code: 'webrtc_error', message: describe(error) });
      return;
    }
    this._direct = attempt;
    await attempt.answer(sdp);
  }

  /**
   * @internal
   * @param {string} sdp
   * @param {string | undefined} session
   */
  async _handleAnswer(sdp, session) {
    await this._direct?.handleAnswer(sdp, session);
  }

  /**
   * @internal
   * @param {unknown} candidate `RTCIceCandidateInit` or `null` (end of candidates)
   * @param {string | undefined} session
   */
  async _handleCandidate(candidate, session) {
    await this._direct?.handleCandidate(candidate, session);
  }

  /**
   * @internal A WebRTC attempt could not (or can no longer) carry the connection.
   * @param {DirectAttempt} attempt
   * @param {string} code
   * @param {string} message
   */
  _directFailed(attempt, code, message) {
    if (this._direct !== attempt) return;
    if (this.#state === 'open') {
      this._close({ intentional: false, code, message });
    } else if (this.#state === 'connecting') {
      if (attempt.offerer && code !== 'signaling_unavailable') this._startCircuitRequest();
      else this._close({ intentional: false, code, message });
    }
  }

  // ── relayed path ──

  /** @internal Falls back to (or starts) a relayed circuit as the requesting side. */
  _startCircuitRequest() {
    this._teardownAttempt();
    const relay = new RelayedCircuit(this.#circuitOwner, true, null);
    this._relay = relay;
    this._setPath('relayed');
    if (!relay.request()) {
      this._close({ intentional: false, code: 'signaling_unavailable', message: 'cannot request a circuit' });
    }
  }

  /**
   * @internal The server acknowledged our circuit_request.
   * @param {RelayedCircuit} relay
   * @param {string} circuitId
   * @returns {boolean} false if this attempt no longer wants the circuit
   */
  _circuitPending(relay, circuitId) {
    if (this._relay !== relay || this.#state !== 'connecting') return false;
    return relay.pending(circuitId);
  }

  /**
   * @internal Accepts an incoming circuit, replacing whatever attempt is pending.
   * @param {string} circuitId
   */
  _acceptCircuit(circuitId) {
    this._teardownAttempt();
    this.#initiator = false;
    const relay = new RelayedCircuit(this.#circuitOwner, false, circuitId);
    this._relay = relay;
    this._setPath('relayed');
    if (!relay.accept()) {
      this._close({ intentional: false, code: 'signaling_unavailable', message: 'cannot accept the circuit' });
    }
  }

  /**
   * @internal `circuit_ready`: attach to `/relay` with our token.
   * @param {string} circuitId
   * @param {string} token
   */
  _circuitReady(circuitId, token) {
    this._relay?.attach(circuitId, token);
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
    if (this.#path === path) return;
    this.#path = path;
    this._ctx.stateChanged(this, { wasOpen: false, intentional: false });
  }

  /** @internal */
  _becomeOpen() {
    this._direct?.opened();
    this._relay?.opened(this._ctx.pingIntervalMs, (rtt) => { this.#rtt = rtt; });
    this.#state = 'open';
    this._ready.resolve(this);
    this._ctx.stateChanged(this, { wasOpen: false, intentional: false });
  }

  /** @internal Tears down the pending or current transport (a circuit we hold is closed on the server). */
  _teardownAttempt() {
    const direct = this._direct;
    if (direct) {
      this._direct = null;
      direct.stop();
    }
    const relay = this._relay;
    if (relay) {
      this._relay = null;
      relay.stop();
    }
  }

  /**
   * @internal Moves to `closed` (idempotent).
   * @param {{ intentional: boolean, code: string, message: string }} how
   */
  _close({ intentional, code, message }) {
    if (this.#state === 'closed') return;
    const wasOpen = this.#state === 'open';
    this._teardownAttempt();
    this.#state = 'closed';
    if (!wasOpen) this._ready.reject(makeError(code, message));
    this._ctx.stateChanged(this, { wasOpen, intentional, code });
  }
}
