/**
 * What a {@link WebRtcConnectionManager} knows of who is registered, as the
 * relay tells it on demand (docs/signaling.md, *Peers*): the last page of
 * peers it was given (`registered`, `list_peers`), and the peers it watches
 * (`watch`) that are registered, kept current by `peer_joined` and
 * `peer_left`. The relay announces a peer only to its watchers, so a
 * registration costs one message per watcher, not one per registered peer.
 * @module
 */
import type { SignalingClient } from './signaling.js';
/** See the module docs. */
export declare class Presence {
    #private;
    /**
     * @param {{ signaling: SignalingClient, self: () => string | null,
     *   appeared: (peerId: string) => void, gone: (peerId: string) => void }} options
     *   `appeared` and `gone` are called after a peer entered or left {@link Presence#peers}
     */
    constructor({ signaling, self, appeared, gone }: {
        signaling: SignalingClient;
        self: () => string | null;
        appeared: (peerId: string) => void;
        gone: (peerId: string) => void;
    });
    /** @returns {string[]} */
    get peers(): string[];
    /** @param {string} peerId */
    has(peerId: string): boolean;
    /**
     * A new first page from the server.
     * @param {string[]} list
     */
    replaceListed(list: string[]): void;
    /**
     * What the server says of watched peers: a `presence` answer, `peer_joined`, `peer_left`.
     * @param {string[]} online
     * @param {string[]} offline
     */
    update(online: string[], offline: string[]): void;
    /**
     * Watches a peer (the most recently used of at most `MAX_WATCHED`); asks the
     * server only for a peer not watched yet, or when `ask`.
     * @param {string} peerId
     * @param {boolean} [ask]
     * @returns {Promise<void>} settled when the server has answered
     */
    watch(peerId: string, ask?: boolean): Promise<void>;
    /** Watches again on a new socket: the server forgets watches with the old one. */
    rewatch(): void;
    /** Forgets everything, without events (the manager is closing). */
    clear(): void;
}
