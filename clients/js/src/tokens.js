// @ts-check
/**
 * Relay tokens (docs/signaling.md, Tokens): JWTs of the relay's token service,
 * earned by signing a challenge with the identity key (`fetchRelayToken`),
 * traded for fresh ones (`refreshRelayToken`), and held for the signaling
 * socket by a {@link TokenKeeper}. Tokens are bearer credentials: nothing
 * here logs them.
 * @module
 */

import { base64Decode, base64Encode, concatBytes, textDecoder, textEncoder } from './bytes.js';
import { describe, makeError } from './errors.js';
import { isKeyPair } from './identity.js';
import { isNonEmptyString, isObject } from './json.js';
import { ed25519PublicKeyProtobuf, peerIdBytes, peerIdFromPublicKey } from './peer-id.js';

/** @import { DarkSwapError } from './errors.js' */

/** Tag signed before the relay's peer id and the token challenge (docs/signaling.md, Tokens). */
const AUTH_TAG = 'darkswap-relay/v1/auth-token';
/** Bound of one `/auth/*` request. */
const AUTH_TIMEOUT_MS = 15_000;
/** Share of a token's lifetime after which `auth: 'auto'` refreshes it. */
const TOKEN_REFRESH_AT = 0.75;
/** Backoff of a refresh that failed for a transient reason (network, 429, 5xx). */
const TOKEN_RETRY_MIN_MS = 1_000;
/** Ceiling of that backoff (the same as the signaling socket's reconnect backoff). */
const TOKEN_RETRY_MAX_MS = 10_000;

