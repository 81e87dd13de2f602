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
export type ConnectionState = 'connecting' | 'open' | 'closed';
export type ConnectionPath = 'direct' | 'relayed';
export type ConnectionQuality = {
    path: ConnectionPath;
    /**
     * Round-trip time in milliseconds, `null` if unknown.
     */
    rtt: number | null;
};
export type ConnectionContext = {
    localPeerId: () => string;
    identity: () => CryptoKeyPair | null;
    rtcConfig: RTCConfiguration;
    iceTimeoutMs: number;
    pingIntervalMs: number;
    relayUrl: string;
    sendSignal: (message: Record<string, unknown>) => boolean;
    requestCircuit: (conn: WebRtcConnection, relay: RelayedCircuit) => boolean;
    bindCircuit: (circuitId: string, conn: WebRtcConnection) => void;
    unbindCircuit: (circuitId: string, conn: WebRtcConnection) => void;
    stateChanged: (conn: WebRtcConnection, change: StateChange) => void;
    deliver: (conn: WebRtcConnection, message: unknown) => void;
    error: (code: string, message: string) => void;
};
export type StateChange = {
    wasOpen: boolean;
    /**
     * the connection was closed on purpose by this side
     */
    intentional: boolean;
    code?: string;
};
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
export declare class WebRtcConnection {
    #private;
    /** Remote peer id. @readonly @type {string} */
    readonly peerId: string;
    /**
     * @private
     * @param {symbol} token
     * @param {string} peerId
     * @param {boolean} initiator
     * @param {ConnectionContext} ctx
     */
    private constructor();
    /** Transport currently in use (or being tried while `connecting`). @returns {ConnectionPath} */
    get path(): ConnectionPath;
    /** @returns {ConnectionState} */
    get state(): ConnectionState;
    /** True if this side started the connection (sent the offer or circuit request that made it). @returns {boolean} */
    get initiator(): boolean;
    /** Last measured round-trip time in milliseconds, or `null`. @returns {number | null} */
    get rtt(): number | null;
    /**
     * Sends one message: a `Uint8Array`, `ArrayBuffer` or typed array as binary,
     * anything else as JSON. Waits while the transport's send buffer is full.
     * @param {unknown} message
     * @returns {Promise<void>}
     */
    send(message: unknown): Promise<void>;
    /**
     * Measures the connection: for a direct connection the `currentRoundTripTime`
     * of the selected ICE candidate pair, for a relayed one a ping/pong over the
     * circuit. Updates {@link WebRtcConnection#rtt}.
     * @returns {Promise<ConnectionQuality>}
     */
    getQuality(): Promise<ConnectionQuality>;
    /**
     * Closes this connection on purpose (a relayed circuit is closed with
     * `circuit_close`). Same as `manager.closeConnection(peerId)`.
     * @returns {Promise<void>}
     */
    close(): Promise<void>;
}
