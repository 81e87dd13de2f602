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
import type { ConnectionState } from './connection.js';
import type { EncodedMessage } from './message.js';
export type CircuitOwner = {
    /**
     * the remote peer
     */
    peerId: string;
    localPeerId: () => string;
    /**
     * the key our handshake is signed with
     */
    identity: () => CryptoKeyPair | null;
    /**
     * the `/relay` endpoint
     */
    relayUrl: string;
    /**
     * the connection's state
     */
    state: () => ConnectionState;
    sendSignal: (message: Record<string, unknown>) => boolean;
    /**
     * sends `circuit_request` and awaits `circuit_pending`
     */
    requestCircuit: (circuit: RelayedCircuit) => boolean;
    /**
     * routes signaling messages of `circuitId` to this connection
     */
    bind: (circuitId: string) => void;
    unbind: (circuitId: string) => void;
    /**
     * the handshake verified while the connection was connecting
     */
    open: () => void;
    /**
     * the circuit failed: the connection closes
     */
    close: (code: string, message: string) => void;
    /**
     * a message arrived
     */
    deliver: (message: unknown) => void;
    /**
     * a failure worth an `error` event
     */
    error: (code: string, message: string) => void;
};
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
export declare class RelayedCircuit {
    #private;
    /** This side sent the circuit_request. @readonly @type {boolean} */ readonly requester: boolean;
    /** Known once the server acknowledged the request; `null` once nothing is left to close on the server. @type {string | null} */
    circuitId: string | null;
    /** The `/relay` socket, once attached. @type {WebSocket | null} */ ws: WebSocket | null;
    /**
     * @param {CircuitOwner} owner
     * @param {boolean} requester
     * @param {string | null} circuitId known at once on the accepting side
     */
    constructor(owner: CircuitOwner, requester: boolean, circuitId: string | null);
    /**
     * Requesting side: sends `circuit_request`; `false` if it cannot be sent.
     * @returns {boolean}
     */
    request(): boolean;
    /**
     * Requesting side: the server acknowledged our request with `circuitId`.
     * @param {string} circuitId
     * @returns {boolean} false if this circuit already has one
     */
    pending(circuitId: string): boolean;
    /**
     * Accepting side: sends `circuit_accept`; `false` if it cannot be sent.
     * @returns {boolean}
     */
    accept(): boolean;
    /**
     * `circuit_ready`: attach to `/relay` with our token.
     * @param {string} circuitId
     * @param {string} token
     */
    attach(circuitId: string, token: string): void;
    /**
     * Sends one message as a SEALED frame, waiting while the socket's buffer is full.
     * @param {EncodedMessage} encoded
     * @returns {Promise<void>}
     */
    send(encoded: EncodedMessage): Promise<void>;
    /**
     * Sends a ping on the circuit; resolves with the RTT or `null` on timeout.
     * @returns {Promise<number | null>}
     */
    ping(): Promise<number | null>;
    /**
     * The connection opened: the timeout no longer applies, and a ping every
     * `intervalMs` keeps the circuit alive and measures it.
     * @param {number} intervalMs
     * @param {(rtt: number) => void} onRtt
     */
    opened(intervalMs: number, onRtt: (rtt: number) => void): void;
    /** Closes the circuit (on the server too, if it has an id) and the `/relay` socket. */
    stop(): void;
}
