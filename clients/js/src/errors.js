// @ts-check
/**
 * Errors of the client: a standard `Error` with a machine-readable `code`.
 * @module
 */

/**
 * Error raised by this client: a standard `Error` with a machine-readable `code`
 * (a server error code from docs/signaling.md such as `bad_signature`, or one of
 * this client's: `closed`, `signaling_unavailable`, `unknown_peer`, `invalid_peer`,
 * `ice_timeout`, `ice_failed`, `channel_closed`, `webrtc_error`, `circuit_rejected`,
 * `circuit_timeout`, `circuit_closed`, `relay_closed`, `relay_unavailable`,
 * `peer_left`, `signaling_closed`, `replaced`, `not_open`, `message_too_large`,
 * `send_queue_full`), a token service error (`unauthorized`, `bad_proof`,
 * `unknown_challenge`, `expired`, `revoked`, `rate_limited`, `auth_unavailable`,
 * `auth_protocol_error`, ...; see `RelayTokenError`), or, on a relayed circuit,
 * an end-to-end encryption failure (`e2e_bad_signature`, `e2e_authentication_failed`,
 * `e2e_replay`, `e2e_too_old`, `e2e_protocol_error`, ...; see ../darkswap-e2e.js),
 * which closes the connection.
 * @typedef {Error & { code: string }} DarkSwapError
 */

/**
 * @param {string} code
 * @param {string} message
 * @returns {DarkSwapError}
 */
export function makeError(code, message) {
  const error = /** @type {DarkSwapError} */ (new Error(message));
  error.code = code;
  return error;
}

/**
 * The message of anything thrown.
 * @param {unknown} error
 * @returns {string}
 */
export function describe(error) {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Reports an error that has no caller to reject (a throwing event listener or
 * message handler) without interrupting the client.
 * @param {unknown} error
 */
export function report(error) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(error);
  else console.error(error);
}
