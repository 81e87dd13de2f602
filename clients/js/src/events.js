// @ts-check
/**
 * The events of {@link WebRtcConnectionManager} and what each carries.
 * @module
 */

/**
 * @import { WebRtcConnection, ConnectionPath, ConnectionState } from './connection.js'
 * @import { DarkSwapError } from './errors.js'
 * @import { WebRtcConnectionManager } from './manager.js'
 * @import { ConnectionLifecycleState, SignalingState } from './signaling.js'
 * @import { TokenEventDetail } from './tokens.js'
 */

/**
 * Detail of the `registered` event.
 * @typedef {object} RegisteredDetail
 * @property {string} peerId this peer's id
 * @property {string[]} peers the other registered peers
 */

/**
 * Detail of the `peer-joined` and `peer-left` events.
 * @typedef {object} PeerDetail
 * @property {string} peerId
 */

/**
 * Detail of the `connection` event.
 * @typedef {object} ConnectionDetail
 * @property {WebRtcConnection} connection the connection that opened
 */

/**
 * Detail of the `connection-state` event.
 * @typedef {object} ConnectionStateDetail
 * @property {string} peerId
 * @property {ConnectionState} state
 * @property {ConnectionPath} path
 * @property {string} [code] why, when a connection closed other than by `close()`/`closeConnection()`
 */

/**
 * Detail of the `message` event.
 * @typedef {object} MessageDetail
 * @property {string} peerId the sender
 * @property {unknown} message a JSON value, or a `Uint8Array` for binary payloads
 */

/**
 * Detail of the `signaling-state` event.
 * @typedef {object} SignalingStateDetail
 * @property {SignalingState} state
 */

/**
 * Detail of the `state` event.
 * @typedef {object} StateDetail
 * @property {ConnectionLifecycleState} state the new state
 */

/**
 * Detail of the `error` event.
 * @typedef {object} ErrorDetail
 * @property {string} code see {@link DarkSwapError}
 * @property {string} message
 */

// One line per group, each starting with an unquoted key: TypeScript 7.0.2
// mis-emits a quoted key that starts a line of a multi-line JSDoc type.
/**
 * Events of {@link WebRtcConnectionManager}, all `CustomEvent`s (read `event.detail`):
 * `registered` after every (re-)registration; `peer-joined`, `peer-left` when a peer
 * enters or leaves {@link WebRtcConnectionManager#peers};
 * `connection` when any connection opens, incoming or outgoing;
 * `connection-state` on every state or path change; `message`;
 * `signaling-state` (`open` = registered); `state` on every change of
 * {@link WebRtcConnectionManager#state} (`new` → `connecting` → `connected` →
 * `disconnected` → `connecting` → ... → `closed`); `token` when `auth: 'auto'` earned
 * or refreshed a token (the token itself is not in the event); `error` for
 * server errors and local failures that have no caller to reject.
 * @typedef {{ registered: CustomEvent<RegisteredDetail>, 'peer-joined': CustomEvent<PeerDetail>, 'peer-left': CustomEvent<PeerDetail>,
 *   connection: CustomEvent<ConnectionDetail>, 'connection-state': CustomEvent<ConnectionStateDetail>,
 *   message: CustomEvent<MessageDetail>, 'signaling-state': CustomEvent<SignalingStateDetail>, state: CustomEvent<StateDetail>,
 *   token: CustomEvent<TokenEventDetail>, error: CustomEvent<ErrorDetail> }} WebRtcConnectionManagerEventMap
 */

export {};
