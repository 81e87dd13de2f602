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
import type { ConnectionLifecycleState, PeerPage, SignalingState } from './signaling.js';
import type { TokenProvider } from './tokens.js';
import type { WebRtcConnectionManagerEventMap } from './events.js';
export type ManagerOptions = {
    /**
     * `ws(s)://host:port/signaling`.
     */
    signalingUrl: string;
    /**
     * `/relay` endpoint; default: `signalingUrl` with `/signaling` replaced by `/relay`.
     */
    relayUrl?: string;
    /**
     * WebCrypto Ed25519 key pair to use instead of the persisted one.
     */
    identity?: CryptoKeyPair;
    /**
     * IndexedDB key of the persisted identity (default `'darkswap-identity'`); `null` = ephemeral identity.
     */
    storageKey?: string | null;
    /**
     * Passed to every `RTCPeerConnection` (default `{ iceServers: [] }`).
     */
    rtcConfig?: RTCConfiguration;
    /**
     * Time a WebRTC attempt may take before falling back to a relayed circuit, in ms (default 5000).
     */
    iceTimeoutMs?: number;
    /**
     * Whether to accept an incoming relayed circuit from a peer (default: accept all).
     */
    acceptRelayed?: (peerId: string) => boolean;
    /**
     * Reconnect the signaling socket and lost connections automatically (default true).
     */
    autoReconnect?: boolean;
    /**
     * Keep-alive interval on `/signaling` and on relayed circuits, in ms (default 20000).
     */
    pingIntervalMs?: number;
    /**
     * How the `/signaling` socket is authorised (docs/signaling.md, Tokens):
     * `'none'` (default) shows no token, for open relays; `'auto'` earns a token with the identity key
     * ({@link fetchRelayToken}) before connecting, refreshes it after 3/4 of its lifetime (the relay then
     * closes the socket that showed the old one, and the manager reconnects at once with the new one),
     * and earns a new one if it expired anyway; a function is called for the token to show before every
     * new socket. A socket closed with 4004 for any other reason (no token on a closed relay, a role that
     * may not register, a token for another peer, revoked by an admin) is not retried: `init()` rejects,
     * or an `error` event says `unauthorized`.
     */
    auth?: 'none' | 'auto' | TokenProvider;
    /**
     * Use the relay's own STUN and TURN servers: after each registration,
     * fetch them (`POST /auth/ice-servers`, with a token earned by the identity key; TURN credentials are
     * short-lived and minted for this peer), add them to `rtcConfig.iceServers`, and fetch them again after
     * 3/4 of their lifetime (default false; the relay must have `[turn] enabled`).
     */
    relayIceServers?: boolean;
    /**
     * Base of the token service; default: `signalingUrl` with `ws(s):` → `http(s):` and `/signaling` → `/auth`.
     */
    authUrl?: string;
};
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
export declare class WebRtcConnectionManager extends EventTarget {
    #private;
    /**
     * @param {ManagerOptions} options
     */
    constructor(options: ManagerOptions);
    /** This peer's id (`12D3KooW...`), known once `init()` has loaded the identity. @returns {string | null} */
    get peerId(): string | null;
    /**
     * Other registered peers as far as the server told: the first page it gave
     * (on registration and {@link WebRtcConnectionManager#refreshPeers}) and the
     * watched peers (those connected with) that are registered.
     * @returns {string[]}
     */
    get peers(): string[];
    /**
     * Asks the server for the first page of registered peers again; resolves
     * with `peers` once it is updated (`peer-joined` and `peer-left` events
     * tell what changed).
     * @returns {Promise<string[]>}
     */
    refreshPeers(): Promise<string[]>;
    /**
     * Asks the server for one page of registered peers: the first, or the one
     * after `after` (the previous page's `next`), of at most `limit` (the server
     * caps it at its page size, 100 by default). The page becomes the listed
     * part of `peers` (the watched peers stay). Resolves with the page, or
     * `null` if the server did not answer (not registered, refused, timed out).
     * @param {{ after?: string, limit?: number }} [options]
     * @returns {Promise<PeerPage | null>}
     */
    listPeers(options?: {
        after?: string;
        limit?: number;
    }): Promise<PeerPage | null>;
    /** State of the signaling socket (`open` = registered). @returns {SignalingState} */
    get signalingState(): SignalingState;
    /**
     * Lifecycle of the connection to the relay (seed 000's states: `new`,
     * `connecting`, `connected`, `disconnected`, `failed`, `closed`); every
     * change is a `state` event, in order.
     * @returns {ConnectionLifecycleState}
     */
    get state(): ConnectionLifecycleState;
    /**
     * Loads (or creates) the identity, opens the signaling socket and registers.
     * Resolves once registered; rejects with a {@link DarkSwapError} carrying the
     * server's `code` (`bad_signature`, `server_full`, ...) or `signaling_unavailable`.
     * An `already_registered` refusal (e.g. a reloaded page whose old socket the
     * server has not dropped yet) is retried with backoff when `autoReconnect` is on.
     * Calling it again while pending returns the same promise; after a rejection it can be retried.
     * @returns {Promise<void>}
     */
    init(): Promise<void>;
    /**
     * Connects to a registered peer: WebRTC first, then a relayed circuit if the
     * data channel is not open within `iceTimeoutMs`. Resolves with the open
     * connection (an existing one if there is one).
     * @param {string} peerId
     * @returns {Promise<WebRtcConnection>}
     */
    connect(peerId: string): Promise<WebRtcConnection>;
    /**
     * Sends a message to a peer, connecting first if needed. `Uint8Array`,
     * `ArrayBuffer` and typed arrays go as binary, anything else as JSON.
     * @param {string} peerId
     * @param {unknown} message
     * @returns {Promise<void>}
     */
    sendMessage(peerId: string, message: unknown): Promise<void>;
    /**
     * Registers a message handler, called as `handler(peerId, message)` for every
     * message from any peer (JSON value, or `Uint8Array` for binary).
     * @param {(peerId: string, message: unknown) => void} handler
     * @returns {() => void} unsubscribe
     */
    onMessage(handler: (peerId: string, message: unknown) => void): () => void;
    /**
     * The current (connecting or open) connection with a peer.
     * @param {string} peerId
     * @returns {WebRtcConnection | undefined}
     */
    getConnection(peerId: string): WebRtcConnection | undefined;
    /**
     * Closes the connection with a peer on purpose (a relayed circuit with
     * `circuit_close`); it is not reconnected automatically.
     * @param {string} peerId
     * @returns {Promise<void>}
     */
    closeConnection(peerId: string): Promise<void>;
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
    get iceServers(): RTCIceServer[];
    close(): Promise<void>;
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
    addEventListener<K extends keyof WebRtcConnectionManagerEventMap>(type: K, listener: (this: WebRtcConnectionManager, event: WebRtcConnectionManagerEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void;
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
    addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
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
    removeEventListener<K extends keyof WebRtcConnectionManagerEventMap>(type: K, listener: (this: WebRtcConnectionManager, event: WebRtcConnectionManagerEventMap[K]) => void, options?: boolean | EventListenerOptions): void;
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
    removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}
