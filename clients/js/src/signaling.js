// @ts-check
/**
 * The `/signaling` socket (docs/signaling.md): opens it (showing a token on
 * relays that require one), proves the peer id by signing the server's
 * challenge, keeps it alive, reconnects with exponential backoff, and hands
 * every other message to its owner, the {@link WebRtcConnectionManager}.
 *
 * Close codes decide what happens next: 4004 (token refused) is retried at
 * once with a new token when a new token cures it (our own refresh retired
 * the old one, it expired, a kept one went stale) and is final otherwise;
 * 1013 (a connection limit) backs off; anything else reconnects with backoff,
 * and during the first registration only `already_registered` is retried.
 * @module
 */

import { base64Decode, base64Encode, concatBytes, textEncoder } from './bytes.js';
import { describe, makeError, report } from './errors.js';
import { deferred } from './deferred.js';
import { isNonEmptyString, isObject } from './json.js';
import { isTransientAuthError } from './tokens.js';

/**
 * @import { DarkSwapError } from './errors.js'
 * @import { Deferred } from './deferred.js'
 * @import { TokenKeeper } from './tokens.js'
 * @import { WebRtcConnectionManager } from './manager.js'
 */

/** Tag signed before the challenge nonce (docs/signaling.md, Registration). */
const REGISTER_TAG = 'darkswap-signaling/v1/register';
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10_000;
/** Client-side bound for challenge → registered (the server's own is 10 s), and for a `list_peers` answer. */
const REGISTER_TIMEOUT_MS = 15_000;
const MAX_SIGNALING_FRAME = 64 * 1024;
/** Server error codes that refuse a registration (the socket is then closed with 4003). */
const REGISTER_REFUSALS = new Set(['bad_signature', 'already_registered', 'server_full']);
/** Subprotocol offered on `/signaling` beside the token, and the one the server selects. */
const WS_PROTOCOL = 'darkswap.v1';
/** A token travels as the subprotocol `darkswap-token.<jwt>`: browsers cannot set headers on a WebSocket. */
const WS_TOKEN_PROTOCOL_PREFIX = 'darkswap-token.';
/** Close code: invalid, expired or revoked token, or a role that may not register. */
const CLOSE_UNAUTHORIZED = 4004;
/** Close code: refused by a connection limit; retry later. */
const CLOSE_TRY_AGAIN_LATER = 1013;

/**
 * State of the signaling socket; `open` means registered.
 * @typedef {'connecting' | 'open' | 'closed'} SignalingState
 */

/**
 * Lifecycle of the signaling connection (seed 000's connection states, as the
 * native client's `ConnectionState`): `new` (never connected), `connecting`
 * (opening and registering, the first time or again), `connected`
 * (registered), `disconnected` (lost; a reconnection is scheduled, or none
 * without `autoReconnect`), `failed` (gave up: refused for good, or the first
 * connection failed), `closed` (closed on purpose).
 * @typedef {'new' | 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed'} ConnectionLifecycleState
 */

/**
 * One page of the registered peers (`list_peers`).
 * @typedef {object} PeerPage
 * @property {string[]} peers the page, in the server's order
 * @property {string | null} next where the next page starts (`after`); `null` on the last page
 */

/**
 * What registration is signed with: the identity and what it derives.
 * @typedef {object} Signer
 * @property {CryptoKeyPair} identity
 * @property {Uint8Array} publicKeyProtobuf libp2p protobuf encoding of the public key
 * @property {string} peerId
 */