/** Characters a WebSocket subprotocol may hold (an RFC 7230 token). */
const SUBPROTOCOL_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

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
 * Error of {@link fetchRelayToken} and {@link refreshRelayToken}: `code` is the
 * service's (`bad_proof`, `unknown_challenge`, `expired`, `revoked`,
 * `rate_limited`, ...), `auth_unavailable` when the service did not answer, or
 * `auth_protocol_error`; `status` is the HTTP status (0 without an answer);
 * with `rate_limited` (429), `retryAfterMs` is the relay's `Retry-After` in ms.
 * @typedef {DarkSwapError & { status: number, retryAfterMs?: number }} RelayTokenError
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
 * What the manager's `token` event tells about a token `auth: 'auto'` earned
 * or refreshed (never the token itself).
 * @typedef {object} TokenEventDetail
 * @property {string} role `'guest'`, `'user'` or `'admin'`
 * @property {number} expiresAt unix seconds (the relay's clock)
 * @property {'challenge' | 'refresh'} via earned with a signed challenge, or traded for the previous token
 */

/**
 * A token held by a {@link TokenKeeper}, with when to replace it (`performance.now()` ms).
 * @typedef {RelayToken & { refreshAt: number, deadline: number }} HeldToken
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
 * @returns {RelayTokenError}
 */
function authError(code, message, status, retryAfterMs) {
  const error = /** @type {RelayTokenError} */ (makeError(code, message));
  error.status = status;
  if (retryAfterMs !== undefined) error.retryAfterMs = retryAfterMs;
  return error;
}

/**
 * A failure worth retrying later: no answer, rate limited, or a server error.
 * @param {unknown} error
 * @returns {boolean}
 */
export function isTransientAuthError(error) {
  const e = /** @type {{ code?: unknown, status?: unknown } | null | undefined} */ (error);
  return e?.code === 'auth_unavailable' || e?.code === 'rate_limited'
    || (typeof e?.status === 'number' && e.status >= 500);
}

/**
 * One `POST` to the token service. Errors carry the service's code
 * (`bad_proof`, `unknown_challenge`, `expired`, `revoked`, `rate_limited`, ...),
 * `auth_unavailable` when there is no answer, or `auth_protocol_error`.
 * @param {string} base
 * @param {'challenge' | 'token' | 'refresh' | 'ice-servers'} endpoint
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
 * Rejects with a {@link RelayTokenError} whose `code` is the service's
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
 * The relay's own STUN and TURN servers (`POST /auth/ice-servers`): its STUN
 * server, and its TURN server with time-limited credentials minted for the
 * token's peer (coturn's REST scheme), ready for `RTCConfiguration.iceServers`.
 * Rejects like {@link fetchRelayToken}; `not_enabled` when the relay serves
 * no STUN/TURN, `forbidden` for a role the relay gives no TURN credentials.
 * @param {{ signalingUrl?: string, authUrl?: string, token: string }} options
 * @returns {Promise<{ iceServers: RTCIceServer[], expiresAt: number }>} `expiresAt` in unix seconds
 */
export async function fetchIceServers(options) {
  if (!isObject(options) || !isNonEmptyString(options.token)) {
    throw new TypeError('fetchIceServers needs { signalingUrl or authUrl, token }');
  }
  const answer = await authRequest(resolveAuthUrl(options), 'ice-servers', {}, options.token);
  const servers = Array.isArray(answer.ice_servers) ? answer.ice_servers : null;
  if (!servers || typeof answer.expires_at !== 'number') {
    throw authError('auth_protocol_error', '/auth/ice-servers: the answer lacks ice_servers or expires_at', 200);
  }
  /** @type {RTCIceServer[]} */
  const iceServers = [];
  for (const server of servers) {
    if (!isObject(server) || !Array.isArray(server.urls) || !server.urls.every(isNonEmptyString)) continue;
    /** @type {RTCIceServer} */
    const entry = { urls: /** @type {string[]} */ (server.urls) };
    if (isNonEmptyString(server.username) && isNonEmptyString(server.credential)) {
      entry.username = server.username;
      entry.credential = server.credential;
    }
    iceServers.push(entry);
  }
  return { iceServers, expiresAt: answer.expires_at };
}

/**
 * Lifetime of a token in ms from its own claims (`exp - nbf`), so that
 * scheduling does not depend on this machine's clock agreeing with the
 * relay's; falls back to `expiresAt` against the local clock.
 * @param {RelayToken} relayToken
 * @returns {number}
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

/**
 * What a {@link TokenKeeper} is made of.
 * @typedef {object} TokenKeeperOptions
 * @property {'auto' | TokenProvider} auth `'auto'` earns tokens; a provider is asked for them
 * @property {string} signalingUrl
 * @property {string | null} authUrl base of the token service; `null`: derived from `signalingUrl` on first use
 * @property {() => CryptoKeyPair | null} identity the key tokens are earned with, once loaded
 * @property {(detail: TokenEventDetail) => void} onToken `'auto'` earned or refreshed a token
 * @property {(code: string, message: string) => void} onError a scheduled refresh failed
 */

/**
 * The token the signaling socket shows, for `auth: 'auto'` or a
 * {@link TokenProvider}. With `'auto'` it earns a token with the identity key,
 * refreshes it after 3/4 of its lifetime (the relay then revokes the old one)
 * and earns a new one when the held one can no longer be refreshed; one
 * request at a time.
 */
export class TokenKeeper {
  /** @type {'auto' | 'provider'} */ #mode;
  /** @type {TokenProvider | null} */ #provider = null;
  /** @type {string} */ #signalingUrl;
  /** @type {string | null} token service base, resolved on first use */ #authUrl;
  /** @type {() => CryptoKeyPair | null} */ #identity;
  /** @type {(detail: TokenEventDetail) => void} */ #onToken;
  /** @type {(code: string, message: string) => void} */ #onError;

  /** @type {HeldToken | null} the token `auth: 'auto'` shows */ #token = null;
  /** @type {Promise<HeldToken> | null} a refresh or challenge under way */ #task = null;
  /** @type {string | null} the token a refresh under way retires */ #refreshing = null;
  /** @type {string | null} the last token our own refresh retired */ #retired = null;
  /** @type {ReturnType<typeof setTimeout> | null} */ #refreshTimer = null;
  #refreshFailures = 0;
  #closed = false;

  /** @param {TokenKeeperOptions} options */
  constructor({ auth, signalingUrl, authUrl, identity, onToken, onError }) {
    if (typeof auth === 'function') {
      this.#mode = 'provider';
      this.#provider = auth;
    } else {
      this.#mode = 'auto';
    }
    this.#signalingUrl = signalingUrl;
    this.#authUrl = authUrl;
    this.#identity = identity;
    this.#onToken = onToken;
    this.#onError = onError;
  }

  /**
   * The token for a new socket; `fresh` if it was earned (or supplied) for it
   * rather than kept from before.
   * @param {string} peerId who the socket registers as
   * @returns {Promise<{ token: string, fresh: boolean }>}
   */
  async forSocket(peerId) {
    if (this.#mode === 'provider') {
      const provider = /** @type {TokenProvider} */ (this.#provider);
      const token = await provider({ peerId });
      if (!isNonEmptyString(token) || !SUBPROTOCOL_TOKEN.test(token)) {
        throw makeError('unauthorized', 'the auth callback returned no usable token');
      }
      return { token, fresh: true };
    }
    const held = this.#token;
    if (held && performance.now() < held.refreshAt) return { token: held.token, fresh: false };
    try {
      return { token: (await this.#renew()).token, fresh: true };
    } catch (error) {
      // The token service is unreachable at the moment; the token we hold still works.
      if (held && this.#token === held && isTransientAuthError(error) && performance.now() < held.deadline) {
        return { token: held.token, fresh: false };
      }
      throw error;
    }
  }

  /**
   * Whether a socket closed with 4004 failed for a reason a new token cures.
   * @param {string} token the token the socket showed
   * @param {boolean} fresh it was earned or supplied for that socket
   * @param {string} reason close reason
   * @param {string | null} authMessage the server's `unauthorized` error, if it sent one
   * @returns {boolean}
   */
  renewable(token, fresh, reason, authMessage) {
    if (reason === 'token expired') return true; // accepted, then ran out (older relays)
    if (this.#mode !== 'auto') return false;
    if (reason === 'token revoked') return token === this.#retired || token === this.#refreshing;
    // Refused at once: a token we had kept went stale meanwhile (expired while
    // asleep, the relay's key changed). Not a revocation, and never twice.
    return reason === 'invalid token' && !fresh && authMessage !== 'token revoked';
  }

  /**
   * Drops `token` if it is the one held, so that the next socket gets a new one.
   * @param {string} token
   */
  forget(token) {
    if (this.#token?.token === token) this.#token = null;
  }

  /** Stops the scheduled refresh (the token, if any, stays held). */
  stopRefreshing() {
    if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
  }

  /** Stops refreshing and drops the token; requests under way fail with `closed`. */
  close() {
    this.#closed = true;
    this.stopRefreshing();
    this.#token = null;
  }

  /**
   * Refreshes the token we hold while it is valid, otherwise (or if the relay
   * refuses the refresh) earns a new one with a challenge. One at a time.
   * @returns {Promise<HeldToken>}
   */
  #renew() {
    if (!this.#task) {
      const task = this.#earn();
      this.#task = task;
      task.finally(() => { if (this.#task === task) this.#task = null; }).catch(() => {});
    }
    return this.#task;
  }

  /** @returns {Promise<HeldToken>} */
  async #earn() {
    const authUrl = this.#authUrl ?? resolveAuthUrl({ signalingUrl: this.#signalingUrl });
    this.#authUrl = authUrl;
    const held = this.#token;
    /** @type {RelayToken | null} */
    let next = null;
    /** @type {TokenEventDetail['via']} */
    let via = 'challenge';
    if (held && performance.now() < held.deadline) {
      this.#refreshing = held.token;
      try {
        next = await refreshRelayToken({ authUrl, token: held.token });
        this.#retired = held.token;
        via = 'refresh';
      } catch (error) {
        if (isTransientAuthError(error)) throw error;
        // expired, revoked, ...: earn a new one below.
      } finally {
        this.#refreshing = null;
      }
    }
    if (!next) {
      const identity = this.#identity();
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
    this.#onToken({ role: token.role, expiresAt: token.expiresAt, via });
    return token;
  }

  /** @param {number} delayMs */
  #scheduleRefresh(delayMs) {
    if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
    if (this.#closed || this.#mode !== 'auto') return;
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = null;
      if (this.#closed || !this.#token) return;
      const held = this.#token;
      this.#renew().catch((/** @type {unknown} */ error) => {
        if (this.#closed || this.#token !== held) return;
        const failure = /** @type {Partial<RelayTokenError> | null | undefined} */ (error);
        this.#onError(failure?.code ?? 'auth_unavailable', `refreshing the relay token: ${describe(error)}`);
        // Retry transient failures while the token lasts; after that the
        // next connection finds it expired and earns a new one.
        const left = held.deadline - performance.now();
        if (!isTransientAuthError(error) || left <= 0) return;
        const backoff = Math.min(TOKEN_RETRY_MAX_MS, TOKEN_RETRY_MIN_MS * 2 ** this.#refreshFailures++);
        this.#scheduleRefresh(Math.min(left / 2, Math.max(backoff, failure?.retryAfterMs ?? 0)));
      });
    }, Math.max(0, delayMs));
  }
}
