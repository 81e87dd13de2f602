// @ts-check
/**
 * The relayed path of a connection: a circuit through the relay's `/relay`
 * endpoint (docs/signaling.md, Relayed circuits), end-to-end encrypted
 * (../darkswap-e2e.js, docs/security-encryption.md).
 *
 * The requesting side sends `circuit_request` on the signaling socket and
 * gets `circuit_pending`; the other side answers `circuit_accept`; both get
 * `circuit_ready` with a token and attach to `/relay` with it. Once the
 * server says `open`, each side sends a handshake frame (an X25519 key signed
 * by its Ed25519 identity for the other peer id) and the circuit carries the
 * connection when the other's verifies. Every later frame is SEALED:
 * AES-256-GCM ciphertext of a kind byte (JSON, bytes, ping, pong) and the
 * payload, so the relay sees nothing but handshakes and ciphertext. A forged
 * key, or an altered, replayed or unencrypted frame closes the connection
 * with an `e2e_*` code.
 * @module
 */

import { E2eError, E2eHandshake, FRAME_OVERHEAD } from '../darkswap-e2e.js';
import { base64Encode, concatBytes, textDecoder, textEncoder } from './bytes.js';
import { describe, makeError } from './errors.js';
import { isObject } from './json.js';
import { SEND_HIGH_WATER } from './message.js';

/**
 * @import { E2eSession } from '../darkswap-e2e.js'
 * @import { ConnectionState } from './connection.js'
 * @import { EncodedMessage } from './message.js'
 */

/** Bound for circuit_request/accept → `open` (the server's accept timeout is 15 s). */
const CIRCUIT_TIMEOUT_MS = 20_000;
/** How long a relayed ping waits for its pong. */
const RELAY_PING_TIMEOUT_MS = 5_000;
const MAX_OUTSTANDING_PINGS = 8;
/** `ws_relay.max_frame_size` default; the outer kind byte and the encryption overhead come off it. */
const MAX_RELAY_FRAME = 256 * 1024;
const DRAIN_POLL_MS = 20;
/** Close code of `/relay`: the circuit was closed (by the peer or the server). */
const CLOSE_CIRCUIT_CLOSED = 4010;

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

/**
 * What a circuit reads from, and reports to, the connection it works for.
 * @typedef {object} CircuitOwner
 * @property {string} peerId the remote peer
 * @property {() => string} localPeerId
 * @property {() => CryptoKeyPair | null} identity the key our handshake is signed with
 * @property {string} relayUrl the `/relay` endpoint
 * @property {() => ConnectionState} state the connection's state
 * @property {(message: Record<string, unknown>) => boolean} sendSignal
 * @property {(circuit: RelayedCircuit) => boolean} requestCircuit sends `circuit_request` and awaits `circuit_pending`
 * @property {(circuitId: string) => void} bind routes signaling messages of `circuitId` to this connection
 * @property {(circuitId: string) => void} unbind
 * @property {() => void} open the handshake verified while the connection was connecting
 * @property {(code: string, message: string) => void} close the circuit failed: the connection closes
 * @property {(message: unknown) => void} deliver a message arrived
 * @property {(code: string, message: string) => void} error a failure worth an `error` event
 */

/** One relayed circuit with one peer; stopped for good by {@link RelayedCircuit#stop}. */
export class RelayedCircuit {
  /** This side sent the circuit_request. @readonly @type {boolean} */ requester;
  /** Known once the server acknowledged the request; `null` once nothing is left to close on the server. @type {string | null} */
  circuitId;
  /** The `/relay` socket, once attached. @type {WebSocket | null} */ ws = null;
  /** @type {CircuitOwner} */ #owner;
  #stopped = false;
  /** @type {ReturnType<typeof setTimeout> | null} */ #timer = null;
  /** @type {Promise<E2eHandshake> | null} ours, made when the server says `open` */ #handshake = null;
  /** @type {E2eSession | null} once the peer's handshake verified */ #session = null;
  /** @type {Promise<void>} binary frames are handled one after the other, in order */ #inbound = Promise.resolve();
  /** @type {Map<string, { sentAt: number, resolve: (rtt: number | null) => void, timer: ReturnType<typeof setTimeout> }>} */
  #pings = new Map();
  /** @type {ReturnType<typeof setInterval> | null} */ #keepAlive = null;