/**
 * What the signaling client reports to its owner.
 * @typedef {object} SignalingEvents
 * @property {(state: SignalingState) => void} state the state changed
 * @property {(state: ConnectionLifecycleState) => void} lifecycle the lifecycle state changed
 * @property {(peers: string[]) => void} peers a page of the registered peers (the first on registration, then each answer to `list_peers`)
 * @property {(online: string[], offline: string[]) => void} presence which of the peers named in a `watch` are registered now
 * @property {() => void} registered registered, the state is `open`
 * @property {(peerId: string) => void} peerJoined a watched peer registered
 * @property {(peerId: string) => void} peerLeft a watched peer left
 * @property {(message: Record<string, unknown>) => void} message an offer, answer, candidate or circuit message
 * @property {(code: string, message: string, inReplyTo: unknown) => void} serverError an `error` message that is not about registration
 * @property {(wasRegistered: boolean) => void} socketGone the socket is gone (before the state becomes `closed`)
 * @property {(error: DarkSwapError, reportIfNoCaller: boolean) => void} stopped the client gave up until `start()` is called again
 * @property {(code: string, message: string) => void} error a local failure worth an `error` event
 */

/**
 * @param {unknown} value
 * @returns {string[]}
 */
function peerList(value) {
  return Array.isArray(value) ? value.filter(isNonEmptyString) : [];
}

/** A client of the relay's `/signaling` WebSocket. */
export class SignalingClient {
  /** @type {string} */ #url;
  /** @type {boolean} */ #autoReconnect;
  /** @type {number} */ #pingIntervalMs;
  /** @type {TokenKeeper | null} null: no token is shown (`auth: 'none'`) */ #tokens;
  /** @type {SignalingEvents} */ #events;
  /** @type {Signer | null} */ #signer = null;

  /** @type {WebSocket | null} */ #ws = null;
  #registered = false;
  /** @type {string | null} registration refusal received on the current socket */ #refusal = null;
  /** @type {SignalingState} */ #state = 'closed';
  /** @type {ConnectionLifecycleState} */ #lifecycle = 'new';
  #closed = false;
  #everRegistered = false;
  #reconnectAttempt = 0;
  /** @type {ReturnType<typeof setTimeout> | null} */ #reconnectTimer = null;
  /** @type {ReturnType<typeof setTimeout> | null} */ #registerTimer = null;
  /** @type {ReturnType<typeof setInterval> | null} */ #pingTimer = null;
  #pingCounter = 0;
  #awaitingPong = false;
  /** @type {Deferred<PeerPage | null>[]} pending list_peers, answered in order */ #pages = [];
  /** @type {Deferred<void>[]} pending watches, answered in order */ #watches = [];
  /** waiting for a token before opening a socket */ #opening = false;
  /** @type {string | null} the token the current socket showed */ #wsToken = null;
  /** the current socket's token was earned (or supplied) for it, not reused */ #wsTokenFresh = false;
  /** @type {string | null} why the server refused the current socket's token or role */ #wsAuthMessage = null;

  /**
   * @param {{ url: string, autoReconnect: boolean, pingIntervalMs: number, tokens: TokenKeeper | null, events: SignalingEvents }} options
   */
  constructor({ url, autoReconnect, pingIntervalMs, tokens, events }) {
    this.#url = url;
    this.#autoReconnect = autoReconnect;
    this.#pingIntervalMs = pingIntervalMs;
    this.#tokens = tokens;
    this.#events = events;
  }

