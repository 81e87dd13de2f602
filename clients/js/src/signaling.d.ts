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
import type { DarkSwapError } from './errors.js';
import type { TokenKeeper } from './tokens.js';
export type SignalingState = 'connecting' | 'open' | 'closed';
export type ConnectionLifecycleState = 'new' | 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed';
export type PeerPage = {
    /**
     * the page, in the server's order
     */
    peers: string[];
    /**
     * where the next page starts (`after`); `null` on the last page
     */
    next: string | null;
};
export type Signer = {
    identity: CryptoKeyPair;
    /**
     * libp2p protobuf encoding of the public key
     */
    publicKeyProtobuf: Uint8Array;
    peerId: string;
};
export type SignalingEvents = {
    /**
     * the state changed
     */
    state: (state: SignalingState) => void;
    /**
     * the lifecycle state changed
     */
    lifecycle: (state: ConnectionLifecycleState) => void;
    /**
     * a page of the registered peers (the first on registration, then each answer to `list_peers`)
     */
    peers: (peers: string[]) => void;
    /**
     * which of the peers named in a `watch` are registered now
     */
    presence: (online: string[], offline: string[]) => void;
    /**
     * registered, the state is `open`
     */
    registered: () => void;
    /**
     * a watched peer registered
     */
    peerJoined: (peerId: string) => void;
    /**
     * a watched peer left
     */
    peerLeft: (peerId: string) => void;
    /**
     * an offer, answer, candidate or circuit message
     */
    message: (message: Record<string, unknown>) => void;
    /**
     * an `error` message that is not about registration
     */
    serverError: (code: string, message: string, inReplyTo: unknown) => void;
    /**
     * the socket is gone (before the state becomes `closed`)
     */
    socketGone: (wasRegistered: boolean) => void;
    /**
     * the client gave up until `start()` is called again
     */
    stopped: (error: DarkSwapError, reportIfNoCaller: boolean) => void;
    /**
     * a local failure worth an `error` event
     */
    error: (code: string, message: string) => void;
};
/** A client of the relay's `/signaling` WebSocket. */
export declare class SignalingClient {
    #private;
    /**
     * @param {{ url: string, autoReconnect: boolean, pingIntervalMs: number, tokens: TokenKeeper | null, events: SignalingEvents }} options
     */
    constructor({ url, autoReconnect, pingIntervalMs, tokens, events }: {
        url: string;
        autoReconnect: boolean;
        pingIntervalMs: number;
        tokens: TokenKeeper | null;
        events: SignalingEvents;
    });
    /** @returns {SignalingState} */
    get state(): SignalingState;
    /** @returns {ConnectionLifecycleState} */
    get lifecycle(): ConnectionLifecycleState;
    /** Whether the current socket is registered. */
    get registered(): boolean;
    /**
     * Connects and registers with `signer`, unless a reconnect is already
     * scheduled; `events.registered` tells when it is done.
     * @param {Signer} signer
     */
    start(signer: Signer): void;
    /**
     * Sends one message; `false` if it cannot be sent (no socket, not
     * registered yet, or too large).
     * @param {Record<string, unknown>} message
     * @returns {boolean}
     */
    send(message: Record<string, unknown>): boolean;
    /**
     * Asks the server for one page of registered peers (`list_peers`): the
     * first, or the one after `after` (the `next` of the previous page), of at
     * most `limit` (the server caps it at its page size). Resolves with the page
     * when it arrives (after `events.peers`), or with `null` when the server
     * refuses, after `REGISTER_TIMEOUT_MS` or when the socket goes.
     * @param {{ after?: string, limit?: number }} [options]
     * @returns {Promise<PeerPage | null>}
     */
    listPeers({ after, limit }?: {
        after?: string;
        limit?: number;
    }): Promise<PeerPage | null>;
    /**
     * Asks to hear when these peers register or leave (`watch`); resolves when
     * the server says which are registered now (after `events.presence`), or
     * refuses, after `REGISTER_TIMEOUT_MS` or when the socket goes.
     * @param {string[]} peerIds
     * @returns {Promise<void>}
     */
    watch(peerIds: string[]): Promise<void>;
    /**
     * Stops hearing of these peers (`unwatch`).
     * @param {string[]} peerIds
     */
    unwatch(peerIds: string[]): void;
    /** Closes the socket and stops every timer; the client cannot be used afterwards. */
    close(): void;
}