  /**
   * @param {CircuitOwner} owner
   * @param {boolean} requester
   * @param {string | null} circuitId known at once on the accepting side
   */
  constructor(owner, requester, circuitId) {
    this.#owner = owner;
    this.requester = requester;
    this.circuitId = circuitId;
  }

  /**
   * Requesting side: sends `circuit_request`; `false` if it cannot be sent.
   * @returns {boolean}
   */
  request() {
    this.#armTimer();
    return this.#owner.requestCircuit(this);
  }

  /**
   * Requesting side: the server acknowledged our request with `circuitId`.
   * @param {string} circuitId
   * @returns {boolean} false if this circuit already has one
   */
  pending(circuitId) {
    if (this.circuitId !== null) return false;
    this.circuitId = circuitId;
    this.#owner.bind(circuitId);
    return true;
  }

  /**
   * Accepting side: sends `circuit_accept`; `false` if it cannot be sent.
   * @returns {boolean}
   */
  accept() {
    const circuitId = /** @type {string} */ (this.circuitId);
    this.#owner.bind(circuitId);
    this.#armTimer();
    return this.#owner.sendSignal({ type: 'circuit_accept', circuit_id: circuitId });
  }

  /**
   * `circuit_ready`: attach to `/relay` with our token.
   * @param {string} circuitId
   * @param {string} token
   */
  attach(circuitId, token) {
    const owner = this.#owner;
    if (this.circuitId !== circuitId || this.ws || owner.state() !== 'connecting') return;
    /** @type {WebSocket} */
    let ws;
    try {
      ws = new WebSocket(owner.relayUrl);
    } catch (error) {
      owner.close('relay_unavailable', describe(error));
      return;
    }
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      if (!this.#stopped) ws.send(JSON.stringify({ type: 'attach', circuit_id: circuitId, token }));
    };
    ws.onmessage = (event) => {
      if (this.#stopped) return;
      if (typeof event.data === 'string') {
        this.#onControl(event.data);
      } else if (event.data instanceof ArrayBuffer) {
        // The server forwards binary frames only once the circuit is open, so
        // a frame racing ahead of the `open` text still starts our handshake.
        if (!this.#handshake && owner.state() === 'connecting') this.#startHandshake();
        const frame = new Uint8Array(event.data);
        this.#inbound = this.#inbound.then(() => this.#onBinary(frame));
      }
    };
    ws.onclose = (event) => {
      if (this.#stopped) return;
      this.ws = null;
      const reason = event.reason || `close code ${event.code}`;
      owner.close(event.code === CLOSE_CIRCUIT_CLOSED ? 'circuit_closed' : 'relay_closed', reason);
    };
    ws.onerror = () => { /* a close event follows */ };
  }

  /**
   * Sends one message as a SEALED frame, waiting while the socket's buffer is full.
   * @param {EncodedMessage} encoded
   * @returns {Promise<void>}
   */
  async send(encoded) {
    const ws = this.ws;
    if (!ws || !this.#session) throw makeError('not_open', 'connection closed');
    const inner = 'bytes' in encoded
      ? concatBytes(Uint8Array.of(KIND_BINARY), encoded.bytes)
      : concatBytes(Uint8Array.of(KIND_JSON), textEncoder.encode(encoded.text));
    if (inner.byteLength > MAX_SEALED_PLAINTEXT) {
      throw makeError('message_too_large', `${inner.byteLength} bytes exceed ${MAX_SEALED_PLAINTEXT}`);
    }
    await this.#drain(ws);
    if (this.#owner.state() !== 'open' || ws.readyState !== WebSocket.OPEN) throw makeError('not_open', 'connection closed');
    const frame = await this.#seal(inner);
    if (this.#stopped || ws.readyState !== WebSocket.OPEN) throw makeError('not_open', 'connection closed');
    ws.send(frame);
  }

  /**
   * Sends a ping on the circuit; resolves with the RTT or `null` on timeout.
   * @returns {Promise<number | null>}
   */
  ping() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.#owner.state() !== 'open') return Promise.resolve(null);
    if (this.#pings.size >= MAX_OUTSTANDING_PINGS) {
      const [oldestKey, oldest] = this.#pings.entries().next().value ?? [];
      if (oldestKey !== undefined && oldest) {
        this.#pings.delete(oldestKey);
        clearTimeout(oldest.timer);
        oldest.resolve(null);
      }
    }
    const nonce = crypto.getRandomValues(new Uint8Array(8));
    const key = base64Encode(nonce);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.#pings.delete(key)) resolve(null);
      }, RELAY_PING_TIMEOUT_MS);
      this.#pings.set(key, { sentAt: performance.now(), resolve, timer });
      this.#sendSealed(concatBytes(Uint8Array.of(KIND_PING), nonce));
    });
  }

  /**
   * The connection opened: the timeout no longer applies, and a ping every
   * `intervalMs` keeps the circuit alive and measures it.
   * @param {number} intervalMs
   * @param {(rtt: number) => void} onRtt
   */
  opened(intervalMs, onRtt) {
    if (this.#timer) { clearTimeout(this.#timer); this.#timer = null; }
    this.#keepAlive = setInterval(() => { this.ping().then((rtt) => { if (rtt !== null) onRtt(rtt); }); }, intervalMs);
  }

  /** Closes the circuit (on the server too, if it has an id) and the `/relay` socket. */
  stop() {
    this.#stopped = true;
    this.#session = null;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.circuitId !== null) {
      this.#owner.unbind(this.circuitId);
      this.#owner.sendSignal({ type: 'circuit_close', circuit_id: this.circuitId });
    }
    const ws = this.ws;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000, 'closed'); } catch { /* already closed */ }
    }
    if (this.#keepAlive) { clearInterval(this.#keepAlive); this.#keepAlive = null; }
    for (const ping of this.#pings.values()) { clearTimeout(ping.timer); ping.resolve(null); }
    this.#pings.clear();
  }

  #armTimer() {
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (!this.#stopped && this.#owner.state() === 'connecting') {
        this.#owner.close('circuit_timeout', `circuit not open within ${CIRCUIT_TIMEOUT_MS} ms`);
      }
    }, CIRCUIT_TIMEOUT_MS);
  }

  /**
   * Text frames on `/relay`: `attached`, `open`, `error`.
   * @param {string} text
   */
  #onControl(text) {
    /** @type {unknown} */
    let message;
    try { message = JSON.parse(text); } catch { return; }
    if (!isObject(message)) return;
    if (message.type === 'open' && this.#owner.state() === 'connecting' && !this.#handshake) {
      this.#startHandshake();
    } else if (message.type === 'error') {
      this.#owner.error(String(message.code ?? 'relay_error'), String(message.message ?? 'relay error'));
    }
  }

  /**
   * Both ends are attached: send our signed key. The connection opens when
   * the peer's verifies (`#onBinary`).
   */
  #startHandshake() {
    const owner = this.#owner;
    const identity = owner.identity();
    if (!identity) {
      owner.close('e2e_unavailable', 'no identity key');
      return;
    }
    this.#handshake = E2eHandshake.create({ identity, localPeerId: owner.localPeerId(), remotePeerId: owner.peerId });
    this.#handshake.then((handshake) => {
      const ws = this.ws;
      if (!this.#stopped && ws?.readyState === WebSocket.OPEN) {
        ws.send(concatBytes(Uint8Array.of(KIND_HANDSHAKE), handshake.signedKey));
      }
    }, (error) => this.#e2eFailed(error));
  }

  /**
   * One binary frame from the circuit: the peer's handshake first, then only
   * SEALED frames. Anything else means the relay (or the peer) breaks the
   * protocol, and closes the connection.
   * @param {Uint8Array} frame
   */
  async #onBinary(frame) {
    const handshake = this.#handshake;
    if (this.#stopped || !handshake || frame.length === 0) return;
    const kind = frame[0];
    const body = frame.subarray(1);
    try {
      if (!this.#session) {
        if (kind !== KIND_HANDSHAKE) throw new E2eError('e2e_protocol_error', `frame kind ${kind} before the handshake`);
        const session = await (await handshake).accept(body);
        if (this.#stopped) return;
        this.#session = session;
        if (this.#owner.state() === 'connecting') this.#owner.open();
        return;
      }
      if (kind !== KIND_SEALED) throw new E2eError('e2e_protocol_error', `unencrypted frame of kind ${kind}`);
      const inner = await this.#session.decrypt(body);
      if (!this.#stopped && this.#owner.state() === 'open') this.#onFrame(inner);
    } catch (error) {
      this.#e2eFailed(error);
    }
  }

  /**
   * End-to-end encryption failed on this circuit: report and close.
   * @param {unknown} error
   */
  #e2eFailed(error) {
    if (this.#stopped) return;
    const code = error instanceof E2eError ? error.code : 'e2e_unavailable';
    const message = `end-to-end encryption with ${this.#owner.peerId}: ${describe(error)}`;
    this.#owner.error(code, message);
    this.#owner.close(code, message);
  }

  /**
   * A decrypted frame: kind byte, then the payload.
   * @param {Uint8Array} frame
   */
  #onFrame(frame) {
    if (frame.length === 0) return;
    const kind = frame[0];
    const body = frame.subarray(1);
    if (kind === KIND_JSON) {
      /** @type {unknown} */
      let message;
      try { message = JSON.parse(textDecoder.decode(body)); } catch {
        this.#owner.error('invalid_payload', `malformed JSON frame from ${this.#owner.peerId}`);
        return;
      }
      this.#owner.deliver(message);
    } else if (kind === KIND_BINARY) {
      this.#owner.deliver(body.slice());
    } else if (kind === KIND_PING) {
      const ws = this.ws;
      if (ws && ws.readyState === WebSocket.OPEN && ws.bufferedAmount < SEND_HIGH_WATER) {
        this.#sendSealed(concatBytes(Uint8Array.of(KIND_PONG), body.subarray(0, 8)));
      }
    } else if (kind === KIND_PONG) {
      const key = base64Encode(body.subarray(0, 8));
      const ping = this.#pings.get(key);
      if (ping) {
        this.#pings.delete(key);
        clearTimeout(ping.timer);
        ping.resolve(performance.now() - ping.sentAt);
      }
    }
    // Unknown kinds are ignored (forward compatibility).
  }

  /**
   * Encrypts one plaintext frame (kind byte + body) for the circuit.
   * @param {Uint8Array} inner
   * @returns {Promise<Uint8Array<ArrayBuffer>>}
   */
  async #seal(inner) {
    const session = this.#session;
    if (!session) throw makeError('not_open', 'no end-to-end session');
    return concatBytes(Uint8Array.of(KIND_SEALED), await session.encrypt(inner));
  }

  /**
   * Encrypts and sends a control frame (ping, pong) if the circuit is still up.
   * @param {Uint8Array} inner
   */
  #sendSealed(inner) {
    if (!this.#session) return;
    this.#seal(inner).then((frame) => {
      if (!this.#stopped && this.ws?.readyState === WebSocket.OPEN) this.ws.send(frame);
    }, (error) => this.#e2eFailed(error));
  }

  /**
   * Waits while the socket's buffer is over the high-water mark.
   * @param {WebSocket} ws
   */
  async #drain(ws) {
    while (ws.bufferedAmount > SEND_HIGH_WATER && ws.readyState === WebSocket.OPEN && this.#owner.state() === 'open') {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }
  }
}