  /** @returns {SignalingState} */
  get state() { return this.#state; }

  /** @returns {ConnectionLifecycleState} */
  get lifecycle() { return this.#lifecycle; }

  /** Whether the current socket is registered. */
  get registered() { return this.#registered; }

  /**
   * Connects and registers with `signer`, unless a reconnect is already
   * scheduled; `events.registered` tells when it is done.
   * @param {Signer} signer
   */
  start(signer) {
    this.#signer = signer;
    if (!this.#reconnectTimer) this.#connectSocket();
  }

  /**
   * Sends one message; `false` if it cannot be sent (no socket, not
   * registered yet, or too large).
   * @param {Record<string, unknown>} message
   * @returns {boolean}
   */
  send(message) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    if (message.type !== 'register' && message.type !== 'ping' && !this.#registered) return false;
    const text = JSON.stringify(message);
    if (text.length > MAX_SIGNALING_FRAME) {
      this.#events.error('message_too_large', `${message.type} exceeds the signaling frame limit`);
      return false;
    }
    ws.send(text);
    return true;
  }

  /**
   * Asks the server for one page of registered peers (`list_peers`): the
   * first, or the one after `after` (the `next` of the previous page), of at
   * most `limit` (the server caps it at its page size). Resolves with the page
   * when it arrives (after `events.peers`), or with `null` when the server
   * refuses, after `REGISTER_TIMEOUT_MS` or when the socket goes.
   * @param {{ after?: string, limit?: number }} [options]
   * @returns {Promise<PeerPage | null>}
   */
  listPeers({ after, limit } = {}) {
    /** @type {Record<string, unknown>} */
    const ask = { type: 'list_peers' };
    if (after !== undefined) ask.after = after;
    if (limit !== undefined) ask.limit = limit;
    if (!this.send(ask)) return Promise.resolve(null);
    /** @type {Deferred<PeerPage | null>} */
    const answered = deferred();
    this.#pages.push(answered);
    const timer = setTimeout(() => answered.resolve(null), REGISTER_TIMEOUT_MS);
    answered.promise.finally(() => {
      clearTimeout(timer);
      this.#pages = this.#pages.filter((p) => p !== answered);
    }).catch(() => {});
    return answered.promise;
  }

  /**
   * Asks to hear when these peers register or leave (`watch`); resolves when
   * the server says which are registered now (after `events.presence`), or
   * refuses, after `REGISTER_TIMEOUT_MS` or when the socket goes.
   * @param {string[]} peerIds
   * @returns {Promise<void>}
   */
  watch(peerIds) {
    if (peerIds.length === 0 || !this.send({ type: 'watch', peers: peerIds })) return Promise.resolve();
    /** @type {Deferred<void>} */
    const answered = deferred();
    this.#watches.push(answered);
    const timer = setTimeout(() => answered.resolve(), REGISTER_TIMEOUT_MS);
    answered.promise.finally(() => {
      clearTimeout(timer);
      this.#watches = this.#watches.filter((w) => w !== answered);
    }).catch(() => {});
    return answered.promise;
  }

  /**
   * Stops hearing of these peers (`unwatch`).
   * @param {string[]} peerIds
   */
  unwatch(peerIds) {
    if (peerIds.length > 0) this.send({ type: 'unwatch', peers: peerIds });
  }

  /** Closes the socket and stops every timer; the client cannot be used afterwards. */
  close() {
    this.#closed = true;
    if (this.#reconnectTimer) { clearTimeout(this.#reconnectTimer); this.#reconnectTimer = null; }
    this.#tokens?.close();
    const ws = this.#ws;
    this.#detachSocket();
    if (ws) {
      try { ws.close(1000, 'client closed'); } catch { /* already closed */ }
    }
    this.#setState('closed');
    this.#setLifecycle('closed');
  }

  // ── socket ──

  /** Opens the socket, with a token first unless `auth` is `'none'`. */
  #connectSocket() {
    if (this.#closed || this.#ws || this.#opening) return;
    const tokens = this.#tokens;
    if (!tokens) {
      this.#openSocket(null, false);
      return;
    }
    this.#opening = true;
    this.#setState('connecting');
    this.#setLifecycle('connecting');
    tokens.forSocket(/** @type {Signer} */ (this.#signer).peerId).then(({ token, fresh }) => {
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
    this.#setState('connecting');
    this.#setLifecycle('connecting');
    /** @type {WebSocket} */
    let ws;
    try {
      ws = token === null
        ? new WebSocket(this.#url)
        : new WebSocket(this.#url, [WS_PROTOCOL, `${WS_TOKEN_PROTOCOL_PREFIX}${token}`]);
    } catch (error) {
      this.#onSocketGone(null, 0, describe(error));
      return;
    }
    this.#ws = ws;
    this.#registered = false;
    this.#refusal = null;
    this.#wsToken = token;
    this.#wsTokenFresh = fresh;
    this.#wsAuthMessage = null;
    ws.onmessage = (event) => {
      try { this.#onFrame(ws, event.data); } catch (error) { report(error); }
    };
    ws.onclose = (event) => this.#onSocketGone(ws, event.code, event.reason);
    ws.onerror = () => { /* a close event follows */ };
    this.#registerTimer = setTimeout(() => {
      this.#registerTimer = null;
      if (this.#ws === ws && !this.#registered) this.#dropSocket(ws, 'registration timed out');
    }, REGISTER_TIMEOUT_MS);
  }

  /** Stops listening to the current socket and clears its timers. */
  #detachSocket() {
    for (const p of this.#pages.splice(0)) p.resolve(null);
    for (const w of this.#watches.splice(0)) w.resolve();
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
    const wasRegistered = this.#registered;
    const refusal = this.#refusal;
    const token = this.#wsToken;
    const fresh = this.#wsTokenFresh;
    const authMessage = this.#wsAuthMessage;
    this.#detachSocket();
    this.#registered = false;
    this.#refusal = null;
    this.#wsToken = null;
    this.#wsAuthMessage = null;
    this.#events.socketGone(wasRegistered);
    this.#setState('closed');
    if (this.#closed) return;

    const initializing = !this.#everRegistered;
    if (code === CLOSE_UNAUTHORIZED) {
      if (token !== null && this.#tokens?.renewable(token, fresh, reason, authMessage)) {
        // Our token ran out, our own refresh retired it, or a reused one went
        // stale: connect again with a new one.
        this.#tokens.forget(token);
        if (this.#autoReconnect || initializing) {
          this.#reconnectAttempt = 0;
          this.#scheduleReconnect();
        }
        return;
      }
      // Refused for who we are (no token on a closed relay, a role below
      // signaling_role, a token for another peer, revoked by an admin):
      // retrying cannot help, so do not.
      this.#tokens?.stopRefreshing();
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
    const error = refusal
      ? makeError(refusal, `registration refused: ${refusal}`)
      : makeError('signaling_unavailable', `signaling socket closed (${code}${reason ? ` ${reason}` : ''})`);
    // A registered socket lost without reconnection stays disconnected; a
    // first connection that failed has failed.
    this.#setLifecycle(wasRegistered && !this.#autoReconnect ? 'disconnected' : 'failed');
    this.#events.stopped(error, false);
  }

  /** @param {number} [minDelayMs] e.g. a `Retry-After` */
  #scheduleReconnect(minDelayMs = 0) {
    if (this.#reconnectTimer || this.#closed) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.#reconnectAttempt);
    this.#reconnectAttempt = Math.min(this.#reconnectAttempt + 1, 16);
    const delay = Math.max(minDelayMs, base / 2 + Math.random() * base / 2);
    this.#setState('connecting');
    this.#setLifecycle('disconnected');
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (!this.#closed && !this.#ws) this.#connectSocket();
    }, delay);
  }

  /**
   * Gives up until `start()` is called again: the owner rejects a pending
   * `init()` with `error`, or else reports it as an `error` event.
   * @param {DarkSwapError} error
   */
  #authFailed(error) {
    this.#setState('closed');
    this.#setLifecycle('failed');
    this.#events.stopped(error, true);
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
      this.#setState('closed');
      this.#events.error(failure.code, failure.message);
      this.#scheduleReconnect(failure.retryAfterMs ?? 0);
      return;
    }
    this.#tokens?.stopRefreshing();
    this.#authFailed(failure);
  }

  /** @param {SignalingState} state */
  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.#events.state(state);
  }

  /** @param {ConnectionLifecycleState} state */
  #setLifecycle(state) {
    if (this.#lifecycle === state) return;
    this.#lifecycle = state;
    this.#events.lifecycle(state);
  }

  // ── messages ──

  /**
   * @param {WebSocket} ws
   * @param {unknown} data
   */
  #onFrame(ws, data) {
    if (ws !== this.#ws || typeof data !== 'string') return;
    this.#awaitingPong = false; // any message proves the socket alive
    /** @type {unknown} */
    let message;
    try { message = JSON.parse(data); } catch { return; }
    if (!isObject(message) || typeof message.type !== 'string') return;
    switch (message.type) {
      case 'challenge': this.#onChallenge(ws, message); break;
      case 'registered': this.#onRegistered(ws, message); break;
      case 'peer_joined': if (isNonEmptyString(message.peer_id)) this.#events.peerJoined(message.peer_id); break;
      case 'peer_left': if (isNonEmptyString(message.peer_id)) this.#events.peerLeft(message.peer_id); break;
      case 'peers': {
        const page = { peers: peerList(message.peers), next: isNonEmptyString(message.next) ? message.next : null };
        this.#events.peers(page.peers);
        this.#pages.shift()?.resolve(page);
        break;
      }
      case 'presence':
        this.#events.presence(peerList(message.online), peerList(message.offline));
        this.#watches.shift()?.resolve();
        break;
      case 'pong': break;
      case 'offer':
      case 'answer':
      case 'candidate':
      case 'circuit_pending':
      case 'circuit_request':
      case 'circuit_ready':
      case 'circuit_rejected':
      case 'circuit_closed':
        this.#events.message(message);
        break;
      case 'error': this.#onServerError(message); break;
      default: break; // unknown types are ignored
    }
  }

  /**
   * @param {WebSocket} ws
   * @param {Record<string, unknown>} message
   */
  #onChallenge(ws, message) {
    if (this.#registered || typeof message.nonce !== 'string') return;
    const signer = this.#signer;
    if (!signer) return;
    const { identity, publicKeyProtobuf, peerId } = signer;
    /** @type {Uint8Array} */
    let nonce;
    try { nonce = base64Decode(message.nonce); } catch { return; }
    const data = concatBytes(textEncoder.encode(REGISTER_TAG), nonce);
    crypto.subtle.sign({ name: 'Ed25519' }, identity.privateKey, data).then((signature) => {
      if (ws !== this.#ws || this.#registered) return;
      this.send({
        type: 'register',
        peer_id: peerId,
        public_key: base64Encode(publicKeyProtobuf),
        signature: base64Encode(new Uint8Array(signature)),
      });
    }, (error) => {
      this.#events.error('signing_failed', describe(error));
      if (ws === this.#ws) this.#dropSocket(ws, 'signing failed');
    });
  }

  /**
   * @param {WebSocket} ws
   * @param {Record<string, unknown>} message
   */
  #onRegistered(ws, message) {
    if (this.#registered) return;
    this.#registered = true;
    this.#everRegistered = true;
    this.#reconnectAttempt = 0;
    if (this.#registerTimer) { clearTimeout(this.#registerTimer); this.#registerTimer = null; }
    this.#awaitingPong = false;
    this.#pingTimer = setInterval(() => {
      if (ws !== this.#ws) return;
      if (this.#awaitingPong) { this.#dropSocket(ws, 'keep-alive timed out'); return; }
      this.#awaitingPong = true;
      this.send({ type: 'ping', id: ++this.#pingCounter });
    }, this.#pingIntervalMs);
    this.#events.peers(peerList(message.peers));
    this.#setState('open');
    this.#setLifecycle('connected');
    this.#events.registered();
  }

  /**
   * A server `error`: a registration refusal is ours to handle (the server
   * closes the socket next); anything else goes to the owner.
   * @param {Record<string, unknown>} message
   */
  #onServerError(message) {
    const code = typeof message.code === 'string' ? message.code : 'unknown_error';
    const text = typeof message.message === 'string' ? message.message : code;
    if (!this.#registered && code === 'unauthorized') {
      // The server closes the socket with 4004 next, which decides whether to
      // renew the token (silently) or to give up (reported then).
      this.#refusal = code;
      this.#wsAuthMessage = text;
      return;
    }
    if (!this.#registered && (message.in_reply_to === 'register' || REGISTER_REFUSALS.has(code))) {
      this.#refusal = code; // the server closes the socket (4003) next
      this.#events.error(code, text);
      return;
    }
    // A refused question is answered too: its caller stops waiting.
    if (message.in_reply_to === 'watch') this.#watches.shift()?.resolve();
    if (message.in_reply_to === 'list_peers') this.#pages.shift()?.resolve(null);
    this.#events.serverError(code, text, message.in_reply_to);
  }
}
