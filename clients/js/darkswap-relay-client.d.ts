/**
 * Browser client for the `darkswap-relay` WebSocket plane (docs/signaling.md):
 * proves a libp2p peer id on `/signaling`, connects to other registered peers
 * over WebRTC data channels, and falls back to relayed circuits on `/relay`
 * when WebRTC cannot connect.
 *
 * No build step, no dependencies: import it as an ES module. This file is the
 * entry point; the code lives in `./src/`, one module per part:
 *
 * | module | holds |
 * |---|---|
 * | `src/peer-id.js` | libp2p peer ids of Ed25519 keys ({@link peerIdFromPublicKey}) |
 * | `src/identity.js` | the Ed25519 identity in IndexedDB ({@link loadOrCreateIdentity}) |
 * | `src/tokens.js` | relay tokens: {@link fetchRelayToken}, {@link refreshRelayToken}, and the keeper behind `auth: 'auto'` |
 * | `src/signaling.js` | the `/signaling` socket: registration, keep-alive, reconnection |
 * | `src/webrtc.js` | the direct path: one `RTCPeerConnection` and its data channel |
 * | `src/circuit.js` | the relayed path: a `/relay` circuit, end-to-end encrypted |
 * | `src/connection.js` | {@link WebRtcConnection}: direct first, relayed as fallback |
 * | `src/manager.js` | {@link WebRtcConnectionManager}: peers, connections, events |
 * | `src/message.js`, `src/bytes.js`, `src/json.js`, `src/errors.js`, `src/deferred.js` | what those share |
 *
 * ```js
 * import { WebRtcConnectionManager } from './darkswap-relay-client.js';
 * const manager = new WebRtcConnectionManager({ signalingUrl: 'wss://relay.example/signaling' });
 * manager.onMessage((peerId, message) => console.log(peerId, message));
 * await manager.init();
 * await manager.sendMessage(manager.peers[0], { hello: 'world' });
 * ```
 *
 * An incoming offer or circuit for a peer we consider connected replaces that
 * connection (the other side evidently lost it). Relayed circuits are
 * end-to-end encrypted (./darkswap-e2e.js, docs/security-encryption.md), so
 * the relay sees nothing but handshakes and ciphertext; direct data channels
 * are DTLS-encrypted end to end by WebRTC itself.
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
export { WebRtcConnection } from './src/connection.js';
export { loadOrCreateIdentity } from './src/identity.js';
export { WebRtcConnectionManager } from './src/manager.js';
export { peerIdFromPublicKey } from './src/peer-id.js';
export { fetchIceServers, fetchRelayToken, refreshRelayToken } from './src/tokens.js';
export type DarkSwapError = import('./src/errors.js').DarkSwapError;
export type ManagerOptions = import('./src/manager.js').ManagerOptions;
export type WebRtcConnectionManagerEventMap = import('./src/events.js').WebRtcConnectionManagerEventMap;
export type ConnectionPath = import('./src/connection.js').ConnectionPath;
export type ConnectionState = import('./src/connection.js').ConnectionState;
export type ConnectionQuality = import('./src/connection.js').ConnectionQuality;
export type SignalingState = import('./src/signaling.js').SignalingState;
export type ConnectionLifecycleState = import('./src/signaling.js').ConnectionLifecycleState;
export type PeerPage = import('./src/signaling.js').PeerPage;
export type TokenProvider = import('./src/tokens.js').TokenProvider;
export type RelayToken = import('./src/tokens.js').RelayToken;
export type RelayTokenError = import('./src/tokens.js').RelayTokenError;
/** @typedef {import('./src/errors.js').DarkSwapError} DarkSwapError */
/** @typedef {import('./src/manager.js').ManagerOptions} ManagerOptions */
/** @typedef {import('./src/events.js').WebRtcConnectionManagerEventMap} WebRtcConnectionManagerEventMap */
/** @typedef {import('./src/connection.js').ConnectionPath} ConnectionPath */
/** @typedef {import('./src/connection.js').ConnectionState} ConnectionState */
/** @typedef {import('./src/connection.js').ConnectionQuality} ConnectionQuality */
/** @typedef {import('./src/signaling.js').SignalingState} SignalingState */
/** @typedef {import('./src/signaling.js').ConnectionLifecycleState} ConnectionLifecycleState */
/** @typedef {import('./src/signaling.js').PeerPage} PeerPage */
/** @typedef {import('./src/tokens.js').TokenProvider} TokenProvider */
/** @typedef {import('./src/tokens.js').RelayToken} RelayToken */
/** @typedef {import('./src/tokens.js').RelayTokenError} RelayTokenError */
