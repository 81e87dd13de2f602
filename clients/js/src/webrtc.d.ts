/**
 * The direct path of a connection: one WebRTC attempt, an `RTCPeerConnection`
 * with one data channel labelled `darkswap`, negotiated through the signaling
 * server (offer, answer and trickled ICE candidates, tagged with a session id
 * so that a late message of an earlier attempt is ignored).
 *
 * The offering side creates the data channel; the answering side takes the
 * first channel with our label. Either side gives up after its timeout (the
 * answering side allows a grace period more), and the offering side also
 * when the browser gathers no local candidate at all; what happens then is
 * the connection's decision (the offering side falls back to a circuit).
 * @module
 */
import type { ConnectionState } from './connection.js';
import type { EncodedMessage } from './message.js';
export type DirectOwner = {
    /**
     * the remote peer
     */
    peerId: string;
    rtcConfig: RTCConfiguration;
    iceTimeoutMs: number;
    /**
     * the connection's state
     */
    state: () => ConnectionState;
    sendSignal: (message: Record<string, unknown>) => boolean;
    /**
     * the data channel opened while the connection was connecting
     */
    open: () => void;
    /**
     * the attempt cannot (or can no longer) carry the connection
     */
    failed: (attempt: DirectAttempt, code: string, message: string) => void;
    /**
     * a message arrived
     */
    deliver: (message: unknown) => void;
    /**
     * a local failure worth an `error` event
     */
    error: (code: string, message: string) => void;
};
/**
 * What a WebRTC attempt reads from, and reports to, the connection it works for.
 * @typedef {object} DirectOwner
 * @property {string} peerId the remote peer
 * @property {RTCConfiguration} rtcConfig
 * @property {number} iceTimeoutMs
 * @property {() => ConnectionState} state the connection's state
 * @property {(message: Record<string, unknown>) => boolean} sendSignal
 * @property {() => void} open the data channel opened while the connection was connecting
 * @property {(attempt: DirectAttempt, code: string, message: string) => void} failed the attempt cannot (or can no longer) carry the connection
 * @property {(message: unknown) => void} deliver a message arrived
 * @property {(code: string, message: string) => void} error a local failure worth an `error` event
 */
/** A random URL-safe id (16 bytes of entropy). */
export declare function randomId(): string;
/** One WebRTC attempt with one peer; stopped for good by {@link DirectAttempt#stop}. */
export declare class DirectAttempt {
    #private;
    /** @readonly @type {RTCPeerConnection} */ readonly pc: RTCPeerConnection;
    /** @type {RTCDataChannel | null} */ dc: RTCDataChannel | null;
    /** Tags this attempt's offer, answer and candidates. @readonly @type {string | undefined} */ readonly session: string | undefined;
    /** This side sent the offer. @readonly @type {boolean} */ readonly offerer: boolean;
    /**
     * Makes the peer connection and arms the attempt's timeout; throws if the
     * browser cannot make one (WebRTC disabled, invalid `rtcConfig`).
     * @param {DirectOwner} owner
     * @param {boolean} offerer
     * @param {string | undefined} session
     */
    constructor(owner: DirectOwner, offerer: boolean, session: string | undefined);
    /** Offering side: creates the data channel (throws if the browser cannot). */
    createDataChannel(): void;
    /** Offering side: creates the offer and sends it. */
    offer(): Promise<void>;
    /**
     * Answering side: applies the peer's offer and sends our answer.
     * @param {string} sdp
     */
    answer(sdp: string): Promise<void>;
    /**
     * The peer's answer to our offer (ignored unless it answers this attempt's offer).
     * @param {string} sdp
     * @param {string | undefined} session
     */
    handleAnswer(sdp: string, session: string | undefined): Promise<void>;
    /**
     * A remote ICE candidate of this attempt; kept until the remote description is applied.
     * @param {unknown} candidate `RTCIceCandidateInit` or `null` (end of candidates)
     * @param {string | undefined} session
     */
    handleCandidate(candidate: unknown, session: string | undefined): Promise<void>;
    /**
     * Sends one message on the data channel, waiting while its buffer is full.
     * @param {EncodedMessage} encoded
     * @returns {Promise<void>}
     */
    send(encoded: EncodedMessage): Promise<void>;
    /**
     * `currentRoundTripTime` (ms) of the selected candidate pair, or `null`.
     * @returns {Promise<number | null>}
     */
    rtt(): Promise<number | null>;
    /** The connection opened: the timeout no longer applies. */
    opened(): void;
    /** Closes the data channel and the peer connection; nothing of this attempt is reported any more. */
    stop(): void;
}
